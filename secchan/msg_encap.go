package secchan

// Messages of encapsulated requests (DSP0274 §10.15, 1.1+): the responder
// sends its own requests to the requester, each carried in the response
// to a requester's message.
//
//	GET_ENCAPSULATED_REQUEST      -> ENCAPSULATED_REQUEST (the first request)
//	DELIVER_ENCAPSULATED_RESPONSE -> ENCAPSULATED_RESPONSE_ACK (the next one, or none)
//
// The carried message runs to the end of its carrier; it is decoded
// exactly on its own, so DOE padding after it is judged there.

// Encapsulated-request codes (DSP0274 Table 4 and 5).
const (
	CodeEncapsulatedRequest         uint8 = 0x6A
	CodeEncapsulatedResponseAck     uint8 = 0x6B
	CodeGetEncapsulatedRequest      uint8 = 0xEA
	CodeDeliverEncapsulatedResponse uint8 = 0xEB
)

func init() {
	codeNames[CodeEncapsulatedRequest] = "ENCAPSULATED_REQUEST"
	codeNames[CodeEncapsulatedResponseAck] = "ENCAPSULATED_RESPONSE_ACK"
	codeNames[CodeGetEncapsulatedRequest] = "GET_ENCAPSULATED_REQUEST"
	codeNames[CodeDeliverEncapsulatedResponse] = "DELIVER_ENCAPSULATED_RESPONSE"
}

// ENCAPSULATED_RESPONSE_ACK Param2: what follows the header.
const (
	EncapPayloadAbsent  uint8 = 0 // the flow ends
	EncapPayloadPresent uint8 = 1 // another encapsulated request follows
	EncapPayloadReqSlot uint8 = 2 // the flow ends; one byte names the requester's slot
)

// encapAckExtra is the 1.2+ part of ENCAPSULATED_RESPONSE_ACK's header:
// AckRequestID and three reserved bytes.
const encapAckExtra = 4

// GetEncapsulatedRequest is GET_ENCAPSULATED_REQUEST.
type GetEncapsulatedRequest struct{ Version Version }

func (m *GetEncapsulatedRequest) Marshal() []byte {
	return []byte{uint8(m.Version), CodeGetEncapsulatedRequest, 0, 0}
}

func (m *GetEncapsulatedRequest) Decode(b []byte) (int, error) {
	r := newReader("GET_ENCAPSULATED_REQUEST", b)
	h := checkHeader(r, CodeGetEncapsulatedRequest, 0)
	m.Version = h.Version
	if r.err == nil && (h.Param1 != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved, are 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	return r.done()
}

// EncapsulatedRequest is ENCAPSULATED_REQUEST: the responder's first
// request of a flow.
type EncapsulatedRequest struct {
	Version   Version
	RequestID uint8
	Request   []byte // the whole carried request
}

func (m *EncapsulatedRequest) Marshal() []byte {
	return marshalCarried(m.Version, CodeEncapsulatedRequest, m.RequestID, m.Request)
}

func (m *EncapsulatedRequest) Decode(b []byte) (int, error) {
	r := newReader("ENCAPSULATED_REQUEST", b)
	m.Version, m.RequestID, m.Request = decodeCarried(r, CodeEncapsulatedRequest, "EncapsulatedRequest")
	return r.done()
}

// marshalCarried and decodeCarried are the layout ENCAPSULATED_REQUEST
// and DELIVER_ENCAPSULATED_RESPONSE share: the header with the request
// ID in Param1 (Param2 reserved), then the whole carried message.
func marshalCarried(v Version, code, requestID uint8, carried []byte) []byte {
	w := &writer{}
	w.header(v, code, requestID, 0)
	w.bytes(carried)
	return w.b
}

func decodeCarried(r *reader, code uint8, field string) (Version, uint8, []byte) {
	h := checkHeader(r, code, 0)
	if r.err == nil && h.Param2 != 0 {
		r.fail("Param2", "reserved, is 0x%02x", h.Param2)
	}
	return h.Version, h.Param1, encapBody(r, field)
}

// DeliverEncapsulatedResponse is DELIVER_ENCAPSULATED_RESPONSE: the
// requester's answer to the encapsulated request RequestID.
type DeliverEncapsulatedResponse struct {
	Version   Version
	RequestID uint8
	Response  []byte // the whole carried response
}

func (m *DeliverEncapsulatedResponse) Marshal() []byte {
	return marshalCarried(m.Version, CodeDeliverEncapsulatedResponse, m.RequestID, m.Response)
}

func (m *DeliverEncapsulatedResponse) Decode(b []byte) (int, error) {
	r := newReader("DELIVER_ENCAPSULATED_RESPONSE", b)
	m.Version, m.RequestID, m.Response = decodeCarried(r, CodeDeliverEncapsulatedResponse, "EncapsulatedResponse")
	return r.done()
}

// EncapsulatedResponseAck is ENCAPSULATED_RESPONSE_ACK: the next
// encapsulated request, or the end of the flow.
type EncapsulatedResponseAck struct {
	Version      Version
	RequestID    uint8 // Param1: the ID of the request carried (0 when none)
	PayloadType  uint8 // Param2
	AckRequestID uint8 // 1.2+: the RequestID of the response acknowledged
	Request      []byte
	ReqSlot      uint8 // with EncapPayloadReqSlot
}

func (m *EncapsulatedResponseAck) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeEncapsulatedResponseAck, m.RequestID, m.PayloadType)
	if m.Version >= V12 {
		w.u8(m.AckRequestID)
		w.bytes([]byte{0, 0, 0})
	}
	switch m.PayloadType {
	case EncapPayloadPresent:
		w.bytes(m.Request)
	case EncapPayloadReqSlot:
		w.u8(m.ReqSlot)
	}
	return w.b
}

func (m *EncapsulatedResponseAck) Decode(b []byte) (int, error) {
	r := newReader("ENCAPSULATED_RESPONSE_ACK", b)
	h := checkHeader(r, CodeEncapsulatedResponseAck, 0)
	*m = EncapsulatedResponseAck{Version: h.Version, RequestID: h.Param1, PayloadType: h.Param2}
	if h.Version >= V12 {
		m.AckRequestID = r.u8("AckRequestID")
		if rsv := r.bytes("Reserved", 3); r.err == nil && (rsv[0]|rsv[1]|rsv[2]) != 0 {
			r.fail("Reserved", "not zero: % x", rsv)
		}
	}
	if r.err != nil {
		return r.done()
	}
	switch m.PayloadType {
	case EncapPayloadAbsent:
		if m.RequestID != 0 {
			r.fail("Param1", "RequestID %d without a request", m.RequestID)
		}
	case EncapPayloadPresent:
		m.Request = encapBody(r, "EncapsulatedRequest")
	case EncapPayloadReqSlot:
		if m.RequestID != 0 {
			r.fail("Param1", "RequestID %d without a request", m.RequestID)
		}
		m.ReqSlot = r.u8("ReqSlotNumber")
		if r.err == nil && m.ReqSlot > 7 {
			r.fail("ReqSlotNumber", "slot %d out of range", m.ReqSlot)
		}
	default:
		r.fail("Param2", "payload type %d", m.PayloadType)
	}
	return r.done()
}

// encapBody reads the carried message: the rest of b, at least a header
// and at most MaxEncapMessageSize.
func encapBody(r *reader, field string) []byte {
	n := len(r.b) - r.off
	if r.err == nil && n > MaxEncapMessageSize {
		r.fail(field, "%d bytes exceeds %d", n, MaxEncapMessageSize)
	}
	if r.err == nil && n < 4 {
		r.fail(field, "%d bytes, need a 4-byte header", n)
	}
	return r.bytes(field, n)
}

// MaxEncapMessageSize bounds a carried message: a certificate portion of
// at most 64 KiB and its header, or a signed CHALLENGE_AUTH.
const MaxEncapMessageSize = 0x10000 + 64
