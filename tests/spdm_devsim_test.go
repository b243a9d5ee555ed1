package tests

import (
	"context"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// startDevsim serves a fresh SPDM VF on a unix socket and returns its
// address, root certificate and measurement store.
func startDevsim(t *testing.T) (addr string, root *x509.Certificate, meas *devsim.Measurements) {
	t.Helper()
	vf, rootDER, meas, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	root, err = x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	addr = "unix:" + filepath.Join(t.TempDir(), "vf.sock")
	serve(t, &doe.Server{Mailbox: vf.Driver()}, addr)
	return addr, root, meas
}

// trusting is the default requester configuration with root as its only
// trust anchor.
func trusting(root *x509.Certificate) secchan.RequesterConfig {
	cfg := secchan.DefaultRequesterConfig()
	cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{root}}
	return cfg
}

func dialT(t *testing.T, addr string) *doe.SocketClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := doe.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSPDMAgainstDevsim authenticates devsim directly and through the
// shim, for every version and both algorithm sets.
func TestSPDMAgainstDevsim(t *testing.T) {
	addr, root, _ := startDevsim(t)
	shimAddr := startShim(t, t.TempDir(), addr)
	for _, path := range []struct{ name, addr string }{{"direct", addr}, {"shim", shimAddr}} {
		for _, alg := range []struct {
			name       string
			asym, hash uint32
		}{
			{"P256-SHA256", secchan.AsymECDSAP256, secchan.HashSHA256},
			{"P384-SHA384", secchan.AsymECDSAP384, secchan.HashSHA384},
		} {
			for _, v := range []secchan.Version{secchan.V10, secchan.V11, secchan.V12, secchan.V13} {
				t.Run(path.name+"/"+v.String()+"/"+alg.name, func(t *testing.T) {
					cfg := secchan.DefaultRequesterConfig()
					cfg.Versions = []secchan.Version{v}
					cfg.BaseAsym, cfg.BaseHash = alg.asym, alg.hash
					cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{root}}
					q := authenticate(t, dialT(t, path.addr), cfg)
					if n := q.Negotiated(); n.Version != v || n.BaseAsym != alg.asym || n.BaseHash != alg.hash {
						t.Fatalf("negotiated %v %s %s", n.Version, secchan.AsymName(n.BaseAsym), secchan.HashName(n.BaseHash))
					}
				})
			}
		}
	}
}

// TestSPDMMeasurementChangeIsSeen: a changed measurement value shows up,
// signed, as the digest of the new value.
func TestSPDMMeasurementChangeIsSeen(t *testing.T) {
	addr, root, meas := startDevsim(t)
	cfg := trusting(root)
	cfg.BaseHash = secchan.HashSHA384
	read := func() []byte {
		q := authenticate(t, dialT(t, addr), cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: 2, Signed: true})
		if err != nil {
			t.Fatal(err)
		}
		return res.Blocks[0].Value
	}
	before := read()
	newFW := []byte("devsim firmware 2.0")
	if err := meas.Set(2, newFW); err != nil {
		t.Fatal(err)
	}
	after := read()
	want := sha512.Sum384(newFW)
	if string(after) != string(want[:]) || string(before) == string(after) {
		t.Fatalf("index 2 after the change is %x, want %x (before %x)", after, want, before)
	}
}

// TestSPDMMinimumVersionRefusesDowngrade: a requester with a minimum of
// 1.2 refuses a device that only speaks 1.1.
func TestSPDMMinimumVersionRefusesDowngrade(t *testing.T) {
	rootDER, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	rsp, err := secchan.NewResponder(secchan.ResponderConfig{Versions: []secchan.Version{secchan.V10, secchan.V11}, Identities: ids, Measurements: devsim.NewMeasurements()})
	if err != nil {
		t.Fatal(err)
	}
	vf := devsim.NewVF(devsim.WithSPDM(rsp))
	cfg := secchan.DefaultRequesterConfig()
	cfg.MinVersion = secchan.V12
	cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{root}}
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: vf.Driver()}, cfg)
	err = q.Connect(context.Background())
	if !errors.Is(err, secchan.ErrNegotiation) {
		t.Fatalf("err = %v, want ErrNegotiation for a 1.1-only device with minimum 1.2", err)
	}
}
