package secchan

// Responder side of KEY_EXCHANGE (DSP0274 §10.16) and FINISH (§10.17);
// see responder_session.go for the session's life and transcripts.

import (
	"crypto/hmac"
	"crypto/rand"
	"slices"
)

// keyExchange answers KEY_EXCHANGE with KEY_EXCHANGE_RSP and opens a
// session in its handshake phase.
func (r *Responder) keyExchange(req []byte, h Header) reply {
	ks, rp, ok := r.checkExchange(h, CapKeyEx, CapKeyEx, true)
	if !ok {
		return rp
	}
	st := &r.st
	d, err := DHEExchangeSize(st.dhe)
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	var ke KeyExchange
	msg, err := decodeExact("KEY_EXCHANGE", req, func(b []byte) (int, error) { return ke.Decode(b, d) })
	if err != nil || !checkPolicy(st.version, ke.SessionPolicy) {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	if int(ke.Slot) >= len(st.slots) { // 0xFF (a provisioned public key) included
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	summary, code, ok := r.exchangeSummary(ke.SummaryType)
	if !ok {
		return r.fail(code, 0)
	}
	opaque, ok := r.securedVersionSelection(ke.Opaque)
	if !ok {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	rspID, ok := r.allocSession()
	if !ok {
		return r.fail(ErrCodeSessionLimitExceeded, 0)
	}

	curve, err := ecdhCurve(st.dhe)
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	peer, err := curve.NewPublicKey(append([]byte{4}, ke.ExchangeData...))
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0) // not a point on the curve
	}
	priv, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	shared, err := priv.ECDH(peer)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	defer zero(shared)

	m := KeyExchangeRsp{Version: st.version, RspSessionID: rspID, ExchangeData: priv.PublicKey().Bytes()[1:], SummaryHash: summary, Opaque: opaque}
	var mutual []byte
	if mu := r.sess.mutual; mu != nil && r.both(CapMutAuth) && st.version >= V12 && st.reqAsym != 0 {
		// Basic session-based mutual authentication with the provisioned
		// chain; its hash joins the FINISH transcript.
		chain, err := BuildCertChain(st.hash, mu.root, mu.certs...)
		if err != nil {
			return r.fail(ErrCodeUnspecified, 0)
		}
		mutual = r.transcriptHash(chain)
		m.MutAuthRequested, m.ReqSlotID = MutAuthRequested, mu.slot
	} else if mode := r.sessionMutualMode(); mode != 0 {
		// The requester's chain comes by encapsulated requests before
		// FINISH (responder_encap.go).
		m.MutAuthRequested, m.ReqSlotID = mode, r.cfg.EncapMutualAuth.Slot
	}
	var period uint8
	if r.both(CapHbeat) {
		period = r.cfg.HeartbeatPeriod
	}
	m.HeartbeatPeriod = period
	if _, err := rand.Read(m.RandomData[:]); err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	slot := st.slots[ke.Slot]
	// Signed: VCA, H(chain), KEY_EXCHANGE, KEY_EXCHANGE_RSP to the end of
	// its opaque data (m has no signature or verify data yet).
	th := slices.Concat(st.vca, slot.digest, msg, m.Marshal())
	m.Signature, err = Sign(st.version, st.asym, st.hash, slot.id.key, ContextKeyExchangeRsp, r.transcriptHash(th))
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	th = append(th, m.Signature...)
	th1 := r.transcriptHash(th)
	hs, err := ks.NewHandshakeSecret(shared, false)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	id := SessionID(ke.ReqSessionID, rspID)
	s, err := NewSession(id, RoleResponder, ks, hs, th1)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	// libspdm: ResponderVerifyData is absent only when both sides set
	// HANDSHAKE_IN_THE_CLEAR_CAP.
	inClear := r.both(CapHandshakeInClr)
	if !inClear {
		if m.VerifyData, err = s.VerifyData(false, th1); err != nil {
			s.End()
			return r.fail(ErrCodeUnspecified, 0)
		}
		th = append(th, m.VerifyData...)
	}
	resp := m.Marshal()
	rs := &rspSession{id: id, s: s, inClear: inClear, mutual: mutual, th: th, period: period}
	return reply{msg: resp, abort: s.End, commit: func() {
		rs.last = r.sess.now()
		r.sess.live[id] = rs
		r.sess.latest = id
		r.resetBUnlessAuthenticated()
		switch m.MutAuthRequested {
		case MutAuthWithEncapRequest:
			r.startEncap(encapSessionMutual, "session-encap", rs)
		case MutAuthWithGetDigests:
			r.startEncap(encapSessionMutual, "session-get-digests", rs)
		}
	}}
}

// plainFinish answers a FINISH sent in the clear: the handshake of the
// latest KEY_EXCHANGE when both sides set HANDSHAKE_IN_THE_CLEAR, else a
// request that needs a session.
func (r *Responder) plainFinish(req []byte, h Header) []byte {
	var rs *rspSession
	if r.st.state == ResponderNegotiated && r.both(CapHandshakeInClr) {
		rs = r.sess.live[r.sess.latest]
	}
	return r.send(r.finish(req, h, rs, false))
}

// finish answers FINISH for session rs (nil: none), received in a secured
// record (secured) or in the clear.
func (r *Responder) finish(req []byte, h Header, rs *rspSession, secured bool) secReply {
	st := &r.st
	if rp, ok := r.checkNegotiated(h, CapKeyEx); !ok {
		return secReply{reply: rp}
	}
	if st.version < V11 || st.reqCaps&CapKeyEx == 0 {
		return secReply{reply: r.fail(ErrCodeUnsupportedRequest, h.Code)}
	}
	if rs == nil {
		return secReply{reply: r.fail(r.sessionNotFound(), 0)}
	}
	if rs.psk || rs.s.Phase() != PhaseHandshake || rs.inClear == secured || rs.encapPending {
		// A PSK session, a finished handshake, or FINISH encrypted where
		// it should be in the clear (libspdm says SessionRequired there).
		return secReply{reply: r.fail(ErrCodeUnexpectedRequest, 0)}
	}
	var f Finish
	reqSig := 0
	if rs.mutual != nil {
		reqSig, _ = sigSize(uint32(st.reqAsym))
	}
	msg, err := decodeExact("FINISH", req, func(b []byte) (int, error) { return f.Decode(b, reqSig, st.hash.Size()) })
	reqPub, reqSlot := r.rspMutualPub(rs)
	if err != nil || f.SignatureIncluded != (rs.mutual != nil) || rs.mutual != nil && f.ReqSlotID != reqSlot {
		// The signature comes exactly when mutual authentication was
		// asked for (libspdm: InvalidRequest otherwise), from the slot
		// KEY_EXCHANGE_RSP named.
		return secReply{reply: r.fail(ErrCodeInvalidRequest, 0)}
	}
	// With mutual authentication: H(requester chain), then the FINISH
	// header is signed; RequesterVerifyData covers the signature too.
	th := slices.Concat(rs.th, rs.mutual)
	if rs.mutual != nil {
		signed := r.transcriptHash(th, msg[:f.SignedLen()])
		if err := VerifySignature(st.version, uint32(st.reqAsym), st.hash, reqPub, ContextFinish, signed, f.Signature); err != nil {
			return r.failIn(ErrCodeDecryptError, rs, true) // as libspdm
		}
	}
	want, err := rs.s.VerifyData(true, r.transcriptHash(th, msg[:f.MACedLen()]))
	if err != nil {
		return r.failIn(ErrCodeUnspecified, rs, true)
	}
	if !hmac.Equal(want, f.VerifyData) {
		// DSP0274 §10.17: DecryptError; the handshake cannot go on.
		return r.failIn(ErrCodeDecryptError, rs, true)
	}
	m := FinishRsp{Version: st.version}
	if rs.inClear {
		// In the clear, FINISH_RSP carries ResponderVerifyData over the
		// transcript and its own header.
		header := m.Marshal()
		if m.VerifyData, err = rs.s.VerifyData(false, r.transcriptHash(th, msg, header)); err != nil {
			return r.failIn(ErrCodeUnspecified, rs, true)
		}
	}
	resp := m.Marshal()
	th2 := r.transcriptHash(th, msg, resp)
	return secReply{
		reply: reply{msg: resp, commit: r.resetBUnlessAuthenticated},
		// FINISH_RSP goes out under the handshake keys; then the data keys.
		after: func() { r.establish(rs, th2) },
	}
}
