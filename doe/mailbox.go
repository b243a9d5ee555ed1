package doe

import (
	"context"
	"fmt"
)

// Mailbox exchanges one DOE data object for another. It is the seam of the
// whole system: the register-level driver, the socket client, the host
// shim and the emulated device all are or serve Mailboxes.
//
// Exchange must honour ctx's deadline and cancellation, and must leave the
// mailbox usable for the next call whether it succeeds or fails.
type Mailbox interface {
	Exchange(ctx context.Context, req Object) (Object, error)
}

// MailboxFunc adapts a function to the Mailbox interface.
type MailboxFunc func(ctx context.Context, req Object) (Object, error)

// Exchange calls f.
func (f MailboxFunc) Exchange(ctx context.Context, req Object) (Object, error) { return f(ctx, req) }

// CheckResponse verifies that resp answers req: a DOE response carries the
// same vendor ID and data object type as its request (PCIe §6.30.1).
func CheckResponse(req, resp Object) error {
	if req.Protocol() != resp.Protocol() {
		return fmt.Errorf("%w: request was %v, response is %v", ErrUnexpectedResponse, req.Protocol(), resp.Protocol())
	}
	return nil
}
