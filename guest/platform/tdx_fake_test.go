package platform

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
	tdxvalidate "github.com/google/go-tdx-guest/validate"
	tdxverify "github.com/google/go-tdx-guest/verify"

	vplatform "github.com/devattest/devattest/policy/platform"
)

func newFakeTDX(t *testing.T) *FakeTDX {
	t.Helper()
	a, err := New("fake-tdx", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a.(*FakeTDX)
}

func TestFakeTDXQuoteVerifies(t *testing.T) {
	f := newFakeTDX(t)
	roots := f.Roots()
	ctx := context.Background()
	for _, b := range []byte{0, 7, 0xA0} {
		ud := userData(b)
		r, err := f.Report(ctx, ud)
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != KindTDX {
			t.Fatalf("kind %q", r.Kind)
		}
		q, err := vplatform.VerifyTDX(r.Raw, roots, ud)
		if err != nil {
			t.Fatalf("vplatform.VerifyTDX: %v", err)
		}
		if !bytes.Equal(q.GetTdQuoteBody().GetReportData(), ud[:]) {
			t.Errorf("parsed REPORTDATA %x, want %x", q.GetTdQuoteBody().GetReportData(), ud)
		}
		// The library's own entry points agree.
		if err := tdxverify.RawTdxQuote(r.Raw, &tdxverify.Options{TrustedRoots: roots}); err != nil {
			t.Fatalf("verify.RawTdxQuote: %v", err)
		}
		if err := tdxvalidate.TdxQuote(q, &tdxvalidate.Options{
			HeaderOptions:      tdxvalidate.HeaderOptions{QeVendorID: fakeTDXQEVendorID},
			TdQuoteBodyOptions: tdxvalidate.TdQuoteBodyOptions{ReportData: ud[:]},
		}); err != nil {
			t.Fatalf("validate.TdxQuote: %v", err)
		}
		if err := vplatform.VerifyReport(r, vplatform.TrustAnchors{TDX: roots}, ud); err != nil {
			t.Fatalf("vplatform.VerifyReport: %v", err)
		}
		if _, err := vplatform.VerifyTDX(r.Raw, roots, userData(b+1)); !errors.Is(err, vplatform.ErrUserDataMismatch) {
			t.Errorf("other user data: err = %v, want vplatform.ErrUserDataMismatch", err)
		}
	}
}

// byte offsets in a v4 quote: header 0x30 bytes, then the TD quote body
// (MRTD at body+0x88, REPORTDATA at body+0x208), u32 signed data size, then
// the signed data starting with the quote signature.
const (
	tdxQuoteBodyOffset  = 0x30
	tdxMrTdOffset       = tdxQuoteBodyOffset + 0x88
	tdxReportDataOffset = tdxQuoteBodyOffset + 0x208
	tdxSignatureOffset  = 0x27C
	tdxAttestKeyOffset  = tdxSignatureOffset + 0x40
	tdxQEReportOffset   = tdxAttestKeyOffset + 0x40 + 6
)

func TestFakeTDXTamperRejected(t *testing.T) {
	f := newFakeTDX(t)
	ud := userData(3)
	r, err := f.Report(context.Background(), ud)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		off  int
	}{
		{"REPORTDATA", tdxReportDataOffset + 5},
		{"MRTD", tdxMrTdOffset},
		{"RTMR[3]", tdxQuoteBodyOffset + 0x148 + 3*0x30},
		{"header", 0x10},
		{"quote signature", tdxSignatureOffset + 7},
		{"attestation key", tdxAttestKeyOffset + 3},
		{"QE report", tdxQEReportOffset + 0x40},
		{"QE report data", tdxQEReportOffset + 0x140},
		{"QE report signature", tdxQEReportOffset + 0x180 + 9},
	} {
		raw := bytes.Clone(r.Raw)
		raw[tc.off] ^= 0x01
		_, err := vplatform.VerifyTDX(raw, f.Roots(), ud)
		if !errors.Is(err, vplatform.ErrVerify) {
			t.Errorf("%s flipped: err = %v, want vplatform.ErrVerify", tc.name, err)
		}
		t.Logf("%s flipped: %v", tc.name, err)
	}
	// The same quote with REPORTDATA flipped is also refused when the caller
	// expects the flipped user data (the signature no longer matches).
	raw := bytes.Clone(r.Raw)
	raw[tdxReportDataOffset] ^= 0x80
	var other [UserDataSize]byte
	copy(other[:], raw[tdxReportDataOffset:tdxReportDataOffset+UserDataSize])
	if _, err := vplatform.VerifyTDX(raw, f.Roots(), other); !errors.Is(err, vplatform.ErrVerify) {
		t.Errorf("REPORTDATA rewritten to match: err = %v, want vplatform.ErrVerify", err)
	}
	// Intel's production root does not accept the fake chain.
	if _, err := vplatform.VerifyTDX(r.Raw, nil, ud); !errors.Is(err, vplatform.ErrVerify) {
		t.Errorf("Intel roots: err = %v, want vplatform.ErrVerify", err)
	}
	// Another fake's root does not either.
	g := newFakeTDX(t)
	if _, err := vplatform.VerifyTDX(r.Raw, g.Roots(), ud); !errors.Is(err, vplatform.ErrVerify) {
		t.Errorf("other fake's root: err = %v, want vplatform.ErrVerify", err)
	}
	if _, err := vplatform.VerifyTDX(r.Raw, x509.NewCertPool(), ud); !errors.Is(err, vplatform.ErrVerify) {
		t.Errorf("empty root pool: err = %v, want vplatform.ErrVerify", err)
	}
}

// The offsets the tamper test uses are where the library puts the fields.
func TestFakeTDXOffsets(t *testing.T) {
	f := newFakeTDX(t)
	ud := userData(9)
	r, err := f.Report(context.Background(), ud)
	if err != nil {
		t.Fatal(err)
	}
	q, err := tdxabi.QuoteToProto(r.Raw)
	if err != nil {
		t.Fatal(err)
	}
	qv4 := q.(*tdxpb.QuoteV4)
	if !bytes.Equal(r.Raw[tdxReportDataOffset:tdxReportDataOffset+64], ud[:]) {
		t.Error("REPORTDATA offset")
	}
	if !bytes.Equal(r.Raw[tdxSignatureOffset:tdxSignatureOffset+64], qv4.GetSignedData().GetSignature()) {
		t.Error("signature offset")
	}
	if !bytes.Equal(r.Raw[tdxAttestKeyOffset:tdxAttestKeyOffset+64], qv4.GetSignedData().GetEcdsaAttestationKey()) {
		t.Error("attestation key offset")
	}
	qe := qv4.GetSignedData().GetCertificationData().GetQeReportCertificationData()
	if !bytes.Equal(r.Raw[tdxQEReportOffset+0x140:tdxQEReportOffset+0x180], qe.GetQeReport().GetReportData()) {
		t.Error("QE report offset")
	}
	if !bytes.Equal(r.Raw[tdxQEReportOffset+0x180:tdxQEReportOffset+0x1C0], qe.GetQeReportSignature()) {
		t.Error("QE report signature offset")
	}
	// Re-serialising the parsed quote gives the same bytes.
	again, err := tdxabi.QuoteToAbiBytes(qv4)
	if err != nil || !bytes.Equal(again, r.Raw) {
		t.Errorf("QuoteToAbiBytes round trip differs (err %v)", err)
	}
}

func TestFakeTDXExtendReplays(t *testing.T) {
	for _, rtmr := range []int{0, 2, 3} {
		a, err := NewFakeTDX(Options{TDXRTMR: rtmr})
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(rtmr)
		if rtmr == 0 {
			want = DefaultTDXRTMR
		}
		ctx := context.Background()
		for i, d := range [][]byte{[]byte("device-a evidence digest"), make([]byte, 32), {1}} {
			if err := a.Extend(ctx, d, "event"); err != nil {
				t.Fatalf("Extend %d: %v", i, err)
			}
		}
		if err := a.Extend(ctx, nil, "empty"); err == nil {
			t.Error("empty digest accepted")
		}
		ud := userData(1)
		r, err := a.Report(ctx, ud)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.EventLog) != 3 || r.EventLog[0].Register != want {
			t.Fatalf("event log %+v, want 3 events on RTMR[%d]", r.EventLog, want)
		}
		q, err := vplatform.VerifyTDX(r.Raw, a.Roots(), ud)
		if err != nil {
			t.Fatal(err)
		}
		rtmrs := q.GetTdQuoteBody().GetRtmrs()
		if got := vplatform.ReplayEventLog(KindTDX, r.EventLog, want); !bytes.Equal(got, rtmrs[want]) {
			t.Errorf("replay %x, quote RTMR[%d] %x", got, want, rtmrs[want])
		}
		for i := range uint32(4) {
			if i != want && !bytes.Equal(rtmrs[i], make([]byte, 48)) {
				t.Errorf("RTMR[%d] not zero", i)
			}
		}
		if err := vplatform.VerifyReport(r, vplatform.TrustAnchors{TDX: a.Roots()}, ud); err != nil {
			t.Fatalf("vplatform.VerifyReport: %v", err)
		}
		// A log with an event dropped or altered no longer replays.
		short := *r
		short.EventLog = r.EventLog[:2]
		if err := vplatform.VerifyReport(&short, vplatform.TrustAnchors{TDX: a.Roots()}, ud); !errors.Is(err, vplatform.ErrEventLog) {
			t.Errorf("dropped event: err = %v, want vplatform.ErrEventLog", err)
		}
		bad := *r
		bad.EventLog = append([]Event(nil), r.EventLog...)
		bad.EventLog[1].Digest = []byte("other")
		if err := vplatform.VerifyReport(&bad, vplatform.TrustAnchors{TDX: a.Roots()}, ud); !errors.Is(err, vplatform.ErrEventLog) {
			t.Errorf("altered event: err = %v, want vplatform.ErrEventLog", err)
		}
		// The report survives encoding.
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var dec Report
		if err := dec.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		if err := vplatform.VerifyReport(&dec, vplatform.TrustAnchors{TDX: a.Roots()}, ud); err != nil {
			t.Errorf("decoded report: %v", err)
		}
		a.Close()
	}
}

// A quote re-signed with another attestation key fails the QE report data
// binding (SHA-256(attestation key || QE auth data)), though its own
// signature is valid.
func TestFakeTDXOtherAttestationKeyRejected(t *testing.T) {
	f := newFakeTDX(t)
	ud := userData(4)
	r, err := f.Report(context.Background(), ud)
	if err != nil {
		t.Fatal(err)
	}
	q, err := tdxabi.QuoteToProto(r.Raw)
	if err != nil {
		t.Fatal(err)
	}
	qv4 := q.(*tdxpb.QuoteV4)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ak := make([]byte, 64)
	other.X.FillBytes(ak[:32])
	other.Y.FillBytes(ak[32:])
	qv4.SignedData.EcdsaAttestationKey = ak
	hb, err := tdxabi.HeaderToAbiBytes(qv4.GetHeader())
	if err != nil {
		t.Fatal(err)
	}
	bb, err := tdxabi.TdQuoteBodyToAbiBytes(qv4.GetTdQuoteBody())
	if err != nil {
		t.Fatal(err)
	}
	if qv4.SignedData.Signature, err = signRaw(other, append(hb, bb...)); err != nil {
		t.Fatal(err)
	}
	raw, err := tdxabi.QuoteToAbiBytes(qv4)
	if err != nil {
		t.Fatal(err)
	}
	_, err = vplatform.VerifyTDX(raw, f.Roots(), ud)
	if !errors.Is(err, vplatform.ErrVerify) || !strings.Contains(err.Error(), "QE report data") {
		t.Errorf("other attestation key: err = %v, want vplatform.ErrVerify on the QE report data", err)
	}
}
