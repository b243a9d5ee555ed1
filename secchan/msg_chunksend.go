package secchan

// CHUNK_SEND / CHUNK_SEND_ACK (DSP0274 1.2 §10.24): a request larger than
// the responder's DataTransferSize goes in chunks; the ACK of the last one
// carries the response to the whole request.

// Chunk-send codes.
const (
	CodeChunkSendAck uint8 = 0x05
	CodeChunkSend    uint8 = 0x85
)

func init() {
	codeNames[CodeChunkSendAck] = "CHUNK_SEND_ACK"
	codeNames[CodeChunkSend] = "CHUNK_SEND"
}

// ChunkSendEarlyError is CHUNK_SEND_ACK's Param1 bit: the responder found
// an error before the last chunk, and the ACK carries the ERROR.
const ChunkSendEarlyError uint8 = 1 << 0

// chunkSendHeader is CHUNK_SEND's size before the chunk (chunk 0 adds
// 4 bytes of LargeMessageSize).
const chunkSendHeader = 12

// ChunkSend is CHUNK_SEND; Attributes is ChunkLast on the last chunk.
type ChunkSend struct {
	Version          Version
	Attributes       uint8
	Handle           uint8
	Seq              uint16
	LargeMessageSize uint32 // in chunk 0 only
	Chunk            []byte
}

func (m *ChunkSend) Marshal() []byte {
	return marshalChunk(CodeChunkSend, (*chunkFields)(m))
}

func (m *ChunkSend) Decode(b []byte) (int, error) {
	return decodeChunk("CHUNK_SEND", CodeChunkSend, b, (*chunkFields)(m))
}

// ChunkSendAck is CHUNK_SEND_ACK; Response is the response to the whole
// request (after the last chunk, or an early ERROR), as received: it runs
// to the end of the message, DOE padding included.
type ChunkSendAck struct {
	Version    Version
	Attributes uint8
	Handle     uint8
	Seq        uint16
	Response   []byte
}

func (m *ChunkSendAck) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeChunkSendAck, m.Attributes, m.Handle)
	w.u16(m.Seq)
	w.bytes(m.Response)
	return w.b
}

func (m *ChunkSendAck) Decode(b []byte) (int, error) {
	r := newReader("CHUNK_SEND_ACK", b)
	h := checkHeader(r, CodeChunkSendAck, 0)
	*m = ChunkSendAck{Version: h.Version, Attributes: h.Param1, Handle: h.Param2}
	if r.err == nil && h.Param1&^ChunkSendEarlyError != 0 {
		r.fail("Param1", "reserved bits set: 0x%02x", h.Param1)
	}
	m.Seq = r.u16("ChunkSeqNo")
	if r.err == nil {
		m.Response = r.bytes("ResponseToLargeRequest", len(b)-r.off)
	}
	return r.done()
}
