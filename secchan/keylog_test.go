package secchan_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/secchan"
)

// recordingTransport keeps every secured request record it carries.
type recordingTransport struct {
	tamperTransport
	secured [][]byte
}

func (rt *recordingTransport) ExchangeSecured(ctx context.Context, rec []byte) ([]byte, error) {
	rt.secured = append(rt.secured, append([]byte(nil), rec...))
	return rt.tamperTransport.ExchangeSecured(ctx, rec)
}

// The key log gets, per session, a secret that really is the session's:
// from it and TH1 alone, a responder-side Session opens the requester's
// FINISH as captured. The copy handed over is zeroed afterwards, and
// without a KeyLog nothing is exported.
func TestKeyLogExportsTheSessionSecret(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{Caps: devsim.SPDMVFCaps, PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)}})
	var got []secchan.SessionSecrets
	var handed [][]byte
	f.cfg.KeyLog = func(s secchan.SessionSecrets) {
		handed = append(handed, s.Secret)
		s.Secret = bytes.Clone(s.Secret)
		got = append(got, s)
	}
	ctx := context.Background()
	rt := &recordingTransport{tamperTransport: tamperTransport{rsp: f.rsp}}
	q := secchan.NewRequester(rt, f.cfg)
	if err := flow(ctx, q); err != nil {
		t.Fatal(err)
	}
	for _, psk := range []bool{false, true} {
		rt.secured = nil
		var ss *secchan.SecureSession
		var err error
		if psk {
			ss, err = q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(devsim.SamplePSK), PSKHint: []byte(devsim.SamplePSKHint)})
		} else {
			ss, err = q.KeyExchange(ctx, secchan.SessionOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		s := got[len(got)-1]
		if s.SessionID != ss.ID() || s.PSK != psk || s.AEAD != ss.AEAD() || len(s.TH1) == 0 {
			t.Fatalf("exported %+v for session 0x%08x", s, ss.ID())
		}
		if psk && !bytes.Equal(s.Secret, []byte(devsim.SamplePSK)) {
			t.Fatal("PSK session: the exported secret is not the PSK")
		}
		neg := q.Negotiated()
		ks := secchan.KeySchedule{Version: s.Version, Hash: neg.Hash, AEAD: s.AEAD}
		hs, err := ks.NewHandshakeSecret(s.Secret, psk)
		if err != nil {
			t.Fatal(err)
		}
		view, err := secchan.NewSession(s.SessionID, secchan.RoleResponder, ks, hs, s.TH1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rt.secured) == 0 {
			t.Fatal("no secured record captured")
		}
		msg, err := view.Open(rt.secured[0])
		if err != nil {
			t.Fatalf("the exported secret does not open the session's first record: %v", err)
		}
		if h, _ := secchan.PeekHeader(msg); h.Code != secchan.CodeFinish && h.Code != secchan.CodePSKFinish {
			t.Fatalf("first record holds %s", secchan.CodeName(h.Code))
		}
		_ = ss.End(ctx)
	}
	for i, h := range handed {
		if !bytes.Equal(h, make([]byte, len(h))) {
			t.Fatalf("secret %d handed to the key log was not zeroed after the call", i)
		}
	}

	// No KeyLog: the requester exports nothing (and cannot: there is no
	// other way out).
	f.cfg.KeyLog = nil
	n := len(got)
	q = secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
	if err := flow(ctx, q); err != nil {
		t.Fatal(err)
	}
	if _, err := q.KeyExchange(ctx, secchan.SessionOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatal("secrets exported without a KeyLog")
	}
}
