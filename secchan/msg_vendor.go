package secchan

// VENDOR_DEFINED_REQUEST/VENDOR_DEFINED_RESPONSE (DSP0274 §10.20) and the
// PCI-SIG vendor-defined payload that carries IDE_KM and TDISP (PCIe Base
// 6.x, CMA's SPDM vendor-defined messages: StandardID PCI-SIG, the PCI-SIG
// vendor ID, and a protocol ID as the first payload byte).
//
// Layout (spdm.h spdm_vendor_defined_request_msg_t): header (Param1 and
// Param2 reserved through 1.3), StandardID (2), Len (1), VendorID (Len),
// ReqLength/RespLength (2), payload. 1.4's large payloads (Param1 bit 7)
// are not implemented.

import "fmt"

// Registry (standards body) IDs: VENDOR_DEFINED StandardID and opaque
// element ID (DSP0274 Table "Registry or standards body ID"; spdm.h
// SPDM_REGISTRY_ID_*). Untyped: StandardID is 2 bytes, an element ID 1.
const (
	RegistryDMTF     = 0x0
	RegistryTCG      = 0x1
	RegistryUSB      = 0x2
	RegistryPCISIG   = 0x3
	RegistryIANA     = 0x4
	RegistryHDBaseT  = 0x5
	RegistryMIPI     = 0x6
	RegistryCXL      = 0x7
	RegistryJEDEC    = 0x8
	RegistryVESA     = 0x9
	RegistryIANACBOR = 0xA
	RegistryDMTFDSP  = 0xB
)

// registryVendorIDLenOK applies libspdm's rule for the VendorID length of
// each registry (libspdm_validate_svh_vendor_id_len); unknown registries
// are refused.
func registryVendorIDLenOK(id uint16, n int) bool {
	switch id {
	case RegistryDMTF, RegistryVESA:
		return n == 0
	case RegistryTCG, RegistryUSB, RegistryPCISIG, RegistryMIPI, RegistryCXL, RegistryJEDEC:
		return n == 0 || n == 2
	case RegistryIANA, RegistryHDBaseT:
		return n == 0 || n == 4
	case RegistryIANACBOR:
		// A CBOR tag number: one byte, or one byte and a 1, 2, 4 or 8-byte integer.
		return n == 1 || n == 2 || n == 3 || n == 5 || n == 9
	case RegistryDMTFDSP:
		return n == 2
	}
	return false
}

// PCI vendor IDs under the PCI-SIG registry, and their protocol IDs (the
// first payload byte).
const (
	VendorIDPCISIG uint16 = 0x0001 // PCI-SIG: PCIe IDE_KM, TDISP
	VendorIDCXL    uint16 = 0x1E98 // CXL Consortium: CXL IDE_KM, CXL TSP

	PCIProtocolIDEKM uint8 = 0x00 // under VendorIDPCISIG
	PCIProtocolTDISP uint8 = 0x01 // under VendorIDPCISIG
	CXLProtocolIDEKM uint8 = 0x00 // under VendorIDCXL
	CXLProtocolTSP   uint8 = 0x01 // under VendorIDCXL
)

// VendorDefinedRequest is VENDOR_DEFINED_REQUEST.
type VendorDefinedRequest struct {
	Version    Version
	StandardID uint16 // Registry*
	VendorID   []byte
	Payload    []byte // VendorDefinedReqPayload
}

func (m *VendorDefinedRequest) Marshal() []byte {
	return marshalVendor(m.Version, CodeVendorDefinedReq, m.StandardID, m.VendorID, m.Payload)
}

func (m *VendorDefinedRequest) Decode(b []byte) (n int, err error) {
	*m = VendorDefinedRequest{}
	m.Version, m.StandardID, m.VendorID, m.Payload, n, err = decodeVendor("VENDOR_DEFINED_REQUEST", CodeVendorDefinedReq, "ReqLength", b)
	return n, err
}

// PCI returns the PCI-SIG payload of the request.
func (m *VendorDefinedRequest) PCI() (PCIPayload, error) {
	return pciPayload("VENDOR_DEFINED_REQUEST", m.StandardID, m.VendorID, m.Payload)
}

// VendorDefinedResponse is VENDOR_DEFINED_RESPONSE.
type VendorDefinedResponse struct {
	Version    Version
	StandardID uint16
	VendorID   []byte
	Payload    []byte // VendorDefinedRespPayload
}

func (m *VendorDefinedResponse) Marshal() []byte {
	return marshalVendor(m.Version, CodeVendorDefinedRsp, m.StandardID, m.VendorID, m.Payload)
}

func (m *VendorDefinedResponse) Decode(b []byte) (n int, err error) {
	*m = VendorDefinedResponse{}
	m.Version, m.StandardID, m.VendorID, m.Payload, n, err = decodeVendor("VENDOR_DEFINED_RESPONSE", CodeVendorDefinedRsp, "RespLength", b)
	return n, err
}

// PCI returns the PCI-SIG payload of the response.
func (m *VendorDefinedResponse) PCI() (PCIPayload, error) {
	return pciPayload("VENDOR_DEFINED_RESPONSE", m.StandardID, m.VendorID, m.Payload)
}

func marshalVendor(v Version, code uint8, std uint16, vendorID, payload []byte) []byte {
	w := &writer{}
	w.header(v, code, 0, 0)
	w.u16(std)
	w.u8(uint8(len(vendorID)))
	w.bytes(vendorID)
	w.u16(uint16(len(payload)))
	w.bytes(payload)
	return w.b
}

func decodeVendor(name string, code uint8, lengthField string, b []byte) (v Version, std uint16, vendorID, payload []byte, n int, err error) {
	r := newReader(name, b)
	h := checkHeader(r, code, 0)
	checkSessionVersion(r, h.Version, V10)
	checkReservedParams(r, h)
	std = r.u16("StandardID")
	vlen := int(r.u8("Len"))
	if r.err == nil && !registryVendorIDLenOK(std, vlen) {
		r.fail("Len", "%d-byte vendor ID for registry %d", vlen, std)
	}
	vendorID = r.bytes("VendorID", vlen)
	payload = r.bytes("VendorDefinedPayload", int(r.u16(lengthField)))
	n, err = r.done()
	if err != nil {
		return 0, 0, nil, nil, 0, err
	}
	return h.Version, std, vendorID, payload, n, nil
}

// PCIPayload is a vendor-defined payload under the PCI-SIG registry: a
// 2-byte PCI vendor ID (little-endian) in VendorID, then the protocol ID
// and the protocol's message in the payload.
type PCIPayload struct {
	VendorID uint16 // VendorIDPCISIG or VendorIDCXL
	Protocol uint8  // PCIProtocol* or CXLProtocol*
	Body     []byte // the IDE_KM, TDISP, ... message
}

func (p PCIPayload) fields() (uint16, []byte, []byte) {
	return RegistryPCISIG, []byte{byte(p.VendorID), byte(p.VendorID >> 8)}, append([]byte{p.Protocol}, p.Body...)
}

// Request wraps the payload in a VENDOR_DEFINED_REQUEST.
func (p PCIPayload) Request(v Version) *VendorDefinedRequest {
	std, id, payload := p.fields()
	return &VendorDefinedRequest{Version: v, StandardID: std, VendorID: id, Payload: payload}
}

// Response wraps the payload in a VENDOR_DEFINED_RESPONSE.
func (p PCIPayload) Response(v Version) *VendorDefinedResponse {
	std, id, payload := p.fields()
	return &VendorDefinedResponse{Version: v, StandardID: std, VendorID: id, Payload: payload}
}

func pciPayload(name string, std uint16, vendorID, payload []byte) (PCIPayload, error) {
	switch {
	case std != RegistryPCISIG:
		return PCIPayload{}, decodeErr(name, "StandardID", "registry %d, want PCI-SIG (%d)", std, RegistryPCISIG)
	case len(vendorID) != 2:
		return PCIPayload{}, decodeErr(name, "VendorID", "%d bytes, want a 2-byte PCI vendor ID", len(vendorID))
	case len(payload) == 0:
		return PCIPayload{}, decodeErr(name, "VendorDefinedPayload", "empty, no protocol ID")
	}
	return PCIPayload{
		VendorID: uint16(vendorID[0]) | uint16(vendorID[1])<<8,
		Protocol: payload[0],
		Body:     append([]byte(nil), payload[1:]...),
	}, nil
}

func (p PCIPayload) String() string {
	return fmt.Sprintf("PCI vendor 0x%04x protocol %d, %d bytes", p.VendorID, p.Protocol, len(p.Body))
}
