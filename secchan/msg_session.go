package secchan

// Session messages (SPDM 1.1 and later): KEY_EXCHANGE/KEY_EXCHANGE_RSP
// (DSP0274 §10.16), FINISH/FINISH_RSP (§10.17), PSK_EXCHANGE/
// PSK_EXCHANGE_RSP (§10.18), PSK_FINISH/PSK_FINISH_RSP (§10.19), and the
// in-session HEARTBEAT, KEY_UPDATE and END_SESSION with their
// acknowledgements. Layouts follow libspdm's spdm.h
// (spdm_key_exchange_request_t and the structures after it).
//
// Sizes that depend on negotiated algorithms are the caller's to give:
// D (DHE exchange data, DHEExchangeSize), H (base hash), S (signature) and
// whether a measurement summary hash was asked for. The transcript helpers
// (SignedLen, TH1Len, MACedLen) return byte counts into the message as
// received, so a transcript hashes the bytes on the wire.

import "fmt"

// RandomDataSize is the size of RandomData in KEY_EXCHANGE and
// KEY_EXCHANGE_RSP.
const RandomDataSize = 32

// SessionPolicy bits of KEY_EXCHANGE (Reserved before 1.2) and of
// PSK_EXCHANGE Param2 (1.2+).
const (
	// SessionPolicyTermination: end the session on a runtime firmware
	// update of the responder (1.2).
	SessionPolicyTermination uint8 = 1 << 0
	// SessionPolicyEventAll: subscribe to all events (1.3).
	SessionPolicyEventAll uint8 = 1 << 1
)

// MutAuthRequested values of KEY_EXCHANGE_RSP; at most one bit is set.
const (
	MutAuthRequested        uint8 = 1 << 0
	MutAuthWithEncapRequest uint8 = 1 << 1
	MutAuthWithGetDigests   uint8 = 1 << 2
	mutAuthMask                   = MutAuthRequested | MutAuthWithEncapRequest | MutAuthWithGetDigests

	finishSignatureIncluded uint8 = 1 << 0 // FINISH Param1
	endSessionClearNegState uint8 = 1 << 0 // END_SESSION Param1
)

// KEY_UPDATE operations (DSP0274 KEY_UPDATE, Table "KEY_UPDATE operations").
const (
	KeyUpdateOpUpdateKey     uint8 = 1
	KeyUpdateOpUpdateAllKeys uint8 = 2
	KeyUpdateOpVerifyNewKey  uint8 = 3
)

// DHEExchangeSize is D, the size of ExchangeData for one DHE named group
// bit (DSP0274 Table "DHE structure"): FFDHE public values are the
// group's size, ECDHE ones X and Y, each the size of the field.
func DHEExchangeSize(group uint16) (int, error) {
	switch group {
	case DHEFFDHE2048:
		return 256, nil
	case DHEFFDHE3072:
		return 384, nil
	case DHEFFDHE4096:
		return 512, nil
	case DHESECP256R1, DHESM2P256:
		return 64, nil
	case DHESECP384R1:
		return 96, nil
	case DHESECP521R1:
		return 132, nil
	}
	return 0, fmt.Errorf("%w: DHE group %s", ErrUnsupportedAlgorithm, DHEName(group))
}

// checkSessionVersion refuses versions whose layout this codec does not
// know: session messages exist from 1.1; 1.4 adds fields to several of
// them (FINISH OpaqueData, large VENDOR_DEFINED payloads).
func checkSessionVersion(r *reader, v, min Version) {
	if r.err == nil && (v < min || v > V13) {
		r.fail("SPDMVersion", "%v, this message is defined here for %v to 1.3", v, min)
	}
}

// checkReservedParams refuses non-zero Param1/Param2 of a header whose
// parameters are both reserved.
func checkReservedParams(r *reader, h Header) {
	if r.err == nil && (h.Param1 != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved, are 0x%02x 0x%02x", h.Param1, h.Param2)
	}
}

// checkSummaryType checks a MeasurementSummaryHashType in Param1.
func checkSummaryType(r *reader, t uint8) {
	if r.err == nil && t != SummaryNone && t != SummaryTCB && t != SummaryAll {
		r.fail("Param1", "measurement summary hash type 0x%02x", t)
	}
}

// checkSessionPolicy checks the defined bits of SessionPolicy: none before
// 1.2, TerminationPolicy in 1.2, EventAllPolicy added in 1.3.
func checkSessionPolicy(r *reader, v Version, field string, p uint8) {
	allowed := uint8(0)
	switch {
	case v >= V13:
		allowed = SessionPolicyTermination | SessionPolicyEventAll
	case v == V12:
		allowed = SessionPolicyTermination
	}
	if r.err == nil && p&^allowed != 0 {
		r.fail(field, "reserved bits set at version %v: 0x%02x", v, p)
	}
}

// readOpaque reads OpaqueDataLength and OpaqueData, capped at 1024 bytes.
func readOpaque(r *reader) []byte {
	n := int(r.u16("OpaqueDataLength"))
	if r.err == nil && n > MaxOpaqueSize {
		r.fail("OpaqueDataLength", "%d exceeds %d", n, MaxOpaqueSize)
	}
	return r.bytes("OpaqueData", n)
}

// KeyExchange is KEY_EXCHANGE.
type KeyExchange struct {
	Version       Version
	SummaryType   uint8 // Param1: MeasurementSummaryHashType
	Slot          uint8 // Param2: 0-7, or 0xFF for a provisioned public key
	ReqSessionID  uint16
	SessionPolicy uint8 // 1.2+
	RandomData    [RandomDataSize]byte
	ExchangeData  []byte // D bytes
	Opaque        []byte
}

func (m *KeyExchange) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeKeyExchange, m.SummaryType, m.Slot)
	w.u16(m.ReqSessionID)
	w.u8(m.SessionPolicy)
	w.u8(0)
	w.bytes(m.RandomData[:])
	w.bytes(m.ExchangeData)
	w.u16(uint16(len(m.Opaque)))
	w.bytes(m.Opaque)
	return w.b
}

// Decode parses KEY_EXCHANGE; exchangeSize is D of the negotiated DHE
// group.
func (m *KeyExchange) Decode(b []byte, exchangeSize int) (int, error) {
	r := newReader("KEY_EXCHANGE", b)
	h := checkHeader(r, CodeKeyExchange, 0)
	*m = KeyExchange{Version: h.Version, SummaryType: h.Param1, Slot: h.Param2}
	checkSessionVersion(r, h.Version, V11)
	checkSummaryType(r, h.Param1)
	if r.err == nil && h.Param2 > 7 && h.Param2 != 0xFF {
		r.fail("Param2", "slot %d out of range", h.Param2)
	}
	m.ReqSessionID = r.u16("ReqSessionID")
	m.SessionPolicy = r.u8("SessionPolicy")
	checkSessionPolicy(r, h.Version, "SessionPolicy", m.SessionPolicy)
	r.zero("Reserved", 1)
	copy(m.RandomData[:], r.bytes("RandomData", RandomDataSize))
	m.ExchangeData = r.bytes("ExchangeData", exchangeSize)
	m.Opaque = readOpaque(r)
	return r.done()
}

// KeyExchangeRsp is KEY_EXCHANGE_RSP.
type KeyExchangeRsp struct {
	Version          Version
	HeartbeatPeriod  uint8 // Param1
	RspSessionID     uint16
	MutAuthRequested uint8 // 0 or one of the MutAuth* bits
	ReqSlotID        uint8 // ReqSlotIDParam bits 3:0
	RandomData       [RandomDataSize]byte
	ExchangeData     []byte // D bytes
	SummaryHash      []byte // MeasurementSummaryHash: H bytes if asked for, else none
	Opaque           []byte
	Signature        []byte // S bytes
	// VerifyData is ResponderVerifyData, H bytes; absent (nil) when both
	// sides set HANDSHAKE_IN_THE_CLEAR_CAP.
	VerifyData []byte
}

func (m *KeyExchangeRsp) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeKeyExchangeRsp, m.HeartbeatPeriod, 0)
	w.u16(m.RspSessionID)
	w.u8(m.MutAuthRequested)
	w.u8(m.ReqSlotID)
	w.bytes(m.RandomData[:])
	w.bytes(m.ExchangeData)
	w.bytes(m.SummaryHash)
	w.u16(uint16(len(m.Opaque)))
	w.bytes(m.Opaque)
	w.bytes(m.Signature)
	w.bytes(m.VerifyData)
	return w.b
}

// Decode parses KEY_EXCHANGE_RSP. exchangeSize is D; summarySize is H if
// the KEY_EXCHANGE asked for a measurement summary hash, else 0; sigSize
// is S; verifySize is H, or 0 when both sides set
// HANDSHAKE_IN_THE_CLEAR_CAP and ResponderVerifyData is absent (as
// libspdm's requester computes it: hmac_size = 0 in that case).
func (m *KeyExchangeRsp) Decode(b []byte, exchangeSize, summarySize, sigSize, verifySize int) (int, error) {
	r := newReader("KEY_EXCHANGE_RSP", b)
	h := checkHeader(r, CodeKeyExchangeRsp, 0)
	*m = KeyExchangeRsp{Version: h.Version, HeartbeatPeriod: h.Param1}
	checkSessionVersion(r, h.Version, V11)
	if r.err == nil && h.Param2 != 0 {
		r.fail("Param2", "reserved, is 0x%02x", h.Param2)
	}
	m.RspSessionID = r.u16("RspSessionID")
	m.MutAuthRequested = r.u8("MutAuthRequested")
	if r.err == nil && (m.MutAuthRequested&^mutAuthMask != 0 || m.MutAuthRequested&(m.MutAuthRequested-1) != 0) {
		r.fail("MutAuthRequested", "0x%02x: reserved bits, or more than one mode", m.MutAuthRequested)
	}
	m.ReqSlotID = r.u8("ReqSlotIDParam")
	if r.err == nil && m.ReqSlotID&0xF0 != 0 {
		r.fail("ReqSlotIDParam", "reserved bits set: 0x%02x", m.ReqSlotID)
	}
	copy(m.RandomData[:], r.bytes("RandomData", RandomDataSize))
	m.ExchangeData = r.bytes("ExchangeData", exchangeSize)
	m.SummaryHash = r.bytes("MeasurementSummaryHash", summarySize)
	m.Opaque = readOpaque(r)
	m.Signature = r.bytes("Signature", sigSize)
	if verifySize > 0 {
		m.VerifyData = r.bytes("ResponderVerifyData", verifySize)
	}
	return r.done()
}

// SessionID is the session ID both sides use: RspSessionID in the high
// half, ReqSessionID in the low half, so that on the wire (little-endian)
// the ReqSessionID comes first (libspdm_generate_session_id).
func SessionID(reqSessionID, rspSessionID uint16) uint32 {
	return uint32(rspSessionID)<<16 | uint32(reqSessionID)
}

// SignedLen is the length of the part the responder's signature covers:
// everything up to the end of OpaqueData.
func (m *KeyExchangeRsp) SignedLen() int {
	return 4 + 4 + RandomDataSize + len(m.ExchangeData) + len(m.SummaryHash) + 2 + len(m.Opaque)
}

// TH1Len is the length of the part TH1 (and so ResponderVerifyData)
// covers: everything but ResponderVerifyData.
func (m *KeyExchangeRsp) TH1Len() int { return m.SignedLen() + len(m.Signature) }

// Finish is FINISH.
type Finish struct {
	Version Version
	// SignatureIncluded (Param1 bit 0): session-based mutual
	// authentication, with the requester's Signature present.
	SignatureIncluded bool
	ReqSlotID         uint8  // Param2 when SignatureIncluded: 0-7, or 0xFF; else reserved
	Signature         []byte // S bytes of the requester's algorithm, when included
	VerifyData        []byte // RequesterVerifyData, H bytes
}

func (m *Finish) Marshal() []byte {
	w := &writer{}
	var p1 uint8
	if m.SignatureIncluded {
		p1 = finishSignatureIncluded
	}
	w.header(m.Version, CodeFinish, p1, m.ReqSlotID)
	if m.SignatureIncluded {
		w.bytes(m.Signature)
	}
	w.bytes(m.VerifyData)
	return w.b
}

// Decode parses FINISH; sigSize is S of the requester's negotiated
// algorithm (ReqBaseAsymAlg), used only when Param1 says a signature is
// included; hashSize is H.
func (m *Finish) Decode(b []byte, sigSize, hashSize int) (int, error) {
	r := newReader("FINISH", b)
	h := checkHeader(r, CodeFinish, 0)
	*m = Finish{Version: h.Version, SignatureIncluded: h.Param1&finishSignatureIncluded != 0, ReqSlotID: h.Param2}
	checkSessionVersion(r, h.Version, V11)
	if r.err == nil && h.Param1&^finishSignatureIncluded != 0 {
		r.fail("Param1", "reserved bits set: 0x%02x", h.Param1)
	}
	if r.err == nil && !m.SignatureIncluded && h.Param2 != 0 {
		r.fail("Param2", "reserved without a signature, is 0x%02x", h.Param2)
	}
	if r.err == nil && m.SignatureIncluded && h.Param2 > 7 && h.Param2 != 0xFF {
		r.fail("Param2", "requester slot %d out of range", h.Param2)
	}
	if m.SignatureIncluded {
		if r.err == nil && sigSize <= 0 {
			r.fail("Param1", "signature included but no requester signature size negotiated")
		}
		m.Signature = r.bytes("Signature", sigSize)
	}
	m.VerifyData = r.bytes("RequesterVerifyData", hashSize)
	return r.done()
}

// SignedLen is the part of FINISH the requester's signature covers: the
// header.
func (m *Finish) SignedLen() int { return 4 }

// MACedLen is the part of FINISH RequesterVerifyData covers: the header
// and the signature, if any.
func (m *Finish) MACedLen() int {
	if m.SignatureIncluded {
		return 4 + len(m.Signature)
	}
	return 4
}

// FinishRsp is FINISH_RSP.
type FinishRsp struct {
	Version Version
	// VerifyData is ResponderVerifyData, H bytes; present only when the
	// handshake is in the clear (both sides set HANDSHAKE_IN_THE_CLEAR_CAP).
	VerifyData []byte
}

func (m *FinishRsp) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeFinishRsp, 0, 0)
	w.bytes(m.VerifyData)
	return w.b
}

// Decode parses FINISH_RSP; verifySize is H when the handshake is in the
// clear, else 0.
func (m *FinishRsp) Decode(b []byte, verifySize int) (int, error) {
	r := newReader("FINISH_RSP", b)
	h := checkHeader(r, CodeFinishRsp, 0)
	*m = FinishRsp{Version: h.Version}
	checkSessionVersion(r, h.Version, V11)
	checkReservedParams(r, h)
	if verifySize > 0 {
		m.VerifyData = r.bytes("ResponderVerifyData", verifySize)
	}
	return r.done()
}

// MACedLen is the part of FINISH_RSP its ResponderVerifyData covers: the
// header.
func (m *FinishRsp) MACedLen() int { return 4 }

// PSKExchange is PSK_EXCHANGE.
type PSKExchange struct {
	Version       Version
	SummaryType   uint8 // Param1
	SessionPolicy uint8 // Param2, 1.2+
	ReqSessionID  uint16
	PSKHint       []byte
	Context       []byte // RequesterContext
	Opaque        []byte
}

func (m *PSKExchange) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodePSKExchange, m.SummaryType, m.SessionPolicy)
	w.u16(m.ReqSessionID)
	w.u16(uint16(len(m.PSKHint)))
	w.u16(uint16(len(m.Context)))
	w.u16(uint16(len(m.Opaque)))
	w.bytes(m.PSKHint)
	w.bytes(m.Context)
	w.bytes(m.Opaque)
	return w.b
}

func (m *PSKExchange) Decode(b []byte) (int, error) {
	r := newReader("PSK_EXCHANGE", b)
	h := checkHeader(r, CodePSKExchange, 0)
	*m = PSKExchange{Version: h.Version, SummaryType: h.Param1, SessionPolicy: h.Param2}
	checkSessionVersion(r, h.Version, V11)
	checkSummaryType(r, h.Param1)
	checkSessionPolicy(r, h.Version, "Param2", h.Param2)
	m.ReqSessionID = r.u16("ReqSessionID")
	hintLen := int(r.u16("PSKHintLength"))
	ctxLen := int(r.u16("RequesterContextLength"))
	opaqueLen := int(r.u16("OpaqueDataLength"))
	if r.err == nil && opaqueLen > MaxOpaqueSize {
		r.fail("OpaqueDataLength", "%d exceeds %d", opaqueLen, MaxOpaqueSize)
	}
	m.PSKHint = r.bytes("PSKHint", hintLen)
	m.Context = r.bytes("RequesterContext", ctxLen)
	m.Opaque = r.bytes("OpaqueData", opaqueLen)
	return r.done()
}

// PSKExchangeRsp is PSK_EXCHANGE_RSP.
type PSKExchangeRsp struct {
	Version         Version
	HeartbeatPeriod uint8 // Param1
	RspSessionID    uint16
	SummaryHash     []byte // H bytes if asked for, else none
	Context         []byte // ResponderContext; empty without PSK_CAP "with context"
	Opaque          []byte
	VerifyData      []byte // ResponderVerifyData, H bytes
}

func (m *PSKExchangeRsp) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodePSKExchangeRsp, m.HeartbeatPeriod, 0)
	w.u16(m.RspSessionID)
	w.u16(0)
	w.u16(uint16(len(m.Context)))
	w.u16(uint16(len(m.Opaque)))
	w.bytes(m.SummaryHash)
	w.bytes(m.Context)
	w.bytes(m.Opaque)
	w.bytes(m.VerifyData)
	return w.b
}

// Decode parses PSK_EXCHANGE_RSP; summarySize is H if PSK_EXCHANGE asked
// for a measurement summary hash, else 0; hashSize is H.
func (m *PSKExchangeRsp) Decode(b []byte, summarySize, hashSize int) (int, error) {
	r := newReader("PSK_EXCHANGE_RSP", b)
	h := checkHeader(r, CodePSKExchangeRsp, 0)
	*m = PSKExchangeRsp{Version: h.Version, HeartbeatPeriod: h.Param1}
	checkSessionVersion(r, h.Version, V11)
	if r.err == nil && h.Param2 != 0 {
		r.fail("Param2", "reserved, is 0x%02x", h.Param2)
	}
	m.RspSessionID = r.u16("RspSessionID")
	r.zero("Reserved", 2)
	ctxLen := int(r.u16("ResponderContextLength"))
	opaqueLen := int(r.u16("OpaqueDataLength"))
	if r.err == nil && opaqueLen > MaxOpaqueSize {
		r.fail("OpaqueDataLength", "%d exceeds %d", opaqueLen, MaxOpaqueSize)
	}
	m.SummaryHash = r.bytes("MeasurementSummaryHash", summarySize)
	m.Context = r.bytes("ResponderContext", ctxLen)
	m.Opaque = r.bytes("OpaqueData", opaqueLen)
	m.VerifyData = r.bytes("ResponderVerifyData", hashSize)
	return r.done()
}

// TH1Len is the part of PSK_EXCHANGE_RSP that TH1 (and so
// ResponderVerifyData) covers: everything but ResponderVerifyData.
func (m *PSKExchangeRsp) TH1Len() int {
	return 12 + len(m.SummaryHash) + len(m.Context) + len(m.Opaque)
}

// PSKFinish is PSK_FINISH.
type PSKFinish struct {
	Version    Version
	VerifyData []byte // RequesterVerifyData, H bytes
}

func (m *PSKFinish) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodePSKFinish, 0, 0)
	w.bytes(m.VerifyData)
	return w.b
}

func (m *PSKFinish) Decode(b []byte, hashSize int) (int, error) {
	r := newReader("PSK_FINISH", b)
	h := checkHeader(r, CodePSKFinish, 0)
	*m = PSKFinish{Version: h.Version}
	checkSessionVersion(r, h.Version, V11)
	checkReservedParams(r, h)
	m.VerifyData = r.bytes("RequesterVerifyData", hashSize)
	return r.done()
}

// MACedLen is the part of PSK_FINISH RequesterVerifyData covers: the
// header.
func (m *PSKFinish) MACedLen() int { return 4 }

// sessionHeaderOnly decodes a message that is a header with both
// parameters reserved.
func sessionHeaderOnly(name string, code uint8, b []byte) (Version, int, error) {
	r := newReader(name, b)
	h := checkHeader(r, code, 0)
	checkSessionVersion(r, h.Version, V11)
	checkReservedParams(r, h)
	n, err := r.done()
	return h.Version, n, err
}

// PSKFinishRsp is PSK_FINISH_RSP: the header alone.
type PSKFinishRsp struct{ Version Version }

func (m *PSKFinishRsp) Marshal() []byte { return []byte{uint8(m.Version), CodePSKFinishRsp, 0, 0} }

func (m *PSKFinishRsp) Decode(b []byte) (n int, err error) {
	m.Version, n, err = sessionHeaderOnly("PSK_FINISH_RSP", CodePSKFinishRsp, b)
	return n, err
}

// Heartbeat is HEARTBEAT.
type Heartbeat struct{ Version Version }

func (m *Heartbeat) Marshal() []byte { return []byte{uint8(m.Version), CodeHeartbeat, 0, 0} }

func (m *Heartbeat) Decode(b []byte) (n int, err error) {
	m.Version, n, err = sessionHeaderOnly("HEARTBEAT", CodeHeartbeat, b)
	return n, err
}

// HeartbeatAck is HEARTBEAT_ACK.
type HeartbeatAck struct{ Version Version }

func (m *HeartbeatAck) Marshal() []byte { return []byte{uint8(m.Version), CodeHeartbeatAck, 0, 0} }

func (m *HeartbeatAck) Decode(b []byte) (n int, err error) {
	m.Version, n, err = sessionHeaderOnly("HEARTBEAT_ACK", CodeHeartbeatAck, b)
	return n, err
}

// EndSessionAck is END_SESSION_ACK.
type EndSessionAck struct{ Version Version }

func (m *EndSessionAck) Marshal() []byte { return []byte{uint8(m.Version), CodeEndSessionAck, 0, 0} }

func (m *EndSessionAck) Decode(b []byte) (n int, err error) {
	m.Version, n, err = sessionHeaderOnly("END_SESSION_ACK", CodeEndSessionAck, b)
	return n, err
}

// KeyUpdate is KEY_UPDATE; KeyUpdateAck echoes its operation and tag.
type KeyUpdate struct {
	Version   Version
	Operation uint8 // Param1: KeyUpdateOp*
	Tag       uint8 // Param2
}

func (m *KeyUpdate) Marshal() []byte {
	return []byte{uint8(m.Version), CodeKeyUpdate, m.Operation, m.Tag}
}

func (m *KeyUpdate) Decode(b []byte) (int, error) {
	var n int
	var err error
	m.Version, m.Operation, m.Tag, n, err = decodeKeyUpdate("KEY_UPDATE", CodeKeyUpdate, b)
	return n, err
}

// KeyUpdateAck is KEY_UPDATE_ACK.
type KeyUpdateAck struct {
	Version   Version
	Operation uint8
	Tag       uint8
}

func (m *KeyUpdateAck) Marshal() []byte {
	return []byte{uint8(m.Version), CodeKeyUpdateAck, m.Operation, m.Tag}
}

func (m *KeyUpdateAck) Decode(b []byte) (int, error) {
	var n int
	var err error
	m.Version, m.Operation, m.Tag, n, err = decodeKeyUpdate("KEY_UPDATE_ACK", CodeKeyUpdateAck, b)
	return n, err
}

func decodeKeyUpdate(name string, code uint8, b []byte) (Version, uint8, uint8, int, error) {
	r := newReader(name, b)
	h := checkHeader(r, code, 0)
	checkSessionVersion(r, h.Version, V11)
	if r.err == nil && (h.Param1 < KeyUpdateOpUpdateKey || h.Param1 > KeyUpdateOpVerifyNewKey) {
		r.fail("Param1", "key operation %d is reserved", h.Param1)
	}
	n, err := r.done()
	return h.Version, h.Param1, h.Param2, n, err
}

// EndSession is END_SESSION.
type EndSession struct {
	Version Version
	// ClearNegotiatedState is Param1 bit 0, the Negotiated State Clearing
	// Indicator: a responder that caches the negotiated state (CACHE_CAP)
	// clears it when the session ends; with the bit clear it preserves it.
	// (spdm.h: SPDM_END_SESSION_REQUEST_ATTRIBUTES_PRESERVE_NEGOTIATED_STATE_CLEAR;
	// spdm-emu clears its saved state when the bit is set.)
	ClearNegotiatedState bool
}

func (m *EndSession) Marshal() []byte {
	var p1 uint8
	if m.ClearNegotiatedState {
		p1 = endSessionClearNegState
	}
	return []byte{uint8(m.Version), CodeEndSession, p1, 0}
}

func (m *EndSession) Decode(b []byte) (int, error) {
	r := newReader("END_SESSION", b)
	h := checkHeader(r, CodeEndSession, 0)
	*m = EndSession{Version: h.Version, ClearNegotiatedState: h.Param1&endSessionClearNegState != 0}
	checkSessionVersion(r, h.Version, V11)
	if r.err == nil && (h.Param1&^endSessionClearNegState != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved bits set: 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	return r.done()
}
