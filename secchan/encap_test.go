package secchan_test

// Mutual authentication through encapsulated requests, our requester
// against our responder (issue 16, finding 2 and 3): every mode, checked
// on the wire (the responder really asked) and by the responder's record
// of whom it authenticated; a requester with the wrong identity is
// refused.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"slices"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/secchan"
)

// wire records the plain messages of a connection.
type wire struct {
	reqs, resps [][]byte
}

func (w *wire) hook(_ int, req, resp []byte) []byte {
	w.reqs = append(w.reqs, slices.Clone(req))
	w.resps = append(w.resps, slices.Clone(resp))
	return resp
}

// response returns the first plain response with code, or nil.
func (w *wire) response(code uint8) []byte {
	for _, r := range w.resps {
		if len(r) >= 4 && r[1] == code {
			return r
		}
	}
	return nil
}

// request returns the first plain request with code, or nil.
func (w *wire) request(code uint8) []byte {
	for _, r := range w.reqs {
		if len(r) >= 4 && r[1] == code {
			return r
		}
	}
	return nil
}

// requesterIdentity is a fresh requester identity and a validator that
// trusts it.
func requesterIdentity(t testing.TB) (secchan.Identity, *secchan.AnchorValidator) {
	t.Helper()
	rootDER, id, err := devsim.NewRequesterIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	return id, secchan.NewRequesterValidator(root)
}

// mutualFixture is a devsim-like responder that asks for mutual
// authentication in the given way.
func mutualFixture(t testing.TB, basic bool, session uint8, anchors secchan.ChainValidator) *fixture {
	return newFixture(t, secchan.ResponderConfig{
		Caps: devsim.SPDMVFCaps | secchan.CapMutAuth | secchan.CapEncap,
		PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)},
		EncapMutualAuth: &secchan.EncapMutualAuth{
			Basic: basic, Session: session, Validator: anchors,
		},
	})
}

func TestBasicMutualAuth(t *testing.T) {
	id, anchors := requesterIdentity(t)
	for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
		t.Run(v.String(), func(t *testing.T) {
			f := mutualFixture(t, true, 0, anchors)
			f.cfg.Versions = []secchan.Version{v}
			f.cfg.MutualAuth = &id
			w := &wire{}
			q := secchan.NewRequester(&tamperTransport{rsp: f.rsp, hook: w.hook}, f.cfg)
			ctx := context.Background()
			if err := flow(ctx, q); err != nil {
				t.Fatal(err)
			}
			// On the wire: CHALLENGE_AUTH asked (Param1 bit 7), and the
			// responder's first encapsulated request is GET_DIGESTS.
			ca := w.response(secchan.CodeChallengeAuth)
			if ca == nil || ca[2]&0x80 == 0 {
				t.Fatalf("CHALLENGE_AUTH does not ask for basic mutual authentication: % x", ca[:4])
			}
			er := w.response(secchan.CodeEncapsulatedRequest)
			if er == nil || er[5] != secchan.CodeGetDigests {
				t.Fatalf("no ENCAPSULATED_REQUEST carrying GET_DIGESTS: % x", er)
			}
			// The requester's CHALLENGE_AUTH went back, and the
			// responder verified it.
			var sawChallengeAuth bool
			for _, r := range w.reqs {
				if r[1] == secchan.CodeDeliverEncapsulatedResponse && r[5] == secchan.CodeChallengeAuth {
					sawChallengeAuth = true
				}
			}
			if !sawChallengeAuth {
				t.Fatal("no DELIVER_ENCAPSULATED_RESPONSE carried CHALLENGE_AUTH")
			}
			res := f.rsp.MutualAuth()
			if res == nil || res.Err != nil || res.Chain == nil || res.Mode != "basic" {
				t.Fatalf("responder's record: %+v", res)
			}
			if !bytes.Equal(res.Chain.Leaf().Raw, id.Chain[len(id.Chain)-1]) {
				t.Fatal("the responder authenticated another leaf")
			}
		})
	}
}

func TestSessionMutualAuthEncap(t *testing.T) {
	id, anchors := requesterIdentity(t)
	for _, mode := range []uint8{secchan.MutAuthWithEncapRequest, secchan.MutAuthWithGetDigests} {
		for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
			t.Run(fmtMode(mode)+"/"+v.String(), func(t *testing.T) {
				f := mutualFixture(t, false, mode, anchors)
				f.cfg.Versions = []secchan.Version{v}
				f.cfg.MutualAuth = &id
				w := &wire{}
				ctx := context.Background()
				_, ss := keyExchanged(t, f, w.hook)
				ker := w.response(secchan.CodeKeyExchangeRsp)
				if ker == nil || ker[6] != mode {
					t.Fatalf("KEY_EXCHANGE_RSP MutAuthRequested is not 0x%02x: % x", mode, ker[:12])
				}
				want := []uint8{secchan.CodeGetDigests, secchan.CodeGetCertificate}
				if ss.Encap == nil || len(ss.Encap.Requests) < 2 || ss.Encap.Requests[0] != want[0] || ss.Encap.Requests[len(ss.Encap.Requests)-1] != want[1] {
					t.Fatalf("encapsulated requests answered: %+v", ss.Encap)
				}
				res := f.rsp.MutualAuth()
				if res == nil || res.Err != nil || res.Chain == nil {
					t.Fatalf("responder's record: %+v", res)
				}
				if err := ss.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true}); err != nil {
					t.Fatal(err)
				}
				if err := ss.End(ctx); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func fmtMode(m uint8) string {
	if m == secchan.MutAuthWithGetDigests {
		return "get-digests"
	}
	return "encap-request"
}

// TestMutualAuthWrongIdentity: a requester whose chain the responder's
// anchors do not reach, or whose key is not its leaf's, is refused in
// every mode, and no session survives.
func TestMutualAuthWrongIdentity(t *testing.T) {
	_, anchors := requesterIdentity(t)
	stranger, _ := requesterIdentity(t) // another root
	good, _ := requesterIdentity(t)
	wrongKey := good
	other, _ := requesterIdentity(t)
	wrongKey.Key = other.Key // a key that is not the leaf's
	// A chain the anchors reach, but signed with another key.
	goodRoot, _ := x509.ParseCertificate(good.Root)
	for name, tc := range map[string]struct {
		id      secchan.Identity
		anchors secchan.ChainValidator
	}{
		"untrusted chain": {stranger, anchors},
		"wrong key":       {wrongKey, secchan.NewRequesterValidator(goodRoot)},
	} {
		t.Run(name+"/basic", func(t *testing.T) {
			f := mutualFixture(t, true, 0, tc.anchors)
			f.cfg.MutualAuth = &tc.id
			q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
			err := flow(context.Background(), q)
			var se *secchan.SPDMError
			if !errors.As(err, &se) || se.Code != secchan.ErrCodeInvalidResponseCode {
				t.Fatalf("flow: %v, want ERROR(InvalidResponseCode)", err)
			}
			if res := f.rsp.MutualAuth(); res == nil || res.Err == nil || res.Chain != nil {
				t.Fatalf("responder's record: %+v", res)
			}
		})
		for _, mode := range []uint8{secchan.MutAuthWithEncapRequest, secchan.MutAuthWithGetDigests} {
			t.Run(name+"/"+fmtMode(mode), func(t *testing.T) {
				f := mutualFixture(t, false, mode, tc.anchors)
				f.cfg.MutualAuth = &tc.id
				q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
				ctx := context.Background()
				if err := flow(ctx, q); err != nil {
					t.Fatal(err)
				}
				if _, err := q.KeyExchange(ctx, secchan.SessionOptions{}); err == nil {
					t.Fatal("a session opened with the wrong requester identity")
				}
				if n := len(f.rsp.Sessions()); n != 0 {
					t.Fatalf("%d sessions survived", n)
				}
			})
		}
	}
}

// TestRequesterWithoutIdentityNotAsked: a requester with no identity
// advertises neither MUT_AUTH nor ENCAP, and the responder does not ask.
func TestRequesterWithoutIdentityNotAsked(t *testing.T) {
	_, anchors := requesterIdentity(t)
	f := mutualFixture(t, true, secchan.MutAuthWithEncapRequest, anchors)
	w := &wire{}
	ctx := context.Background()
	_, ss := keyExchanged(t, f, w.hook)
	if err := ss.End(ctx); err != nil {
		t.Fatal(err)
	}
	if ca := w.response(secchan.CodeChallengeAuth); ca[2]&0x80 != 0 {
		t.Fatal("the responder asked a requester without ENCAP for basic mutual authentication")
	}
	if ker := w.response(secchan.CodeKeyExchangeRsp); ker[6] != 0 {
		t.Fatal("the responder asked a requester without MUT_AUTH for session mutual authentication")
	}
}

// TestRequesterRSAOffersBothSchemes (finding 3): an RSA-3072 requester key
// is offered as RSASSA_3072 and RSAPSS_3072 in ReqBaseAsymAlg, so a
// responder that prefers (or only does) RSAPSS selects it, and mutual
// authentication with PSS works.
func TestRequesterRSAOffersBothSchemes(t *testing.T) {
	root, id := rsaRequesterIdentity(t)
	f := mutualFixture(t, true, 0, secchan.NewRequesterValidator(root))
	f.cfg.Versions = []secchan.Version{secchan.V12}
	f.cfg.MutualAuth = &id
	w := &wire{}
	q := secchan.NewRequester(&tamperTransport{rsp: f.rsp, hook: w.hook}, f.cfg)
	if err := flow(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	var n secchan.NegotiateAlgorithms
	if _, err := n.Decode(w.request(secchan.CodeNegotiateAlgorithms)); err != nil {
		t.Fatal(err)
	}
	var offered uint16
	for _, s := range n.Structs {
		if s.Type == secchan.AlgTypeReqBaseAsym {
			offered = s.Bits
		}
	}
	want := uint16(secchan.AsymRSASSA3072 | secchan.AsymRSAPSS3072)
	if offered != want {
		t.Fatalf("ReqBaseAsymAlg offered 0x%04x, want 0x%04x (RSASSA_3072 and RSAPSS_3072)", offered, want)
	}
	if got := q.Negotiated().ReqBaseAsym; got != uint16(secchan.AsymRSAPSS3072) {
		t.Fatalf("selected ReqBaseAsymAlg 0x%04x, want RSAPSS_3072", got)
	}
	if res := f.rsp.MutualAuth(); res == nil || res.Err != nil {
		t.Fatalf("responder's record: %+v", res)
	}
}

// TestEncapKeyUpdate: the responder asks for a KEY_UPDATE of its own key
// inside a session (spdm-emu's OOB_ENCAP_KEY_UPDATE); until the requester
// fetches it, other requests get RequestInFlight; afterwards the session
// works under the new key.
func TestEncapKeyUpdate(t *testing.T) {
	for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
		t.Run(v.String(), func(t *testing.T) {
			f := newFixture(t, secchan.ResponderConfig{Caps: devsim.SPDMVFCaps | secchan.CapEncap,
				PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)}})
			f.cfg.Versions = []secchan.Version{v}
			f.cfg.Caps |= secchan.CapEncap
			ctx := context.Background()
			_, ss := keyExchanged(t, f, nil)
			// Nothing pending: an empty result.
			if res, err := ss.EncapsulatedRequests(ctx); err != nil || len(res.Requests) != 0 {
				t.Fatalf("nothing pending: %+v, %v", res, err)
			}
			if err := f.rsp.StartEncapKeyUpdate(ss.ID()); err != nil {
				t.Fatal(err)
			}
			var se *secchan.SPDMError
			if err := ss.Heartbeat(ctx); !errors.As(err, &se) || se.Code != secchan.ErrCodeRequestInFlight {
				t.Fatalf("HEARTBEAT during the pending flow: %v, want RequestInFlight", err)
			}
			res, err := ss.EncapsulatedRequests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Requests, []uint8{secchan.CodeKeyUpdate, secchan.CodeKeyUpdate}) {
				t.Fatalf("answered %x", res.Requests)
			}
			for range 2 {
				if err := ss.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := ss.KeyUpdate(ctx, true); err != nil {
				t.Fatal(err)
			}
			if err := ss.End(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzResponderDeliverEncap: whatever a requester delivers as its
// encapsulated response, the responder answers with one well-formed
// ENCAPSULATED_RESPONSE_ACK or ERROR and never panics.
func FuzzResponderDeliverEncap(f *testing.F) {
	f.Add(byte(1), []byte{0x12, secchan.CodeDigests, 0, 1})
	f.Add(byte(1), append([]byte{0x12, secchan.CodeDigests, 0, 1}, make([]byte, 48)...))
	f.Add(byte(2), []byte{0x12, secchan.CodeCertificate, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4})
	f.Add(byte(1), []byte{0x12, secchan.CodeError, byte(secchan.ErrCodeUnsupportedRequest), 0x81})
	f.Add(byte(0), []byte{})
	_, anchors := requesterIdentity(f)
	f.Fuzz(func(t *testing.T, reqID byte, resp []byte) {
		if len(resp) > 4096 {
			return
		}
		fx := mutualFixture(t, true, 0, anchors)
		fx.cfg.Versions = []secchan.Version{secchan.V12}
		// Advertise what basic mutual authentication needs, without an
		// identity: the requester stops after CHALLENGE_AUTH and the
		// fuzzer plays the rest.
		fx.cfg.Caps |= secchan.CapMutAuth | secchan.CapEncap | secchan.CapCert | secchan.CapChal
		fx.cfg.ReqBaseAsym = uint16(secchan.AsymECDSAP256)
		q := secchan.NewRequester(&tamperTransport{rsp: fx.rsp}, fx.cfg)
		if err := flow(context.Background(), q); err == nil {
			t.Fatal("a requester without identity completed basic mutual authentication")
		}
		ctx := context.Background()
		first := fx.rsp.Respond(ctx, (&secchan.GetEncapsulatedRequest{Version: secchan.V12}).Marshal())
		var er secchan.EncapsulatedRequest
		if _, err := er.Decode(first); err != nil {
			t.Fatalf("GET_ENCAPSULATED_REQUEST: % x", first)
		}
		out := fx.rsp.Respond(ctx, (&secchan.DeliverEncapsulatedResponse{Version: secchan.V12, RequestID: reqID, Response: resp}).Marshal())
		h, err := secchan.PeekHeader(out)
		if err != nil {
			t.Fatal(err)
		}
		switch h.Code {
		case secchan.CodeError:
			var m secchan.ErrorResponse
			if _, err := m.Decode(out); err != nil {
				t.Fatal(err)
			}
		case secchan.CodeEncapsulatedResponseAck:
			var m secchan.EncapsulatedResponseAck
			if _, err := m.Decode(out); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("answer % x", out)
		}
	})
}

// TestEncapFlowDiesWithItsSession: a pending encapsulated KEY_UPDATE whose
// session ended no longer blocks the connection.
func TestEncapFlowDiesWithItsSession(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{Caps: devsim.SPDMVFCaps | secchan.CapEncap,
		PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)}})
	f.cfg.Caps |= secchan.CapEncap
	ctx := context.Background()
	q, ss := keyExchanged(t, f, nil)
	if err := f.rsp.StartEncapKeyUpdate(ss.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetDigests(ctx); !errors.Is(err, secchan.ErrCodeRequestInFlight) {
		t.Fatalf("GET_DIGESTS during the flow: %v, want RequestInFlight", err)
	}
	// A record the session cannot open ends it.
	if _, err := f.rsp.RespondSecured(ctx, append(binaryLE32(ss.ID()), append([]byte{32, 0}, make([]byte, 32)...)...)); err == nil {
		t.Fatal("a broken record was answered")
	}
	if _, err := q.GetDigests(ctx); err != nil {
		t.Fatalf("GET_DIGESTS after the session ended: %v", err)
	}
}

func binaryLE32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

// TestMutualAuthOtherSlot: the responder asks for the requester's slot 1;
// the requester answers from MutualAuthSlots, the ACK names the slot and
// FINISH is signed with slot 1's key.
func TestMutualAuthOtherSlot(t *testing.T) {
	id0, _ := requesterIdentity(t)
	id1, anchors1 := requesterIdentity(t)
	for _, basic := range []bool{true, false} {
		f := newFixture(t, secchan.ResponderConfig{
			Caps: devsim.SPDMVFCaps | secchan.CapMutAuth | secchan.CapEncap,
			PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)},
			EncapMutualAuth: &secchan.EncapMutualAuth{Basic: basic, Session: secchan.MutAuthWithEncapRequest, Slot: 1,
				Validator: anchors1},
		})
		f.cfg.MutualAuth = &id0
		f.cfg.MutualAuthSlots = map[uint8]*secchan.Identity{1: &id1}
		ctx := context.Background()
		_, ss := keyExchanged(t, f, nil)
		if ss.Encap == nil || ss.Encap.ReqSlot != 1 {
			t.Fatalf("the flow's end did not name slot 1: %+v", ss.Encap)
		}
		res := f.rsp.MutualAuth()
		if res == nil || res.Err != nil || res.Slot != 1 || !bytes.Equal(res.Chain.Leaf().Raw, id1.Chain[len(id1.Chain)-1]) {
			t.Fatalf("responder's record: %+v", res)
		}
		if err := ss.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// chunkSendTransport plays a responder's CHUNK_SEND side in front of a
// Responder (which takes none): it reassembles the chunks, answers the
// whole request in the last CHUNK_SEND_ACK and pads every ACK to a DW as
// DOE does.
type chunkSendTransport struct {
	rsp    *secchan.Responder
	buf    []byte
	chunks int
}

func (c *chunkSendTransport) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) < 2 || req[1] != secchan.CodeChunkSend {
		return c.rsp.Respond(ctx, req), nil
	}
	var m secchan.ChunkSend
	if _, err := m.Decode(req); err != nil {
		return nil, err
	}
	c.chunks++
	c.buf = append(c.buf, m.Chunk...)
	ack := secchan.ChunkSendAck{Version: m.Version, Handle: m.Handle, Seq: m.Seq}
	if m.Attributes&secchan.ChunkLast != 0 {
		ack.Response = c.rsp.Respond(ctx, c.buf)
		c.buf = nil
	}
	out := ack.Marshal()
	return append(out, make([]byte, (4-len(out)%4)%4)...), nil
}

// TestRequesterChunkSend: to a responder with a 256-byte DataTransferSize,
// the requester's CHALLENGE_AUTH with an RSA-3072 signature (basic mutual
// authentication) goes with CHUNK_SEND, and the responder verifies it.
func TestRequesterChunkSend(t *testing.T) {
	root, id := rsaRequesterIdentity(t)
	f := newFixture(t, secchan.ResponderConfig{
		Caps:             devsim.SPDMVFCaps | secchan.CapMutAuth | secchan.CapEncap,
		PSKs:             map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)},
		DataTransferSize: 256, MaxSPDMmsgSize: 4096,
		EncapMutualAuth: &secchan.EncapMutualAuth{Basic: true, Validator: secchan.NewRequesterValidator(root)},
	})
	f.cfg.Versions = []secchan.Version{secchan.V12}
	f.cfg.MutualAuth = &id
	tr := &chunkSendTransport{rsp: f.rsp}
	q := secchan.NewRequester(tr, f.cfg)
	if err := flow(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if tr.chunks < 2 {
		t.Fatalf("%d chunks sent", tr.chunks)
	}
	if res := f.rsp.MutualAuth(); res == nil || res.Err != nil {
		t.Fatalf("responder's record: %+v", res)
	}
}

// rsaRequesterIdentity is a requester identity with an RSA-3072 key (its
// signatures outgrow small transfer sizes) and the root that anchors it.
func rsaRequesterIdentity(t *testing.T) (*x509.Certificate, secchan.Identity) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	rootDER, id, err := devsim.NewRequesterIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	return root, id
}

// keyExchanged runs VCA, authentication and KEY_EXCHANGE against f's
// responder (hook, if any, sees the wire) and returns the requester and
// its session.
func keyExchanged(t *testing.T, f *fixture, h hook) (*secchan.Requester, *secchan.SecureSession) {
	t.Helper()
	ctx := context.Background()
	q := secchan.NewRequester(&tamperTransport{rsp: f.rsp, hook: h}, f.cfg)
	if err := flow(ctx, q); err != nil {
		t.Fatal(err)
	}
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return q, ss
}
