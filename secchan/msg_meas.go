package secchan

// GET_MEASUREMENTS/MEASUREMENTS (DSP0274 §10.11) and measurement blocks.

import "fmt"

// GET_MEASUREMENTS request attributes (Param1) and operations (Param2).
const (
	MeasAttrSignature      uint8 = 1 << 0
	MeasAttrRawBitStream   uint8 = 1 << 1 // 1.2
	MeasAttrNewMeasurement uint8 = 1 << 2 // 1.3

	MeasOpCount uint8 = 0x00 // total number of measurement indices
	MeasOpAll   uint8 = 0xFF // all measurement blocks
)

// GetMeasurements is GET_MEASUREMENTS. Nonce and SlotID are present only
// when a signature is requested (SlotID from 1.1); 1.3 always carries a
// RequesterContext.
type GetMeasurements struct {
	Version    Version
	Attributes uint8
	Operation  uint8
	Nonce      [NonceSize]byte
	Slot       uint8
	Context    [ContextSize]byte
}

// SignatureRequested reports whether the request asks for a signature.
func (m *GetMeasurements) SignatureRequested() bool { return m.Attributes&MeasAttrSignature != 0 }

func (m *GetMeasurements) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeGetMeasurements, m.Attributes, m.Operation)
	if m.SignatureRequested() {
		w.bytes(m.Nonce[:])
		if m.Version >= V11 {
			w.u8(m.Slot)
		}
	}
	if m.Version >= V13 {
		w.bytes(m.Context[:])
	}
	return w.b
}

func (m *GetMeasurements) Decode(b []byte) (int, error) {
	r := newReader("GET_MEASUREMENTS", b)
	h := checkHeader(r, CodeGetMeasurements, 0)
	*m = GetMeasurements{Version: h.Version, Attributes: h.Param1, Operation: h.Param2}
	allowed := MeasAttrSignature
	if h.Version >= V12 {
		allowed |= MeasAttrRawBitStream
	}
	if h.Version >= V13 {
		allowed |= MeasAttrNewMeasurement
	}
	if r.err == nil && h.Param1&^allowed != 0 {
		r.fail("Param1", "reserved attribute bits set: 0x%02x", h.Param1)
	}
	if m.SignatureRequested() {
		copy(m.Nonce[:], r.bytes("Nonce", NonceSize))
		if m.Version >= V11 {
			m.Slot = r.u8("SlotIDParam")
			if r.err == nil && m.Slot&0xF0 != 0 {
				r.fail("SlotIDParam", "reserved bits set: 0x%02x", m.Slot)
			}
		}
	}
	if m.Version >= V13 {
		copy(m.Context[:], r.bytes("RequesterContext", ContextSize))
	}
	return r.done()
}

// MeasurementBlock is one block of a measurement record (DSP0274 §10.11.1).
// With the DMTF measurement specification, Value is a DMTF measurement:
// a value type, and either a digest or a raw bit stream.
type MeasurementBlock struct {
	Index     uint8
	Spec      uint8 // MeasurementSpecification; MeasurementSpecDMTF
	ValueType uint8 // DMTFSpecMeasurementValueType, bit 7 = raw bit stream
	Value     []byte
}

// DMTF measurement value types (DSP0274 Table 54).
const (
	MeasTypeImmutableROM    uint8 = 0
	MeasTypeMutableFirmware uint8 = 1
	MeasTypeHardwareConfig  uint8 = 2
	MeasTypeFirmwareConfig  uint8 = 3
	MeasTypeManifest        uint8 = 4
	MeasTypeDeviceMode      uint8 = 5
	MeasTypeVersion         uint8 = 6
	MeasTypeSVN             uint8 = 7
	MeasTypeRawBitStream    uint8 = 0x80
)

// MeasurementTypeName names a DMTF value type for people.
func MeasurementTypeName(t uint8) string {
	names := []string{"immutable ROM", "mutable firmware", "hardware configuration", "firmware configuration",
		"measurement manifest", "device mode", "version", "secure version number",
		"hash-extend measurement", "informational", "structured manifest"}
	s := fmt.Sprintf("type %d", t&0x7F)
	if int(t&0x7F) < len(names) {
		s = names[t&0x7F]
	}
	if t&MeasTypeRawBitStream != 0 {
		s += " (raw)"
	}
	return s
}

// RawBitStream reports whether the value is a raw bit stream, not a digest.
func (b *MeasurementBlock) RawBitStream() bool { return b.ValueType&MeasTypeRawBitStream != 0 }

func (b *MeasurementBlock) marshal(w *writer) {
	w.u8(b.Index)
	w.u8(b.Spec)
	w.u16(uint16(3 + len(b.Value)))
	w.u8(b.ValueType)
	w.u16(uint16(len(b.Value)))
	w.bytes(b.Value)
}

// MarshalRecord encodes blocks as a measurement record.
func MarshalRecord(blocks []MeasurementBlock) []byte {
	w := &writer{}
	for i := range blocks {
		blocks[i].marshal(w)
	}
	return w.b
}

// ParseRecord parses a measurement record of exactly n blocks. measHashSize
// is the negotiated measurement hash size; a digest value must have it.
func ParseRecord(record []byte, n int, measHashSize int) ([]MeasurementBlock, error) {
	r := newReader("MEASUREMENTS", record)
	var out []MeasurementBlock
	seen := map[uint8]bool{}
	for i := 0; i < n && r.err == nil; i++ {
		f := fmt.Sprintf("MeasurementBlock[%d]", i)
		b := MeasurementBlock{Index: r.u8(f + ".Index"), Spec: r.u8(f + ".MeasurementSpecification")}
		size := int(r.u16(f + ".MeasurementSize"))
		if r.err != nil {
			break
		}
		if b.Index == 0 || b.Index == 0xFF {
			r.fail(f+".Index", "index %d is reserved", b.Index)
			break
		}
		if seen[b.Index] {
			r.fail(f+".Index", "index %d repeated", b.Index)
			break
		}
		seen[b.Index] = true
		if b.Spec != MeasurementSpecDMTF {
			r.fail(f+".MeasurementSpecification", "0x%02x, want DMTF (0x01)", b.Spec)
			break
		}
		if size < 3 {
			r.fail(f+".MeasurementSize", "%d is too small for a DMTF measurement", size)
			break
		}
		b.ValueType = r.u8(f + ".DMTFSpecMeasurementValueType")
		vsize := int(r.u16(f + ".DMTFSpecMeasurementValueSize"))
		if r.err == nil && vsize != size-3 {
			r.fail(f+".DMTFSpecMeasurementValueSize", "%d does not match MeasurementSize %d", vsize, size)
			break
		}
		b.Value = r.bytes(f+".DMTFSpecMeasurementValue", vsize)
		if r.err == nil && !b.RawBitStream() && measHashSize > 0 && vsize != measHashSize {
			r.fail(f+".DMTFSpecMeasurementValue", "digest of %d bytes, negotiated measurement hash has %d", vsize, measHashSize)
			break
		}
		out = append(out, b)
	}
	n2, err := r.done()
	if err != nil {
		return nil, err
	}
	if n2 != len(record) {
		return nil, decodeErr("MEASUREMENTS", "MeasurementRecord", "%d bytes left after %d blocks", len(record)-n2, n)
	}
	return out, nil
}

// Measurements is MEASUREMENTS.
type Measurements struct {
	Version    Version
	Param1     uint8 // for MeasOpCount, the number of indices; else reserved
	Slot       uint8 // Param2 bits 3:0
	ContentChg uint8 // Param2 bits 5:4 (1.2)
	NumBlocks  uint8
	Record     []byte
	Nonce      [NonceSize]byte
	Opaque     []byte
	Context    [ContextSize]byte // 1.3
	Signature  []byte
}

func (m *Measurements) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeMeasurements, m.Param1, m.Slot|m.ContentChg<<4)
	w.u8(m.NumBlocks)
	w.u24(uint32(len(m.Record)))
	w.bytes(m.Record)
	w.bytes(m.Nonce[:])
	w.u16(uint16(len(m.Opaque)))
	w.bytes(m.Opaque)
	if m.Version >= V13 {
		w.bytes(m.Context[:])
	}
	w.bytes(m.Signature)
	return w.b
}

// Decode parses MEASUREMENTS; sigSize is the signature size if the request
// asked for one, else 0. The signed part is everything before the signature.
func (m *Measurements) Decode(b []byte, sigSize int) (int, error) {
	r := newReader("MEASUREMENTS", b)
	h := checkHeader(r, CodeMeasurements, 0)
	*m = Measurements{Version: h.Version, Param1: h.Param1, Slot: h.Param2 & 0xF, ContentChg: (h.Param2 >> 4) & 3}
	if r.err == nil && h.Param2&0xC0 != 0 {
		r.fail("Param2", "reserved bits set: 0x%02x", h.Param2)
	}
	if r.err == nil && h.Version < V11 && h.Param2 != 0 {
		r.fail("Param2", "reserved in 1.0 (SlotID from 1.1), is 0x%02x", h.Param2)
	}
	if r.err == nil && h.Version < V12 && m.ContentChg != 0 {
		r.fail("Param2", "content-changed bits are reserved before 1.2: 0x%02x", h.Param2)
	}
	m.NumBlocks = r.u8("NumberOfBlocks")
	m.Record = r.bytes("MeasurementRecord", int(r.u24("MeasurementRecordLength")))
	copy(m.Nonce[:], r.bytes("Nonce", NonceSize))
	m.Opaque = r.bytes("OpaqueData", int(r.u16("OpaqueDataLength")))
	if r.err == nil && len(m.Opaque) > MaxOpaqueSize {
		r.fail("OpaqueDataLength", "%d exceeds %d", len(m.Opaque), MaxOpaqueSize)
	}
	if m.Version >= V13 {
		copy(m.Context[:], r.bytes("RequesterContext", ContextSize))
	}
	m.Signature = r.bytes("Signature", sigSize)
	return r.done()
}

// Blocks parses the record's blocks.
func (m *Measurements) Blocks(measHashSize int) ([]MeasurementBlock, error) {
	return ParseRecord(m.Record, int(m.NumBlocks), measHashSize)
}
