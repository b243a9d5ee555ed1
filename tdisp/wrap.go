package tdisp

// TDISP inside SPDM VENDOR_DEFINED_REQUEST/RESPONSE (DSP0274 §10.20):
// StandardID PCI-SIG (3), a 2-byte vendor ID 0x0001 (PCI-SIG), the
// payload length, then protocol ID 1 (TDISP) and the TDISP message.

import (
	"errors"

	"github.com/devattest/devattest/secchan"
)

// ErrNotTDISP is matched by the error for a vendor-defined message that
// is not PCI-SIG TDISP (another registry, vendor or protocol).
var ErrNotTDISP = errors.New("tdisp: not a PCI-SIG TDISP vendor-defined message")

var codec = secchan.PCIProtocolCodec{Protocol: secchan.PCIProtocolTDISP, ErrOther: ErrNotTDISP, ErrMalformed: ErrMalformed}

// WrapRequest returns the whole VENDOR_DEFINED_REQUEST carrying m.
func WrapRequest(v secchan.Version, m Message) []byte {
	return codec.Wrap(v, m.Marshal(), false)
}

// WrapResponse returns the whole VENDOR_DEFINED_RESPONSE carrying m.
func WrapResponse(v secchan.Version, m Message) []byte {
	return codec.Wrap(v, m.Marshal(), true)
}

// UnwrapRequest takes the message out of a whole VENDOR_DEFINED_REQUEST
// (no bytes may follow it). An error wrapping ErrNotTDISP means the message
// is valid but for someone else.
func UnwrapRequest(msg []byte) (secchan.Version, []byte, error) { return codec.Unwrap(msg, false) }

// UnwrapResponse takes the message out of a whole VENDOR_DEFINED_RESPONSE.
func UnwrapResponse(msg []byte) (secchan.Version, []byte, error) { return codec.Unwrap(msg, true) }
