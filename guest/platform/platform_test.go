package platform

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"

	vplatform "github.com/devattest/devattest/policy/platform"
)

func userData(b byte) (u [UserDataSize]byte) {
	for i := range u {
		u[i] = b + byte(i)
	}
	return u
}

func TestFakeSNPReportVerifies(t *testing.T) {
	a, err := New("fake-snp", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	roots := a.(*FakeSNP).Roots()
	ctx := context.Background()
	for _, b := range []byte{0, 7, 0xA0} { // any user data works, not just registered cases
		ud := userData(b)
		r, err := a.Report(ctx, ud)
		if err != nil {
			t.Fatal(err)
		}
		if err := vplatform.VerifySNP(r.Raw, r.Certs, roots, ud); err != nil {
			t.Fatalf("vplatform.VerifySNP: %v", err)
		}
		if err := vplatform.VerifyReport(r, vplatform.TrustAnchors{SNP: roots}, ud); err != nil {
			t.Fatalf("vplatform.VerifyReport: %v", err)
		}
		if err := vplatform.VerifySNP(r.Raw, r.Certs, roots, userData(b+1)); !errors.Is(err, vplatform.ErrUserDataMismatch) {
			t.Errorf("other user data: err = %v, want vplatform.ErrUserDataMismatch", err)
		}
	}
}

func TestFakeSNPTamperRejected(t *testing.T) {
	a, err := NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	ud := userData(1)
	r, err := a.Report(context.Background(), ud)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte each in REPORT_DATA (0x50), MEASUREMENT (0x90) and the
	// signature (0x2A0).
	for _, off := range []int{0x50, 0x90, 0x2A0} {
		raw := clone(r.Raw)
		raw[off] ^= 1
		if err := vplatform.VerifySNP(raw, r.Certs, a.Roots(), ud); err == nil {
			t.Errorf("flipped byte 0x%x: verified", off)
		}
	}
	// AMD's production roots do not accept the fake chain.
	if err := vplatform.VerifySNP(r.Raw, r.Certs, nil, ud); !errors.Is(err, vplatform.ErrVerify) {
		t.Errorf("production roots: err = %v, want vplatform.ErrVerify", err)
	}
	if err := a.Extend(context.Background(), []byte{1}, "x"); !errors.Is(err, ErrNoRuntimeRegister) {
		t.Errorf("Extend: err = %v, want ErrNoRuntimeRegister", err)
	}
}

// tpmMu keeps TPM tests from overlapping: go-tpm-tools runs one simulator
// per process, and NewFakeTPM refuses a second one while the first is open.
var tpmMu sync.Mutex

func withFakeTPM(t *testing.T, f func(a Attester)) {
	t.Helper()
	tpmMu.Lock()
	defer tpmMu.Unlock()
	a, err := New("fake-tpm", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}()
	f(a)
}

func TestFakeTPMQuoteVerifies(t *testing.T) {
	withFakeTPM(t, func(a Attester) {
		ud := userData(3)
		r, err := a.Report(context.Background(), ud)
		if err != nil {
			t.Fatal(err)
		}
		if err := vplatform.VerifyTPM(r.Raw, r.Signature, r.AKPublic, r.PCRs, ud); err != nil {
			t.Fatalf("vplatform.VerifyTPM: %v", err)
		}
		if err := vplatform.VerifyReport(r, vplatform.TrustAnchors{}, ud); err != nil {
			t.Fatalf("vplatform.VerifyReport: %v", err)
		}
		if err := vplatform.VerifyTPM(r.Raw, r.Signature, r.AKPublic, r.PCRs, userData(4)); !errors.Is(err, vplatform.ErrUserDataMismatch) {
			t.Errorf("other user data: err = %v, want vplatform.ErrUserDataMismatch", err)
		}
		for i := range r.Raw {
			raw := clone(r.Raw)
			raw[i] ^= 0x40
			if err := vplatform.VerifyTPM(raw, r.Signature, r.AKPublic, r.PCRs, ud); err == nil {
				t.Fatalf("flipped quote byte %d: verified", i)
			}
		}
		if err := vplatform.VerifyTPM(append(clone(r.Raw), 0), r.Signature, r.AKPublic, r.PCRs, ud); err == nil {
			t.Error("trailing byte: verified")
		}
		pcrs := append([]PCRValue(nil), r.PCRs...)
		pcrs[0] = PCRValue{Index: pcrs[0].Index, Digest: make([]byte, 32)}
		pcrs[0].Digest[0] = 1
		if err := vplatform.VerifyTPM(r.Raw, r.Signature, r.AKPublic, pcrs, ud); !errors.Is(err, vplatform.ErrVerify) {
			t.Errorf("changed PCR value: err = %v, want vplatform.ErrVerify", err)
		}
		if err := vplatform.VerifyTPM(r.Raw, r.Signature, r.AKPublic, r.PCRs[1:], ud); !errors.Is(err, vplatform.ErrVerify) {
			t.Errorf("missing PCR value: err = %v, want vplatform.ErrVerify", err)
		}
	})
}

func TestFakeTPMExtendReplays(t *testing.T) {
	withFakeTPM(t, func(a Attester) {
		ctx := context.Background()
		for i, ev := range []string{"dev 0000:01:00.0", "dev 0000:02:00.0", "policy"} {
			d := sha256.Sum256([]byte{byte(i)})
			if err := a.Extend(ctx, d[:], ev); err != nil {
				t.Fatal(err)
			}
		}
		ud := userData(9)
		r, err := a.Report(ctx, ud)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.EventLog) != 3 {
			t.Fatalf("event log has %d entries, want 3", len(r.EventLog))
		}
		var got []byte
		for _, p := range r.PCRs {
			if p.Index == DefaultTPMPCR {
				got = p.Digest
			}
		}
		if want := vplatform.ReplayEventLog(KindTPM, r.EventLog, DefaultTPMPCR); string(got) != string(want) {
			t.Fatalf("PCR %d = %x, replay = %x", DefaultTPMPCR, got, want)
		}
		if err := vplatform.VerifyReport(r, vplatform.TrustAnchors{TPMAKPublic: r.AKPublic}, ud); err != nil {
			t.Fatalf("vplatform.VerifyReport: %v", err)
		}
		// Rewriting the log (dropping or altering an entry) is detected.
		dropped := *r
		dropped.EventLog = r.EventLog[1:]
		if err := vplatform.VerifyReport(&dropped, vplatform.TrustAnchors{}, ud); !errors.Is(err, vplatform.ErrEventLog) {
			t.Errorf("dropped event: err = %v, want vplatform.ErrEventLog", err)
		}
		altered := *r
		altered.EventLog = append([]Event(nil), r.EventLog...)
		altered.EventLog[2].Digest = []byte{1, 2, 3}
		if err := vplatform.VerifyReport(&altered, vplatform.TrustAnchors{}, ud); !errors.Is(err, vplatform.ErrEventLog) {
			t.Errorf("altered event: err = %v, want vplatform.ErrEventLog", err)
		}
	})
}

func TestFakeTPMOnePerProcess(t *testing.T) {
	withFakeTPM(t, func(Attester) {
		if _, err := NewFakeTPM(Options{}); !errors.Is(err, ErrNotAvailable) {
			t.Errorf("second fake TPM: err = %v, want ErrNotAvailable", err)
		}
	})
}

func TestNewUnknownKind(t *testing.T) {
	if _, err := New("sgx", Options{}); err == nil {
		t.Error("unknown kind accepted")
	}
}
