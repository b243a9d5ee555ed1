package doe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// DefaultSocketTimeout bounds one socket exchange when the caller's context
// has no deadline. It is longer than a DOE object's 1 s because a shim in
// between may first wait for the mailbox.
const DefaultSocketTimeout = 10 * time.Second

// SocketClient is a Mailbox that reaches a DOE mailbox through the socket
// framing: a shim, devsim, libspdm's spdm_responder_emu or QEMU's
// spdm-socket. One exchange is in flight at a time. After a transport
// failure the framing may be out of step, so the client refuses further
// exchanges and the caller dials again.
type SocketClient struct {
	conn net.Conn
	lock chan struct{}

	mu sync.Mutex
	// broken is set once the stream can no longer be trusted to be in step.
	broken error
	// MaxPayload bounds a response frame's payload.
	MaxPayload int
	// Timeout bounds one exchange when ctx has no deadline.
	Timeout time.Duration
}

// Dial connects to a socket-framing peer at addr (ParseAddr syntax).
func Dial(ctx context.Context, addr string) (*SocketClient, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultSocketTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("doe: connecting to %s: %w", addr, err)
	}
	return NewSocketClient(conn), nil
}

// NewSocketClient wraps an established connection.
func NewSocketClient(conn net.Conn) *SocketClient {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true) // one frame per write; never wait for Nagle
	}
	return &SocketClient{conn: conn, lock: make(chan struct{}, 1), MaxPayload: MaxFramePayload, Timeout: DefaultSocketTimeout}
}

// Exchange sends req in a NORMAL frame over PCI_DOE transport and returns
// the response object. A refusal from the peer (an UNKNOWN frame) comes
// back as a *RemoteError carrying the peer's reason.
func (c *SocketClient) Exchange(ctx context.Context, req Object) (Object, error) {
	payload, err := req.Encode()
	if err != nil {
		return Object{}, err
	}
	resp, err := c.roundTrip(ctx, Frame{Command: CommandNormal, Transport: TransportPCIDOE, Payload: payload})
	if err != nil {
		return Object{}, err
	}
	switch resp.Command {
	case CommandNormal:
	case CommandUnknown:
		return Object{}, &RemoteError{Reason: sanitizeReason(resp.Payload)}
	default:
		err := fmt.Errorf("%w: peer answered a NORMAL frame with %s", ErrMalformed, CommandName(resp.Command))
		c.fail(err)
		return Object{}, err
	}
	if resp.Transport != TransportPCIDOE {
		return Object{}, fmt.Errorf("%w: response frame has transport type %d, want PCI_DOE (2)", ErrMalformed, resp.Transport)
	}
	obj, err := Decode(resp.Payload)
	if err != nil {
		return Object{}, fmt.Errorf("response object: %w", err)
	}
	if err := CheckResponse(req, obj); err != nil {
		return Object{}, err
	}
	return obj, nil
}

// Ping sends a TEST frame, as spdm-emu's requester does on connecting, and
// expects TEST back.
func (c *SocketClient) Ping(ctx context.Context) error {
	resp, err := c.roundTrip(ctx, Frame{Command: CommandTest, Transport: TransportPCIDOE, Payload: []byte("Client Hello!\x00")})
	if err != nil {
		return err
	}
	if resp.Command != CommandTest {
		return fmt.Errorf("%w: peer answered TEST with %s", ErrMalformed, CommandName(resp.Command))
	}
	return nil
}

// Close sends SHUTDOWN (ending this client's session with the peer), waits
// briefly for the acknowledgement and closes the connection.
func (c *SocketClient) Close() error { return c.closeWith(CommandShutdown) }

// Release ends this client's session with CONTINUE and closes the
// connection. Unlike SHUTDOWN, CONTINUE leaves an spdm-emu responder
// serving its next client.
func (c *SocketClient) Release() error { return c.closeWith(CommandContinue) }

func (c *SocketClient) closeWith(cmd uint32) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = c.roundTrip(ctx, Frame{Command: cmd, Transport: TransportPCIDOE})
	c.fail(ErrClosed)
	return nil
}

// fail records the first reason the connection became unusable and closes it.
func (c *SocketClient) fail(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	c.mu.Unlock()
	_ = c.conn.Close()
}

func (c *SocketClient) brokenErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// roundTrip writes one frame and reads one frame back, with deadlines from
// ctx (or Timeout) and cancellation through the connection deadline.
func (c *SocketClient) roundTrip(ctx context.Context, f Frame) (Frame, error) {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return Frame{}, fmt.Errorf("%w: waiting for the connection: %w", ErrTimeout, ctx.Err())
	}
	defer func() { <-c.lock }()
	if broken := c.brokenErr(); broken != nil {
		if errors.Is(broken, ErrClosed) {
			return Frame{}, ErrClosed
		}
		return Frame{}, fmt.Errorf("%w: connection unusable after an earlier failure: %w", ErrClosed, broken)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.Timeout)
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.fail(err)
		return Frame{}, fmt.Errorf("doe: setting deadline: %w", err)
	}
	// Cancellation reaches a blocked read or write through the deadline.
	// If the cancellation fires at all, wait for it to finish before
	// returning, so it cannot land on the next exchange's deadline.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
			_ = c.conn.SetDeadline(time.Time{})
		}
	}()

	if err := WriteFrame(c.conn, f); err != nil {
		err = transportError("sending "+CommandName(f.Command), ctx, err)
		c.fail(err)
		return Frame{}, err
	}
	resp, err := ReadFrame(c.conn, c.MaxPayload)
	if err != nil {
		err = transportError("reading the response", ctx, err)
		c.fail(err)
		return Frame{}, err
	}
	return resp, nil
}

// transportError classifies a connection failure: a deadline (ours or the
// caller's) is ErrTimeout, anything else is reported as it is.
func transportError(step string, ctx context.Context, err error) error {
	var ne net.Error
	if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, step, err)
	}
	return fmt.Errorf("doe: %s: %w", step, err)
}

// maxReasonLen bounds a peer's refusal text.
const maxReasonLen = 512

// sanitizeReason makes a peer's refusal text safe to print: printable
// ASCII only, bounded in length.
func sanitizeReason(b []byte) string {
	if len(b) > maxReasonLen {
		b = b[:maxReasonLen]
	}
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == 0:
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			sb.WriteByte('?')
		}
	}
	if sb.Len() == 0 {
		return "no reason given"
	}
	return sb.String()
}
