package tdisp

// TDISP inside SPDM VENDOR_DEFINED_REQUEST/RESPONSE (DSP0274 §10.20):
// StandardID PCI-SIG (3), a 2-byte vendor ID 0x0001 (PCI-SIG), the
// payload length, then protocol ID 1 (TDISP) and the TDISP message.

import (
	"errors"
	"fmt"

	"github.com/devattest/devattest/secchan"
)

// ErrNotTDISP is matched by the error for a vendor-defined message that
// is not PCI-SIG TDISP (another registry, vendor or protocol).
var ErrNotTDISP = errors.New("tdisp: not a PCI-SIG TDISP vendor-defined message")

func payload(body []byte) secchan.PCIPayload {
	return secchan.PCIPayload{VendorID: secchan.VendorIDPCISIG, Protocol: secchan.PCIProtocolTDISP, Body: body}
}

// WrapRequest returns the whole VENDOR_DEFINED_REQUEST carrying m.
func WrapRequest(v secchan.Version, m Message) []byte {
	return payload(m.Marshal()).Request(v).Marshal()
}

// WrapResponse returns the whole VENDOR_DEFINED_RESPONSE carrying m.
func WrapResponse(v secchan.Version, m Message) []byte {
	return payload(m.Marshal()).Response(v).Marshal()
}

// UnwrapRequest takes the TDISP message out of a whole
// VENDOR_DEFINED_REQUEST (no bytes may follow it). An error wrapping
// ErrNotTDISP means the message is valid but for someone else.
func UnwrapRequest(msg []byte) (secchan.Version, []byte, error) {
	return unwrap(msg, &secchan.VendorDefinedRequest{}, "VENDOR_DEFINED_REQUEST")
}

// UnwrapResponse takes the TDISP message out of a whole
// VENDOR_DEFINED_RESPONSE.
func UnwrapResponse(msg []byte) (secchan.Version, []byte, error) {
	return unwrap(msg, &secchan.VendorDefinedResponse{}, "VENDOR_DEFINED_RESPONSE")
}

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
		return 0, nil, fmt.Errorf("%w: %w", ErrNotTDISP, err)
	}
	if p.VendorID != secchan.VendorIDPCISIG || p.Protocol != secchan.PCIProtocolTDISP {
		return 0, nil, fmt.Errorf("%w: %v", ErrNotTDISP, p)
	}
	return secchan.Version(msg[0]), p.Body, nil
}
