package tests

// Mutual authentication against devsim over the socket framing (issue 16,
// finding 2): devsim asks in each mode spdm_responder_emu offers, our
// requester answers with its identity, and the asking is checked on the
// wire (the plain DOE objects) and by devsim's record of whom it
// authenticated; a requester with the wrong identity is refused. The
// out-of-band command 0x8001 starts an encapsulated KEY_UPDATE on the same
// connection without breaking its framing.

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// wireTap records the plain CMA/SPDM objects a mailbox carries.
type wireTap struct {
	doe.Mailbox
	mu    sync.Mutex
	resps [][]byte
}

func (w *wireTap) Exchange(ctx context.Context, req doe.Object) (doe.Object, error) {
	resp, err := w.Mailbox.Exchange(ctx, req)
	if err == nil && resp.Protocol() == doe.ProtocolCMA {
		w.mu.Lock()
		w.resps = append(w.resps, slices.Clone(resp.Payload))
		w.mu.Unlock()
	}
	return resp, err
}

// first returns the first plain response with code, or nil.
func (w *wireTap) first(code uint8) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.resps {
		if len(r) >= 4 && r[1] == code {
			return r
		}
	}
	return nil
}

// mutualDevsim serves devsim asking for mutual authentication as ma says,
// with the out-of-band commands; it returns the address, the device's
// root and its SPDM responder.
func mutualDevsim(t *testing.T, ma devsim.MutualAuth) (string, *x509.Certificate, *secchan.Responder) {
	t.Helper()
	rootDER, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	vf, rsp, err := devsim.NewSPDMVF(ids, devsim.NewMeasurements(), devsim.WithMutualAuth(ma))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	addr := "unix:" + filepath.Join(t.TempDir(), "vf.sock")
	serve(t, &doe.Server{Mailbox: vf.Driver(), Commands: map[uint32]doe.CommandHandler{
		doe.CommandOOBEncapKeyUpdate: func(_ context.Context, _ uint32, p []byte) error {
			id := rsp.LatestSession()
			if len(p) == 4 {
				id = binary.LittleEndian.Uint32(p)
			}
			return rsp.StartEncapKeyUpdate(id)
		},
	}}, addr)
	return addr, root, rsp
}

func requesterID(t *testing.T) (secchan.Identity, *x509.Certificate) {
	t.Helper()
	rootDER, id, err := devsim.NewRequesterIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	return id, root
}

func TestMutualAuthModesAgainstDevsim(t *testing.T) {
	id, reqRoot := requesterID(t)
	for _, mode := range []struct {
		name    string
		ma      devsim.MutualAuth
		mutByte uint8 // KEY_EXCHANGE_RSP MutAuthRequested
	}{
		{"basic", devsim.MutualAuth{Basic: true, Anchors: []*x509.Certificate{reqRoot}}, 0},
		{"WO_ENCAP", devsim.MutualAuth{Session: "WO_ENCAP", RequesterChain: id.Chain}, secchan.MutAuthRequested},
		{"W_ENCAP", devsim.MutualAuth{Session: "W_ENCAP", Anchors: []*x509.Certificate{reqRoot}}, secchan.MutAuthWithEncapRequest},
		{"DIGESTS", devsim.MutualAuth{Session: "DIGESTS", Anchors: []*x509.Certificate{reqRoot}}, secchan.MutAuthWithGetDigests},
		{"basic+W_ENCAP", devsim.MutualAuth{Basic: true, Session: "W_ENCAP", Anchors: []*x509.Certificate{reqRoot}}, secchan.MutAuthWithEncapRequest},
	} {
		for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
			if mode.name == "WO_ENCAP" && v == secchan.V11 {
				continue // 1.1 ties MUT_AUTH to encapsulated requests
			}
			t.Run(mode.name+"/"+v.String(), func(t *testing.T) {
				addr, root, rsp := mutualDevsim(t, mode.ma)
				cfg := trusting(root)
				cfg.Versions = []secchan.Version{v}
				cfg.MutualAuth = &id
				tap := &wireTap{Mailbox: dialT(t, addr)}
				q := authenticate(t, tap, cfg)
				ca := tap.first(secchan.CodeChallengeAuth)
				if asked := ca[2]&0x80 != 0; asked != mode.ma.Basic {
					t.Fatalf("CHALLENGE_AUTH BasicMutAuthReq %v, want %v", asked, mode.ma.Basic)
				}
				if mode.ma.Basic {
					if er := tap.first(secchan.CodeEncapsulatedRequest); er == nil || er[5] != secchan.CodeGetDigests {
						t.Fatalf("no ENCAPSULATED_REQUEST with GET_DIGESTS on the wire: % x", er)
					}
					if res := rsp.MutualAuth(); res == nil || res.Err != nil || res.Mode != "basic" {
						t.Fatalf("devsim's record: %+v", res)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ker := tap.first(secchan.CodeKeyExchangeRsp)
				if ker[6] != mode.mutByte {
					t.Fatalf("KEY_EXCHANGE_RSP MutAuthRequested 0x%02x, want 0x%02x", ker[6], mode.mutByte)
				}
				if mode.mutByte&^secchan.MutAuthRequested != 0 {
					if ss.Encap == nil || !slices.Contains(ss.Encap.Requests, secchan.CodeGetCertificate) {
						t.Fatalf("the session's encapsulated flow: %+v", ss.Encap)
					}
					if res := rsp.MutualAuth(); res == nil || res.Err != nil || res.Chain == nil {
						t.Fatalf("devsim's record: %+v", res)
					}
				}
				exerciseSession(t, ctx, ss, true)
			})
		}
	}
}

// TestMutualAuthWrongIdentityAgainstDevsim: a requester whose chain
// devsim's anchors do not reach is refused, basic and in a session.
func TestMutualAuthWrongIdentityAgainstDevsim(t *testing.T) {
	_, reqRoot := requesterID(t)
	stranger, _ := requesterID(t)
	for _, ma := range []devsim.MutualAuth{
		{Basic: true, Anchors: []*x509.Certificate{reqRoot}},
		{Session: "W_ENCAP", Anchors: []*x509.Certificate{reqRoot}},
		{Session: "DIGESTS", Anchors: []*x509.Certificate{reqRoot}},
	} {
		t.Run(ma.Session, func(t *testing.T) {
			addr, root, rsp := mutualDevsim(t, ma)
			cfg := trusting(root)
			cfg.MutualAuth = &stranger
			q := secchan.NewRequester(&secchan.DOETransport{Mailbox: dialT(t, addr)}, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := authAndKeyExchange(ctx, q, true)
			var se *secchan.SPDMError
			if !errors.As(err, &se) || se.Code != secchan.ErrCodeInvalidResponseCode {
				t.Fatalf("the stranger got %v, want ERROR(InvalidResponseCode)", err)
			}
			if res := rsp.MutualAuth(); res == nil || res.Err == nil || !errors.Is(res.Err, secchan.ErrCertChain) {
				t.Fatalf("devsim's record: %+v", res)
			}
			if len(rsp.Sessions()) != 0 {
				t.Fatal("a session survived")
			}
		})
	}
}

// TestOOBEncapKeyUpdateAgainstDevsim: spdm-emu's 0x8001 on the same
// connection gets its own command back, and the session's encapsulated
// KEY_UPDATE then runs; the framing stays in step.
func TestOOBEncapKeyUpdateAgainstDevsim(t *testing.T) {
	addr, root, _ := mutualDevsim(t, devsim.MutualAuth{})
	c := dialT(t, addr)
	cfg := trusting(root)
	cfg.Caps |= secchan.CapEncap
	q := authenticate(t, c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sid := binary.LittleEndian.AppendUint32(nil, ss.ID())
	if p, err := c.Command(ctx, doe.CommandOOBEncapKeyUpdate, sid); err != nil || len(p) != 0 {
		t.Fatalf("OOB_ENCAP_KEY_UPDATE: %q, %v", p, err)
	}
	res, err := ss.EncapsulatedRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Requests, []uint8{secchan.CodeKeyUpdate, secchan.CodeKeyUpdate}) {
		t.Fatalf("answered %x", res.Requests)
	}
	exerciseSession(t, ctx, ss, true)
}

// authAndKeyExchange runs VCA, GET_DIGESTS, GET_CERTIFICATE, a CHALLENGE
// (with challenge) and KEY_EXCHANGE, and returns the first error.
func authAndKeyExchange(ctx context.Context, q *secchan.Requester, challenge bool) error {
	if err := q.Connect(ctx); err != nil {
		return err
	}
	if _, err := q.GetDigests(ctx); err != nil {
		return err
	}
	if _, err := q.GetCertificate(ctx, 0); err != nil {
		return err
	}
	if challenge {
		if _, err := q.Challenge(ctx, 0, secchan.SummaryNone); err != nil {
			return err
		}
	}
	_, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	return err
}
