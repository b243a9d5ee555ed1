package secchan

import (
	"errors"
	"fmt"
)

// ErrOtherPCIProtocol is matched by UnwrapPCI's error for a valid
// VENDOR_DEFINED message that is for another registry, vendor or
// PCI-SIG protocol than the one asked for.
var ErrOtherPCIProtocol = errors.New("spdm: vendor-defined message for another registry, vendor or protocol")

// ErrTrailing is matched by UnwrapPCI's error for bytes after the
// message.
var ErrTrailing = errors.New("spdm: bytes after the vendor-defined message")

// UnwrapPCI takes the body of PCI-SIG protocol out of a whole
// VENDOR_DEFINED_REQUEST (response false) or VENDOR_DEFINED_RESPONSE
// (response true), with nothing after it, and returns the message's SPDM
// version. IDE_KM and TDISP share it.
func UnwrapPCI(msg []byte, protocol uint8, response bool) (Version, []byte, error) {
	var m interface {
		Decode(b []byte) (int, error)
		PCI() (PCIPayload, error)
	}
	name := "VENDOR_DEFINED_REQUEST"
	if response {
		m, name = &VendorDefinedResponse{}, "VENDOR_DEFINED_RESPONSE"
	} else {
		m = &VendorDefinedRequest{}
	}
	n, err := m.Decode(msg)
	if err != nil {
		return 0, nil, err
	}
	if n != len(msg) {
		return 0, nil, fmt.Errorf("%w: %d bytes after %s", ErrTrailing, len(msg)-n, name)
	}
	p, err := m.PCI()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrOtherPCIProtocol, err)
	}
	if p.VendorID != VendorIDPCISIG || p.Protocol != protocol {
		return 0, nil, fmt.Errorf("%w: %v", ErrOtherPCIProtocol, p)
	}
	return Version(msg[0]), p.Body, nil
}
