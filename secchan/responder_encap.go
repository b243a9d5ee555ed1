package secchan

// The responder's side of encapsulated requests (DSP0274 §10.15): it asks
// the requester for its identity — basic mutual authentication after
// CHALLENGE_AUTH, session mutual authentication after KEY_EXCHANGE_RSP —
// or for a KEY_UPDATE of the responder's own key inside a session.
//
// One flow is in progress at a time, as in libspdm: while it is, every
// request but GET_ENCAPSULATED_REQUEST, DELIVER_ENCAPSULATED_RESPONSE and
// GET_VERSION gets ERROR(RequestInFlight). The flows, in libspdm's order:
//
//   - basic: GET_DIGESTS, GET_CERTIFICATE (as many as the chain needs),
//     CHALLENGE; the requester's CHALLENGE_AUTH is verified over the
//     mutual M1M2 (VCA from 1.2, the encapsulated digests and certificate
//     pairs, the encapsulated CHALLENGE and CHALLENGE_AUTH) with the
//     context "requester-challenge_auth signing";
//   - session (MutAuthRequested 2h, or 4h where the GET_DIGESTS is implied
//     and the requester starts with DELIVER_ENCAPSULATED_RESPONSE):
//     GET_DIGESTS, GET_CERTIFICATE; then FINISH must carry the signature
//     of the chain's leaf, and H(chain) joins the FINISH transcript;
//   - key update (StartEncapKeyUpdate): KEY_UPDATE UpdateKey, then
//     VerifyNewKey under the responder's new key.
//
// The requester's chain is judged by EncapMutualAuth.Validator (the
// responder's anchors for requesters); a chain or signature that fails
// ends the flow with ERROR(InvalidResponseCode), as libspdm does, and a
// session waiting for it ends too.

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
)

// EncapMutualAuth configures mutual authentication through encapsulated
// requests.
type EncapMutualAuth struct {
	// Basic asks for basic mutual authentication in every CHALLENGE_AUTH
	// (BasicMutAuthReq, 1.1+) when the requester sets MUT_AUTH, ENCAP,
	// CERT and CHAL.
	Basic bool
	// Session is the MutAuthRequested of KEY_EXCHANGE_RSP when the
	// requester sets MUT_AUTH and ENCAP: MutAuthWithEncapRequest, or
	// MutAuthWithGetDigests (the optimised flow); 0 asks for none.
	Session uint8
	// Slot is the requester's certificate slot asked for (0-7).
	Slot uint8
	// Validator judges the requester's chain: the responder's own anchors
	// for requesters. Required.
	Validator ChainValidator
}

// MutualAuthResult is the last mutual authentication a responder ran.
type MutualAuthResult struct {
	Mode  string // "basic", "session-encap", "session-get-digests"
	Slot  uint8
	Chain *CertChain // the requester's validated chain (nil if refused)
	Err   error      // why the requester was refused (nil: authenticated)
}

// rspEncap is the encapsulated flow in progress.
type rspEncap struct {
	flow    encapFlow
	mode    string
	rs      *rspSession // nil: in the clear
	ops     []uint8     // request codes still to send after cur
	cur     uint8       // the outstanding request's code (0: none sent yet)
	reqID   uint8
	lastReq []byte
	slot    uint8
	mutB    []byte
	digest  []byte // the slot's digest from DIGESTS
	chain   []byte // the requester's chain so far
	total   int    // the chain's size from the first CERTIFICATE
	parsed  *CertChain
	keyOp   uint8 // the KEY_UPDATE operation outstanding
	keyTag  uint8
}

// checkEncapConfig checks EncapMutualAuth and the ENCAP capability.
func checkEncapConfig(cfg *ResponderConfig) error {
	e := cfg.EncapMutualAuth
	switch {
	case e == nil:
		return nil
	case cfg.Caps&CapEncap == 0 || cfg.Caps&CapMutAuth == 0:
		return errors.New("secchan: responder EncapMutualAuth needs the ENCAP and MUT_AUTH caps")
	case e.Validator == nil:
		return errors.New("secchan: responder EncapMutualAuth needs a Validator for the requester's chain")
	case e.Slot > 7:
		return fmt.Errorf("secchan: responder EncapMutualAuth slot %d over 7", e.Slot)
	case e.Session != 0 && e.Session != MutAuthWithEncapRequest && e.Session != MutAuthWithGetDigests:
		return fmt.Errorf("secchan: responder EncapMutualAuth Session 0x%02x: want MutAuthWithEncapRequest or MutAuthWithGetDigests", e.Session)
	case e.Session != 0 && cfg.Caps&CapKeyEx == 0:
		return errors.New("secchan: responder EncapMutualAuth Session needs KEY_EX")
	case e.Basic && cfg.Caps&CapChal == 0:
		return errors.New("secchan: responder EncapMutualAuth Basic needs CHAL")
	}
	return nil
}

// reqAsymsVerifiable are the ReqBaseAsymAlg bits the responder can
// verify: any scheme when the requester's chain comes by encapsulated
// requests, else the provisioned chain's.
func (r *Responder) reqAsymsVerifiable() uint32 {
	if r.cfg.EncapMutualAuth != nil {
		var all uint32
		for _, a := range rspAsymPref {
			all |= a
		}
		return all
	}
	return r.sess.mutualAsyms()
}

// MutualAuth returns the last mutual authentication through encapsulated
// requests on this connection, or nil.
func (r *Responder) MutualAuth() *MutualAuthResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st.mutual == nil {
		return nil
	}
	c := *r.st.mutual
	return &c
}

// wantBasicMutual says whether a CHALLENGE_AUTH asks for basic mutual
// authentication (libspdm's conditions: 1.1+, MUT_AUTH on both sides,
// the requester's CHAL and CERT, and ENCAP on both sides).
func (r *Responder) wantBasicMutual() bool {
	e := r.cfg.EncapMutualAuth
	return e != nil && e.Basic && r.st.version >= V11 && r.both(CapMutAuth) && r.both(CapEncap) &&
		r.st.reqCaps&(CapChal|CapCert) == CapChal|CapCert && r.st.reqAsym != 0
}

// sessionMutualMode is the MutAuthRequested a KEY_EXCHANGE_RSP carries
// for the encapsulated flows (0: none).
func (r *Responder) sessionMutualMode() uint8 {
	e := r.cfg.EncapMutualAuth
	if e == nil || e.Session == 0 || r.st.version < V11 || !r.both(CapMutAuth) || !r.both(CapEncap) ||
		r.st.reqCaps&CapCert == 0 || r.st.reqAsym == 0 {
		return 0
	}
	return e.Session
}

// startEncap begins a flow; rs is the session it runs in (nil: none).
func (r *Responder) startEncap(flow encapFlow, mode string, rs *rspSession) {
	e := &rspEncap{flow: flow, mode: mode, rs: rs}
	if r.cfg.EncapMutualAuth != nil {
		e.slot = r.cfg.EncapMutualAuth.Slot
	}
	switch flow {
	case encapBasic:
		e.ops = []uint8{CodeGetDigests, CodeGetCertificate, CodeChallenge}
	case encapSessionMutual:
		e.ops = []uint8{CodeGetDigests, CodeGetCertificate}
		if mode == "session-get-digests" {
			// The requester answers an implied GET_DIGESTS with request
			// ID 0 straight away.
			e.cur, e.ops = CodeGetDigests, e.ops[1:]
			e.lastReq = (&GetDigests{Version: r.st.version}).Marshal()
		}
	case encapInSession:
		e.ops = []uint8{CodeKeyUpdate, CodeKeyUpdate}
	}
	if rs != nil && flow == encapSessionMutual {
		rs.encapPending = true
	}
	r.st.encap = e
}

// StartEncapKeyUpdate makes the responder ask, through encapsulated
// requests inside the established session sessionID, for a KEY_UPDATE of
// its own key: what spdm-emu's out-of-band command OOB_ENCAP_KEY_UPDATE
// (0x8001) triggers. The requester then has to send
// GET_ENCAPSULATED_REQUEST in that session.
func (r *Responder) StartEncapKeyUpdate(sessionID uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.sess.live[sessionID]
	switch {
	case rs == nil:
		return fmt.Errorf("%w: 0x%08x", ErrUnknownSession, sessionID)
	case rs.s.Phase() != PhaseEstablished:
		return fmt.Errorf("secchan: session 0x%08x is not established", sessionID)
	case !r.both(CapEncap) || !r.both(CapKeyUpd):
		return errors.New("secchan: an encapsulated KEY_UPDATE needs ENCAP and KEY_UPD on both sides")
	case r.st.encap != nil:
		return errors.New("secchan: an encapsulated flow is already in progress")
	}
	r.startEncap(encapInSession, "key-update", rs)
	return nil
}

// LatestSession returns the session a KEY_EXCHANGE or PSK_EXCHANGE opened
// last, or 0: the session an out-of-band command without a session ID
// means.
func (r *Responder) LatestSession() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var latest uint32
	for id, rs := range r.sess.live {
		if rs.s.Phase() == PhaseEstablished && (latest == 0 || id == r.sess.latest) {
			latest = id
		}
	}
	return latest
}

// encapBlocks answers a request that arrives while a flow is in progress
// with ERROR(RequestInFlight), as libspdm does; ok is false when the
// request may go on.
func (r *Responder) encapBlocks(code uint8) (reply, bool) {
	if e := r.st.encap; e != nil && e.rs != nil && r.sess.live[e.rs.id] != e.rs {
		// The session the flow ran in is gone (a heartbeat timeout, a
		// failed record): so is the flow.
		r.st.encap = nil
	}
	if r.st.encap == nil {
		return reply{}, false
	}
	switch code {
	case CodeGetEncapsulatedRequest, CodeDeliverEncapsulatedResponse, CodeGetVersion:
		return reply{}, false
	}
	return r.fail(ErrCodeRequestInFlight, 0), true
}

// encapChannelOK checks that a flow's message comes where the flow runs.
func (e *rspEncap) channelOK(rs *rspSession) bool { return e.rs == rs }

// noPending is the ERROR for GET_ENCAPSULATED_REQUEST with nothing to ask.
func (r *Responder) noPending() reply {
	if r.st.version >= V13 {
		return r.fail(ErrCodeNoPendingRequests, 0)
	}
	return r.fail(ErrCodeUnexpectedRequest, 0)
}

// getEncapsulatedRequest answers GET_ENCAPSULATED_REQUEST (rs: the
// session it came in, or nil) with the flow's first request.
func (r *Responder) getEncapsulatedRequest(req []byte, h Header, rs *rspSession) reply {
	if rp, ok := r.checkNegotiated(h, CapEncap); !ok {
		return rp
	}
	st := &r.st
	if st.version < V11 || st.reqCaps&CapEncap == 0 {
		return r.fail(ErrCodeUnsupportedRequest, h.Code)
	}
	var g GetEncapsulatedRequest
	if _, err := decodeExact("GET_ENCAPSULATED_REQUEST", req, g.Decode); err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	e := st.encap
	if e == nil || e.cur != 0 || !e.channelOK(rs) {
		return r.noPending()
	}
	next, commit, err := r.nextEncapRequest(e)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	resp := (&EncapsulatedRequest{Version: st.version, RequestID: e.reqID + 1, Request: next}).Marshal()
	return reply{msg: resp, commit: func() {
		r.resetBUnlessAuthenticated()
		e.reqID++
		commit()
	}}
}

// nextEncapRequest builds the flow's next request and what to record
// once it is sent.
func (r *Responder) nextEncapRequest(e *rspEncap) ([]byte, func(), error) {
	st := &r.st
	v := st.version
	code := e.ops[0]
	var msg []byte
	var extra func()
	switch code {
	case CodeGetDigests:
		msg = (&GetDigests{Version: v}).Marshal()
	case CodeGetCertificate:
		// What fits in one DELIVER_ENCAPSULATED_RESPONSE (4 bytes) after
		// the CERTIFICATE header (8 bytes): no CHUNK_SEND here.
		room := min(int(r.cfg.DataTransferSize)-12, 0xFFFF)
		msg = (&GetCertificate{Version: v, Slot: e.slot, Offset: uint16(len(e.chain)), Length: uint16(room)}).Marshal()
	case CodeChallenge:
		c := Challenge{Version: v, Slot: e.slot, SummaryType: SummaryNone}
		n, err := randomNonce()
		if err != nil {
			return nil, nil, err
		}
		c.Nonce = n
		if v >= V13 {
			n2, err := randomNonce()
			if err != nil {
				return nil, nil, err
			}
			copy(c.Context[:], n2[:])
		}
		msg = c.Marshal()
	case CodeKeyUpdate:
		var tag [1]byte
		n, err := randomNonce()
		if err != nil {
			return nil, nil, err
		}
		tag[0] = n[0]
		op := KeyUpdateOpUpdateKey
		if e.keyOp == KeyUpdateOpUpdateKey {
			op = KeyUpdateOpVerifyNewKey
			// The requester moved its receive key when it took UpdateKey;
			// the message carrying VerifyNewKey goes under our new key.
			rs := e.rs
			extra = func() {
				if err := rs.s.UpdateSendKey(); err != nil {
					r.endSession(rs.id)
				}
			}
		}
		msg = (&KeyUpdate{Version: v, Operation: op, Tag: tag[0]}).Marshal()
		e2op, e2tag := op, tag[0]
		prev := extra
		extra = func() {
			e.keyOp, e.keyTag = e2op, e2tag
			if prev != nil {
				prev()
			}
		}
	default:
		return nil, nil, fmt.Errorf("secchan: no encapsulated %s", CodeName(code))
	}
	return msg, func() {
		e.cur, e.ops, e.lastReq = code, e.ops[1:], msg
		if extra != nil {
			extra()
		}
	}, nil
}

// deliverEncapsulatedResponse answers DELIVER_ENCAPSULATED_RESPONSE: it
// checks the requester's response to the outstanding request and sends
// the next request, or ends the flow.
func (r *Responder) deliverEncapsulatedResponse(req []byte, h Header, rs *rspSession) secReply {
	if rp, ok := r.checkNegotiated(h, CapEncap); !ok {
		return secReply{reply: rp}
	}
	st := &r.st
	if st.version < V11 || st.reqCaps&CapEncap == 0 {
		return secReply{reply: r.fail(ErrCodeUnsupportedRequest, h.Code)}
	}
	e := st.encap
	if e == nil || e.cur == 0 || !e.channelOK(rs) {
		return secReply{reply: r.fail(ErrCodeUnexpectedRequest, 0)}
	}
	var d DeliverEncapsulatedResponse
	if _, err := decodeExact("DELIVER_ENCAPSULATED_RESPONSE", req, d.Decode); err != nil || d.RequestID != e.reqID {
		return secReply{reply: r.fail(ErrCodeInvalidRequest, 0)}
	}
	more, err := r.takeEncapResponse(e, d.Response)
	if err != nil {
		return r.encapFailed(e, err)
	}
	ack := EncapsulatedResponseAck{Version: st.version, AckRequestID: d.RequestID}
	if !more && len(e.ops) == 0 {
		// The flow is complete.
		if e.slot != 0 && e.flow == encapSessionMutual {
			ack.PayloadType, ack.ReqSlot = EncapPayloadReqSlot, e.slot
		}
		return secReply{reply: reply{msg: ack.Marshal(), commit: func() {
			r.resetBUnlessAuthenticated()
			r.endEncap(e, nil)
		}}}
	}
	if more {
		e.ops = append([]uint8{e.cur}, e.ops...) // another portion of the chain
	}
	next, commit, err := r.nextEncapRequest(e)
	if err != nil {
		return secReply{reply: r.fail(ErrCodeUnspecified, 0)}
	}
	ack.PayloadType, ack.RequestID, ack.Request = EncapPayloadPresent, e.reqID+1, next
	return secReply{reply: reply{msg: ack.Marshal(), commit: func() {
		r.resetBUnlessAuthenticated()
		e.reqID++
		commit()
	}}}
}

// encapFailed ends a flow the requester's answer broke: ERROR
// (InvalidResponseCode), as libspdm; a session that waited for the
// requester's identity ends too.
func (r *Responder) encapFailed(e *rspEncap, err error) secReply {
	r.endEncap(e, err)
	if e.rs != nil {
		// A session that waited for the requester's identity, or whose
		// keys may now differ on the two sides, cannot go on.
		return r.failIn(ErrCodeInvalidResponseCode, e.rs, true)
	}
	return secReply{reply: r.fail(ErrCodeInvalidResponseCode, 0)}
}

// endEncap closes the flow and records its outcome; err is why it failed.
func (r *Responder) endEncap(e *rspEncap, err error) {
	r.st.encap = nil
	if e.flow == encapInSession {
		return
	}
	res := &MutualAuthResult{Mode: e.mode, Slot: e.slot, Err: err}
	if err == nil {
		res.Chain = e.parsed
	}
	r.st.mutual = res
	if e.flow == encapSessionMutual && e.rs != nil {
		e.rs.encapPending = false
		if err == nil {
			e.rs.mutual = r.transcriptHash(e.chain)
			e.rs.reqPub = e.parsed.Leaf().PublicKey
			e.rs.reqSlot = e.slot
		}
	}
}

// takeEncapResponse checks the response to the outstanding request; more
// says the same request must go again (a chain with bytes remaining).
func (r *Responder) takeEncapResponse(e *rspEncap, resp []byte) (bool, error) {
	st := &r.st
	h, err := PeekHeader(resp)
	if err != nil {
		return false, err
	}
	if h.Code == CodeError {
		var m ErrorResponse
		if _, err := decodeExact("ERROR", resp, m.Decode); err != nil {
			return false, err
		}
		return false, fmt.Errorf("the requester answered the encapsulated %s with %w", CodeName(e.cur), m.Err())
	}
	switch e.cur {
	case CodeGetDigests:
		var m Digests
		msg, err := expect(resp, CodeDigests, st.version, func(b []byte) (int, error) { return m.Decode(b, st.hash.Size(), false) })
		if err != nil {
			return false, err
		}
		if e.digest = m.DigestFor(e.slot); e.digest == nil {
			return false, fmt.Errorf("%w: the requester's slot %d is empty (slot mask 0x%02x)", ErrCertChain, e.slot, m.SlotMask)
		}
		e.mutB = append(append(e.mutB, e.lastReq...), msg...)
		return false, nil
	case CodeGetCertificate:
		return r.takeEncapCertificate(e, resp)
	case CodeChallenge:
		return false, r.takeEncapChallengeAuth(e, resp)
	case CodeKeyUpdate:
		var m KeyUpdateAck
		if _, err := expect(resp, CodeKeyUpdateAck, st.version, m.Decode); err != nil {
			return false, err
		}
		if m.Operation != e.keyOp || m.Tag != e.keyTag {
			return false, fmt.Errorf("%w: KEY_UPDATE_ACK for operation %d tag %d, sent %d tag %d", ErrUnexpectedResponse, m.Operation, m.Tag, e.keyOp, e.keyTag)
		}
		return false, nil
	}
	return false, fmt.Errorf("secchan: no encapsulated request outstanding")
}

// takeEncapCertificate adds a portion of the requester's chain; once it
// is whole it must match the slot's digest and pass the validator.
func (r *Responder) takeEncapCertificate(e *rspEncap, resp []byte) (bool, error) {
	st := &r.st
	var g GetCertificate
	if _, err := g.Decode(e.lastReq); err != nil {
		return false, err
	}
	var m Certificate
	msg, err := expect(resp, CodeCertificate, st.version, m.Decode)
	if err != nil {
		return false, err
	}
	switch {
	case m.Slot != e.slot:
		return false, fmt.Errorf("%w: CERTIFICATE for slot %d, asked for %d", ErrUnexpectedResponse, m.Slot, e.slot)
	case len(m.Portion) == 0 || len(m.Portion) > int(g.Length):
		return false, fmt.Errorf("%w: portion of %d bytes, asked for 1 to %d", ErrMalformed, len(m.Portion), g.Length)
	case len(e.chain) == 0:
		e.total = len(m.Portion) + int(m.Remainder)
	case len(e.chain)+len(m.Portion)+int(m.Remainder) != e.total:
		return false, fmt.Errorf("%w: the chain's size changed between portions", ErrMalformed)
	}
	if e.total > MaxCertChainSize {
		return false, fmt.Errorf("%w: chain of %d bytes exceeds %d", ErrCertChain, e.total, MaxCertChainSize)
	}
	e.chain = append(e.chain, m.Portion...)
	e.mutB = append(append(e.mutB, e.lastReq...), msg...)
	if m.Remainder != 0 {
		return true, nil
	}
	if e.digest != nil && !bytes.Equal(r.transcriptHash(e.chain), e.digest) {
		return false, fmt.Errorf("%w: the requester's chain does not match its DIGESTS", ErrCertChain)
	}
	parsed, err := ParseCertChain(e.chain, st.hash)
	if err != nil {
		return false, err
	}
	if err := r.cfg.EncapMutualAuth.Validator.ValidateChain(parsed, st.hash); err != nil {
		return false, err
	}
	if asymsOfKey(parsed.Leaf().PublicKey)&uint32(st.reqAsym) == 0 {
		return false, fmt.Errorf("%w: the requester's leaf key cannot sign with the negotiated %s", ErrCertChain, AsymName(uint32(st.reqAsym)))
	}
	e.parsed = parsed
	return false, nil
}

// takeEncapChallengeAuth verifies the requester's CHALLENGE_AUTH.
func (r *Responder) takeEncapChallengeAuth(e *rspEncap, resp []byte) error {
	st := &r.st
	if e.parsed == nil {
		return fmt.Errorf("%w: CHALLENGE_AUTH without the requester's chain", ErrCertChain)
	}
	var c Challenge
	if _, err := c.Decode(e.lastReq); err != nil {
		return err
	}
	sig, err := sigSize(uint32(st.reqAsym))
	if err != nil {
		return err
	}
	var m ChallengeAuth
	msg, err := expect(resp, CodeChallengeAuth, st.version, func(b []byte) (int, error) { return m.Decode(b, st.hash.Size(), 0, sig) })
	if err != nil {
		return err
	}
	switch {
	case m.Slot != e.slot || m.BasicMutAuth:
		return fmt.Errorf("%w: CHALLENGE_AUTH attributes 0x%02x, asked for slot %d", ErrUnexpectedResponse, m.Slot, e.slot)
	case m.SlotMask&(1<<e.slot) == 0:
		return fmt.Errorf("%w: CHALLENGE_AUTH slot mask 0x%02x lacks slot %d", ErrUnexpectedResponse, m.SlotMask, e.slot)
	case !bytes.Equal(m.CertChainHash, r.transcriptHash(e.chain)):
		return fmt.Errorf("%w: CertChainHash is not the digest of the requester's chain", ErrCertChain)
	case st.version >= V13 && m.Context != c.Context:
		return fmt.Errorf("%w: RequesterContext not echoed", ErrUnexpectedResponse)
	}
	var vca []byte
	if st.version >= V12 {
		vca = st.vca
	}
	th := r.transcriptHash(vca, e.mutB, e.lastReq, msg[:len(msg)-len(m.Signature)])
	return VerifySignature(st.version, uint32(st.reqAsym), st.hash, e.parsed.Leaf().PublicKey, ContextMutChallenge, th, m.Signature)
}

// rspMutualPub is the requester's public key a session's FINISH is
// verified with: the one its encapsulated flow fetched, else the
// provisioned chain's.
func (r *Responder) rspMutualPub(rs *rspSession) (crypto.PublicKey, uint8) {
	if rs.reqPub != nil {
		return rs.reqPub, rs.reqSlot
	}
	if r.sess.mutual != nil {
		return r.sess.mutual.pub, r.sess.mutual.slot
	}
	return nil, 0
}
