package secchan

// Responder side of PSK sessions: PSK_EXCHANGE (DSP0274 §10.18) and
// PSK_FINISH (§10.19).
//
// TH1 = hash(VCA, PSK_EXCHANGE, PSK_EXCHANGE_RSP up to its verify data);
// the handshake secret is HKDF-Extract of the PSK (salt of 0xFF bytes from
// SPDM 1.3, KeySchedule.NewHandshakeSecret). With PSK_CAP 01b (no
// ResponderContext) the session is established at once with TH2 =
// hash(VCA, PSK_EXCHANGE, PSK_EXCHANGE_RSP) and no PSK_FINISH follows, as
// libspdm's requester and responder do; with PSK_CAP 10b the response
// carries a random ResponderContext of H bytes and PSK_FINISH completes
// the handshake.

import (
	"crypto/hmac"
	"crypto/rand"
	"slices"
)

// pskExchange answers PSK_EXCHANGE with PSK_EXCHANGE_RSP and opens a
// session.
func (r *Responder) pskExchange(req []byte, h Header) reply {
	ks, rp, ok := r.checkExchange(h, capPSKResponderMask, CapPSK, false)
	if !ok {
		return rp
	}
	st := &r.st
	var pe PSKExchange
	msg, err := decodeExact("PSK_EXCHANGE", req, pe.Decode)
	if err != nil || !checkPolicy(st.version, pe.SessionPolicy) || len(pe.PSKHint) > rspMaxPSKHint {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	psk, known := r.cfg.PSKs[string(pe.PSKHint)]
	if !known {
		// An unknown hint: libspdm's sample fails to derive the handshake
		// key and answers Unspecified; the request is what is wrong.
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	summary, code, ok := r.exchangeSummary(pe.SummaryType)
	if !ok {
		return r.fail(code, 0)
	}
	opaque, ok := r.securedVersionSelection(pe.Opaque)
	if !ok {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	rspID, ok := r.allocSession()
	if !ok {
		return r.fail(ErrCodeSessionLimitExceeded, 0)
	}
	m := PSKExchangeRsp{Version: st.version, RspSessionID: rspID, SummaryHash: summary, Opaque: opaque}
	var period uint8
	if r.both(CapHbeat) {
		period = r.cfg.HeartbeatPeriod
	}
	m.HeartbeatPeriod = period
	withContext := r.cfg.Caps&CapPSKWithContext != 0
	if withContext {
		m.Context = make([]byte, st.hash.Size())
		if _, err := rand.Read(m.Context); err != nil {
			return r.fail(ErrCodeUnspecified, 0)
		}
	}
	th := slices.Concat(st.vca, msg, m.Marshal()) // m has no verify data yet
	th1 := r.transcriptHash(th)
	hs, err := ks.NewHandshakeSecret(psk, true)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	id := SessionID(pe.ReqSessionID, rspID)
	s, err := NewSession(id, RoleResponder, ks, hs, th1)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	if m.VerifyData, err = s.VerifyData(false, th1); err != nil {
		s.End()
		return r.fail(ErrCodeUnspecified, 0)
	}
	th = append(th, m.VerifyData...)
	if !withContext {
		// No PSK_FINISH: straight to the data keys.
		if err := s.Establish(r.transcriptHash(th)); err != nil {
			s.End()
			return r.fail(ErrCodeUnspecified, 0)
		}
		zero(th)
		th = nil
	}
	rs := &rspSession{id: id, s: s, psk: true, th: th, period: period}
	return reply{msg: m.Marshal(), abort: s.End, commit: func() {
		rs.last = r.sess.now()
		r.sess.live[id] = rs
		r.resetBUnlessAuthenticated()
	}}
}

// pskFinish answers PSK_FINISH inside session rs.
func (r *Responder) pskFinish(req []byte, h Header, rs *rspSession) secReply {
	st := &r.st
	if rp, ok := r.checkNegotiated(h, CapPSKWithContext); !ok {
		return secReply{reply: rp}
	}
	if st.version < V11 || st.reqCaps&CapPSK == 0 {
		return secReply{reply: r.fail(ErrCodeUnsupportedRequest, h.Code)}
	}
	if !rs.psk || rs.s.Phase() != PhaseHandshake {
		return secReply{reply: r.fail(ErrCodeUnexpectedRequest, 0)}
	}
	var f PSKFinish
	msg, err := decodeExact("PSK_FINISH", req, func(b []byte) (int, error) { return f.Decode(b, st.hash.Size()) })
	if err != nil {
		return secReply{reply: r.fail(ErrCodeInvalidRequest, 0)}
	}
	want, err := rs.s.VerifyData(true, r.transcriptHash(rs.th, msg[:f.MACedLen()]))
	if err != nil {
		return r.failIn(ErrCodeUnspecified, rs, true)
	}
	if !hmac.Equal(want, f.VerifyData) {
		return r.failIn(ErrCodeDecryptError, rs, true)
	}
	resp := (&PSKFinishRsp{Version: st.version}).Marshal()
	th2 := r.transcriptHash(rs.th, msg, resp)
	return secReply{
		reply: reply{msg: resp, commit: r.resetBUnlessAuthenticated},
		after: func() { r.establish(rs, th2) },
	}
}
