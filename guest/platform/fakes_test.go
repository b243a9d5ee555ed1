package platform

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/testing/data"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	vplatform "github.com/devattest/devattest/policy/platform"
)

// TestFakeRootsAreTestRoots: the verifier recognises the fakes' roots as
// test roots (policy/platform.TestRoot), so its list of go-sev-guest's
// published keys matches what the fake signs with.
func TestFakeRootsAreTestRoots(t *testing.T) {
	snp, err := NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := snp.Roots().TestRoot(); !ok {
		t.Errorf("fake SEV-SNP roots not recognised as test roots")
	} else {
		t.Logf("fake-snp: %s", name)
	}
	for what, k := range map[string]any{"ARK": &data.ARKPrivateKey.PublicKey, "ASK": &data.ASKPrivateKey.PublicKey, "ASVK": &data.ASVKPrivateKey.PublicKey} {
		spki, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := vplatform.TestRoot(&x509.Certificate{RawSubjectPublicKeyInfo: spki}); !ok {
			t.Errorf("go-sev-guest's published %s key is not a test root", what)
		}
	}
	tdx, err := NewFakeTDX(Options{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(tdx.RootCertificate())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vplatform.TestRoot(root); !ok {
		t.Errorf("fake TDX root not recognised as a test root")
	}
	if _, ok := vplatform.TestRoot(&x509.Certificate{}); ok {
		t.Errorf("an empty certificate is a test root")
	}
}

// TestFakeEdits: the fakes' edit hooks change signed fields, and the
// reports still verify.
func TestFakeEdits(t *testing.T) {
	ctx := context.Background()
	ud := userData(7)
	snp, err := NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	snp.EditReports(func(r *spb.Report) { r.Vmpl = 3 })
	rep, err := snp.Report(ctx, ud)
	if err != nil {
		t.Fatal(err)
	}
	if err := vplatform.VerifyReport(rep, vplatform.TrustAnchors{SNP: snp.Roots()}, ud); err != nil {
		t.Fatalf("edited SEV-SNP report: %v", err)
	}
	if r, err := abi.ReportToProto(rep.Raw); err != nil || r.GetVmpl() != 3 {
		t.Fatalf("edited SEV-SNP report has VMPL %d (%v), want 3", r.GetVmpl(), err)
	}

	tdx, err := NewFakeTDX(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tdx.EditQuotes(func(b *tdxpb.TDQuoteBody) { b.SeamAttributes[0] = 1 })
	q, err := tdx.Report(ctx, ud)
	if err != nil {
		t.Fatal(err)
	}
	if err := vplatform.VerifyReport(q, vplatform.TrustAnchors{TDX: tdx.Roots()}, ud); err != nil {
		t.Fatalf("edited TDX quote: %v", err)
	}
	if body, err := vplatform.TDXQuoteBody(q.Raw); err != nil || body.GetSeamAttributes()[0] != 1 {
		t.Fatalf("edited TDX quote: SEAM attributes %x (%v)", body.GetSeamAttributes(), err)
	}
}
