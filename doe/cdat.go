package doe

import (
	"context"
	"encoding/binary"
	"fmt"
)

// CXL Table Access over DOE (CXL 2.0 §8.1.11): a CXL device serves its
// Coherent Device Attribute Table (CDAT, UEFI's CDAT specification) one
// entry at a time. Request payload DW: request code (7:0, 0 = read entry),
// table type (15:8, 0 = CDAT), entry handle (31:16). Response payload: the
// same first DW with the handle of the next entry (0xFFFF after the last),
// then the entry's bytes. Entry 0 is the table's 16-byte header.
//
// Linux reads the table the same way (drivers/cxl/core/pci.c) and shows
// the concatenated entries as /sys/bus/cxl/devices/endpointN/CDAT.

const (
	cdatReadEntry   = 0      // Table Access request and response code
	cdatTableType   = 0      // table type: CDAT
	CDATLastHandle  = 0xFFFF // next handle after the last entry
	CDATHeaderSize  = 16
	cdatMaxTableLen = 1 << 20 // bound on a whole table: far above real ones
)

// EncodeCDATRequest builds the request for the entry with handle h.
func EncodeCDATRequest(h uint16) Object {
	p := make([]byte, 4)
	binary.LittleEndian.PutUint32(p, cdatReadEntry|cdatTableType<<8|uint32(h)<<16)
	return Object{Vendor: VendorCXL, Type: TypeCXLTableAcc, Payload: p}
}

// EncodeCDATResponse builds the response carrying entry, naming next as
// the handle of the following entry (CDATLastHandle after the last). The
// entry is zero-padded to a DW boundary.
func EncodeCDATResponse(next uint16, entry []byte) Object {
	p := make([]byte, 4, 4+len(entry)+3)
	binary.LittleEndian.PutUint32(p, cdatReadEntry|cdatTableType<<8|uint32(next)<<16)
	return NewObject(ProtocolCDAT, append(p, entry...))
}

// DecodeCDATRequest parses a Table Access request for a CDAT entry.
func DecodeCDATRequest(o Object) (uint16, error) {
	if o.Protocol() != ProtocolCDAT {
		return 0, fmt.Errorf("%w: CDAT request has protocol %v", ErrMalformed, o.Protocol())
	}
	if len(o.Payload) != 4 {
		return 0, fmt.Errorf("%w: CDAT request payload is %d bytes, want 4", ErrMalformed, len(o.Payload))
	}
	dw := binary.LittleEndian.Uint32(o.Payload)
	if code, typ := uint8(dw), uint8(dw>>8); code != cdatReadEntry || typ != cdatTableType {
		return 0, fmt.Errorf("%w: CDAT request code %d for table type %d, want 0 (read entry) for 0 (CDAT)", ErrMalformed, code, typ)
	}
	return uint16(dw >> 16), nil
}

// DecodeCDATResponse parses a Table Access response into the handle of the
// next entry and this entry's bytes (aliasing o.Payload).
func DecodeCDATResponse(o Object) (next uint16, entry []byte, err error) {
	if o.Protocol() != ProtocolCDAT {
		return 0, nil, fmt.Errorf("%w: CDAT response has protocol %v", ErrUnexpectedResponse, o.Protocol())
	}
	if len(o.Payload) < 4 {
		return 0, nil, fmt.Errorf("%w: CDAT response payload is %d bytes, want at least 4", ErrMalformed, len(o.Payload))
	}
	dw := binary.LittleEndian.Uint32(o.Payload)
	if code := uint8(dw); code != cdatReadEntry {
		return 0, nil, fmt.Errorf("%w: CDAT response code is %d, want %d (read entry)", ErrMalformed, code, cdatReadEntry)
	}
	if typ := uint8(dw >> 8); typ != cdatTableType {
		return 0, nil, fmt.Errorf("%w: CDAT response is for table type %d, want %d (CDAT)", ErrMalformed, typ, cdatTableType)
	}
	return uint16(dw >> 16), o.Payload[4:], nil
}

// ReadCDAT reads the whole CDAT through mb, entry by entry from handle 0,
// and checks the result with ParseCDAT. A handle seen twice (a loop) or a
// table past 1 MiB is an error.
func ReadCDAT(ctx context.Context, mb Mailbox) ([]byte, error) {
	var table []byte
	seen := make(map[uint16]bool)
	for h := uint16(0); h != CDATLastHandle; {
		if seen[h] {
			return nil, fmt.Errorf("%w: CDAT entry handle %d comes round again (loop)", ErrMalformed, h)
		}
		seen[h] = true
		resp, err := mb.Exchange(ctx, EncodeCDATRequest(h))
		if err != nil {
			return nil, fmt.Errorf("doe: CDAT entry %d: %w", h, err)
		}
		next, entry, err := DecodeCDATResponse(resp)
		if err != nil {
			return nil, fmt.Errorf("doe: CDAT entry %d: %w", h, err)
		}
		if len(table)+len(entry) > cdatMaxTableLen {
			return nil, fmt.Errorf("%w: CDAT grows past %d bytes at entry %d", ErrTooLarge, cdatMaxTableLen, h)
		}
		table = append(table, entry...)
		h = next
	}
	if _, _, err := ParseCDAT(table); err != nil {
		return nil, err
	}
	return table, nil
}

// CDATHeader is the table's header (CDAT specification §2.1).
type CDATHeader struct {
	Length   uint32 // of the whole table, header included
	Revision uint8
	Checksum uint8 // makes the bytes of the table sum to 0 mod 256
	Sequence uint32
}

// CDATEntry is one structure of the table after the header: its type
// (0 DSMAS, 1 DSLBIS, 2 DSMSCIS, 3 DSIS, 4 DSEMTS, 5 SSLBIS) and its bytes,
// its 4-byte structure header included.
type CDATEntry struct {
	Type uint8
	Data []byte
}

// CDATTypeName names a CDAT structure type.
func CDATTypeName(t uint8) string {
	names := [...]string{"DSMAS", "DSLBIS", "DSMSCIS", "DSIS", "DSEMTS", "SSLBIS"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("type %d", t)
}

// ParseCDAT checks a whole table: the header's length equals the table's,
// the bytes sum to 0, and the structures after the header tile the rest
// exactly, each at least its 4-byte header long.
func ParseCDAT(table []byte) (CDATHeader, []CDATEntry, error) {
	var h CDATHeader
	if len(table) < CDATHeaderSize {
		return h, nil, fmt.Errorf("%w: CDAT of %d bytes is shorter than its %d-byte header", ErrMalformed, len(table), CDATHeaderSize)
	}
	h = CDATHeader{
		Length:   binary.LittleEndian.Uint32(table[0:]),
		Revision: table[4],
		Checksum: table[5],
		Sequence: binary.LittleEndian.Uint32(table[12:]),
	}
	if int64(h.Length) != int64(len(table)) {
		return h, nil, fmt.Errorf("%w: CDAT header says %d bytes, the entries hold %d", ErrMalformed, h.Length, len(table))
	}
	var sum byte
	for _, b := range table {
		sum += b
	}
	if sum != 0 {
		return h, nil, fmt.Errorf("%w: CDAT bytes sum to 0x%02x, want 0 (checksum 0x%02x)", ErrMalformed, sum, h.Checksum)
	}
	var entries []CDATEntry
	for off := CDATHeaderSize; off < len(table); {
		if len(table)-off < 4 {
			return h, nil, fmt.Errorf("%w: CDAT structure at byte %d: %d bytes left, less than its 4-byte header", ErrMalformed, off, len(table)-off)
		}
		n := int(binary.LittleEndian.Uint16(table[off+2:]))
		if n < 4 || n > len(table)-off {
			return h, nil, fmt.Errorf("%w: CDAT structure at byte %d (%s) says %d bytes; %d remain", ErrMalformed, off, CDATTypeName(table[off]), n, len(table)-off)
		}
		entries = append(entries, CDATEntry{Type: table[off], Data: table[off : off+n]})
		off += n
	}
	return h, entries, nil
}
