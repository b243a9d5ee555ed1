package secchan

// The requester's CHUNK_SEND (DSP0274 1.2 §10.24): a request larger than
// the responder's DataTransferSize — FINISH or CHALLENGE_AUTH carrying an
// RSA signature to a responder with a small buffer — goes in chunks that
// each fit; the ACK of the last chunk carries the response.

import (
	"context"
	"fmt"
)

// needChunkSend reports whether req must go with CHUNK_SEND.
func (q *Requester) needChunkSend(req []byte) bool {
	return q.neg.Version >= V12 && q.neg.RspDataTransfer != 0 && len(req) > int(q.neg.RspDataTransfer) &&
		q.neg.RspCaps&CapChunk != 0 && q.reqCaps(q.neg.Version)&CapChunk != 0
}

// send sends req through exch under a deadline, with CHUNK_SEND when it
// exceeds the responder's DataTransferSize.
func (q *Requester) send(ctx context.Context, req []byte, crypto bool, exch func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	if q.needChunkSend(req) {
		return q.chunkSend(ctx, req, crypto, exch)
	}
	cctx, cancel := context.WithTimeout(ctx, q.timeout(crypto))
	defer cancel()
	return exch(cctx, req)
}

// chunkSend sends req in CHUNK_SEND messages, each under its own
// deadline, and returns the response the last CHUNK_SEND_ACK carries (or
// an ERROR the responder sent instead).
func (q *Requester) chunkSend(ctx context.Context, req []byte, crypto bool, exch func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	v := q.neg.Version
	dts := int(q.neg.RspDataTransfer)
	switch {
	case q.neg.RspMaxMsgSize != 0 && uint64(len(req)) > uint64(q.neg.RspMaxMsgSize):
		return nil, fmt.Errorf("%w: a %s of %d bytes exceeds the responder's MaxSPDMmsgSize %d", ErrNegotiation, CodeName(req[1]), len(req), q.neg.RspMaxMsgSize)
	case dts <= chunkSendHeader+4:
		return nil, fmt.Errorf("%w: the responder's DataTransferSize %d leaves no room for a chunk", ErrNegotiation, dts)
	}
	q.chunkHandle++
	handle := q.chunkHandle
	for seq, off := 0, 0; ; seq++ {
		if seq > 0xFFFF {
			return nil, fmt.Errorf("%w: chunk sequence exhausted", ErrMalformed)
		}
		room := dts - chunkSendHeader
		m := ChunkSend{Version: v, Handle: handle, Seq: uint16(seq)}
		if seq == 0 {
			room -= 4
			m.LargeMessageSize = uint32(len(req))
		}
		n := min(room, len(req)-off)
		m.Chunk = req[off : off+n]
		off += n
		last := off == len(req)
		if last {
			m.Attributes = ChunkLast
		}
		cctx, cancel := context.WithTimeout(ctx, q.timeout(crypto && last))
		resp, err := exch(cctx, m.Marshal())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("CHUNK_SEND %d: %w", seq, err)
		}
		if h, err := PeekHeader(resp); err == nil && h.Code == CodeError {
			return resp, nil // the caller reads the ERROR
		}
		var ack ChunkSendAck
		if _, err := expect(resp, CodeChunkSendAck, v, ack.Decode); err != nil {
			return nil, fmt.Errorf("CHUNK_SEND %d: %w", seq, err)
		}
		switch {
		case ack.Handle != handle || ack.Seq != uint16(seq):
			return nil, fmt.Errorf("%w: CHUNK_SEND_ACK for handle %d chunk %d, sent %d/%d", ErrUnexpectedResponse, ack.Handle, ack.Seq, handle, seq)
		case ack.Attributes&ChunkSendEarlyError != 0 || last:
			return unpadAckResponse(ack.Response), nil
		case len(ack.Response) >= 4 || !allZero(ack.Response):
			return nil, fmt.Errorf("%w: CHUNK_SEND_ACK %d carries a response before the last chunk", ErrMalformed, seq)
		}
	}
}

// unpadAckResponse turns the response a CHUNK_SEND_ACK carries into what
// the response decoders expect: the message followed by DOE padding that
// completes a DW. It starts 6 bytes into the ACK, so the ACK's own padding
// (p bytes, making 6 + n + p a multiple of 4) is 2 bytes off: with the
// message's last two bytes zero the padding is taken to be p >= 2 and two
// of its bytes go; otherwise p <= 1 and two zero bytes complete the DW.
// An ACK not DW-aligned came without DOE padding and is left alone.
func unpadAckResponse(b []byte) []byte {
	if (6+len(b))%4 != 0 {
		return b
	}
	if len(b) >= 6 && b[len(b)-1] == 0 && b[len(b)-2] == 0 {
		return b[:len(b)-2]
	}
	return append(b[:len(b):len(b)], 0, 0)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
