package ide

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

var testPSKHint, testPSK = []byte("ide test hint"), []byte("ide test psk")

// newSession opens a PSK session between a secchan requester and an
// in-process secchan responder whose VendorHandler is h.
func newSession(t *testing.T, h secchan.VendorHandler) (*secchan.SecureSession, secchan.Version) {
	t.Helper()
	rsp, err := secchan.NewResponder(secchan.ResponderConfig{
		Caps:          secchan.CapCert | secchan.CapPSKWithContext | secchan.CapEncrypt | secchan.CapMAC,
		Identities:    []secchan.Identity{testIdentity(t)},
		PSKs:          map[string][]byte{string(testPSKHint): testPSK},
		VendorHandler: h,
	})
	if err != nil {
		t.Fatal(err)
	}
	mb := doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		if req.Protocol() == doe.ProtocolSecuredCMA {
			return rsp.HandleSecuredDOE(ctx, req)
		}
		return rsp.HandleDOE(ctx, req)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: mb}, secchan.DefaultRequesterConfig())
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ss, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: testPSK, PSKHint: testPSKHint})
	if err != nil {
		t.Fatal(err)
	}
	return ss, q.Negotiated().Version
}

type fixture struct {
	dev  *Responder
	rp   *SimRootPort
	q    *Requester
	ss   *secchan.SecureSession
	ctx  context.Context
	v    secchan.Version
	hook func(resp []byte) []byte // rewrites the device's responses
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dev, err := NewResponder(DefaultResponderConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dev: dev, rp: &SimRootPort{}}
	ss, v := newSession(t, func(ctx context.Context, id uint32, req []byte) ([]byte, error) {
		resp, err := dev.Handle(ctx, id, req)
		if err == nil && f.hook != nil {
			resp = f.hook(resp)
		}
		return resp, err
	})
	f.ss, f.v = ss, v
	if f.q, err = NewRequester(ss, v, f.rp); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	f.ctx = ctx
	return f
}

func (f *fixture) ends(t *testing.T, port uint8) (dev, host *LinkEnd) {
	t.Helper()
	ks, ok := f.dev.Port(port)
	if !ok {
		t.Fatalf("no port %d", port)
	}
	return NewLinkEnd(ks), NewLinkEnd(f.rp)
}

func TestRequesterRefusesNonSession(t *testing.T) {
	type fake struct{ Session }
	if _, err := NewRequester(fake{}, secchan.V12, &SimRootPort{}); !errors.Is(err, ErrNotSecure) {
		t.Fatalf("a non-session: %v", err)
	}
	if _, err := NewRequester((*secchan.SecureSession)(nil), secchan.V12, &SimRootPort{}); !errors.Is(err, ErrNotSecure) {
		t.Fatalf("a nil session: %v", err)
	}
	ss, v := newSession(t, nil)
	if _, err := NewRequester(ss, v, nil); !errors.Is(err, ErrNoRootPort) {
		t.Fatalf("no root port: %v", err)
	}
	if err := ss.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRequester(ss, v, &SimRootPort{}); !errors.Is(err, ErrNotSecure) {
		t.Fatalf("an ended session: %v", err)
	}
}

func TestProgramGoLinkRotateStop(t *testing.T) {
	f := newFixture(t)
	const port, stream = 1, 5
	q, err := f.q.Query(f.ctx, port)
	if err != nil {
		t.Fatal(err)
	}
	if q.PortIndex != port || q.MaxPortIndex != 1 || q.Cap&CapIDEKM == 0 || len(q.Link) != 1 || len(q.Selective) != 1 {
		t.Fatalf("QUERY_RESP %+v", q)
	}
	if err := f.q.ProgramKeySet(f.ctx, port, stream, K0); err != nil {
		t.Fatal(err)
	}
	dev, host := f.ends(t, port)
	if _, err := dev.Send(stream, PR, nil, []byte("x")); !errors.Is(err, ErrNoKey) {
		t.Fatalf("send before GO: %v", err)
	}
	if err := f.q.Go(f.ctx, port, stream, K0); err != nil {
		t.Fatal(err)
	}
	if err := CheckLink(dev, host, stream); err != nil {
		t.Fatal(err)
	}
	// A TLP sent under K0 before the rotation, delivered after it.
	late, err := dev.Send(stream, NPR, []byte{1}, []byte("late"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := f.q.Rotate(f.ctx, port, stream)
	if err != nil || ks != K1 {
		t.Fatalf("rotate: %v %v", ks, err)
	}
	if err := CheckLink(dev, host, stream); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if _, err := host.Receive(late); !errors.Is(err, ErrKeySetNotInUse) {
		t.Fatalf("stale K0 TLP: %v", err)
	}
	// The device's K0 keys are gone.
	src, _ := f.dev.Port(port)
	if _, ok := src.LinkKey(stream, K0, TX, PR); ok {
		t.Fatal("K0 still programmed on the device after rotation")
	}
	// Rotate back to K0 works too.
	if ks, err := f.q.Rotate(f.ctx, port, stream); err != nil || ks != K0 {
		t.Fatalf("second rotation: %v %v", ks, err)
	}
	if err := CheckLink(dev, host, stream); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Stop(f.ctx, port, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Send(stream, CPL, nil, []byte("x")); !errors.Is(err, ErrNoKey) {
		t.Fatalf("send after STOP: %v", err)
	}
	if _, ok := f.q.Active(port, stream); ok {
		t.Fatal("still active after STOP")
	}
	if err := f.q.Stop(f.ctx, port, stream); !errors.Is(err, ErrNotActive) {
		t.Fatalf("second STOP: %v", err)
	}
}

func TestLinkBadCases(t *testing.T) {
	f := newFixture(t)
	const port, stream = 0, 2
	if err := f.q.ProgramKeySet(f.ctx, port, stream, K0); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Go(f.ctx, port, stream, K0); err != nil {
		t.Fatal(err)
	}
	dev, host := f.ends(t, port)
	t.Run("replay", func(t *testing.T) {
		tlp, err := dev.Send(stream, PR, []byte{0x40}, []byte("write"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := host.Receive(tlp); err != nil {
			t.Fatal(err)
		}
		if _, err := host.Receive(tlp); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("replayed TLP: %v", err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		tlp, _ := dev.Send(stream, CPL, []byte{0x4A}, []byte("completion"))
		tlp.Header[0] ^= 1
		if _, err := host.Receive(tlp); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("tampered header: %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		// A root port whose keys differ from the device's.
		other := &SimRootPort{}
		for _, d := range Directions {
			for _, s := range SubStreams {
				var k [KeySize]byte
				k[0] = 1
				if err := other.ProgramKey(f.ctx, stream, K0, d, s, &k, 1); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := other.Go(f.ctx, stream, K0); err != nil {
			t.Fatal(err)
		}
		d2, _ := f.ends(t, port)
		tlp, err := d2.Send(stream, NPR, []byte{0}, []byte("read"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewLinkEnd(other).Receive(tlp); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("wrong key: %v", err)
		}
	})
	t.Run("counter exhausted", func(t *testing.T) {
		if _, err := nonce(^uint64(0), 1); !errors.Is(err, ErrCounterExhausted) {
			t.Fatal(err)
		}
		if iv, err := nonce(1, 2); err != nil || iv != [12]byte{11: 3} {
			t.Fatalf("%x %v", iv, err)
		}
	})
}

// Every KP_ACK status comes back as its typed error; acks for another
// key are refused.
func TestKPAckStatuses(t *testing.T) {
	for _, st := range []KPStatus{KPIncorrectLength, KPUnsupportedPortIndex, KPUnsupportedValue, KPUnspecifiedFailure} {
		t.Run(st.String(), func(t *testing.T) {
			f := newFixture(t)
			f.hook = func(resp []byte) []byte {
				v, body, _ := UnwrapResponse(resp)
				if body[0] == ObjKPAck {
					body[4] = uint8(st)
				}
				return codec.Wrap(v, body, true)
			}
			if err := f.q.ProgramKeySet(f.ctx, 0, 0, K0); !errors.Is(err, st) {
				t.Fatalf("err = %v, want %v", err, st)
			}
		})
	}
	for name, off := range map[string]int{"stream": 3, "key_sub_stream": 5, "port": 6} {
		t.Run("ack for another "+name, func(t *testing.T) {
			f := newFixture(t)
			f.hook = func(resp []byte) []byte {
				v, body, _ := UnwrapResponse(resp)
				body[off] ^= 1
				return codec.Wrap(v, body, true)
			}
			if err := f.q.ProgramKeySet(f.ctx, 0, 0, K0); !errors.Is(err, ErrAckMismatch) {
				t.Fatalf("KEY_PROG: %v", err)
			}
			f.hook = nil
			if err := f.q.ProgramKeySet(f.ctx, 0, 0, K0); err != nil {
				t.Fatal(err)
			}
			f.hook = func(resp []byte) []byte {
				v, body, _ := UnwrapResponse(resp)
				body[off] ^= 1
				return codec.Wrap(v, body, true)
			}
			if err := f.q.Go(f.ctx, 0, 0, K0); !errors.Is(err, ErrAckMismatch) {
				t.Fatalf("K_SET_GO: %v", err)
			}
		})
	}
	t.Run("wrong object", func(t *testing.T) {
		f := newFixture(t)
		f.hook = func(resp []byte) []byte {
			v, _, _ := UnwrapResponse(resp)
			return WrapResponse(v, &KGoStopAck{})
		}
		if err := f.q.ProgramKeySet(f.ctx, 0, 0, K0); !errors.Is(err, ErrUnexpectedResponse) {
			t.Fatalf("K_GOSTOP_ACK for KEY_PROG: %v", err)
		}
	})
}

// The device's answers to bad requests, through the real session path.
func TestResponderAnswers(t *testing.T) {
	f := newFixture(t)
	send := func(body []byte) (*KPAck, error) {
		resp, err := f.ss.VendorDefined(f.ctx, codec.Wrap(f.v, body, false))
		if err != nil {
			return nil, err
		}
		_, b, err := UnwrapResponse(resp)
		if err != nil {
			return nil, err
		}
		m, err := Parse(b)
		if err != nil {
			return nil, err
		}
		ack, _ := m.(*KPAck)
		return ack, nil
	}
	good := sampleKeyProg()
	good.PortIndex = 0
	for name, c := range map[string]struct {
		body []byte
		want KPStatus
	}{
		"short":            {good.Marshal()[:20], KPIncorrectLength},
		"long":             {append(good.Marshal(), 0), KPIncorrectLength},
		"port":             {func() []byte { b := good.Marshal(); b[6] = 9; return b }(), KPUnsupportedPortIndex},
		"sub-stream":       {func() []byte { b := good.Marshal(); b[5] = 0x30; return b }(), KPUnsupportedValue},
		"reserved":         {func() []byte { b := good.Marshal(); b[4] = 1; return b }(), KPUnsupportedValue},
		"success":          {good.Marshal(), KPSuccess},
		"in-use key set":   {nil, KPUnspecifiedFailure},
		"header too short": {[]byte{ObjKeyProg, 0, 0}, KPIncorrectLength},
	} {
		if c.body == nil {
			continue
		}
		ack, err := send(c.body)
		if err != nil || ack == nil || ack.Status != c.want {
			t.Errorf("%s: %+v %v, want %v", name, ack, err, c.want)
		}
	}
	// GO on a key that was never programmed: SPDM ERROR.
	resp, err := f.ss.VendorDefined(f.ctx, WrapRequest(f.v, &KSetGo{KeyRef{0, KSS(K1, RX, PR), 0}}))
	if err == nil {
		t.Fatalf("GO without keys answered % x", resp)
	}
	// Reprogramming a key set in use.
	g := &KSetGo{KeyRef{good.StreamID, good.KSS, 0}}
	if _, err := f.ss.VendorDefined(f.ctx, WrapRequest(f.v, g)); err != nil {
		t.Fatal(err)
	}
	if ack, err := send(good.Marshal()); err != nil || ack.Status != KPUnspecifiedFailure {
		t.Errorf("reprogram in use: %+v %v", ack, err)
	}
	// Unknown port for QUERY: ERROR; TDISP: ERROR(UnsupportedRequest).
	if _, err := f.q.Query(f.ctx, 9); err == nil {
		t.Error("QUERY for port 9 answered")
	}
	tdisp := secchan.PCIPayload{VendorID: secchan.VendorIDPCISIG, Protocol: secchan.PCIProtocolTDISP, Body: []byte{0x10, 0x81}}
	if _, err := f.ss.VendorDefined(f.ctx, tdisp.Request(f.v).Marshal()); !errors.Is(err, secchan.ErrCodeUnsupportedRequest) {
		t.Errorf("TDISP: %v", err)
	}
	// Outside a session the responder refuses.
	if _, err := f.dev.Handle(f.ctx, 0, WrapRequest(f.v, &Query{})); !errors.Is(err, secchan.ErrCodeSessionRequired) {
		t.Errorf("outside a session: %v", err)
	}
}

func TestRunCheck(t *testing.T) {
	f := newFixture(t)
	src, _ := f.dev.Port(1)
	steps, err := RunCheck(f.ctx, f.ss, f.rp, CheckOptions{Version: f.v, Port: 1, Stream: 0, Device: src})
	for _, s := range steps {
		t.Log(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 9 {
		t.Fatalf("%d steps", len(steps))
	}
	for _, s := range steps {
		if s.Skipped || s.Err != nil {
			t.Errorf("step %s", s)
		}
	}
}

// testIdentity is a throwaway two-certificate chain: the sessions here are
// PSK sessions, so it is only served, never validated.
func testIdentity(t *testing.T) secchan.Identity {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ide test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ide test device"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return secchan.Identity{Chain: [][]byte{rootDER, leafDER}, Key: leafKey}
}
