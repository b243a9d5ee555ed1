package doe

// Captures in the classic libpcap format, as DMTF spdm-emu writes them and
// DMTF spdm-dump reads them:
//
//	global header (24 bytes): magic 0xa1b2c3d4 (µs) or 0xa1b23c4d (ns),
//	  version 2.4, zone, sigfigs, snap length, link type
//	per record (16 bytes): seconds, µs (or ns), captured length,
//	  original length; then the captured bytes
//
// Link type 292 (PCI DOE) records are whole DOE objects, header and
// padding included; 291 (MCTP) records start with a 4-byte MCTP header.
// Both are DMTF's own numbers: upstream libpcap gives them to other link
// types, so such files are for spdm-dump (and `devattest dump`), not for
// Wireshark. spdm-dump refuses a snap length over 64 KiB and reads every
// record into a buffer of the snap length, so a writer keeps both at
// 64 KiB and cuts a longer object (the original length says how long it
// was).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Link types of spdm-emu's captures.
const (
	LinkTypeMCTP   uint32 = 291
	LinkTypePCIDOE uint32 = 292
)

// PcapSnapLen is the snap length written, and the longest record written:
// spdm-dump's limit.
const PcapSnapLen = 1 << 16

// Bounds of the reader against a hostile file.
const (
	// MaxPcapRecord is the longest record the reader accepts: one maximal
	// DOE object with an MCTP header's room to spare.
	MaxPcapRecord = MaxObjectSize + 8
	// DefaultPcapMaxRecords bounds the records one reader returns.
	DefaultPcapMaxRecords = 1 << 20
)

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	pcapHeaderSize = 24
	pcapRecordHead = 16
)

// ErrPcap wraps every error of a malformed capture file.
var ErrPcap = errors.New("doe: malformed pcap")

// PcapRecord is one record of a capture.
type PcapRecord struct {
	Time time.Time
	// Data are the captured bytes; shorter than OrigLen when the writer
	// cut the record at its snap length.
	Data    []byte
	OrigLen int
}

// Truncated says the record was cut at the snap length.
func (r PcapRecord) Truncated() bool { return len(r.Data) < r.OrigLen }

// PcapReader reads a classic pcap file record by record, with every
// length checked before anything is allocated.
type PcapReader struct {
	r          io.Reader
	order      binary.ByteOrder
	nano       bool
	LinkType   uint32
	SnapLen    uint32
	MaxRecords int
	n          int
	off        int64
}

// NewPcapReader reads the global header: either byte order, micro- or
// nanosecond timestamps, version 2.x, link type 291 or 292.
func NewPcapReader(r io.Reader) (*PcapReader, error) {
	var h [pcapHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("%w: global header: %w", ErrPcap, eofShort(err))
	}
	pr := &PcapReader{r: r, off: pcapHeaderSize, MaxRecords: DefaultPcapMaxRecords}
	switch binary.LittleEndian.Uint32(h[:]) {
	case pcapMagicMicro:
		pr.order = binary.LittleEndian
	case pcapMagicNano:
		pr.order, pr.nano = binary.LittleEndian, true
	default:
		switch binary.BigEndian.Uint32(h[:]) {
		case pcapMagicMicro:
			pr.order = binary.BigEndian
		case pcapMagicNano:
			pr.order, pr.nano = binary.BigEndian, true
		default:
			return nil, fmt.Errorf("%w: magic % x is not a classic pcap file (pcapng is not supported)", ErrPcap, h[:4])
		}
	}
	if major := pr.order.Uint16(h[4:]); major != 2 {
		return nil, fmt.Errorf("%w: version %d.%d, want 2.x", ErrPcap, major, pr.order.Uint16(h[6:]))
	}
	pr.SnapLen = pr.order.Uint32(h[16:])
	// The low 16 bits are the link type; the rest are FCS and reserved bits.
	pr.LinkType = pr.order.Uint32(h[20:]) & 0xFFFF
	if pr.LinkType != LinkTypePCIDOE && pr.LinkType != LinkTypeMCTP {
		return nil, fmt.Errorf("%w: link type %d, want %d (PCI DOE) or %d (MCTP) as spdm-emu writes", ErrPcap, pr.LinkType, LinkTypePCIDOE, LinkTypeMCTP)
	}
	return pr, nil
}

// Next returns the next record, or io.EOF after the last one. A file cut
// inside a record is an error naming the offset.
func (pr *PcapReader) Next() (PcapRecord, error) {
	var h [pcapRecordHead]byte
	if _, err := io.ReadFull(pr.r, h[:]); err != nil {
		if err == io.EOF {
			return PcapRecord{}, io.EOF
		}
		return PcapRecord{}, fmt.Errorf("%w: record %d header at offset %d: %w", ErrPcap, pr.n+1, pr.off, eofShort(err))
	}
	if pr.n >= pr.MaxRecords {
		return PcapRecord{}, fmt.Errorf("%w: more than %d records", ErrPcap, pr.MaxRecords)
	}
	sec, frac := pr.order.Uint32(h[0:]), pr.order.Uint32(h[4:])
	incl, orig := pr.order.Uint32(h[8:]), pr.order.Uint32(h[12:])
	switch {
	case incl > MaxPcapRecord:
		return PcapRecord{}, fmt.Errorf("%w: record %d at offset %d: captured length %d exceeds %d", ErrPcap, pr.n+1, pr.off, incl, MaxPcapRecord)
	case orig < incl:
		return PcapRecord{}, fmt.Errorf("%w: record %d at offset %d: captured length %d exceeds the original length %d", ErrPcap, pr.n+1, pr.off, incl, orig)
	case pr.nano && frac >= 1e9, !pr.nano && frac >= 1e6:
		return PcapRecord{}, fmt.Errorf("%w: record %d at offset %d: sub-second field %d out of range", ErrPcap, pr.n+1, pr.off, frac)
	}
	data := make([]byte, incl)
	if _, err := io.ReadFull(pr.r, data); err != nil {
		return PcapRecord{}, fmt.Errorf("%w: record %d at offset %d: data: %w", ErrPcap, pr.n+1, pr.off, eofShort(err))
	}
	pr.n++
	pr.off += pcapRecordHead + int64(incl)
	nsec := int64(frac)
	if !pr.nano {
		nsec *= 1000
	}
	return PcapRecord{Time: time.Unix(int64(sec), nsec).UTC(), Data: data, OrigLen: int(orig)}, nil
}

func eofShort(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendPcapHeader appends the global header spdm-emu writes: little
// endian, microseconds, version 2.4, snap length 64 KiB.
func appendPcapHeader(b []byte, linkType uint32) []byte {
	b = binary.LittleEndian.AppendUint32(b, pcapMagicMicro)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = binary.LittleEndian.AppendUint32(b, 0) // thiszone
	b = binary.LittleEndian.AppendUint32(b, 0) // sigfigs
	b = binary.LittleEndian.AppendUint32(b, PcapSnapLen)
	return binary.LittleEndian.AppendUint32(b, linkType)
}

// appendPcapRecord appends one record, cut at PcapSnapLen.
func appendPcapRecord(b []byte, t time.Time, data []byte) []byte {
	sec := t.Unix()
	if sec < 0 || sec > math.MaxUint32 {
		sec = 0
	}
	incl := min(len(data), PcapSnapLen)
	b = binary.LittleEndian.AppendUint32(b, uint32(sec))
	b = binary.LittleEndian.AppendUint32(b, uint32(t.Nanosecond()/1000))
	b = binary.LittleEndian.AppendUint32(b, uint32(incl))
	b = binary.LittleEndian.AppendUint32(b, uint32(min(len(data), math.MaxUint32)))
	return append(b, data[:incl]...)
}

// Annotations: devattest's own records inside a capture, a DOE object
// with vendor ID 0xFFFF (PCI's "no function" value, which no DOE protocol
// can have) carrying "DVAT", a kind byte, three reserved bytes and UTF-8
// text. spdm-dump shows such a record as a bare PCI_DOE(65535, 0) line and
// otherwise ignores it: its direction tracking skips objects of other
// vendors.
const (
	AnnotationVendor uint16 = 0xFFFF

	// AnnotationStart opens a capture: which device, from whose view.
	AnnotationStart uint8 = 1
	// AnnotationDropped closes a capture that lost records.
	AnnotationDropped uint8 = 2

	annotationMagic   = "DVAT"
	maxAnnotationText = 1024
)

// EncodeAnnotation builds an annotation object (text cut at 1 KiB).
func EncodeAnnotation(kind uint8, text string) Object {
	if len(text) > maxAnnotationText {
		text = text[:maxAnnotationText]
	}
	p := append([]byte(annotationMagic), kind, 0, 0, 0)
	return NewObject(Protocol{Vendor: AnnotationVendor}, append(p, text...))
}

// DecodeAnnotation reads an annotation object; ok is false for anything
// else. Trailing zero bytes (DOE padding) are not part of the text.
func DecodeAnnotation(o Object) (kind uint8, text string, ok bool) {
	p := o.Payload
	if o.Vendor != AnnotationVendor || o.Type != 0 || len(p) < 8 || string(p[:4]) != annotationMagic {
		return 0, "", false
	}
	t := p[8:]
	for len(t) > 0 && t[len(t)-1] == 0 {
		t = t[:len(t)-1]
	}
	if len(t) > maxAnnotationText {
		return 0, "", false
	}
	return p[4], string(t), true
}
