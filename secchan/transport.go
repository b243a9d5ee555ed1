package secchan

// The transport binding: SPDM messages in DOE data objects of type 1
// (CMA/SPDM) over any doe.Mailbox (the PCI-SIG CMA binding, with the DOE
// rules of PCIe Base 6.x §6.30). DOE moves whole DWs, so a message is
// zero-padded to a DW boundary on the wire; the padding belongs to the
// transport, not the message, and transcripts never include it.

import (
	"context"
	"fmt"

	"github.com/devattest/devattest/doe"
)

// Transport carries one SPDM request and returns the response bytes, which
// may still carry up to three bytes of transport padding.
type Transport interface {
	Exchange(ctx context.Context, req []byte) ([]byte, error)
}

// DOETransport sends plain SPDM messages as CMA/SPDM DOE objects.
type DOETransport struct {
	Mailbox doe.Mailbox
}

// Exchange implements Transport.
func (t *DOETransport) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	obj := doe.NewObject(doe.ProtocolCMA, req)
	resp, err := t.Mailbox.Exchange(ctx, obj)
	if err != nil {
		return nil, err
	}
	if resp.Protocol() != doe.ProtocolCMA {
		return nil, fmt.Errorf("%w: response is %v, want CMA/SPDM", ErrUnexpectedResponse, resp.Protocol())
	}
	return resp.Payload, nil
}

// decoder is a message decoder that reports how many bytes it consumed.
type decoder func(b []byte) (int, error)

// decodeExact runs dec over b and returns the message without transport
// padding. What follows the message must be DOE padding: fewer than four
// zero bytes completing a DW. Anything else is a malformed message, never
// silently ignored.
func decodeExact(msg string, b []byte, dec decoder) ([]byte, error) {
	n, err := dec(b)
	if err != nil {
		return nil, err
	}
	if err := checkPadding(msg, b, n); err != nil {
		return nil, err
	}
	return b[:n], nil
}

// checkPadding checks that b[n:] is valid DOE padding after an n-byte
// message: all zero, fewer than 4 bytes, and only as much as completes the
// last DW (none when b is not DW-aligned, as from a non-DOE transport).
func checkPadding(msg string, b []byte, n int) error {
	rest := b[n:]
	if len(rest) == 0 {
		return nil
	}
	if len(rest) >= 4 || len(b)%4 != 0 {
		return decodeErr(msg, "", "%d unexpected bytes after the message", len(rest))
	}
	for _, c := range rest {
		if c != 0 {
			return decodeErr(msg, "", "non-zero bytes after the message")
		}
	}
	return nil
}

// SecuredTransport carries DSP0277 secured records; a Transport that can
// carry sessions implements it too.
type SecuredTransport interface {
	ExchangeSecured(ctx context.Context, rec []byte) ([]byte, error)
}

// ExchangeSecured sends a secured record as a Secured CMA/SPDM DOE object.
func (t *DOETransport) ExchangeSecured(ctx context.Context, rec []byte) ([]byte, error) {
	resp, err := t.Mailbox.Exchange(ctx, doe.NewObject(doe.ProtocolSecuredCMA, rec))
	if err != nil {
		return nil, err
	}
	if resp.Protocol() != doe.ProtocolSecuredCMA {
		return nil, fmt.Errorf("%w: response is %v, want Secured CMA/SPDM", ErrUnexpectedResponse, resp.Protocol())
	}
	return resp.Payload, nil
}
