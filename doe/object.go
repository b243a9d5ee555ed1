// Package doe implements PCIe Data Object Exchange (PCIe Base 6.x §6.30):
// data objects, discovery, the Mailbox seam every other layer talks through,
// a register-level driver over a ConfigSpace, Linux sysfs config space, and
// the socket framing spoken by DMTF spdm-emu and QEMU's spdm-socket.
//
// This package knows nothing of SPDM: it moves opaque objects.
package doe

import (
	"encoding/binary"
	"fmt"
)

// Vendor IDs and data object types (PCIe Base 6.x §6.30.1; CMA types from
// the PCI-SIG CMA ECN, CXL's from CXL 2.0 §8.1.11).
const (
	VendorPCISIG uint16 = 0x0001
	VendorCXL    uint16 = 0x1E98

	TypeDiscovery   uint8 = 0 // DOE Discovery
	TypeCMA         uint8 = 1 // CMA/SPDM (plain SPDM messages)
	TypeSecuredCMA  uint8 = 2 // Secured CMA/SPDM (DSP0277 secured messages)
	TypeCXLTableAcc uint8 = 2 // CXL Table Access (CDAT), under VendorCXL
)

// Object size limits. The length field is 18 bits of DW count, where 0
// encodes 2^18 DW; the count includes the two header DWs.
const (
	HeaderSize    = 8
	MaxObjectDW   = 1 << 18
	MaxObjectSize = MaxObjectDW * 4            // 1 MiB including the header
	MaxPayload    = MaxObjectSize - HeaderSize // largest payload in bytes
)

// Protocol names one DOE protocol: a (vendor ID, data object type) pair.
type Protocol struct {
	Vendor uint16
	Type   uint8
}

var (
	ProtocolDiscovery  = Protocol{VendorPCISIG, TypeDiscovery}
	ProtocolCMA        = Protocol{VendorPCISIG, TypeCMA}
	ProtocolSecuredCMA = Protocol{VendorPCISIG, TypeSecuredCMA}
	ProtocolCDAT       = Protocol{VendorCXL, TypeCXLTableAcc}
)

// names are the names of protocols that packages above doe define
// (RegisterName), such as the simulated IDE link of package ide.
var names = map[Protocol]string{}

// RegisterName names a protocol defined outside doe. It is for package
// initialisation only (the map is not locked).
func RegisterName(p Protocol, name string) { names[p] = name }

// Name is a human name for well-known protocols, or "unknown protocol".
func (p Protocol) Name() string {
	if n, ok := names[p]; ok {
		return n
	}
	switch p {
	case ProtocolDiscovery:
		return "DOE Discovery"
	case ProtocolCMA:
		return "CMA/SPDM"
	case ProtocolSecuredCMA:
		return "Secured CMA/SPDM"
	case ProtocolCDAT:
		return "CXL Table Access"
	}
	return "unknown protocol"
}

func (p Protocol) String() string {
	return fmt.Sprintf("%04x:%02x (%s)", p.Vendor, p.Type, p.Name())
}

// Object is one DOE data object. Payload holds everything after the two
// header DWs; its length is always a multiple of 4 once the object has
// been through Encode or Decode (DOE moves whole DWs).
type Object struct {
	Vendor  uint16
	Type    uint8
	Payload []byte
}

// NewObject builds an object for protocol p, zero-padding payload to a DW
// boundary as DOE requires (DSP0239 / PCIe §6.30.1).
func NewObject(p Protocol, payload []byte) Object {
	padded := make([]byte, (len(payload)+3)&^3)
	copy(padded, payload)
	return Object{Vendor: p.Vendor, Type: p.Type, Payload: padded}
}

// Protocol returns the (vendor, type) pair of o.
func (o Object) Protocol() Protocol { return Protocol{o.Vendor, o.Type} }

// Size is the encoded size of o in bytes, header included.
func (o Object) Size() int { return HeaderSize + len(o.Payload) }

// DWCount is the number of DWs o occupies, header included.
func (o Object) DWCount() int { return o.Size() / 4 }

// Validate checks that o can go on the wire as it is.
func (o Object) Validate() error {
	if len(o.Payload)%4 != 0 {
		return fmt.Errorf("%w: payload of %d bytes is not a whole number of DWs", ErrMalformed, len(o.Payload))
	}
	if len(o.Payload) > MaxPayload {
		return fmt.Errorf("%w: payload of %d bytes exceeds the %d-byte DOE limit", ErrTooLarge, len(o.Payload), MaxPayload)
	}
	return nil
}

// header builds the two header DWs of o.
func (o Object) header() (dw0, dw1 uint32) {
	dw0 = uint32(o.Vendor) | uint32(o.Type)<<16
	n := uint32(o.DWCount())
	if n == MaxObjectDW {
		n = 0 // 0 encodes 2^18 DW
	}
	return dw0, n
}

// Encode returns the wire form of o (little-endian DWs, as config space
// presents them).
func (o Object) Encode() ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, o.Size())
	dw0, dw1 := o.header()
	binary.LittleEndian.PutUint32(b[0:], dw0)
	binary.LittleEndian.PutUint32(b[4:], dw1)
	copy(b[HeaderSize:], o.Payload)
	return b, nil
}

// DecodeHeader parses the two header DWs and returns the object's total
// length in DWs. It is shared by Decode and by the register-level driver,
// which learns the length before it has read the rest.
func DecodeHeader(dw0, dw1 uint32) (p Protocol, dwCount int, err error) {
	if dw0>>24 != 0 {
		return p, 0, fmt.Errorf("%w: header DW0 reserved bits 31:24 are 0x%02x", ErrMalformed, dw0>>24)
	}
	if dw1>>18 != 0 {
		return p, 0, fmt.Errorf("%w: header DW1 reserved bits 31:18 are 0x%04x", ErrMalformed, dw1>>18)
	}
	p = Protocol{Vendor: uint16(dw0), Type: uint8(dw0 >> 16)}
	n := int(dw1 & (MaxObjectDW - 1))
	if n == 0 {
		n = MaxObjectDW
	}
	if n < 2 {
		return p, 0, fmt.Errorf("%w: length field says %d DW, less than the 2-DW header", ErrMalformed, n)
	}
	return p, n, nil
}

// Decode parses one whole data object. The length field must match len(b)
// exactly: a short or over-long buffer is an error, never silently cut.
func Decode(b []byte) (Object, error) {
	if len(b) < HeaderSize {
		return Object{}, fmt.Errorf("%w: %d bytes is shorter than the 8-byte header", ErrMalformed, len(b))
	}
	if len(b) > MaxObjectSize {
		return Object{}, fmt.Errorf("%w: %d bytes exceeds the %d-byte DOE limit", ErrTooLarge, len(b), MaxObjectSize)
	}
	if len(b)%4 != 0 {
		return Object{}, fmt.Errorf("%w: %d bytes is not a whole number of DWs", ErrMalformed, len(b))
	}
	p, n, err := DecodeHeader(binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]))
	if err != nil {
		return Object{}, err
	}
	if n*4 != len(b) {
		return Object{}, fmt.Errorf("%w: length field says %d DW but %d DW were received", ErrMalformed, n, len(b)/4)
	}
	payload := make([]byte, len(b)-HeaderSize)
	copy(payload, b[HeaderSize:])
	return Object{Vendor: p.Vendor, Type: p.Type, Payload: payload}, nil
}
