package secchan

// ERROR (DSP0274 §10.12), RESPOND_IF_READY (§10.13) and the 1.2 large
// message transfer CHUNK_GET/CHUNK_RESPONSE (§10.24).

// ErrorResponse is ERROR. For ResponseNotReady the extended data is
// RDTExponent, RequestCode, Token and RDTM.
type ErrorResponse struct {
	Version Version
	Code    ErrorCode
	Data    uint8
	Ext     []byte
}

func (m *ErrorResponse) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeError, uint8(m.Code), m.Data)
	w.bytes(m.Ext)
	return w.b
}

// MaxErrorExtSize bounds ExtendedErrorData (32 bytes in DSP0274).
const MaxErrorExtSize = 32

// Decode parses ERROR. ResponseNotReady carries four bytes of extended
// data, ResponseTooLarge four (the size), LargeResponse one (the chunk
// handle); VendorDefined carries
// whatever follows; every other code carries none.
func (m *ErrorResponse) Decode(b []byte) (int, error) {
	r := newReader("ERROR", b)
	h := checkHeader(r, CodeError, 0)
	*m = ErrorResponse{Version: h.Version, Code: ErrorCode(h.Param1), Data: h.Param2}
	if r.err != nil {
		return r.done()
	}
	switch m.Code {
	case ErrCodeResponseNotReady:
		m.Ext = r.bytes("ExtendedErrorData", 4)
	case ErrCodeLargeResponse:
		m.Ext = r.bytes("ExtendedErrorData", 1) // the chunk handle
	case ErrCodeResponseTooLarge:
		m.Ext = r.bytes("ExtendedErrorData", 4) // the response's size
	case ErrCodeVendorDefined:
		// Vendor-defined data has no length of its own: it runs to the end
		// of the message (DOE padding included, which cannot be told apart).
		n := len(b) - r.off
		if n > MaxErrorExtSize {
			r.fail("ExtendedErrorData", "%d bytes exceeds %d", n, MaxErrorExtSize)
		}
		m.Ext = r.bytes("ExtendedErrorData", n)
	}
	// Every other code carries no extended data; what follows is padding,
	// which decodeExact checks.
	return r.done()
}

// Err returns the ERROR as a Go error.
func (m *ErrorResponse) Err() *SPDMError {
	return &SPDMError{Code: m.Code, Data: m.Data, Ext: m.Ext}
}

// NotReady is the extended data of ERROR(ResponseNotReady).
type NotReady struct {
	RDTExponent uint8
	RequestCode uint8
	Token       uint8
	RDTM        uint8
}

// NotReadyData parses ResponseNotReady's extended data.
func (m *ErrorResponse) NotReadyData() (NotReady, bool) {
	if m.Code != ErrCodeResponseNotReady || len(m.Ext) != 4 {
		return NotReady{}, false
	}
	return NotReady{m.Ext[0], m.Ext[1], m.Ext[2], m.Ext[3]}, true
}

// RespondIfReady is RESPOND_IF_READY.
type RespondIfReady struct {
	Version     Version
	RequestCode uint8
	Token       uint8
}

func (m *RespondIfReady) Marshal() []byte {
	return []byte{uint8(m.Version), CodeRespondIfReady, m.RequestCode, m.Token}
}

func (m *RespondIfReady) Decode(b []byte) (int, error) {
	r := newReader("RESPOND_IF_READY", b)
	h := checkHeader(r, CodeRespondIfReady, 0)
	*m = RespondIfReady{Version: h.Version, RequestCode: h.Param1, Token: h.Param2}
	return r.done()
}

// ChunkGet is CHUNK_GET (1.2).
type ChunkGet struct {
	Version Version
	Handle  uint8
	Seq     uint16
}

func (m *ChunkGet) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeChunkGet, 0, m.Handle)
	w.u16(m.Seq)
	return w.b
}

func (m *ChunkGet) Decode(b []byte) (int, error) {
	r := newReader("CHUNK_GET", b)
	h := checkHeader(r, CodeChunkGet, 0)
	*m = ChunkGet{Version: h.Version, Handle: h.Param2}
	if r.err == nil && h.Param1 != 0 {
		r.fail("Param1", "reserved, is 0x%02x", h.Param1)
	}
	m.Seq = r.u16("ChunkSeqNo")
	return r.done()
}

// ChunkLast marks the last chunk (CHUNK_RESPONSE Param1 bit 0).
const ChunkLast uint8 = 1 << 0

// ChunkResponse is CHUNK_RESPONSE (1.2). LargeMessageSize is present in
// the first chunk (Seq 0) only.
type ChunkResponse struct {
	Version          Version
	Attributes       uint8
	Handle           uint8
	Seq              uint16
	LargeMessageSize uint32
	Chunk            []byte
}

func (m *ChunkResponse) Marshal() []byte {
	return marshalChunk(CodeChunkResponse, (*chunkFields)(m))
}

func (m *ChunkResponse) Decode(b []byte) (int, error) {
	return decodeChunk("CHUNK_RESPONSE", CodeChunkResponse, b, (*chunkFields)(m))
}

// chunkFields is the body CHUNK_RESPONSE and CHUNK_SEND share (DSP0274
// 1.2 §10.25 and §10.24): the same layout in both directions.
type chunkFields struct {
	Version          Version
	Attributes       uint8
	Handle           uint8
	Seq              uint16
	LargeMessageSize uint32
	Chunk            []byte
}

func marshalChunk(code uint8, m *chunkFields) []byte {
	w := &writer{}
	w.header(m.Version, code, m.Attributes, m.Handle)
	w.u16(m.Seq)
	w.u16(0)
	w.u32(uint32(len(m.Chunk)))
	if m.Seq == 0 {
		w.u32(m.LargeMessageSize)
	}
	w.bytes(m.Chunk)
	return w.b
}

func decodeChunk(name string, code uint8, b []byte, m *chunkFields) (int, error) {
	r := newReader(name, b)
	h := checkHeader(r, code, 0)
	*m = chunkFields{Version: h.Version, Attributes: h.Param1, Handle: h.Param2}
	if r.err == nil && h.Param1&^ChunkLast != 0 {
		r.fail("Param1", "reserved bits set: 0x%02x", h.Param1)
	}
	m.Seq = r.u16("ChunkSeqNo")
	r.zero("Reserved", 2)
	size := r.u32("ChunkSize")
	if m.Seq == 0 {
		m.LargeMessageSize = r.u32("LargeMessageSize")
	}
	if r.err == nil && uint64(size) > uint64(len(b)-r.off) {
		r.fail("ChunkSize", "%d exceeds the %d bytes present", size, len(b)-r.off)
	}
	m.Chunk = r.bytes("SPDMchunk", int(size))
	return r.done()
}
