package secchan

// Responder side of secure sessions: configuration, the session table and
// what the handshakes share. KEY_EXCHANGE (DSP0274 §10.16) and FINISH
// (§10.17) are in responder_keyex.go, PSK_EXCHANGE and PSK_FINISH in
// responder_psk.go, the record layer and the requests inside a session in
// responder_secured.go.
//
// A session's life on the responder:
//
//  1. KEY_EXCHANGE (plain): the responder signs the transcript
//     VCA, H(slot chain), KEY_EXCHANGE, KEY_EXCHANGE_RSP up to its opaque
//     data, derives the handshake keys from TH1 (the same up to the end of
//     the signature) and appends ResponderVerifyData = HMAC(response
//     finished key, TH1), unless both sides set HANDSHAKE_IN_THE_CLEAR.
//     The session is created in its handshake phase.
//  2. FINISH (secured under the handshake keys, or plain when the
//     handshake is in the clear): RequesterVerifyData is checked over the
//     transcript and FINISH's header; FINISH_RSP goes out under the
//     handshake keys, then the session moves to the data keys from TH2 =
//     hash(..., FINISH, FINISH_RSP).
//  3. Established: HEARTBEAT, KEY_UPDATE, GET_MEASUREMENTS (with the
//     session's own L1L2), GET_DIGESTS, GET_CERTIFICATE, VENDOR_DEFINED,
//     until END_SESSION, a record that fails authentication, a heartbeat
//     timeout, GET_VERSION or Reset, which all zero the session's keys.
//
// Transcripts use the exact bytes on the wire (DOE padding and record
// framing removed). D (the first DIGESTS) never enters them: this
// responder never selects MULTI_KEY_CONN.
//
// Session-based mutual authentication (DSP0274 §10.16): with
// MutAuthRequested 1h the requester's chain is provisioned
// (ResponderConfig.MutualAuth); with 2h or 4h it comes by encapsulated
// requests before FINISH (responder_encap.go). FINISH then carries the requester's signature (context
// "requester-finish signing") over hash(VCA, H(responder chain),
// KEY_EXCHANGE, KEY_EXCHANGE_RSP, H(requester chain), FINISH header), and
// H(requester chain) stays in the transcript for RequesterVerifyData and
// TH2, as libspdm_calculate_th_for_finish has it.

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrUnknownSession: a secured record whose session ID names no live
// session (never opened, ended, or timed out).
var ErrUnknownSession = errors.New("spdm: no such session")

// rspSessionCaps are the session capabilities this responder implements.
const rspSessionCaps = CapEncrypt | CapMAC | CapKeyEx | CapPSK | CapPSKWithContext | CapHbeat | CapKeyUpd | CapHandshakeInClr | CapMutAuth

// Session defaults.
const (
	defaultMaxSessions     = 4
	defaultHeartbeatPeriod = 240 // seconds; spdm-emu's responder uses 0xF0 too
	rspMaxPSKHint          = 32  // libspdm's LIBSPDM_PSK_MAX_HINT_LENGTH
)

// rspSecuredVersions are the DSP0277 versions the responder speaks, most
// preferred first; it selects the first one the requester lists.
var rspSecuredVersions = []uint16{SecuredVersion12, SecuredVersion11, SecuredVersion10}

// RequesterChain is a requester's certificate chain provisioned to the
// responder for mutual authentication.
type RequesterChain struct {
	// Chain holds DER certificates, root (or its child) first, leaf last.
	Chain [][]byte
	// Root is the root certificate's DER, for the chain's RootHash (nil:
	// Chain[0]).
	Root []byte
	// Slot is the requester's slot the chain is in (ReqSlotIDParam, 0-7).
	Slot uint8
}

// rspMutual is a prepared RequesterChain.
type rspMutual struct {
	root  []byte
	certs [][]byte
	pub   crypto.PublicKey
	asyms uint32 // ReqBaseAsymAlg bits the leaf key verifies
	slot  uint8
}

func prepareMutual(rc *RequesterChain) (*rspMutual, error) {
	if len(rc.Chain) == 0 || rc.Slot > 7 {
		return nil, errors.New("secchan: responder MutualAuth: empty chain, or slot over 7")
	}
	leaf, err := parseChainLeaf(rc.Chain)
	if err != nil {
		return nil, fmt.Errorf("secchan: responder MutualAuth: %w", err)
	}
	asym := AsymFor(leaf.PublicKey)
	switch asym {
	case 0:
		return nil, fmt.Errorf("secchan: responder MutualAuth: leaf key %T has no SPDM algorithm", leaf.PublicKey)
	case AsymRSASSA2048:
		asym |= AsymRSAPSS2048
	case AsymRSASSA3072:
		asym |= AsymRSAPSS3072
	case AsymRSASSA4096:
		asym |= AsymRSAPSS4096
	}
	m := &rspMutual{root: rc.Root, pub: leaf.PublicKey, asyms: asym, slot: rc.Slot}
	if m.root == nil {
		m.root = rc.Chain[0]
	}
	m.root = slices.Clone(m.root)
	for _, der := range rc.Chain {
		m.certs = append(m.certs, slices.Clone(der))
	}
	if _, err := BuildCertChain(crypto.SHA512, m.root, m.certs...); err != nil {
		return nil, err
	}
	return m, nil
}

// checkSessionConfig checks the session settings of cfg, fills in their
// defaults and prepares the mutual-authentication chain. Caps must
// already be defaulted.
func checkSessionConfig(cfg *ResponderConfig) (*rspMutual, error) {
	caps := cfg.Caps
	sessions := caps&(CapKeyEx|capPSKResponderMask) != 0
	switch {
	case caps&CapMutAuth != 0 && cfg.EncapMutualAuth == nil && (caps&CapKeyEx == 0 || cfg.MutualAuth == nil):
		return nil, errors.New("secchan: responder MUT_AUTH needs KEY_EX and a provisioned requester chain (MutualAuth), or EncapMutualAuth")
	case caps&CapMutAuth == 0 && cfg.MutualAuth != nil:
		return nil, errors.New("secchan: responder has a MutualAuth chain but no MUT_AUTH cap")
	case caps&capPSKResponderMask == capPSKResponderMask:
		return nil, errors.New("secchan: responder caps set both PSK and PSK_WITH_CONTEXT")
	case sessions && caps&(CapEncrypt|CapMAC) != CapEncrypt|CapMAC:
		return nil, errors.New("secchan: responder sessions need both ENCRYPT and MAC (MAC-only sessions are not implemented)")
	case !sessions && caps&(CapEncrypt|CapMAC|CapHbeat|CapKeyUpd|CapHandshakeInClr) != 0:
		return nil, fmt.Errorf("secchan: responder caps %v need KEY_EX or PSK", CapabilityNames(caps&(CapEncrypt|CapMAC|CapHbeat|CapKeyUpd|CapHandshakeInClr)))
	case caps&CapKeyEx != 0 && caps&CapCert == 0:
		return nil, errors.New("secchan: responder has KEY_EX without CERT (no public-key provisioning here)")
	case caps&CapHandshakeInClr != 0 && caps&CapKeyEx == 0:
		return nil, errors.New("secchan: responder has HANDSHAKE_IN_THE_CLEAR without KEY_EX")
	case caps&capPSKResponderMask != 0 && len(cfg.PSKs) == 0:
		return nil, errors.New("secchan: responder has PSK caps but no PSKs")
	case caps&capPSKResponderMask == 0 && len(cfg.PSKs) != 0:
		return nil, errors.New("secchan: responder has PSKs but no PSK cap")
	case cfg.MaxSessions < 0 || cfg.MaxSessions > 0xFFFE:
		return nil, fmt.Errorf("secchan: responder MaxSessions %d out of range", cfg.MaxSessions)
	}
	psks := make(map[string][]byte, len(cfg.PSKs))
	for hint, psk := range cfg.PSKs {
		if len(psk) == 0 || len(hint) > rspMaxPSKHint {
			return nil, fmt.Errorf("secchan: responder PSK for hint %q: empty key, or hint over %d bytes", hint, rspMaxPSKHint)
		}
		psks[hint] = slices.Clone(psk)
	}
	cfg.PSKs = psks
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if cfg.HeartbeatPeriod == 0 && caps&CapHbeat != 0 {
		cfg.HeartbeatPeriod = defaultHeartbeatPeriod
	}
	if cfg.MutualAuth == nil {
		return nil, nil
	}
	return prepareMutual(cfg.MutualAuth)
}

// rspSession is one session of the responder.
type rspSession struct {
	id      uint32
	s       *Session
	psk     bool
	inClear bool   // KEY_EXCHANGE with the handshake in the clear
	mutual  []byte // H(requester chain) when mutual authentication was asked for
	th      []byte // the handshake transcript, until the session is established
	l       []byte // L1L2 of measurements inside the session
	period  uint8  // heartbeat period in seconds (0: none)
	last    time.Time
	keyUpd  uint8 // KEY_UPDATE operation awaiting VerifyNewKey (0: none)

	// Mutual authentication through encapsulated requests
	// (responder_encap.go): pending until the requester's chain is in,
	// then the leaf's key and the slot FINISH must name.
	encapPending bool
	reqPub       crypto.PublicKey
	reqSlot      uint8
}

// expired reports whether the session saw no request for twice its
// heartbeat period (DSP0274 §10.20, HEARTBEAT).
func (rs *rspSession) expired(now time.Time) bool {
	return rs.period != 0 && now.Sub(rs.last) > 2*time.Duration(rs.period)*time.Second
}

// rspSessions is the session table.
type rspSessions struct {
	live   map[uint32]*rspSession
	latest uint32 // the last session a KEY_EXCHANGE opened (for a FINISH in the clear)
	now    func() time.Time
	mutual *rspMutual // the provisioned requester chain, for MUT_AUTH
}

func newRspSessions(mutual *rspMutual) rspSessions {
	return rspSessions{live: map[uint32]*rspSession{}, now: time.Now, mutual: mutual}
}

// mutualAsyms are the ReqBaseAsymAlg bits the responder can verify: those
// of the provisioned requester chain's leaf key.
func (s *rspSessions) mutualAsyms() uint32 {
	if s.mutual == nil {
		return 0
	}
	return s.mutual.asyms
}

// endSession zeroes a session's keys and forgets it.
func (r *Responder) endSession(id uint32) {
	if rs := r.sess.live[id]; rs != nil {
		rs.s.End()
		zero(rs.th)
		delete(r.sess.live, id)
	}
	if r.sess.latest == id {
		r.sess.latest = 0
	}
}

// endAllSessions ends every session (GET_VERSION, Reset).
func (r *Responder) endAllSessions() {
	for id := range r.sess.live {
		r.endSession(id)
	}
}

// Sessions returns the IDs of the live sessions, for tests and
// diagnostics.
func (r *Responder) Sessions() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint32
	for id := range r.sess.live {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// allocSession checks the session limit and picks an RspSessionID. As
// libspdm, IDs count down from 0xFFFF; here the first one no live session
// uses as its RspSessionID, so SessionID(req, rsp) is unique whatever the
// requester's half. 0 is never used, so no session ID is below 0x10000.
func (r *Responder) allocSession() (uint16, bool) {
	now := r.sess.now()
	for id, rs := range r.sess.live {
		if rs.expired(now) {
			r.endSession(id)
		}
	}
	if len(r.sess.live) >= r.cfg.MaxSessions {
		return 0, false
	}
	used := map[uint16]bool{}
	for id := range r.sess.live {
		used[uint16(id>>16)] = true
	}
	for rsp := uint16(0xFFFF); rsp != 0; rsp-- {
		if !used[rsp] {
			return rsp, true
		}
	}
	return 0, false
}

// both reports whether the responder and the requester set capability bit.
func (r *Responder) both(bit uint32) bool {
	return r.cfg.Caps&bit != 0 && r.st.reqCaps&bit != 0
}

// checkExchange runs the checks KEY_EXCHANGE and PSK_EXCHANGE share, in
// libspdm's order, and returns the key schedule. capBit is the
// responder's capability for the request, reqBit the requester's.
func (r *Responder) checkExchange(h Header, capBit, reqBit uint32, dhe bool) (KeySchedule, reply, bool) {
	if rp, ok := r.checkNegotiated(h, capBit); !ok {
		return KeySchedule{}, rp, false
	}
	st := &r.st
	switch {
	case st.version < V11 || st.reqCaps&reqBit == 0:
		return KeySchedule{}, r.fail(ErrCodeUnsupportedRequest, h.Code), false
	case !r.both(CapMAC) || !r.both(CapEncrypt):
		// libspdm refuses without MAC on both sides; this responder also
		// needs ENCRYPT, having no MAC-only record layer.
		return KeySchedule{}, r.fail(ErrCodeInvalidRequest, 0), false
	case st.version >= V12 && st.otherParams&0x0F != OpaqueFmt1:
		// libspdm: from 1.2 the opaque data must use the general format.
		return KeySchedule{}, r.fail(ErrCodeInvalidRequest, 0), false
	case st.aead == 0 || st.keySchedule != KeyScheduleSPDM || dhe && st.dhe == 0:
		return KeySchedule{}, r.fail(ErrCodeInvalidRequest, 0), false
	}
	return KeySchedule{Version: st.version, Hash: st.hash, AEAD: st.aead}, reply{}, true
}

// exchangeSummary checks the requested MeasurementSummaryHash type and
// computes the hash (nil for none).
func (r *Responder) exchangeSummary(kind uint8) ([]byte, ErrorCode, bool) {
	if kind == SummaryNone {
		return nil, 0, true
	}
	st := &r.st
	if r.cfg.Caps&capMeasMask == 0 || st.measSpec == 0 || st.measHash == 0 {
		return nil, ErrCodeInvalidRequest, false
	}
	sum, err := r.summaryHash(kind)
	if err != nil {
		return nil, ErrCodeUnspecified, false
	}
	return sum, 0, true
}

// checkPolicy refuses a SessionPolicy this responder cannot honour: from
// 1.3, EventAllPolicy needs EVENT_CAP, which this responder lacks.
// TerminationPolicy (1.2) needs nothing: the emulated firmware is never
// updated at run time.
func checkPolicy(v Version, policy uint8) bool {
	return v < V13 || policy&SessionPolicyEventAll == 0
}

// securedVersionSelection answers the requester's opaque data: the
// VersionSelection of the first of rspSecuredVersions it supports. Empty
// opaque data gets none back, as in libspdm.
func (r *Responder) securedVersionSelection(opaque []byte) ([]byte, bool) {
	if len(opaque) == 0 {
		return nil, true
	}
	st := &r.st
	offered, err := DecodeSupportedVersions(st.version, st.otherParams, opaque)
	if err != nil {
		return nil, false
	}
	for _, v := range rspSecuredVersions {
		if slices.ContainsFunc(offered, func(o uint16) bool { return o&0xFF00 == v }) {
			return EncodeVersionSelection(st.version, st.otherParams, v), true
		}
	}
	return nil, false
}

// resetBUnlessAuthenticated drops B (GET_DIGESTS/GET_CERTIFICATE) when no
// CHALLENGE has completed, as libspdm does for the session requests
// (DSP0274: "skipped CHALLENGE completion").
func (r *Responder) resetBUnlessAuthenticated() {
	if !r.st.authenticated {
		r.st.b = nil
	}
}

// secReply is a handler's answer inside (or, for FINISH in the clear,
// about) a session: the reply, and what to do once it has gone out —
// move to new keys, or end the session.
type secReply struct {
	reply
	after func()
}

// failIn answers an error about a session; with end, the session ends
// once the ERROR has gone out.
func (r *Responder) failIn(code ErrorCode, rs *rspSession, end bool) secReply {
	sr := secReply{reply: r.fail(code, 0)}
	if end {
		sr.after = func() { r.endSession(rs.id) }
	}
	return sr
}

// sessionNotFound is libspdm's answer to a session message without a
// session to go with it: SessionRequired from 1.2 (1.1 has no such code:
// UnexpectedRequest, where libspdm says Unspecified).
func (r *Responder) sessionNotFound() ErrorCode {
	if r.st.version >= V12 {
		return ErrCodeSessionRequired
	}
	return ErrCodeUnexpectedRequest
}

// send delivers a secReply in the clear and runs its after step if the
// response went out.
func (r *Responder) send(sr secReply) []byte {
	out, sent := r.deliverTracked(sr.reply)
	if sent && sr.after != nil {
		sr.after()
	}
	return out
}

// deliverTracked is deliver that also says whether the handler's response
// (rather than ERROR(ResponseTooLarge)) went out or was committed for
// CHUNK_GET.
func (r *Responder) deliverTracked(rp reply) ([]byte, bool) {
	sent := rp.commit == nil
	if c := rp.commit; c != nil {
		rp.commit = func() { sent = true; c() }
	}
	out := r.deliver(rp)
	return out, sent
}

// establish moves a session to its data keys, or ends it if it cannot.
func (r *Responder) establish(rs *rspSession, th2 []byte) {
	if err := rs.s.Establish(th2); err != nil {
		r.endSession(rs.id)
		return
	}
	zero(rs.th)
	rs.th = nil
}
