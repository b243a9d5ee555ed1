package ide

// IDE_KM inside SPDM VENDOR_DEFINED_REQUEST/RESPONSE (DSP0274 §10.20):
// StandardID PCI-SIG (3), a 2-byte vendor ID 0x0001 (PCI-SIG), the
// payload length, then protocol ID 0 (IDE_KM) and the IDE_KM object.

import (
	"errors"
	"fmt"

	"github.com/devattest/devattest/secchan"
)

// ErrNotIDEKM is matched by the error for a vendor-defined message that
// is not PCI-SIG IDE_KM (another registry, vendor or protocol).
var ErrNotIDEKM = errors.New("ide: not a PCI-SIG IDE_KM vendor-defined message")

func payload(body []byte) secchan.PCIPayload {
	return secchan.PCIPayload{VendorID: secchan.VendorIDPCISIG, Protocol: secchan.PCIProtocolIDEKM, Body: body}
}

// WrapRequest returns the whole VENDOR_DEFINED_REQUEST carrying m.
func WrapRequest(v secchan.Version, m Message) []byte {
	return payload(m.Marshal()).Request(v).Marshal()
}

// WrapResponse returns the whole VENDOR_DEFINED_RESPONSE carrying m.
func WrapResponse(v secchan.Version, m Message) []byte {
	return payload(m.Marshal()).Response(v).Marshal()
}

// UnwrapRequest takes the IDE_KM object out of a whole
// VENDOR_DEFINED_REQUEST (no bytes may follow it). An error wrapping
// ErrNotIDEKM means the message is valid but for someone else.
func UnwrapRequest(msg []byte) (secchan.Version, []byte, error) {
	return unwrap(msg, &secchan.VendorDefinedRequest{}, "VENDOR_DEFINED_REQUEST")
}

// UnwrapResponse takes the IDE_KM object out of a whole
// VENDOR_DEFINED_RESPONSE.
func UnwrapResponse(msg []byte) (secchan.Version, []byte, error) {
	return unwrap(msg, &secchan.VendorDefinedResponse{}, "VENDOR_DEFINED_RESPONSE")
}

// vendorMessage is a VENDOR_DEFINED request or response.
type vendorMessage interface {
	Decode(b []byte) (int, error)
	PCI() (secchan.PCIPayload, error)
}

func unwrap(msg []byte, m vendorMessage, name string) (secchan.Version, []byte, error) {
	n, err := m.Decode(msg)
	if err != nil {
		return 0, nil, err
	}
	if n != len(msg) {
		return 0, nil, fmt.Errorf("%w: %d bytes after %s", ErrMalformed, len(msg)-n, name)
	}
	p, err := m.PCI()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrNotIDEKM, err)
	}
	if err := checkIDEKM(p); err != nil {
		return 0, nil, err
	}
	return secchan.Version(msg[0]), p.Body, nil // the decoded header's SPDMVersion
}

func checkIDEKM(p secchan.PCIPayload) error {
	if p.VendorID != secchan.VendorIDPCISIG || p.Protocol != secchan.PCIProtocolIDEKM {
		return fmt.Errorf("%w: %v", ErrNotIDEKM, p)
	}
	return nil
}
