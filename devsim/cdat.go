package devsim

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/devattest/devattest/doe"
)

// CXL Table Access for an emulated CXL device: its CDAT served entry by
// entry (doe/cdat.go has the wire format), as QEMU's CXL type-3 model and
// real CXL memory devices serve theirs.

// CDAT structure types used by DefaultCDAT (CDAT specification §3).
const (
	CDATTypeDSMAS  = 0 // Device Scoped Memory Affinity
	CDATTypeDSLBIS = 1 // Device Scoped Latency and Bandwidth Information
	CDATTypeDSEMTS = 4 // Device Scoped EFI Memory Type
)

// CDATStructure prefixes body with the 4-byte structure header: type,
// reserved, length.
func CDATStructure(typ uint8, body []byte) []byte {
	s := make([]byte, 4, 4+len(body))
	s[0] = typ
	binary.LittleEndian.PutUint16(s[2:], uint16(4+len(body)))
	return append(s, body...)
}

// BuildCDAT returns a whole table: the 16-byte header (length, revision,
// checksum, sequence) and the structures.
func BuildCDAT(revision uint8, sequence uint32, structures ...[]byte) []byte {
	t := make([]byte, doe.CDATHeaderSize)
	t[4] = revision
	binary.LittleEndian.PutUint32(t[12:], sequence)
	for _, s := range structures {
		t = append(t, s...)
	}
	binary.LittleEndian.PutUint32(t, uint32(len(t)))
	var sum byte
	for _, b := range t {
		sum += b
	}
	t[5] = -sum
	return t
}

// DefaultCDAT describes one 256 MiB persistent memory range the way QEMU's
// CXL type-3 model does: a DSMAS, read and write latency and bandwidth
// (DSLBIS), and its EFI memory type (DSEMTS).
func DefaultCDAT() []byte {
	const size = 256 << 20
	dsmas := make([]byte, 20)
	dsmas[1] = 1 << 2 // flags: non-volatile
	binary.LittleEndian.PutUint64(dsmas[12:], size)
	dslbis := func(dataType uint8, value uint16) []byte {
		b := make([]byte, 20)
		b[2] = dataType
		binary.LittleEndian.PutUint64(b[4:], 1000) // entry base unit
		binary.LittleEndian.PutUint16(b[12:], value)
		return b
	}
	dsemts := make([]byte, 20)
	dsemts[1] = 2 // EFI_MEMORY_SP
	binary.LittleEndian.PutUint64(dsemts[12:], size)
	return BuildCDAT(1, 0,
		CDATStructure(CDATTypeDSMAS, dsmas),
		CDATStructure(CDATTypeDSLBIS, dslbis(0, 150)), // access latency
		CDATStructure(CDATTypeDSLBIS, dslbis(1, 150)), // read latency
		CDATStructure(CDATTypeDSLBIS, dslbis(3, 16)),  // access bandwidth
		CDATStructure(CDATTypeDSEMTS, dsemts),
	)
}

// NewCDATHandler serves table (checked with doe.ParseCDAT): handle 0 is
// the header, handle i the i-th structure, and each response names the
// next handle, 0xFFFF after the last. A request for a handle past the end
// is an error, which sets the DOE Error bit.
func NewCDATHandler(table []byte) (Handler, error) {
	_, structs, err := doe.ParseCDAT(table)
	if err != nil {
		return nil, fmt.Errorf("devsim: %w", err)
	}
	if len(structs) >= doe.CDATLastHandle {
		return nil, fmt.Errorf("devsim: CDAT of %d structures has more than handles can name", len(structs))
	}
	entries := [][]byte{append([]byte(nil), table[:doe.CDATHeaderSize]...)}
	for _, s := range structs {
		entries = append(entries, append([]byte(nil), s.Data...))
	}
	return HandlerFunc(func(_ context.Context, req doe.Object) (doe.Object, error) {
		h, err := doe.DecodeCDATRequest(req)
		if err != nil {
			return doe.Object{}, err
		}
		if int(h) >= len(entries) {
			return doe.Object{}, fmt.Errorf("devsim: CDAT has no entry %d (%d entries)", h, len(entries))
		}
		next := h + 1
		if int(next) == len(entries) {
			next = doe.CDATLastHandle
		}
		return doe.EncodeCDATResponse(next, entries[h]), nil
	}), nil
}

// NewCXLFunction returns a function that lists discovery and CXL Table
// Access and serves table, like a CXL memory device's DOE instance.
func NewCXLFunction(table []byte, opts ...Option) (*Function, error) {
	h, err := NewCDATHandler(table)
	if err != nil {
		return nil, err
	}
	f := New(opts...)
	if err := f.Handle(doe.ProtocolCDAT, h); err != nil {
		return nil, err
	}
	return f, nil
}
