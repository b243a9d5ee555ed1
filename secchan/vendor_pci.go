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

// PCIProtocolCodec wraps one PCI-SIG protocol's messages (IDE_KM, TDISP)
// in VENDOR_DEFINED messages and takes them out again, reporting
// UnwrapPCI's errors as the protocol package's own: a message for
// another protocol as ErrOther, bytes after it as ErrMalformed (each
// wrapping secchan's error too).
type PCIProtocolCodec struct {
	Protocol     uint8
	ErrOther     error
	ErrMalformed error
}

// Wrap returns the whole VENDOR_DEFINED_REQUEST (or _RESPONSE) carrying body.
func (c PCIProtocolCodec) Wrap(v Version, body []byte, response bool) []byte {
	p := PCIPayload{VendorID: VendorIDPCISIG, Protocol: c.Protocol, Body: body}
	if response {
		return p.Response(v).Marshal()
	}
	return p.Request(v).Marshal()
}

// Unwrap is UnwrapPCI for the codec's protocol, with its errors.
func (c PCIProtocolCodec) Unwrap(msg []byte, response bool) (Version, []byte, error) {
	v, body, err := UnwrapPCI(msg, c.Protocol, response)
	switch {
	case errors.Is(err, ErrOtherPCIProtocol):
		return 0, nil, fmt.Errorf("%w: %w", c.ErrOther, err)
	case errors.Is(err, ErrTrailing):
		return 0, nil, fmt.Errorf("%w: %w", c.ErrMalformed, err)
	}
	return v, body, err
}
