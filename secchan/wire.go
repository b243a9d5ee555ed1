package secchan

import "encoding/binary"

// reader walks a message little-endian (SPDM's byte order), recording the
// first failure with the message and field it happened in. After a failure
// every read returns zero values, so a decoder can read a whole structure
// and check r.err once.
type reader struct {
	msg string
	b   []byte
	off int
	err error
}

func newReader(msg string, b []byte) *reader { return &reader{msg: msg, b: b} }

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = decodeErr(r.msg, field, format, args...)
	}
}

func (r *reader) need(field string, n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(field, "needs %d bytes at offset %d, message has %d", n, r.off, len(r.b))
		return false
	}
	return true
}

func (r *reader) u8(field string) uint8 {
	if !r.need(field, 1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16(field string) uint16 {
	if !r.need(field, 2) {
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u24(field string) uint32 {
	if !r.need(field, 3) {
		return 0
	}
	v := uint32(r.b[r.off]) | uint32(r.b[r.off+1])<<8 | uint32(r.b[r.off+2])<<16
	r.off += 3
	return v
}

func (r *reader) u32(field string) uint32 {
	if !r.need(field, 4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

// bytes returns a copy of the next n bytes.
func (r *reader) bytes(field string, n int) []byte {
	if !r.need(field, n) {
		return nil
	}
	v := append([]byte(nil), r.b[r.off:r.off+n]...)
	r.off += n
	return v
}

// skip consumes n bytes without copying them.
func (r *reader) skip(field string, n int) {
	if r.need(field, n) {
		r.off += n
	}
}

// zero consumes n reserved bytes, which must be zero.
func (r *reader) zero(field string, n int) {
	if !r.need(field, n) {
		return
	}
	for i := 0; i < n; i++ {
		if r.b[r.off+i] != 0 {
			r.fail(field, "reserved byte %d is 0x%02x", i, r.b[r.off+i])
			return
		}
	}
	r.off += n
}

// done returns the number of bytes consumed, or the first error.
func (r *reader) done() (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	return r.off, nil
}

// writer builds a message.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)                           { w.b = append(w.b, v) }
func (w *writer) u16(v uint16)                         { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *writer) u24(v uint32)                         { w.b = append(w.b, byte(v), byte(v>>8), byte(v>>16)) }
func (w *writer) u32(v uint32)                         { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) bytes(v []byte)                       { w.b = append(w.b, v...) }
func (w *writer) zeros(n int)                          { w.b = append(w.b, make([]byte, n)...) }
func (w *writer) header(v Version, code, p1, p2 uint8) { w.b = append(w.b, uint8(v), code, p1, p2) }
