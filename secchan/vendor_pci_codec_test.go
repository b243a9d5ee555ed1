package secchan_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/devattest/devattest/secchan"
)

// TestPCIProtocolCodec: a body round-trips in both directions; another
// protocol's message is the codec's ErrOther, trailing bytes its
// ErrMalformed, and both still match secchan's own errors.
func TestPCIProtocolCodec(t *testing.T) {
	errOther, errMalformed := errors.New("other"), errors.New("malformed")
	c := secchan.PCIProtocolCodec{Protocol: secchan.PCIProtocolTDISP, ErrOther: errOther, ErrMalformed: errMalformed}
	for _, response := range []bool{false, true} {
		msg := c.Wrap(secchan.V12, []byte{1, 2, 3}, response)
		v, body, err := c.Unwrap(msg, response)
		if err != nil || v != secchan.V12 || !bytes.Equal(body, []byte{1, 2, 3}) {
			t.Fatalf("response %v: %v %v %x", response, err, v, body)
		}
		if _, _, err := c.Unwrap(append(msg, 0), response); !errors.Is(err, errMalformed) || !errors.Is(err, secchan.ErrTrailing) {
			t.Fatalf("trailing byte: %v", err)
		}
		ide := secchan.PCIProtocolCodec{Protocol: secchan.PCIProtocolIDEKM}
		if _, _, err := c.Unwrap(ide.Wrap(secchan.V12, []byte{1}, response), response); !errors.Is(err, errOther) || !errors.Is(err, secchan.ErrOtherPCIProtocol) {
			t.Fatalf("IDE_KM message: %v", err)
		}
	}
}
