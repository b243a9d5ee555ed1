package tests

import (
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// sessionSuites are the AEAD and DHE groups a session can use.
var sessionSuites = []struct {
	name string
	aead uint16
	dhe  uint16
}{
	{"AES128-P256", secchan.AEADAES128GCM, secchan.DHESECP256R1},
	{"AES256-P384", secchan.AEADAES256GCM, secchan.DHESECP384R1},
	{"CHACHA-P521", secchan.AEADChaCha20Poly1305, secchan.DHESECP521R1},
}

// TestSessionsAgainstDevsim opens KEY_EXCHANGE and PSK sessions with
// devsim, directly and through the shim, for every version with sessions
// and every AEAD and DHE group, and runs every in-session step.
func TestSessionsAgainstDevsim(t *testing.T) {
	addr, root, _ := startDevsim(t)
	shimAddr := startShim(t, t.TempDir(), addr)
	for _, path := range []struct{ name, addr string }{{"direct", addr}, {"shim", shimAddr}} {
		for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
			for _, suite := range sessionSuites {
				for _, psk := range []bool{false, true} {
					kind := "KEY_EX"
					if psk {
						kind = "PSK"
					}
					t.Run(path.name+"/"+v.String()+"/"+suite.name+"/"+kind, func(t *testing.T) {
						cfg := trusting(root)
						cfg.Versions = []secchan.Version{v}
						cfg.AEAD, cfg.DHE = suite.aead, suite.dhe
						q := authenticate(t, dialT(t, path.addr), cfg)
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						defer cancel()
						var ss *secchan.SecureSession
						var err error
						if psk {
							ss, err = q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(devsim.SamplePSK), PSKHint: []byte(devsim.SamplePSKHint)})
						} else {
							ss, err = q.KeyExchange(ctx, secchan.SessionOptions{Summary: secchan.SummaryAll})
						}
						if err != nil {
							t.Fatal(err)
						}
						if ss.AEAD() != suite.aead {
							t.Fatalf("session AEAD %s, offered only %s", secchan.AEADName(ss.AEAD()), secchan.AEADName(suite.aead))
						}
						exerciseSession(t, ctx, ss, true)
					})
				}
			}
		}
	}
}

// TestConcurrentSessionsAgainstDevsim: two sessions on one connection get
// distinct IDs and work interleaved; ending one leaves the other.
func TestConcurrentSessionsAgainstDevsim(t *testing.T) {
	addr, root, _ := startDevsim(t)
	q := authenticate(t, dialT(t, addr), trusting(root))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(devsim.SamplePSK), PSKHint: []byte(devsim.SamplePSKHint)})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() {
		t.Fatalf("both sessions have ID 0x%08x", a.ID())
	}
	for _, ss := range []*secchan.SecureSession{a, b, a, b} {
		if err := ss.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.KeyUpdate(ctx, true); err != nil {
		t.Fatalf("the other session after END_SESSION of the first: %v", err)
	}
	exerciseSession(t, ctx, b, true)
}

// TestSessionWrongPSKAgainstDevsim: a wrong PSK fails the handshake
// before any secured record is accepted.
func TestSessionWrongPSKAgainstDevsim(t *testing.T) {
	addr, root, _ := startDevsim(t)
	q := authenticate(t, dialT(t, addr), trusting(root))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte("wrong"), PSKHint: []byte(devsim.SamplePSKHint)})
	if !errors.Is(err, secchan.ErrSignature) {
		t.Fatalf("err = %v, want the verify data to fail (ErrSignature)", err)
	}
}

// TestSessionMutualAuthAgainstDevsim: a responder provisioned with the
// requester's chain asks for mutual authentication, and the requester's
// FINISH signature is checked; a requester with another key fails.
func TestSessionMutualAuthAgainstDevsim(t *testing.T) {
	rootDER, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	_, reqIDs, err := devsim.NewIdentity() // the requester's own identity
	if err != nil {
		t.Fatal(err)
	}
	reqID := reqIDs[1] // P-384
	rsp, err := secchan.NewResponder(secchan.ResponderConfig{
		Caps:         devsim.SPDMVFCaps | secchan.CapMutAuth,
		Identities:   ids,
		Measurements: devsim.NewMeasurements(),
		PSKs:         map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)},
		MutualAuth:   &secchan.RequesterChain{Chain: reqID.Chain},
	})
	if err != nil {
		t.Fatal(err)
	}
	vf := devsim.NewVF(devsim.WithSPDM(rsp))
	if err := vf.Handle(doe.ProtocolSecuredCMA, devsim.HandlerFunc(rsp.HandleSecuredDOE)); err != nil {
		t.Fatal(err)
	}
	addr := "unix:" + filepath.Join(t.TempDir(), "vf.sock")
	serve(t, &doe.Server{Mailbox: vf.Driver()}, addr)
	root, _ := x509.ParseCertificate(rootDER)

	for _, v := range []secchan.Version{secchan.V12, secchan.V13} {
		t.Run(v.String(), func(t *testing.T) {
			cfg := trusting(root)
			cfg.Versions = []secchan.Version{v}
			cfg.MutualAuth = &reqID
			q := authenticate(t, dialT(t, addr), cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			exerciseSession(t, ctx, ss, true)
		})
	}
	t.Run("another requester key", func(t *testing.T) {
		cfg := trusting(root)
		other := reqIDs[1]
		other.Key = ids[1].Key // a P-384 key the responder does not expect
		cfg.MutualAuth = &other
		q := authenticate(t, dialT(t, addr), cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := q.KeyExchange(ctx, secchan.SessionOptions{}); err == nil {
			t.Fatal("FINISH signed with the wrong key was accepted")
		}
	})
}
