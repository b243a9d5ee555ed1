package secchan

// Messages of version, capability and algorithm negotiation (VCA):
// GET_VERSION/VERSION (DSP0274 §10.3), GET_CAPABILITIES/CAPABILITIES
// (§10.4), NEGOTIATE_ALGORITHMS/ALGORITHMS (§10.5).

import (
	"fmt"
	"sort"
)

// Header is the 4-byte header every SPDM message starts with.
type Header struct {
	Version Version
	Code    uint8
	Param1  uint8
	Param2  uint8
}

// PeekHeader reads the header of a message without judging the rest.
func PeekHeader(b []byte) (Header, error) {
	if len(b) < 4 {
		return Header{}, decodeErr("message", "header", "%d bytes, need 4", len(b))
	}
	return Header{Version(b[0]), b[1], b[2], b[3]}, nil
}

// checkHeader reads the header and checks the code (and, if want != 0, the
// version).
func checkHeader(r *reader, code uint8, want Version) Header {
	h := Header{Version(r.u8("SPDMVersion")), r.u8("RequestResponseCode"), r.u8("Param1"), r.u8("Param2")}
	if r.err != nil {
		return h
	}
	if h.Code != code {
		r.fail("RequestResponseCode", "is %s, want %s", CodeName(h.Code), CodeName(code))
	} else if want != 0 && h.Version != want {
		r.fail("SPDMVersion", "is %v, want %v", h.Version, want)
	}
	return h
}

// GetVersion is GET_VERSION; it always carries version 1.0.
type GetVersion struct{}

func (GetVersion) Marshal() []byte { return []byte{uint8(V10), CodeGetVersion, 0, 0} }

func (m *GetVersion) Decode(b []byte) (int, error) {
	r := newReader("GET_VERSION", b)
	h := checkHeader(r, CodeGetVersion, V10)
	if r.err == nil && (h.Param1 != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved, are 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	return r.done()
}

// VersionEntry is one VersionNumberEntry: major.minor, update, alpha.
type VersionEntry uint16

// Version returns the major.minor part as a Version.
func (e VersionEntry) Version() Version { return Version(e >> 8) }

// VersionResponse is VERSION.
type VersionResponse struct {
	Entries []VersionEntry
}

func (m *VersionResponse) Marshal() []byte {
	w := &writer{}
	w.header(V10, CodeVersion, 0, 0)
	w.u8(0)
	w.u8(uint8(len(m.Entries)))
	for _, e := range m.Entries {
		w.u16(uint16(e))
	}
	return w.b
}

func (m *VersionResponse) Decode(b []byte) (int, error) {
	r := newReader("VERSION", b)
	h := checkHeader(r, CodeVersion, V10)
	if r.err == nil && (h.Param1 != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved, are 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	r.zero("Reserved", 1)
	n := int(r.u8("VersionNumberEntryCount"))
	if r.err == nil && n == 0 {
		r.fail("VersionNumberEntryCount", "is 0")
	}
	m.Entries = nil
	for i := 0; i < n && r.err == nil; i++ {
		m.Entries = append(m.Entries, VersionEntry(r.u16(fmt.Sprintf("VersionNumberEntry[%d]", i))))
	}
	return r.done()
}

// Highest returns the highest version in both the response and offered.
func (m *VersionResponse) Highest(offered []Version) (Version, bool) {
	var common []Version
	for _, e := range m.Entries {
		for _, o := range offered {
			if e.Version() == o {
				common = append(common, o)
			}
		}
	}
	if len(common) == 0 {
		return 0, false
	}
	sort.Slice(common, func(i, j int) bool { return common[i] > common[j] })
	return common[0], true
}

// GetCapabilities is GET_CAPABILITIES. Its layout grows with the version:
// 1.0 has only the header, 1.1 adds CTExponent and Flags, 1.2 adds
// DataTransferSize and MaxSPDMmsgSize.
type GetCapabilities struct {
	Version Version
	// SupportedAlgs (1.3, Param1 bit 0) asks for the supported-algorithms
	// block in CAPABILITIES.
	SupportedAlgs    bool
	CTExponent       uint8
	Flags            uint32
	DataTransferSize uint32
	MaxSPDMmsgSize   uint32
}

func (m *GetCapabilities) Marshal() []byte {
	w := &writer{}
	var p1 uint8
	if m.SupportedAlgs {
		p1 = 1
	}
	w.header(m.Version, CodeGetCapabilities, p1, 0)
	if m.Version >= V11 {
		w.u8(0)
		w.u8(m.CTExponent)
		w.u16(0)
		w.u32(m.Flags)
	}
	if m.Version >= V12 {
		w.u32(m.DataTransferSize)
		w.u32(m.MaxSPDMmsgSize)
	}
	return w.b
}

func (m *GetCapabilities) Decode(b []byte) (int, error) {
	r := newReader("GET_CAPABILITIES", b)
	h := checkHeader(r, CodeGetCapabilities, 0)
	*m = GetCapabilities{Version: h.Version}
	p1 := h.Param1
	if h.Version >= V13 {
		m.SupportedAlgs = p1&1 != 0
		p1 &^= 1
	}
	if r.err == nil && (p1 != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved, are 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	if m.Version >= V11 {
		r.zero("Reserved", 1)
		m.CTExponent = r.u8("CTExponent")
		r.zero("Reserved", 2)
		m.Flags = r.u32("Flags")
	}
	if m.Version >= V12 {
		m.DataTransferSize = r.u32("DataTransferSize")
		m.MaxSPDMmsgSize = r.u32("MaxSPDMmsgSize")
		if r.err == nil && m.DataTransferSize < MinDataTransferSize {
			r.fail("DataTransferSize", "%d is below the minimum %d", m.DataTransferSize, MinDataTransferSize)
		}
		if r.err == nil && m.MaxSPDMmsgSize < m.DataTransferSize {
			r.fail("MaxSPDMmsgSize", "%d is below DataTransferSize %d", m.MaxSPDMmsgSize, m.DataTransferSize)
		}
	}
	return r.done()
}

// MinDataTransferSize is the smallest DataTransferSize allowed (1.2:
// MinDataTransferSize = 42).
const MinDataTransferSize = 42

// Capabilities is CAPABILITIES; layout as GetCapabilities, with CTExponent
// and Flags from 1.0 on.
type Capabilities struct {
	Version          Version
	CTExponent       uint8
	Flags            uint32
	DataTransferSize uint32
	MaxSPDMmsgSize   uint32
}

func (m *Capabilities) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeCapabilities, 0, 0)
	w.u8(0)
	w.u8(m.CTExponent)
	w.u16(0)
	w.u32(m.Flags)
	if m.Version >= V12 {
		w.u32(m.DataTransferSize)
		w.u32(m.MaxSPDMmsgSize)
	}
	return w.b
}

func (m *Capabilities) Decode(b []byte) (int, error) {
	r := newReader("CAPABILITIES", b)
	h := checkHeader(r, CodeCapabilities, 0)
	if r.err == nil && (h.Param1 != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved, are 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	*m = Capabilities{Version: h.Version}
	r.zero("Reserved", 1)
	m.CTExponent = r.u8("CTExponent")
	r.zero("Reserved", 2)
	m.Flags = r.u32("Flags")
	if m.Version >= V12 {
		m.DataTransferSize = r.u32("DataTransferSize")
		m.MaxSPDMmsgSize = r.u32("MaxSPDMmsgSize")
		if r.err == nil && m.DataTransferSize < MinDataTransferSize {
			r.fail("DataTransferSize", "%d is below the minimum %d", m.DataTransferSize, MinDataTransferSize)
		}
		if r.err == nil && m.MaxSPDMmsgSize < m.DataTransferSize {
			r.fail("MaxSPDMmsgSize", "%d is below DataTransferSize %d", m.MaxSPDMmsgSize, m.DataTransferSize)
		}
	}
	if r.err == nil && m.Flags&capMeasMask == capMeasMask {
		r.fail("Flags", "MEAS_CAP is the reserved value 11b")
	}
	return r.done()
}

// AlgStruct is one algorithm structure table entry of NEGOTIATE_ALGORITHMS
// or ALGORITHMS (1.1+): a type, its fixed-width supported or selected bits
// (2 bytes for every type defined through 1.3) and external algorithms.
type AlgStruct struct {
	Type     uint8
	Bits     uint16
	External []uint32
}

func writeAlgStructs(w *writer, tables []AlgStruct) {
	for _, t := range tables {
		w.u8(t.Type)
		w.u8(2<<4 | uint8(len(t.External)))
		w.u16(t.Bits)
		for _, e := range t.External {
			w.u32(e)
		}
	}
}

func readAlgStructs(r *reader, n int) []AlgStruct {
	var out []AlgStruct
	prev := uint8(0)
	for i := 0; i < n && r.err == nil; i++ {
		field := fmt.Sprintf("AlgStructure[%d]", i)
		t := AlgStruct{Type: r.u8(field + ".AlgType")}
		count := r.u8(field + ".AlgCount")
		if r.err != nil {
			break
		}
		if count>>4 != 2 {
			r.fail(field+".AlgCount", "fixed byte count %d, want 2", count>>4)
			break
		}
		if t.Type < AlgTypeDHE || t.Type > AlgTypeKeySchedule {
			r.fail(field+".AlgType", "unknown type %d", t.Type)
			break
		}
		if t.Type <= prev {
			r.fail(field+".AlgType", "type %d repeated or out of order", t.Type)
			break
		}
		prev = t.Type
		t.Bits = r.u16(field + ".AlgSupported")
		for j := 0; j < int(count&0xF); j++ {
			t.External = append(t.External, r.u32(field+".AlgExternal"))
		}
		out = append(out, t)
	}
	return out
}

// writeAlgTail writes the external algorithms and structure tables that
// end NEGOTIATE_ALGORITHMS and ALGORITHMS.
func writeAlgTail(w *writer, extAsym, extHash []uint32, tables []AlgStruct) {
	for _, e := range extAsym {
		w.u32(e)
	}
	for _, e := range extHash {
		w.u32(e)
	}
	writeAlgStructs(w, tables)
}

// readExt reads n external algorithm entries.
func readExt(r *reader, n int, field string) []uint32 {
	var out []uint32
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.u32(field))
	}
	return out
}

// checkAlgHeader checks the parameters NEGOTIATE_ALGORITHMS and ALGORITHMS
// share: Param1 counts the structure tables (none in 1.0), Param2 is
// reserved.
func checkAlgHeader(r *reader, h Header) {
	if r.err == nil && h.Param2 != 0 {
		r.fail("Param2", "reserved, is 0x%02x", h.Param2)
	}
	if r.err == nil && h.Version < V11 && h.Param1 != 0 {
		r.fail("Param1", "1.0 has no algorithm structures, %d announced", h.Param1)
	}
}

func algStructsLen(tables []AlgStruct) int {
	n := 0
	for _, t := range tables {
		n += 4 + 4*len(t.External)
	}
	return n
}

// NegotiateAlgorithms is NEGOTIATE_ALGORITHMS.
type NegotiateAlgorithms struct {
	Version            Version
	MeasurementSpec    uint8
	OtherParamsSupport uint8 // 1.2+
	BaseAsymAlgo       uint32
	BaseHashAlgo       uint32
	MELSpec            uint8 // 1.3
	ExtAsym            []uint32
	ExtHash            []uint32
	Structs            []AlgStruct // 1.1+
}

const negotiateAlgorithmsFixed = 32

func (m *NegotiateAlgorithms) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeNegotiateAlgorithms, uint8(len(m.Structs)), 0)
	w.u16(uint16(negotiateAlgorithmsFixed + 4*len(m.ExtAsym) + 4*len(m.ExtHash) + algStructsLen(m.Structs)))
	w.u8(m.MeasurementSpec)
	w.u8(m.OtherParamsSupport)
	w.u32(m.BaseAsymAlgo)
	w.u32(m.BaseHashAlgo)
	w.zeros(12)
	w.u8(uint8(len(m.ExtAsym)))
	w.u8(uint8(len(m.ExtHash)))
	w.u8(0)
	w.u8(m.MELSpec)
	writeAlgTail(w, m.ExtAsym, m.ExtHash, m.Structs)
	return w.b
}

func (m *NegotiateAlgorithms) Decode(b []byte) (int, error) {
	r := newReader("NEGOTIATE_ALGORITHMS", b)
	h := checkHeader(r, CodeNegotiateAlgorithms, 0)
	*m = NegotiateAlgorithms{Version: h.Version}
	checkAlgHeader(r, h)
	length := int(r.u16("Length"))
	m.MeasurementSpec = r.u8("MeasurementSpecification")
	m.OtherParamsSupport = r.u8("OtherParamsSupport")
	m.BaseAsymAlgo = r.u32("BaseAsymAlgo")
	m.BaseHashAlgo = r.u32("BaseHashAlgo")
	r.zero("Reserved", 12)
	nAsym := int(r.u8("ExtAsymCount"))
	nHash := int(r.u8("ExtHashCount"))
	r.zero("Reserved", 1)
	m.MELSpec = r.u8("MELspecification")
	checkOtherParams(r, h.Version, "OtherParamsSupport", m.OtherParamsSupport)
	if r.err == nil && h.Version < V13 && m.MELSpec != 0 {
		r.fail("MELspecification", "reserved before 1.3, is 0x%02x", m.MELSpec)
	}
	if r.err == nil && nAsym+nHash > 20 {
		r.fail("ExtAsymCount/ExtHashCount", "%d external algorithms, at most 20", nAsym+nHash)
	}
	m.ExtAsym = readExt(r, nAsym, "ExtAsym")
	m.ExtHash = readExt(r, nHash, "ExtHash")
	m.Structs = readAlgStructs(r, int(h.Param1))
	if r.err == nil && r.off != length {
		r.fail("Length", "says %d bytes, structure is %d", length, r.off)
	}
	if r.err == nil && length > 128 {
		r.fail("Length", "%d exceeds the 128-byte maximum", length)
	}
	return r.done()
}

// Algorithms is ALGORITHMS: the responder's selection.
type Algorithms struct {
	Version              Version
	MeasurementSpecSel   uint8
	OtherParamsSelection uint8 // 1.2+
	MeasurementHashAlgo  uint32
	BaseAsymSel          uint32
	BaseHashSel          uint32
	MELSpecSel           uint8 // 1.3
	ExtAsymSel           []uint32
	ExtHashSel           []uint32
	Structs              []AlgStruct // 1.1+
}

const algorithmsFixed = 36

func (m *Algorithms) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeAlgorithms, uint8(len(m.Structs)), 0)
	w.u16(uint16(algorithmsFixed + 4*len(m.ExtAsymSel) + 4*len(m.ExtHashSel) + algStructsLen(m.Structs)))
	w.u8(m.MeasurementSpecSel)
	w.u8(m.OtherParamsSelection)
	w.u32(m.MeasurementHashAlgo)
	w.u32(m.BaseAsymSel)
	w.u32(m.BaseHashSel)
	w.zeros(11)
	w.u8(m.MELSpecSel)
	w.u8(uint8(len(m.ExtAsymSel)))
	w.u8(uint8(len(m.ExtHashSel)))
	w.u16(0)
	writeAlgTail(w, m.ExtAsymSel, m.ExtHashSel, m.Structs)
	return w.b
}

func (m *Algorithms) Decode(b []byte) (int, error) {
	r := newReader("ALGORITHMS", b)
	h := checkHeader(r, CodeAlgorithms, 0)
	*m = Algorithms{Version: h.Version}
	checkAlgHeader(r, h)
	length := int(r.u16("Length"))
	m.MeasurementSpecSel = r.u8("MeasurementSpecificationSel")
	m.OtherParamsSelection = r.u8("OtherParamsSelection")
	m.MeasurementHashAlgo = r.u32("MeasurementHashAlgo")
	m.BaseAsymSel = r.u32("BaseAsymSel")
	m.BaseHashSel = r.u32("BaseHashSel")
	r.zero("Reserved", 11)
	m.MELSpecSel = r.u8("MELspecificationSel")
	nAsym := int(r.u8("ExtAsymSelCount"))
	nHash := int(r.u8("ExtHashSelCount"))
	r.zero("Reserved", 2)
	checkOtherParams(r, h.Version, "OtherParamsSelection", m.OtherParamsSelection)
	if r.err == nil && h.Version < V13 && m.MELSpecSel != 0 {
		r.fail("MELspecificationSel", "reserved before 1.3, is 0x%02x", m.MELSpecSel)
	}
	if r.err == nil && (nAsym > 1 || nHash > 1) {
		r.fail("ExtAsymSelCount/ExtHashSelCount", "a selection names at most one algorithm, got %d and %d", nAsym, nHash)
	}
	m.ExtAsymSel = readExt(r, nAsym, "ExtAsymSel")
	m.ExtHashSel = readExt(r, nHash, "ExtHashSel")
	m.Structs = readAlgStructs(r, int(h.Param1))
	if r.err == nil && r.off != length {
		r.fail("Length", "says %d bytes, structure is %d", length, r.off)
	}
	return r.done()
}

// Struct returns the algorithm structure of type t, if present.
func structBits(tables []AlgStruct, t uint8) uint16 {
	for _, s := range tables {
		if s.Type == t {
			return s.Bits
		}
	}
	return 0
}

// checkOtherParams checks the reserved bits of OtherParamsSupport /
// OtherParamsSelection: the whole byte before 1.2; bits 3:0 (opaque data
// format) in 1.2; bit 4 (multi-key connection) added in 1.3.
func checkOtherParams(r *reader, v Version, field string, b uint8) {
	allowed := uint8(0)
	switch {
	case v >= V13:
		allowed = 0x1F
	case v == V12:
		allowed = 0x0F
	}
	if r.err == nil && b&^allowed != 0 {
		r.fail(field, "reserved bits set at version %v: 0x%02x", v, b)
	}
}

// VCAMessages are the six messages of VCA, GET_VERSION through ALGORITHMS,
// as ParseVCA decodes them from the start of a transcript.
type VCAMessages struct {
	GetVersion          GetVersion
	Version             VersionResponse
	GetCapabilities     GetCapabilities
	Capabilities        Capabilities
	NegotiateAlgorithms NegotiateAlgorithms
	Algorithms          Algorithms
	// Len is how many bytes of the transcript VCA takes.
	Len int
}

// ParseVCA decodes VCA from the start of a transcript (SPDM 1.2 and later
// begin the signed transcripts with it); the error names the message that
// does not decode. What follows VCA is left alone.
func ParseVCA(t []byte) (*VCAMessages, error) {
	m := &VCAMessages{}
	for _, step := range []struct {
		name string
		dec  func([]byte) (int, error)
	}{
		{"GET_VERSION", m.GetVersion.Decode}, {"VERSION", m.Version.Decode}, {"GET_CAPABILITIES", m.GetCapabilities.Decode},
		{"CAPABILITIES", m.Capabilities.Decode}, {"NEGOTIATE_ALGORITHMS", m.NegotiateAlgorithms.Decode}, {"ALGORITHMS", m.Algorithms.Decode},
	} {
		k, err := step.dec(t[m.Len:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
		m.Len += k
	}
	return m, nil
}
