package secchan

// SecureSession is an established session as the requester uses it: every
// request and response is a DSP0277 record. A failure that leaves the two
// sides out of step (a record that does not authenticate, a key update
// without its ACK) ends the session; its keys are zeroed.

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
)

// SecureSession is one open session of a Requester.
type SecureSession struct {
	q     *Requester
	s     *Session
	st    SecuredTransport
	reqID uint16

	// HeartbeatPeriod is the responder's period in seconds (0: none).
	HeartbeatPeriod uint8

	// Encap is what session mutual authentication with encapsulated
	// requests carried (nil without it).
	Encap *EncapResult

	mu          sync.Mutex
	l           []byte // L1/L2 of measurements inside this session
	encapKeyUpd uint8  // the responder's KEY_UPDATE awaiting VerifyNewKey (0: none)
}

// ID is the session ID.
func (ss *SecureSession) ID() uint32 { return ss.s.ID }

// AEAD is the negotiated AEAD suite.
func (ss *SecureSession) AEAD() uint16 { return ss.s.ks.AEAD }

// Phase is the session's phase.
func (ss *SecureSession) Phase() SessionPhase { return ss.s.Phase() }

// exchange seals req, sends it and opens the response; a large response
// (ERROR(LargeResponse)) is read with CHUNK_GET inside the session.
func (ss *SecureSession) exchange(ctx context.Context, req []byte, crypto bool) ([]byte, error) {
	msg, err := ss.exchangeOnce(ctx, req, crypto)
	if err != nil {
		return nil, err
	}
	// A response larger than our DataTransferSize comes as
	// ERROR(LargeResponse); its chunks are read inside this session.
	if h, err := PeekHeader(msg); err == nil && h.Code == CodeError {
		var e ErrorResponse
		if _, err := e.Decode(msg); err == nil && e.Code == ErrCodeLargeResponse && len(e.Ext) == 1 {
			return ss.q.chunkGet(ctx, h.Version, e.Ext[0], func(ctx context.Context, req []byte) ([]byte, error) {
				return ss.exchangeOnce(ctx, req, false)
			})
		}
	}
	return msg, nil
}

// exchangeOnce sends req in the session, with CHUNK_SEND when it exceeds
// the responder's DataTransferSize (requester_chunksend.go).
func (ss *SecureSession) exchangeOnce(ctx context.Context, req []byte, crypto bool) ([]byte, error) {
	if ss.q.needChunkSend(req) {
		return ss.q.chunkSend(ctx, req, crypto, func(ctx context.Context, m []byte) ([]byte, error) { return ss.exchangeRecord(ctx, m, false) })
	}
	return ss.exchangeRecord(ctx, req, crypto)
}

// exchangeRecord seals req, sends it, and opens the one record that
// answers.
func (ss *SecureSession) exchangeRecord(ctx context.Context, req []byte, crypto bool) ([]byte, error) {
	rec, err := ss.s.Seal(req)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, ss.q.timeout(crypto))
	defer cancel()
	resp, err := ss.st.ExchangeSecured(cctx, rec)
	if err != nil {
		// The responder may or may not have seen the request: its
		// counters can no longer be trusted to match ours.
		ss.end()
		return nil, err
	}
	msg, err := ss.s.Open(resp)
	if err != nil {
		ss.end()
		return nil, err
	}
	return msg, nil
}

func (ss *SecureSession) end() {
	ss.s.End()
	delete(ss.q.liveReqIDs, ss.reqID)
}

// Heartbeat sends HEARTBEAT and expects HEARTBEAT_ACK.
func (ss *SecureSession) Heartbeat(ctx context.Context) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	const step = "HEARTBEAT"
	v := ss.q.neg.Version
	resp, err := ss.exchange(ctx, (&Heartbeat{Version: v}).Marshal(), false)
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	var m HeartbeatAck
	if _, err := expect(resp, CodeHeartbeatAck, v, m.Decode); err != nil {
		return &StepError{Step: step, Err: err}
	}
	return nil
}

// KeyUpdate moves to new data keys and checks them with VerifyNewKey.
// allKeys selects UpdateAllKeys (both directions) over UpdateKey (the
// requester's direction only). The ACK of UpdateAllKeys already comes
// under the responder's new key; the requester switches its own sending
// key once the ACK is in (DSP0274 §10.21).
func (ss *SecureSession) KeyUpdate(ctx context.Context, allKeys bool) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	op := KeyUpdateOpUpdateKey
	if allKeys {
		op = KeyUpdateOpUpdateAllKeys
	}
	step := fmt.Sprintf("KEY_UPDATE op %d", op)
	if ss.q.neg.RspCaps&CapKeyUpd == 0 {
		return &StepError{Step: step, Err: fmt.Errorf("%w: responder has no KEY_UPD_CAP", ErrNegotiation)}
	}
	if err := ss.keyUpdateStep(ctx, op, allKeys); err != nil {
		return &StepError{Step: step, Err: err}
	}
	if err := ss.s.UpdateSendKey(); err != nil {
		ss.end()
		return &StepError{Step: step, Err: err}
	}
	if err := ss.keyUpdateStep(ctx, KeyUpdateOpVerifyNewKey, false); err != nil {
		return &StepError{Step: "KEY_UPDATE VerifyNewKey", Err: err}
	}
	return nil
}

// keyUpdateStep sends one KEY_UPDATE and checks its ACK; recvFirst moves
// the receive key before the ACK is opened.
func (ss *SecureSession) keyUpdateStep(ctx context.Context, op uint8, recvFirst bool) error {
	v := ss.q.neg.Version
	var tag [1]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return err
	}
	rec, err := ss.s.Seal((&KeyUpdate{Version: v, Operation: op, Tag: tag[0]}).Marshal())
	if err != nil {
		return err
	}
	if recvFirst {
		if err := ss.s.UpdateRecvKey(); err != nil {
			ss.end()
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, ss.q.timeout(false))
	defer cancel()
	resp, err := ss.st.ExchangeSecured(cctx, rec)
	if err != nil {
		ss.end()
		return err
	}
	msg, err := ss.s.Open(resp)
	if err != nil {
		ss.end()
		return err
	}
	var ack KeyUpdateAck
	if _, err := expect(msg, CodeKeyUpdateAck, v, ack.Decode); err != nil {
		ss.end()
		return err
	}
	if ack.Operation != op || ack.Tag != tag[0] {
		ss.end()
		return fmt.Errorf("%w: KEY_UPDATE_ACK for operation %d tag %d, sent %d tag %d", ErrUnexpectedResponse, ack.Operation, ack.Tag, op, tag[0])
	}
	return nil
}

// GetMeasurements asks for measurements inside the session; a signed
// response is verified over this session's own L1/L2.
func (ss *SecureSession) GetMeasurements(ctx context.Context, o MeasurementOptions) (*MeasurementsResult, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.q.measure(ctx, o, ss.exchange, &ss.l)
}

// VendorDefined sends a whole VENDOR_DEFINED_REQUEST message and returns
// the whole VENDOR_DEFINED_RESPONSE; IDE_KM and TDISP ride on this.
func (ss *SecureSession) VendorDefined(ctx context.Context, req []byte) ([]byte, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	const step = "VENDOR_DEFINED_REQUEST"
	resp, err := ss.exchange(ctx, req, false)
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	var m VendorDefinedResponse
	msg, err := expect(resp, CodeVendorDefinedRsp, ss.q.neg.Version, m.Decode)
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	return msg, nil
}

// End sends END_SESSION and zeroes the session's keys, whatever the
// responder answers.
func (ss *SecureSession) End(ctx context.Context) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	const step = "END_SESSION"
	if ss.s.Phase() == PhaseEnded {
		return &StepError{Step: step, Err: ErrSessionEnded}
	}
	v := ss.q.neg.Version
	resp, err := ss.exchange(ctx, (&EndSession{Version: v}).Marshal(), false)
	ss.end()
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	var m EndSessionAck
	if _, err := expect(resp, CodeEndSessionAck, v, m.Decode); err != nil {
		return &StepError{Step: step, Err: err}
	}
	return nil
}
