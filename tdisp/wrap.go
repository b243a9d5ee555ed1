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

// UnwrapRequest takes the message out of a whole VENDOR_DEFINED_REQUEST
// (no bytes may follow it). An error wrapping ErrNotTDISP means the message
// is valid but for someone else.
func UnwrapRequest(msg []byte) (secchan.Version, []byte, error) { return unwrap(msg, false) }

// UnwrapResponse takes the message out of a whole VENDOR_DEFINED_RESPONSE.
func UnwrapResponse(msg []byte) (secchan.Version, []byte, error) { return unwrap(msg, true) }

func unwrap(msg []byte, response bool) (secchan.Version, []byte, error) {
	v, body, err := secchan.UnwrapPCI(msg, secchan.PCIProtocolTDISP, response)
	switch {
	case errors.Is(err, secchan.ErrOtherPCIProtocol):
		return 0, nil, fmt.Errorf("%w: %w", ErrNotTDISP, err)
	case errors.Is(err, secchan.ErrTrailing):
		return 0, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return v, body, err
}
