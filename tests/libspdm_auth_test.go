package tests

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// libspdmBin returns LIBSPDM_EMU_BIN or skips the test.
func libspdmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("LIBSPDM_EMU_BIN")
	if bin == "" {
		t.Skip("LIBSPDM_EMU_BIN not set: skipping interop with libspdm's emulators (build DMTF spdm-emu and point LIBSPDM_EMU_BIN at its bin directory); the golden-corpus and devsim tests cover the same flows without it")
	}
	return bin
}

// libspdmRoot loads the sample root CA of one of libspdm's key directories.
func libspdmRoot(t *testing.T, bin, dir string) *x509.Certificate {
	t.Helper()
	der, err := os.ReadFile(filepath.Join(bin, dir, "ca.cert.der"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// authenticate runs the whole authentication flow over mb and checks every
// step, returning the requester for further checks.
func authenticate(t *testing.T, mb doe.Mailbox, cfg secchan.RequesterConfig) *secchan.Requester {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: mb}, cfg)
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetDigests(ctx); err != nil {
		t.Fatal(err)
	}
	chain, err := q.GetCertificate(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain.Certs) < 2 {
		t.Fatalf("chain has %d certificates", len(chain.Certs))
	}
	if _, err := q.Challenge(ctx, 0, secchan.SummaryAll); err != nil {
		t.Fatal(err)
	}
	res, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blocks) == 0 || !res.Signed || len(res.Transcript) == 0 {
		t.Fatalf("measurements: %d blocks, signed %v, transcript %d bytes", len(res.Blocks), res.Signed, len(res.Transcript))
	}
	count, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpCount})
	if err != nil {
		t.Fatal(err)
	}
	if count.Count != len(res.Blocks) {
		t.Errorf("count says %d indices, all-blocks gave %d", count.Count, len(res.Blocks))
	}
	one, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: res.Blocks[0].Index, Signed: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Blocks) != 1 || string(one.Blocks[0].Value) != string(res.Blocks[0].Value) {
		t.Errorf("index %d alone differs from the same index in all blocks", res.Blocks[0].Index)
	}
	return q
}

// TestLibspdmResponderAuthentication runs our requester against libspdm's
// spdm_responder_emu for every version and two algorithm sets.
func TestLibspdmResponderAuthentication(t *testing.T) {
	bin := libspdmBin(t)
	for _, alg := range []struct {
		asym, hash, dir  string
		asymBit, hashBit uint32
	}{
		{"ECDSA_P256", "SHA_256", "ecp256", secchan.AsymECDSAP256, secchan.HashSHA256},
		{"ECDSA_P384", "SHA_384", "ecp384", secchan.AsymECDSAP384, secchan.HashSHA384},
	} {
		for _, v := range []secchan.Version{secchan.V10, secchan.V11, secchan.V12, secchan.V13} {
			t.Run(v.String()+"/"+alg.asym, func(t *testing.T) {
				_, addr := startResponderEmu(t, bin, "--asym", alg.asym, "--hash", alg.hash)
				c := dialT(t, addr)
				cfg := secchan.DefaultRequesterConfig()
				cfg.Versions = []secchan.Version{v}
				cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{libspdmRoot(t, bin, alg.dir)}}
				q := authenticate(t, c, cfg)
				neg := q.Negotiated()
				if neg.Version != v || neg.BaseAsym != alg.asymBit || neg.BaseHash != alg.hashBit {
					t.Fatalf("negotiated %v %s %s", neg.Version, secchan.AsymName(neg.BaseAsym), secchan.HashName(neg.BaseHash))
				}
			})
		}
	}
}

// TestLibspdmResponderThroughShim authenticates libspdm's responder
// through the host shim, which relays without parsing SPDM.
func TestLibspdmResponderThroughShim(t *testing.T) {
	bin := libspdmBin(t)
	_, addr := startResponderEmu(t, bin)
	shimAddr := startShim(t, t.TempDir(), addr)
	c := dialT(t, shimAddr)
	cfg := trusting(libspdmRoot(t, bin, "ecp384"))
	authenticate(t, c, cfg)
}

// TestLibspdmResponderWrongAnchor: a chain that does not reach the
// configured anchor is refused at GET_CERTIFICATE.
func TestLibspdmResponderWrongAnchor(t *testing.T) {
	bin := libspdmBin(t)
	_, addr := startResponderEmu(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dialT(t, addr)
	cfg := trusting(libspdmRoot(t, bin, "ecp256"))
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: c}, cfg)
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetDigests(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := q.GetCertificate(ctx, 0)
	var step *secchan.StepError
	if !errors.As(err, &step) || step.Step != "GET_CERTIFICATE slot 0" || !errors.Is(err, secchan.ErrCertChain) {
		t.Fatalf("err = %v, want a GET_CERTIFICATE step error wrapping ErrCertChain", err)
	}
}
