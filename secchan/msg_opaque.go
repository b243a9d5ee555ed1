package secchan

// Opaque data and the DSP0277 secured-message version negotiation it
// carries in KEY_EXCHANGE/PSK_EXCHANGE (supported versions) and their
// responses (the selected version).
//
// Two tables hold the same elements:
//
//   - SPDM 1.2+ with OpaqueDataFmt1 selected: DSP0274's general opaque data
//     format: TotalElements (1), Reserved (3), elements.
//   - otherwise (SPDM 1.1; DSP0277's own table): SpecID 0x444D5446
//     ("DMTF" little-endian), OpaqueVersion 1, TotalElements (1),
//     Reserved (2), elements.
//
// Each element is ID (a registry ID), VendorLen, VendorID, OpaqueElementDataLen
// (2), OpaqueElementData, then zero padding to a multiple of 4 bytes.
// DSP0277's elements have ID DMTF and no vendor ID; their data starts with
// SMDataVersion (1) and SMDataID: 0 VersionSelection (then one
// VersionNumber), 1 SupportedVersion (then a count and that many
// VersionNumbers). Layouts from libspdm's spdm.h
// (spdm_general_opaque_data_table_header_t) and spdm_secured_message.h
// (secured_message_general_opaque_data_table_header_t,
// secured_message_opaque_element_*); spdm_secured_message.h defines no
// further element types.

import "fmt"

// Opaque data formats: ALGORITHMS OtherParamsSelection bits 3:0 (1.2+).
const (
	OpaqueFmtNone uint8 = 0
	OpaqueFmt0    uint8 = 1 << 0
	OpaqueFmt1    uint8 = 1 << 1 // general opaque data format
)

// DSP0277 opaque data constants.
const (
	dsp0277SpecID         uint32 = 0x444D5446
	dsp0277OpaqueVersion  uint8  = 1
	SMDataVersion         uint8  = 1 // SMDataVersion of every DSP0277 element
	SMDataIDVersionSelect uint8  = 0 // SMDataID: VersionSelection
	SMDataIDSupported     uint8  = 1 // SMDataID: SupportedVersion
)

// DSP0277 versions as VersionNumber entries (major in bits 15:12, minor in
// bits 11:8, update and alpha below): VersionEntry(v).Version() names them.
const (
	SecuredVersion10 uint16 = 0x1000
	SecuredVersion11 uint16 = 0x1100
	SecuredVersion12 uint16 = 0x1200
)

// OpaqueElement is one element of an opaque data table.
type OpaqueElement struct {
	ID       uint8  // registry ID (Registry*)
	VendorID []byte // VendorLen bytes; none for DMTF
	Data     []byte // OpaqueElementData
}

// generalOpaque reports whether opaque data of a connection uses DSP0274's
// general format (1.2+ with OpaqueDataFmt1) rather than DSP0277's table.
// format may be the whole OtherParamsSelection byte.
func generalOpaque(spdmVersion Version, format uint8) bool {
	return spdmVersion >= V12 && format&0x0F == OpaqueFmt1
}

// MarshalOpaqueData encodes elements in the table the connection uses. A
// 1.2+ connection that selected no opaque data format cannot carry opaque
// data; the caller checks that first.
func MarshalOpaqueData(spdmVersion Version, format uint8, elems []OpaqueElement) []byte {
	w := &writer{}
	if generalOpaque(spdmVersion, format) {
		w.u8(uint8(len(elems)))
		w.zeros(3)
	} else {
		w.u32(dsp0277SpecID)
		w.u8(dsp0277OpaqueVersion)
		w.u8(uint8(len(elems)))
		w.u16(0)
	}
	for _, e := range elems {
		start := len(w.b)
		w.u8(e.ID)
		w.u8(uint8(len(e.VendorID)))
		w.bytes(e.VendorID)
		w.u16(uint16(len(e.Data)))
		w.bytes(e.Data)
		w.zeros((4 - (len(w.b)-start)%4) % 4)
	}
	return w.b
}

// ParseOpaqueData parses opaque data in the table the connection uses. It
// consumes b exactly: TotalElements elements, each padded with zeros to 4
// bytes, and nothing after them.
func ParseOpaqueData(spdmVersion Version, format uint8, b []byte) ([]OpaqueElement, error) {
	r := newReader("OpaqueData", b)
	if len(b) > MaxOpaqueSize {
		r.fail("", "%d bytes exceeds %d", len(b), MaxOpaqueSize)
	}
	var n int
	if generalOpaque(spdmVersion, format) {
		n = int(r.u8("TotalElements"))
		r.zero("Reserved", 3)
	} else {
		if id := r.u32("SpecID"); r.err == nil && id != dsp0277SpecID {
			r.fail("SpecID", "0x%08x, want 0x%08x (DMTF)", id, dsp0277SpecID)
		}
		if v := r.u8("OpaqueVersion"); r.err == nil && v != dsp0277OpaqueVersion {
			r.fail("OpaqueVersion", "%d, want %d", v, dsp0277OpaqueVersion)
		}
		n = int(r.u8("TotalElements"))
		r.zero("Reserved", 2)
	}
	if r.err == nil && n == 0 {
		r.fail("TotalElements", "is 0")
	}
	var out []OpaqueElement
	for i := 0; i < n && r.err == nil; i++ {
		f := fmt.Sprintf("OpaqueElement[%d]", i)
		start := r.off
		e := OpaqueElement{ID: r.u8(f + ".ID")}
		vlen := int(r.u8(f + ".VendorLen"))
		if r.err == nil && !registryVendorIDLenOK(uint16(e.ID), vlen) {
			r.fail(f+".ID", "registry %d with a %d-byte vendor ID", e.ID, vlen)
		}
		e.VendorID = r.bytes(f+".VendorID", vlen)
		e.Data = r.bytes(f+".OpaqueElementData", int(r.u16(f+".OpaqueElementDataLen")))
		r.zero(f+".AlignPadding", (4-(r.off-start)%4)%4)
		out = append(out, e)
	}
	if r.err == nil && r.off != len(b) {
		r.fail("", "%d bytes after %d elements", len(b)-r.off, n)
	}
	if _, err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}

// EncodeSupportedVersions is the requester's opaque data for KEY_EXCHANGE
// or PSK_EXCHANGE: one SupportedVersion element listing the DSP0277
// versions it speaks (at most 255), as libspdm builds it.
func EncodeSupportedVersions(spdmVersion Version, format uint8, versions []uint16) []byte {
	w := &writer{}
	w.u8(SMDataVersion)
	w.u8(SMDataIDSupported)
	w.u8(uint8(len(versions)))
	for _, v := range versions {
		w.u16(v)
	}
	return MarshalOpaqueData(spdmVersion, format, []OpaqueElement{{ID: RegistryDMTF, Data: w.b}})
}

// DecodeSupportedVersions finds the one SupportedVersion element in opaque
// data and returns its versions.
func DecodeSupportedVersions(spdmVersion Version, format uint8, b []byte) ([]uint16, error) {
	data, err := findSMElement(spdmVersion, format, b, SMDataIDSupported, "SupportedVersion")
	if err != nil {
		return nil, err
	}
	r := newReader("OpaqueData", data)
	r.off = 2
	n := int(r.u8("SupportedVersion.VersionCount"))
	if r.err == nil && n == 0 {
		r.fail("SupportedVersion.VersionCount", "is 0")
	}
	var out []uint16
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.u16("SupportedVersion.VersionsList"))
	}
	if r.err == nil && r.off != len(data) {
		r.fail("SupportedVersion", "%d bytes after %d versions", len(data)-r.off, n)
	}
	if _, err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}

// EncodeVersionSelection is the responder's opaque data for
// KEY_EXCHANGE_RSP or PSK_EXCHANGE_RSP: one VersionSelection element.
func EncodeVersionSelection(spdmVersion Version, format uint8, version uint16) []byte {
	w := &writer{}
	w.u8(SMDataVersion)
	w.u8(SMDataIDVersionSelect)
	w.u16(version)
	return MarshalOpaqueData(spdmVersion, format, []OpaqueElement{{ID: RegistryDMTF, Data: w.b}})
}

// DecodeVersionSelection finds the one VersionSelection element in opaque
// data and returns the selected DSP0277 version.
func DecodeVersionSelection(spdmVersion Version, format uint8, b []byte) (uint16, error) {
	data, err := findSMElement(spdmVersion, format, b, SMDataIDVersionSelect, "VersionSelection")
	if err != nil {
		return 0, err
	}
	if len(data) != 4 {
		return 0, decodeErr("OpaqueData", "VersionSelection", "element data of %d bytes, want 4", len(data))
	}
	return uint16(data[2]) | uint16(data[3])<<8, nil
}

// findSMElement returns the data of the one DSP0277 element with SMDataID
// id. Elements of other registries, or of other SMDataIDs or
// SMDataVersions, are skipped; two elements with the same id are refused.
func findSMElement(spdmVersion Version, format uint8, b []byte, id uint8, name string) ([]byte, error) {
	elems, err := ParseOpaqueData(spdmVersion, format, b)
	if err != nil {
		return nil, err
	}
	var found []byte
	for _, e := range elems {
		if e.ID != RegistryDMTF || len(e.VendorID) != 0 || len(e.Data) < 2 || e.Data[0] != SMDataVersion || e.Data[1] != id {
			continue
		}
		if found != nil {
			return nil, decodeErr("OpaqueData", name, "element repeated")
		}
		found = e.Data
	}
	if found == nil {
		return nil, decodeErr("OpaqueData", name, "no such element")
	}
	return found, nil
}
