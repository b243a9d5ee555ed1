package doe

// Out-of-band socket commands: spdm-emu's requester tells the responder
// emulator, beside the SPDM traffic, to start something of its own. The
// responder answers with the same command and an empty payload, then the
// requester goes on in SPDM (spdm-emu spdm_emu_common/command.h).

import (
	"context"
	"fmt"
)

// Out-of-band commands of spdm-emu.
const (
	// CommandOOBEncapKeyUpdate asks the responder to start an
	// encapsulated KEY_UPDATE in a session; the payload is the session ID
	// (4 bytes, little-endian, as spdm-emu sends it on x86) or empty (the
	// latest session). The requester then sends GET_ENCAPSULATED_REQUEST
	// in that session.
	CommandOOBEncapKeyUpdate uint32 = 0x8001
)

// CommandHandler serves one out-of-band command; its error is logged and
// the reply is the command with an empty payload all the same, as
// spdm-emu's responder does.
type CommandHandler func(ctx context.Context, transport uint32, payload []byte) error

// Command sends an out-of-band command with payload over the connection
// (transport PCI_DOE) and returns the payload of the reply, which must
// carry the same command.
func (c *SocketClient) Command(ctx context.Context, cmd uint32, payload []byte) ([]byte, error) {
	f, err := c.roundTrip(ctx, Frame{Command: cmd, Transport: TransportPCIDOE, Payload: payload})
	if err != nil {
		return nil, err
	}
	if f.Command != cmd {
		return nil, fmt.Errorf("%w: command 0x%04x answered with %s", ErrMalformed, cmd, CommandName(f.Command))
	}
	return f.Payload, nil
}
