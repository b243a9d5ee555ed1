package secchan

// The responder's secured-message side (DSP0277 over PCI DOE type 2) and
// the requests answered inside a session: HEARTBEAT (DSP0274 §10.20),
// KEY_UPDATE (§10.21), END_SESSION (§10.22), GET_MEASUREMENTS,
// GET_DIGESTS, GET_CERTIFICATE and VENDOR_DEFINED_REQUEST (§10.25).
//
// How a secured record flows (RespondSecured, under the responder's lock):
//
//  1. The session ID in the record header picks the session; an unknown
//     ID, or a session past its heartbeat timeout, is an error (the DOE
//     mailbox then sets its Error bit).
//  2. The session opens the record with its receive key. A record that
//     fails authentication (or the last sequence number) ends the session
//     and is an error; DSP0277 gives no way to resynchronise.
//  3. The plaintext is dispatched like a plain request, with the session's
//     own rules; every answer, ERROR included, is sealed with the
//     session's send key. A handler's commit runs before sealing (so
//     KEY_UPDATE's UpdateAllKeys ACK already uses the new response key),
//     its after step once sealed (FINISH_RSP under the handshake keys,
//     then the data keys; END_SESSION_ACK, then the keys are zeroed).

import (
	"context"
	"errors"
	"fmt"

	"github.com/devattest/devattest/doe"
)

// VendorHandler answers VENDOR_DEFINED_REQUEST. req is the whole request
// (DOE padding removed), valid only during the call; sessionID is the
// session it came in, or 0 outside a session (no session ID is below
// 0x10000). It returns the whole VENDOR_DEFINED_RESPONSE, in the
// connection's version. An error that is (or wraps) an ErrorCode is sent
// as that ERROR, any other as ERROR(Unspecified). It is called with the
// responder locked: it must not call back into the responder.
type VendorHandler func(ctx context.Context, sessionID uint32, req []byte) ([]byte, error)

// HandleSecuredDOE answers a secured CMA/SPDM DOE object (devsim.Handler).
func (r *Responder) HandleSecuredDOE(ctx context.Context, req doe.Object) (doe.Object, error) {
	if req.Protocol() != doe.ProtocolSecuredCMA {
		return doe.Object{}, fmt.Errorf("secchan: secured handler got %v", req.Protocol())
	}
	out, err := r.RespondSecured(ctx, req.Payload)
	if err != nil {
		return doe.Object{}, err
	}
	return doe.NewObject(doe.ProtocolSecuredCMA, out), nil
}

// RespondSecured answers one secured record (a DOE type-2 payload; DOE
// padding allowed) with a secured record. It returns an error, and no
// record, for a record it cannot authenticate or whose session it does
// not know.
func (r *Responder) RespondSecured(ctx context.Context, rec []byte) (out []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			r.endAllSessions()
			r.st = rspConn{}
			out, err = nil, errors.New("secchan: internal error answering a secured message; connection dropped")
		}
	}()
	hdr, _, err := ParseSecuredRecord(rec)
	if err != nil {
		return nil, err
	}
	id := hdr.SessionID
	rs := r.sess.live[id]
	if rs == nil {
		return nil, fmt.Errorf("%w: 0x%08x", ErrUnknownSession, id)
	}
	now := r.sess.now()
	if rs.expired(now) {
		r.endSession(id)
		return nil, fmt.Errorf("%w: 0x%08x ended after no request for twice its heartbeat period", ErrUnknownSession, id)
	}
	msg, err := rs.s.Open(rec)
	var sr secReply
	switch {
	case errors.Is(err, ErrMalformed):
		// Authentic, but the plaintext does not hold one message.
		sr = secReply{reply: r.fail(ErrCodeInvalidRequest, 0)}
	case err != nil:
		r.endSession(id)
		return nil, fmt.Errorf("secchan: session 0x%08x ended: %w", id, err)
	default:
		rs.last = now
		sr = r.dispatchSecured(ctx, rs, msg)
	}
	resp, sent := r.deliverTracked(sr.reply) // commits read msg
	zero(msg)                                // it may carry key material (IDE_KM KEY_PROG)
	out, err = rs.s.Seal(resp)
	if err != nil {
		r.endSession(id)
		return nil, fmt.Errorf("secchan: session 0x%08x ended: %w", id, err)
	}
	if sent && sr.after != nil {
		sr.after()
	}
	return out, nil
}

// dispatchSecured answers one request received inside session rs.
func (r *Responder) dispatchSecured(ctx context.Context, rs *rspSession, req []byte) secReply {
	r.st.via = channel{secured: true, session: rs.id}
	h, err := PeekHeader(req)
	if err != nil {
		return secReply{reply: r.fail(ErrCodeInvalidRequest, 0)}
	}
	if r.st.chunk != nil && h.Code != CodeChunkGet {
		return secReply{reply: r.fail(ErrCodeUnexpectedRequest, 0)}
	}
	if rp, blocked := r.encapBlocks(h.Code); blocked {
		return secReply{reply: rp}
	}
	if h.Code != CodeGetMeasurements && h.Code != CodeChunkGet {
		rs.l = nil // any other request in the session ends its L1L2
	}
	var rp reply
	switch h.Code {
	case CodeGetEncapsulatedRequest:
		rp = r.getEncapsulatedRequest(req, h, rs)
	case CodeDeliverEncapsulatedResponse:
		return r.deliverEncapsulatedResponse(req, h, rs)
	case CodeFinish:
		return r.finish(req, h, rs, true)
	case CodePSKFinish:
		return r.pskFinish(req, h, rs)
	case CodeEndSession:
		return r.endSessionReq(req, h, rs)
	case CodeHeartbeat:
		rp = r.heartbeat(req, h, rs)
	case CodeKeyUpdate:
		rp = r.keyUpdate(req, h, rs)
	case CodeGetMeasurements:
		if rp2, ok := r.checkSession(h, rs, capMeasMask, 0); !ok {
			rs.l = nil
			return secReply{reply: rp2}
		}
		rp = r.getMeasurements(ctx, req, h, &rs.l)
	case CodeGetDigests:
		if rp, ok := r.checkSession(h, rs, CapCert, 0); !ok {
			return secReply{reply: rp}
		}
		rp = r.getDigests(req, h)
		if rp.commit != nil {
			// libspdm: GET_DIGESTS starts B afresh, but what a session
			// carries is not added to it.
			rp.commit = func() { r.st.b = nil }
		}
	case CodeGetCertificate:
		if rp, ok := r.checkSession(h, rs, CapCert, 0); !ok {
			return secReply{reply: rp}
		}
		rp = r.getCertificate(req, h)
		if rp.commit != nil {
			rp.commit = func() {}
		}
	case CodeVendorDefinedReq:
		if rp, ok := r.checkSession(h, rs, 0, 0); !ok {
			return secReply{reply: rp}
		}
		rp = r.vendorDefined(ctx, req, h, rs.id)
	case CodeChunkGet:
		rp = reply{msg: r.chunkGetResponse(req, h)}
	case CodeGetVersion, CodeGetCapabilities, CodeNegotiateAlgorithms, CodeChallenge,
		CodeKeyExchange, CodePSKExchange, CodeRespondIfReady:
		// Connection-level requests have no place inside a session.
		rp = r.fail(ErrCodeUnexpectedRequest, 0)
	default:
		rp = r.fail(ErrCodeUnsupportedRequest, h.Code)
	}
	return secReply{reply: rp}
}

// checkSession runs the common checks of a request inside an established
// session: the responder's capability capBit and the requester's reqBit
// (0: none), the connection state and version, the session's phase.
func (r *Responder) checkSession(h Header, rs *rspSession, capBit, reqBit uint32) (reply, bool) {
	if rp, ok := r.checkNegotiated(h, capBit); !ok {
		return rp, false
	}
	if reqBit != 0 && r.st.reqCaps&reqBit == 0 {
		return r.fail(ErrCodeUnsupportedRequest, h.Code), false
	}
	if rs.s.Phase() != PhaseEstablished {
		return r.fail(ErrCodeUnexpectedRequest, 0), false
	}
	return reply{}, true
}

// sessionRequired answers a request that only exists inside a session
// (PSK_FINISH, HEARTBEAT, KEY_UPDATE, END_SESSION) sent in the clear.
func (r *Responder) sessionRequired(h Header) reply {
	capBit := map[uint8]uint32{
		CodePSKFinish:  CapPSKWithContext,
		CodeHeartbeat:  CapHbeat,
		CodeKeyUpdate:  CapKeyUpd,
		CodeEndSession: CapKeyEx | capPSKResponderMask,
	}[h.Code]
	if rp, ok := r.checkNegotiated(h, capBit); !ok {
		return rp
	}
	if r.st.version < V11 {
		return r.fail(ErrCodeUnsupportedRequest, h.Code)
	}
	return r.fail(r.sessionNotFound(), 0)
}

// heartbeat answers HEARTBEAT with HEARTBEAT_ACK.
func (r *Responder) heartbeat(req []byte, h Header, rs *rspSession) reply {
	if rp, ok := r.checkSession(h, rs, CapHbeat, CapHbeat); !ok {
		return rp
	}
	var m Heartbeat
	if _, err := decodeExact("HEARTBEAT", req, m.Decode); err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	if rs.period == 0 {
		return r.fail(ErrCodeUnexpectedRequest, 0) // libspdm: no heartbeat was agreed
	}
	return reply{msg: (&HeartbeatAck{Version: r.st.version}).Marshal(), commit: r.resetBUnlessAuthenticated}
}

// keyUpdate answers KEY_UPDATE. The request came under the old request
// key; afterwards:
//
//   - UpdateKey: the request key moves; the ACK uses the response key as
//     it was.
//   - UpdateAllKeys: both keys move, and the ACK already uses the new
//     response key (libspdm, and the corpus).
//   - VerifyNewKey: arrives under the new request key; ends the update.
//
// A second update before VerifyNewKey, or VerifyNewKey without an update,
// is InvalidRequest, as in libspdm.
func (r *Responder) keyUpdate(req []byte, h Header, rs *rspSession) reply {
	if rp, ok := r.checkSession(h, rs, CapKeyUpd, CapKeyUpd); !ok {
		return rp
	}
	var m KeyUpdate
	if _, err := decodeExact("KEY_UPDATE", req, m.Decode); err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	ack := (&KeyUpdateAck{Version: r.st.version, Operation: m.Operation, Tag: m.Tag}).Marshal()
	update := func(send bool) {
		err := rs.s.UpdateRecvKey()
		if err == nil && send {
			err = rs.s.UpdateSendKey()
		}
		if err != nil {
			r.endSession(rs.id) // sealing the ACK then fails: an error
		}
	}
	switch m.Operation {
	case KeyUpdateOpUpdateKey, KeyUpdateOpUpdateAllKeys:
		if rs.keyUpd != 0 {
			return r.fail(ErrCodeInvalidRequest, 0)
		}
		return reply{msg: ack, commit: func() {
			r.resetBUnlessAuthenticated()
			rs.keyUpd = m.Operation
			update(m.Operation == KeyUpdateOpUpdateAllKeys)
		}}
	default: // KeyUpdateOpVerifyNewKey; the decoder refuses other values
		if rs.keyUpd == 0 {
			return r.fail(ErrCodeInvalidRequest, 0)
		}
		return reply{msg: ack, commit: func() {
			r.resetBUnlessAuthenticated()
			rs.keyUpd = 0
		}}
	}
}

// endSessionReq answers END_SESSION; the session ends once the ACK is
// sealed.
func (r *Responder) endSessionReq(req []byte, h Header, rs *rspSession) secReply {
	if rp, ok := r.checkSession(h, rs, CapKeyEx|capPSKResponderMask, 0); !ok {
		return secReply{reply: rp}
	}
	var m EndSession
	if _, err := decodeExact("END_SESSION", req, m.Decode); err != nil {
		return secReply{reply: r.fail(ErrCodeInvalidRequest, 0)}
	}
	// ClearNegotiatedState matters only with CACHE_CAP, which this
	// responder does not set: nothing is kept across connections anyway.
	return secReply{
		reply: reply{msg: (&EndSessionAck{Version: r.st.version}).Marshal(), commit: r.resetBUnlessAuthenticated},
		after: func() { r.endSession(rs.id) },
	}
}

// vendorDefined answers VENDOR_DEFINED_REQUEST through the configured
// handler; sessionID is 0 outside a session.
func (r *Responder) vendorDefined(ctx context.Context, req []byte, h Header, sessionID uint32) reply {
	if r.cfg.VendorHandler == nil {
		return r.fail(ErrCodeUnsupportedRequest, h.Code)
	}
	if rp, ok := r.checkNegotiated(h, 0); !ok {
		return rp
	}
	var m VendorDefinedRequest
	msg, err := decodeExact("VENDOR_DEFINED_REQUEST", req, m.Decode)
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	resp, err := r.cfg.VendorHandler(ctx, sessionID, msg)
	if err != nil {
		code := ErrCodeUnspecified
		var spdmErr *SPDMError
		switch {
		case errors.As(err, &code):
		case errors.As(err, &spdmErr):
			code = spdmErr.Code
		}
		return r.fail(code, 0)
	}
	var vr VendorDefinedResponse
	if n, err := vr.Decode(resp); err != nil || n != len(resp) || vr.Version != r.st.version {
		// The handler's bug; do not pass a malformed message on.
		return r.fail(ErrCodeUnspecified, 0)
	}
	return reply{msg: resp, commit: func() {}}
}
