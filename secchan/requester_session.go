package secchan

// Requester steps that open a secure session (DSP0274 §10.16-10.19):
//
//	KeyExchange: KEY_EXCHANGE -> KEY_EXCHANGE_RSP (signed, plain), then
//	             FINISH -> FINISH_RSP under the handshake keys
//	PSKExchange: PSK_EXCHANGE -> PSK_EXCHANGE_RSP (plain), then
//	             PSK_FINISH -> PSK_FINISH_RSP under the handshake keys
//
// Transcripts, from the exact bytes: TH1 = VCA, [the first DIGESTS on a
// multi-key connection], [H(the slot's chain)], the exchange request and
// the response up to its verify data; the finish request's verify data
// covers all that, the response's verify data and the finish request up
// to its verify data; TH2 adds the whole finish pair.

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"fmt"
	"slices"
)

// SessionOptions selects how a session is opened.
type SessionOptions struct {
	// Slot is the certificate slot that authenticates the responder
	// (KEY_EXCHANGE only; its chain must have been validated first).
	Slot uint8
	// Summary asks for a measurement summary hash in the exchange response.
	Summary uint8
	// PSK and PSKHint open a PSK session instead of KEY_EXCHANGE.
	PSK     []byte
	PSKHint []byte
}

// securedVersions are the DSP0277 versions offered in opaque data.
var securedVersions = []uint16{SecuredVersion10, SecuredVersion11, SecuredVersion12}

func ecdhCurve(group uint16) (ecdh.Curve, error) {
	switch group {
	case DHESECP256R1:
		return ecdh.P256(), nil
	case DHESECP384R1:
		return ecdh.P384(), nil
	case DHESECP521R1:
		return ecdh.P521(), nil
	}
	return nil, fmt.Errorf("%w: DHE group %s", ErrUnsupportedAlgorithm, DHEName(group))
}

// keySchedule returns the negotiated key schedule, or why there is none.
func (q *Requester) keySchedule(psk bool) (KeySchedule, error) {
	neg := q.neg
	need := CapKeyEx
	if psk {
		need = CapPSK | CapPSKWithContext
	}
	switch {
	case neg.Version < V11:
		return KeySchedule{}, fmt.Errorf("%w: sessions need SPDM 1.1 or later, connection is %v", ErrNegotiation, neg.Version)
	case neg.RspCaps&need == 0:
		return KeySchedule{}, fmt.Errorf("%w: responder lacks the capability for this session (flags 0x%08x)", ErrNegotiation, neg.RspCaps)
	case neg.RspCaps&(CapEncrypt|CapMAC) == 0:
		return KeySchedule{}, fmt.Errorf("%w: responder offers neither ENCRYPT nor MAC", ErrNegotiation)
	case neg.AEAD == 0 || neg.KeySchedule != KeyScheduleSPDM || (!psk && neg.DHE == 0):
		return KeySchedule{}, q.sessionAlgMismatch(psk)
	}
	return KeySchedule{Version: neg.Version, Hash: neg.Hash, AEAD: neg.AEAD}, nil
}

// nextSessionID picks a ReqSessionID not in use, counting down from 0xFFFF.
func (q *Requester) nextSessionID() uint16 {
	for {
		q.reqSessionID--
		if q.reqSessionID == 0 {
			q.reqSessionID = 0xFFFF
		}
		if !q.liveReqIDs[q.reqSessionID] {
			return q.reqSessionID
		}
	}
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

// KeyExchange opens a session authenticated by the responder's signature
// with the leaf key of opts.Slot.
func (q *Requester) KeyExchange(ctx context.Context, opts SessionOptions) (*SecureSession, error) {
	step := fmt.Sprintf("KEY_EXCHANGE slot %d", opts.Slot)
	fail := func(err error) (*SecureSession, error) { return nil, &StepError{Step: step, Err: err} }
	if err := q.needVCA(step); err != nil {
		return nil, err
	}
	st, ok := q.t.(SecuredTransport)
	if !ok {
		return fail(fmt.Errorf("%w: the transport cannot carry secured messages", ErrNegotiation))
	}
	ks, err := q.keySchedule(false)
	if err != nil {
		return fail(err)
	}
	chain := q.chains[opts.Slot]
	if chain == nil {
		return fail(fmt.Errorf("%w: no validated chain for slot %d", ErrCertChain, opts.Slot))
	}
	curve, err := ecdhCurve(q.neg.DHE)
	if err != nil {
		return fail(err)
	}
	priv, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return fail(err)
	}
	random, err := randomBytes(RandomDataSize)
	if err != nil {
		return fail(err)
	}
	ke := KeyExchange{Version: q.neg.Version, SummaryType: opts.Summary, Slot: opts.Slot, ReqSessionID: q.nextSessionID(),
		ExchangeData: priv.PublicKey().Bytes()[1:], Opaque: EncodeSupportedVersions(q.neg.Version, q.opaqueFormat(), securedVersions)}
	copy(ke.RandomData[:], random)
	req := ke.Marshal()
	resp, err := q.exchange(ctx, req, true)
	if err != nil {
		return fail(err)
	}
	d, _ := DHEExchangeSize(q.neg.DHE)
	var m KeyExchangeRsp
	msg, err := expect(resp, CodeKeyExchangeRsp, q.neg.Version, func(b []byte) (int, error) {
		return m.Decode(b, d, q.summarySize(opts.Summary), q.neg.SigSize, q.neg.Hash.Size())
	})
	if err != nil {
		return fail(err)
	}
	var mutual *mutualFinish
	switch {
	case m.MutAuthRequested == 0:
	case q.hasIdentity() && (m.MutAuthRequested == MutAuthRequested || q.reqCaps(q.neg.Version)&CapEncap != 0):
		if mutual, err = q.mutualFinish(m.ReqSlotID); err != nil {
			return fail(err)
		}
		mutual.encap = m.MutAuthRequested &^ MutAuthRequested // requester_encap.go
	default:
		return fail(fmt.Errorf("%w: responder asks for mutual authentication (MutAuthRequested 0x%02x); this requester has no identity to answer with", ErrNegotiation, m.MutAuthRequested))
	}
	if err := q.checkSecuredVersion(m.Opaque); err != nil {
		return fail(err)
	}
	// Transcript: VCA, [D], H(chain), KEY_EXCHANGE, KEY_EXCHANGE_RSP.
	th := slices.Clone(q.vca)
	if q.multiKey && q.firstDigests != nil {
		th = append(th, q.firstDigests...)
	}
	ch := q.neg.Hash.New()
	ch.Write(chain.Raw)
	th = append(append(ch.Sum(th), req...), msg[:m.SignedLen()]...)
	if err := VerifySignature(q.neg.Version, q.neg.BaseAsym, q.neg.Hash, chain.Leaf().PublicKey, ContextKeyExchangeRsp, q.hash(th), m.Signature); err != nil {
		return fail(err)
	}
	th = append(th, m.Signature...)
	peer, err := curve.NewPublicKey(append([]byte{4}, m.ExchangeData...))
	if err != nil {
		return fail(fmt.Errorf("%w: responder's DHE public key: %w", ErrMalformed, err))
	}
	shared, err := priv.ECDH(peer)
	if err != nil {
		return fail(err)
	}
	var reqChainHash []byte
	if mutual != nil {
		reqChainHash = mutual.chainHash
	}
	q.exportSecrets(SessionID(ke.ReqSessionID, m.RspSessionID), false, shared, q.hash(th), reqChainHash)
	hs, err := ks.NewHandshakeSecret(shared, false)
	zero(shared)
	if err != nil {
		return fail(err)
	}
	return q.finishSession(ctx, st, step, ks, hs, th, m.VerifyData, ke.ReqSessionID, m.RspSessionID, m.HeartbeatPeriod, false, mutual)
}

// mutualFinish is what a FINISH with the requester's signature needs.
type mutualFinish struct {
	encap     uint8 // MutAuthWithEncapRequest or MutAuthWithGetDigests: encapsulated requests first
	slot      uint8
	chainHash []byte
	asym      uint32
	key       crypto.Signer
}

// mutualFinish prepares session-based mutual authentication: the
// requester's chain in the SPDM format, hashed into the FINISH transcript.
func (q *Requester) mutualFinish(slot uint8) (*mutualFinish, error) {
	id := q.mutIdentity(slot)
	asym := uint32(q.neg.ReqBaseAsym)
	if id == nil || id.Key == nil || len(id.Chain) == 0 {
		return nil, fmt.Errorf("%w: the responder asks for the requester's slot %d, which holds no identity", ErrNegotiation, slot)
	}
	if asym == 0 || !keyCanSign(id, asym) {
		return nil, fmt.Errorf("%w: mutual authentication needs a key of the negotiated ReqBaseAsymAlg %s", ErrNegotiation, AsymName(asym))
	}
	root := id.Root
	if root == nil {
		root = id.Chain[0]
	}
	chain, err := BuildCertChain(q.neg.Hash, root, id.Chain...)
	if err != nil {
		return nil, err
	}
	return &mutualFinish{slot: slot, chainHash: q.hash(chain), asym: asym, key: id.Key}, nil
}

// PSKExchange opens a session authenticated by a pre-shared key.
func (q *Requester) PSKExchange(ctx context.Context, opts SessionOptions) (*SecureSession, error) {
	const step = "PSK_EXCHANGE"
	fail := func(err error) (*SecureSession, error) { return nil, &StepError{Step: step, Err: err} }
	if err := q.needVCA(step); err != nil {
		return nil, err
	}
	st, ok := q.t.(SecuredTransport)
	if !ok {
		return fail(fmt.Errorf("%w: the transport cannot carry secured messages", ErrNegotiation))
	}
	if len(opts.PSK) == 0 {
		return fail(fmt.Errorf("%w: no PSK given", ErrNegotiation))
	}
	ks, err := q.keySchedule(true)
	if err != nil {
		return fail(err)
	}
	context, err := randomBytes(q.neg.Hash.Size())
	if err != nil {
		return fail(err)
	}
	pe := PSKExchange{Version: q.neg.Version, SummaryType: opts.Summary, ReqSessionID: q.nextSessionID(), PSKHint: opts.PSKHint,
		Context: context, Opaque: EncodeSupportedVersions(q.neg.Version, q.opaqueFormat(), securedVersions)}
	req := pe.Marshal()
	resp, err := q.exchange(ctx, req, true)
	if err != nil {
		return fail(err)
	}
	var m PSKExchangeRsp
	msg, err := expect(resp, CodePSKExchangeRsp, q.neg.Version, func(b []byte) (int, error) {
		return m.Decode(b, q.summarySize(opts.Summary), q.neg.Hash.Size())
	})
	if err != nil {
		return fail(err)
	}
	if err := q.checkSecuredVersion(m.Opaque); err != nil {
		return fail(err)
	}
	th := append(append(slices.Clone(q.vca), req...), msg[:m.TH1Len()]...)
	q.exportSecrets(SessionID(pe.ReqSessionID, m.RspSessionID), true, opts.PSK, q.hash(th), nil)
	hs, err := ks.NewHandshakeSecret(opts.PSK, true)
	if err != nil {
		return fail(err)
	}
	return q.finishSession(ctx, st, step, ks, hs, th, m.VerifyData, pe.ReqSessionID, m.RspSessionID, m.HeartbeatPeriod, true, nil)
}

func (q *Requester) summarySize(summary uint8) int {
	if summary == SummaryNone {
		return 0
	}
	return q.neg.Hash.Size()
}

func (q *Requester) opaqueFormat() uint8 { return q.neg.OtherParams & 0x0F }

func (q *Requester) hash(b []byte) []byte {
	h := q.neg.Hash.New()
	h.Write(b)
	return h.Sum(nil)
}

// checkSecuredVersion checks the responder's DSP0277 version selection.
func (q *Requester) checkSecuredVersion(opaque []byte) error {
	v, err := DecodeVersionSelection(q.neg.Version, q.opaqueFormat(), opaque)
	if err != nil {
		return err
	}
	if !slices.Contains(securedVersions, v&0xFF00) {
		return fmt.Errorf("%w: responder selected secured-message version 0x%04x, not offered", ErrNegotiation, v)
	}
	return nil
}

// finishSession completes either handshake: it checks the responder's
// verify data over TH1, sends FINISH or PSK_FINISH under the handshake
// keys and moves to the data keys with TH2. th holds the transcript up to
// the response's verify data.
func (q *Requester) finishSession(ctx context.Context, st SecuredTransport, step string, ks KeySchedule, hs *HandshakeSecret,
	th, rspVerify []byte, reqID, rspID uint16, heartbeat uint8, psk bool, mutual *mutualFinish) (*SecureSession, error) {
	fail := func(s *Session, err error) (*SecureSession, error) {
		if s != nil {
			s.End()
		}
		return nil, &StepError{Step: step, Err: err}
	}
	id := SessionID(reqID, rspID)
	s, err := NewSession(id, RoleRequester, ks, hs, q.hash(th))
	if err != nil {
		return fail(nil, err)
	}
	want, err := s.VerifyData(false, q.hash(th))
	if err != nil {
		return fail(s, err)
	}
	if !hmac.Equal(want, rspVerify) {
		return fail(s, fmt.Errorf("%w: ResponderVerifyData does not match TH1", ErrSignature))
	}
	th = append(th, rspVerify...)
	ss := &SecureSession{q: q, s: s, st: st, reqID: reqID, HeartbeatPeriod: heartbeat}
	if psk && q.neg.RspCaps&CapPSKWithContext == 0 {
		// PSK_CAP without context: no PSK_FINISH; TH2 ends with the
		// exchange response (DSP0274 §10.18).
		if err := s.Establish(q.hash(th)); err != nil {
			return fail(s, err)
		}
		zero(th)
		q.liveReqIDs[reqID] = true
		return ss, nil
	}

	// FINISH / PSK_FINISH: the verify data covers the transcript and the
	// message up to it. With mutual authentication the requester's chain
	// hash joins the transcript and FINISH carries its signature first.
	if mutual != nil && mutual.encap != 0 {
		if err := q.encapForFinish(ctx, ss, mutual); err != nil {
			return fail(s, err)
		}
	}
	code, rspCode := CodeFinish, CodeFinishRsp
	if psk {
		code, rspCode = CodePSKFinish, CodePSKFinishRsp
	}
	req := []byte{uint8(q.neg.Version), code, 0, 0}
	if mutual != nil {
		req[2], req[3] = 1, mutual.slot // SignatureIncluded, ReqSlotID
		th = append(th, mutual.chainHash...)
		sig, err := Sign(q.neg.Version, mutual.asym, q.neg.Hash, mutual.key, ContextFinish, q.hash(append(slices.Clone(th), req...)))
		if err != nil {
			return fail(s, err)
		}
		req = append(req, sig...)
	}
	mac, err := s.VerifyData(true, q.hash(append(slices.Clone(th), req...)))
	if err != nil {
		return fail(s, err)
	}
	req = append(req, mac...)
	resp, err := ss.exchange(ctx, req, false)
	if err != nil {
		return fail(s, fmt.Errorf("%s: %w", CodeName(code), err))
	}
	var msg []byte
	if psk {
		var m PSKFinishRsp
		msg, err = expect(resp, rspCode, q.neg.Version, m.Decode)
	} else {
		var m FinishRsp
		msg, err = expect(resp, rspCode, q.neg.Version, func(b []byte) (int, error) { return m.Decode(b, 0) })
	}
	if err != nil {
		return fail(s, fmt.Errorf("%s: %w", CodeName(code), err))
	}
	th = append(append(th, req...), msg...)
	if err := s.Establish(q.hash(th)); err != nil {
		return fail(s, err)
	}
	zero(th)
	q.liveReqIDs[reqID] = true
	q.log.Debug("spdm step", "step", step, "session", fmt.Sprintf("0x%08x", id), "aead", AEADName(ks.AEAD))
	return ss, nil
}
