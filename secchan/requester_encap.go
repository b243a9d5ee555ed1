package secchan

// The requester's side of encapsulated requests (DSP0274 §10.15): the
// responder asks, through ENCAPSULATED_REQUEST and
// ENCAPSULATED_RESPONSE_ACK, for the requester's DIGESTS, CERTIFICATE,
// CHALLENGE_AUTH or KEY_UPDATE_ACK, and the requester answers with its
// own identity (RequesterConfig.MutualAuth and MutualAuthSlots).
//
// Which requests a flow may carry follows libspdm (its
// doc/internal/encapsulated_flow.md):
//
//   - basic mutual authentication, after a CHALLENGE_AUTH with
//     BasicMutAuthReq: GET_DIGESTS, GET_CERTIFICATE, CHALLENGE;
//   - session mutual authentication, after KEY_EXCHANGE_RSP asked for it
//     with encapsulated requests, before FINISH: GET_DIGESTS,
//     GET_CERTIFICATE;
//   - a flow the requester starts inside an established session
//     (SecureSession.EncapsulatedRequests): GET_DIGESTS, GET_CERTIFICATE,
//     KEY_UPDATE.
//
// The requester's CHALLENGE_AUTH is signed with the context
// "requester-challenge_auth signing" over the mutual M1M2: VCA (1.2+),
// then every encapsulated GET_DIGESTS/DIGESTS and
// GET_CERTIFICATE/CERTIFICATE of this flow, then the encapsulated
// CHALLENGE and the CHALLENGE_AUTH without its signature (libspdm's
// libspdm_calculate_m1m2 with is_mut).

import (
	"context"
	"errors"
	"fmt"
)

// encapFlow is the kind of an encapsulated flow.
type encapFlow uint8

const (
	encapBasic         encapFlow = iota + 1 // after BasicMutAuthReq
	encapSessionMutual                      // after KEY_EXCHANGE_RSP's MutAuthRequested
	encapInSession                          // started by the requester in a session
)

func (f encapFlow) String() string {
	switch f {
	case encapBasic:
		return "basic mutual authentication"
	case encapSessionMutual:
		return "session mutual authentication"
	}
	return "encapsulated requests in a session"
}

// maxEncapRounds bounds one flow: a chain of 64 KiB fetched in small
// portions, then a CHALLENGE or a key update, never more.
const maxEncapRounds = 300

// reqEncap is one encapsulated flow in progress.
type reqEncap struct {
	flow       encapFlow
	ss         *SecureSession // the session carrying it (nil: in the clear)
	mutB       []byte         // encapsulated GET_DIGESTS/GET_CERTIFICATE pairs
	certSlot   int            // the slot of the last GET_CERTIFICATE answered, -1 none
	challenged bool           // a CHALLENGE_AUTH went out
	answered   []uint8        // the request codes answered, in order
}

// EncapResult is what an encapsulated flow carried, for callers and tests
// that check the responder really asked.
type EncapResult struct {
	// Requests are the codes of the encapsulated requests answered.
	Requests []uint8
	// ReqSlot is the requester slot the responder named at the end of a
	// session mutual-authentication flow (-1: none named).
	ReqSlot int
}

// mutIdentity returns the requester's identity in slot, or nil.
func (q *Requester) mutIdentity(slot uint8) *Identity {
	if slot == 0 {
		return q.cfg.MutualAuth
	}
	if slot > 7 {
		return nil
	}
	return q.cfg.MutualAuthSlots[slot]
}

// mutSlotMask is the mask of the requester's provisioned slots.
func (q *Requester) mutSlotMask() uint8 {
	var m uint8
	for s := range uint8(8) {
		if id := q.mutIdentity(s); id != nil && id.Key != nil && len(id.Chain) > 0 {
			m |= 1 << s
		}
	}
	return m
}

// mutChain is the SPDM certificate chain of the requester's slot under
// the negotiated hash.
func (q *Requester) mutChain(slot uint8) ([]byte, *Identity, error) {
	id := q.mutIdentity(slot)
	if id == nil || id.Key == nil || len(id.Chain) == 0 {
		return nil, nil, fmt.Errorf("%w: requester slot %d holds no identity", ErrCertChain, slot)
	}
	root := id.Root
	if root == nil {
		root = id.Chain[0]
	}
	chain, err := BuildCertChain(q.neg.Hash, root, id.Chain...)
	return chain, id, err
}

// hasIdentity reports whether the requester can answer mutual
// authentication at all.
func (q *Requester) hasIdentity() bool { return q.mutSlotMask() != 0 }

// runEncap drives one encapsulated flow through exch. first is the first
// encapsulated request when the flow starts with one already known (the
// optimised session flow's implied GET_DIGESTS, sent with request ID 0);
// nil starts with GET_ENCAPSULATED_REQUEST. It returns what the flow
// carried; a flow the responder ends with an ERROR is an error.
func (q *Requester) runEncap(ctx context.Context, e *reqEncap, exch exchanger, first []byte) (*EncapResult, error) {
	v := q.neg.Version
	res := &EncapResult{ReqSlot: -1}
	var reqID uint8
	req := first
	if req == nil {
		resp, err := exch(ctx, (&GetEncapsulatedRequest{Version: v}).Marshal(), true)
		if err != nil {
			return nil, fmt.Errorf("GET_ENCAPSULATED_REQUEST: %w", err)
		}
		var m EncapsulatedRequest
		if _, err := expect(resp, CodeEncapsulatedRequest, v, m.Decode); err != nil {
			var se *SPDMError
			if e.flow == encapInSession && errors.As(err, &se) &&
				(v >= V13 && se.Code == ErrCodeNoPendingRequests || v < V13 && se.Code == ErrCodeUnexpectedRequest) {
				return res, nil // nothing to do
			}
			return nil, fmt.Errorf("GET_ENCAPSULATED_REQUEST: %w", err)
		}
		req, reqID = m.Request, m.RequestID
	}
	for round := 0; ; round++ {
		if round >= maxEncapRounds {
			return nil, fmt.Errorf("%w: the responder's encapsulated flow exceeds %d requests", ErrUnexpectedResponse, maxEncapRounds)
		}
		answer, err := q.encapAnswer(e, req)
		if err != nil {
			return nil, err
		}
		d := DeliverEncapsulatedResponse{Version: v, RequestID: reqID, Response: answer}
		resp, err := exch(ctx, d.Marshal(), true)
		if err != nil {
			return nil, fmt.Errorf("DELIVER_ENCAPSULATED_RESPONSE: %w", err)
		}
		var ack EncapsulatedResponseAck
		if _, err := expect(resp, CodeEncapsulatedResponseAck, v, ack.Decode); err != nil {
			return nil, fmt.Errorf("DELIVER_ENCAPSULATED_RESPONSE: %w", err)
		}
		if v >= V12 && ack.AckRequestID != reqID {
			return nil, fmt.Errorf("%w: ENCAPSULATED_RESPONSE_ACK acknowledges request %d, delivered %d", ErrUnexpectedResponse, ack.AckRequestID, reqID)
		}
		switch ack.PayloadType {
		case EncapPayloadPresent:
			req, reqID = ack.Request, ack.RequestID
			continue
		case EncapPayloadReqSlot:
			res.ReqSlot = int(ack.ReqSlot)
		}
		res.Requests = e.answered
		q.log.Debug("spdm step", "step", "encapsulated requests", "flow", e.flow.String(), "requests", len(e.answered))
		return res, nil
	}
}

// encapAnswer answers one encapsulated request: the response, or an
// ERROR message for a request the flow does not allow or that is
// malformed. An error return means the requester cannot go on (a key
// update that broke the session).
func (q *Requester) encapAnswer(e *reqEncap, req []byte) ([]byte, error) {
	v := q.neg.Version
	fail := func(code ErrorCode, data uint8) ([]byte, error) { return rspError(v, code, data, nil), nil }
	h, err := PeekHeader(req)
	if err != nil {
		return fail(ErrCodeInvalidRequest, 0)
	}
	if h.Version != v {
		return fail(ErrCodeVersionMismatch, 0)
	}
	allowed := map[uint8]bool{CodeGetDigests: true, CodeGetCertificate: true}
	switch e.flow {
	case encapBasic:
		allowed[CodeChallenge] = true
	case encapInSession:
		allowed[CodeKeyUpdate] = true
	}
	if !allowed[h.Code] {
		switch h.Code {
		case CodeGetDigests, CodeGetCertificate, CodeChallenge, CodeKeyUpdate:
			return fail(ErrCodeUnexpectedRequest, 0)
		}
		return fail(ErrCodeUnsupportedRequest, h.Code)
	}
	var resp []byte
	switch h.Code {
	case CodeGetDigests:
		resp, err = q.encapDigests(e, req)
	case CodeGetCertificate:
		resp, err = q.encapCertificate(e, req)
	case CodeChallenge:
		resp, err = q.encapChallenge(e, req)
	case CodeKeyUpdate:
		return q.encapKeyUpdate(e, req)
	}
	var code ErrorCode
	switch {
	case errors.As(err, &code):
		return fail(code, 0)
	case err != nil:
		return fail(ErrCodeUnspecified, 0)
	}
	e.answered = append(e.answered, h.Code)
	return resp, nil
}

// encapDigests answers GET_DIGESTS with the digest of each provisioned
// requester slot.
func (q *Requester) encapDigests(e *reqEncap, req []byte) ([]byte, error) {
	var g GetDigests
	msg, err := decodeExact("GET_DIGESTS", req, g.Decode)
	if err != nil {
		return nil, ErrCodeInvalidRequest
	}
	mask := q.mutSlotMask()
	m := Digests{Version: q.neg.Version, SlotMask: mask}
	if q.neg.Version >= V13 {
		m.SupportedMask = mask
	}
	for s := range uint8(8) {
		if mask&(1<<s) == 0 {
			continue
		}
		chain, _, err := q.mutChain(s)
		if err != nil {
			return nil, err
		}
		m.Digests = append(m.Digests, q.hash(chain))
	}
	resp := m.Marshal()
	e.mutB = append(append(e.mutB, msg...), resp...)
	return resp, nil
}

// encapCertificate answers GET_CERTIFICATE with the asked portion of a
// slot's chain: Offset and Length as asked, cut at the chain's end.
func (q *Requester) encapCertificate(e *reqEncap, req []byte) ([]byte, error) {
	var g GetCertificate
	msg, err := decodeExact("GET_CERTIFICATE", req, g.Decode)
	if err != nil {
		return nil, ErrCodeInvalidRequest
	}
	chain, _, err := q.mutChain(g.Slot)
	if err != nil {
		return nil, ErrCodeInvalidRequest
	}
	if g.SlotSizeRequested {
		return (&Certificate{Version: q.neg.Version, Slot: g.Slot, Remainder: uint16(len(chain))}).Marshal(), nil
	}
	if int(g.Offset) >= len(chain) {
		return nil, ErrCodeInvalidRequest
	}
	// The portion must fit in what the responder receives in one
	// DELIVER_ENCAPSULATED_RESPONSE (no CHUNK_SEND here).
	n := min(int(g.Length), len(chain)-int(g.Offset))
	if q.neg.Version >= V12 && q.neg.RspDataTransfer > 12 {
		n = min(n, int(q.neg.RspDataTransfer)-12)
	}
	m := Certificate{Version: q.neg.Version, Slot: g.Slot, Portion: chain[g.Offset : int(g.Offset)+n],
		Remainder: uint16(len(chain) - int(g.Offset) - n)}
	resp := m.Marshal()
	e.mutB = append(append(e.mutB, msg...), resp...)
	e.certSlot = int(g.Slot)
	return resp, nil
}

// encapChallenge answers CHALLENGE with CHALLENGE_AUTH signed by the
// requester's key of the slot.
func (q *Requester) encapChallenge(e *reqEncap, req []byte) ([]byte, error) {
	var c Challenge
	msg, err := decodeExact("CHALLENGE", req, c.Decode)
	if err != nil || c.SummaryType != SummaryNone || c.Slot > 7 {
		// A requester has no measurements; 0xFF (a provisioned public
		// key) is not offered.
		return nil, ErrCodeInvalidRequest
	}
	chain, id, err := q.mutChain(c.Slot)
	if err != nil {
		return nil, ErrCodeInvalidRequest
	}
	asym := uint32(q.neg.ReqBaseAsym)
	if asym == 0 || !keyCanSign(id, asym) {
		return nil, ErrCodeUnspecified
	}
	nonce, err := randomNonce()
	if err != nil {
		return nil, err
	}
	m := ChallengeAuth{Version: q.neg.Version, Slot: c.Slot, SlotMask: q.mutSlotMask(), CertChainHash: q.hash(chain),
		Nonce: nonce, Context: c.Context}
	unsigned := m.Marshal()
	d := q.neg.Hash.New()
	if q.neg.Version >= V12 {
		d.Write(q.vca)
	}
	d.Write(e.mutB)
	d.Write(msg)
	d.Write(unsigned)
	sig, err := Sign(q.neg.Version, asym, q.neg.Hash, id.Key, ContextMutChallenge, d.Sum(nil))
	if err != nil {
		return nil, err
	}
	e.challenged = true
	return append(unsigned, sig...), nil
}

// keyCanSign reports whether the identity's key signs with BaseAsymAlgo
// (or ReqBaseAsymAlg) asym: an RSA key does both RSASSA and RSAPSS.
func keyCanSign(id *Identity, asym uint32) bool {
	return asymsOfKey(id.Key.Public())&asym != 0
}

// encapKeyUpdate answers the responder's KEY_UPDATE inside the session:
// UpdateKey moves the responder's direction (our receive key) at once,
// VerifyNewKey ends the update. UpdateAllKeys is refused, as libspdm's
// requester does: an ACK under a changed requester key cannot be told
// apart from a forged one.
func (q *Requester) encapKeyUpdate(e *reqEncap, req []byte) ([]byte, error) {
	v := q.neg.Version
	var m KeyUpdate
	if _, err := decodeExact("KEY_UPDATE", req, m.Decode); err != nil {
		return rspError(v, ErrCodeInvalidRequest, 0, nil), nil
	}
	if e.ss == nil || q.neg.RspCaps&CapKeyUpd == 0 || q.reqCaps(v)&CapKeyUpd == 0 {
		return rspError(v, ErrCodeUnsupportedRequest, CodeKeyUpdate, nil), nil
	}
	ss := e.ss
	switch {
	case m.Operation == KeyUpdateOpUpdateKey && ss.encapKeyUpd == 0:
		if err := ss.s.UpdateRecvKey(); err != nil {
			ss.end()
			return nil, err
		}
		ss.encapKeyUpd = m.Operation
	case m.Operation == KeyUpdateOpVerifyNewKey && ss.encapKeyUpd == KeyUpdateOpUpdateKey:
		ss.encapKeyUpd = 0
	default:
		return rspError(v, ErrCodeInvalidRequest, 0, nil), nil
	}
	e.answered = append(e.answered, CodeKeyUpdate)
	return (&KeyUpdateAck{Version: v, Operation: m.Operation, Tag: m.Tag}).Marshal(), nil
}

// asymsOfKey are the algorithm bits a public key signs with: both RSA
// schemes of its size for RSA.
func asymsOfKey(pub any) uint32 {
	a := AsymFor(pub)
	switch a {
	case AsymRSASSA2048:
		a |= AsymRSAPSS2048
	case AsymRSASSA3072:
		a |= AsymRSAPSS3072
	case AsymRSASSA4096:
		a |= AsymRSAPSS4096
	}
	return a
}

// basicMutualAuth answers the responder's basic mutual authentication
// after a CHALLENGE_AUTH with BasicMutAuthReq.
func (q *Requester) basicMutualAuth(ctx context.Context) (*EncapResult, error) {
	if !q.hasIdentity() || q.reqCaps(q.neg.Version)&CapEncap == 0 {
		return nil, fmt.Errorf("%w: the responder asks for basic mutual authentication (BasicMutAuthReq); this requester has no identity to answer with", ErrNegotiation)
	}
	e := &reqEncap{flow: encapBasic, certSlot: -1}
	res, err := q.runEncap(ctx, e, q.exchange, nil)
	if err != nil {
		return nil, err
	}
	if !e.challenged {
		return nil, fmt.Errorf("%w: basic mutual authentication ended without a CHALLENGE", ErrUnexpectedResponse)
	}
	return res, nil
}

// encapForFinish runs session mutual authentication with encapsulated
// requests inside the handshake, before FINISH, and settles the slot
// FINISH names and whose chain its transcript hashes: the slot the
// responder names at the end, else the one whose chain it read, else
// KEY_EXCHANGE_RSP's.
func (q *Requester) encapForFinish(ctx context.Context, ss *SecureSession, mf *mutualFinish) error {
	e := &reqEncap{flow: encapSessionMutual, ss: ss, certSlot: -1}
	var first []byte
	if mf.encap == MutAuthWithGetDigests {
		// The optimised flow: the responder's GET_DIGESTS is implied and
		// the DIGESTS goes out at once, with request ID 0.
		first = (&GetDigests{Version: q.neg.Version}).Marshal()
	}
	res, err := q.runEncap(ctx, e, ss.exchangeOnce, first)
	if err != nil {
		return err
	}
	slot := mf.slot
	switch {
	case res.ReqSlot >= 0:
		slot = uint8(res.ReqSlot)
	case e.certSlot >= 0:
		slot = uint8(e.certSlot)
	}
	if slot != mf.slot {
		m, err := q.mutualFinish(slot)
		if err != nil {
			return err
		}
		*mf = *m
	}
	ss.Encap = res
	return nil
}

// EncapsulatedRequests asks the responder for its pending encapsulated
// requests inside this session (GET_ENCAPSULATED_REQUEST) and answers
// them: what a requester does when the responder signals out of band that
// it wants something, such as spdm-emu's OOB_ENCAP_KEY_UPDATE. A responder
// with nothing pending gives an empty result.
func (ss *SecureSession) EncapsulatedRequests(ctx context.Context) (*EncapResult, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	const step = "GET_ENCAPSULATED_REQUEST"
	q := ss.q
	if q.reqCaps(q.neg.Version)&CapEncap == 0 || q.neg.RspCaps&CapEncap == 0 {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: ENCAP_CAP is not set on both sides", ErrNegotiation)}
	}
	e := &reqEncap{flow: encapInSession, ss: ss, certSlot: -1}
	res, err := q.runEncap(ctx, e, ss.exchangeOnce, nil)
	if err != nil {
		if ss.encapKeyUpd != 0 {
			ss.end() // our receive key moved and the update did not finish
		}
		return nil, &StepError{Step: step, Err: err}
	}
	if ss.encapKeyUpd != 0 {
		ss.end()
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: the responder's key update ended without VerifyNewKey", ErrUnexpectedResponse)}
	}
	return res, nil
}

// reqMutualCaps are the flags an identity adds to GET_CAPABILITIES: the
// requester answers encapsulated requests (1.1+) and mutual
// authentication, with its certificates and CHALLENGE_AUTH.
func (q *Requester) reqMutualCaps(v Version) uint32 {
	if !q.hasIdentity() || v < V11 {
		return 0
	}
	return CapMutAuth | CapEncap | CapCert | CapChal
}

// reqAsymOffer is every ReqBaseAsymAlg the requester's keys sign with,
// both RSA schemes of an RSA key's size included (finding 3 of issue 16:
// a responder limited to RSAPSS must find its scheme offered).
func (q *Requester) reqAsymOffer() uint16 {
	var a uint32
	for s := range uint8(8) {
		if id := q.mutIdentity(s); id != nil && id.Key != nil {
			a |= asymsOfKey(id.Key.Public())
		}
	}
	return uint16(a)
}
