package doe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// Server serves a Mailbox to socket-framing clients (our SocketClient,
// libspdm's spdm_requester_emu, QEMU's spdm-socket). Per connection, frames
// are handled one at a time:
//
//   - NORMAL over PCI_DOE: the payload is decoded as a DOE object and
//     exchanged through the Mailbox; the response goes back as NORMAL. A
//     request that cannot be served is answered with an UNKNOWN frame whose
//     payload is the reason as text, so the client learns what was wrong
//     and the stream stays in step.
//   - TEST: answered with TEST.
//   - SHUTDOWN and CONTINUE: acknowledged in kind, then that connection
//     ends; the server stays up for the next client. A client's SHUTDOWN is
//     never passed on to the device.
//   - anything else: answered with UNKNOWN.
type Server struct {
	// Mailbox answers the objects of every connection, unless Connect is set.
	Mailbox Mailbox
	// Connect, if set, is called for each new connection and returns the
	// Mailbox that serves it and a release function called when the
	// connection ends. The host shim uses it to bind a connection to a VF.
	Connect func(ctx context.Context, conn net.Conn) (Mailbox, func(), error)
	// Logger receives one line per connection event; nil discards.
	Logger *slog.Logger
	// MaxPayload bounds request frames (default MaxFramePayload).
	MaxPayload int
	// ExchangeTimeout bounds one exchange through the Mailbox (default 2 s).
	ExchangeTimeout time.Duration
	// IdleTimeout bounds the wait for a client's next frame (default 10 min).
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response (default 10 s).
	WriteTimeout time.Duration

	acc acceptor
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Serve accepts connections on ln until Close is called or ln fails.
func (s *Server) Serve(ln net.Listener) error {
	return s.acc.serve(ln, "server", s.ServeConn)
}

// Close stops accepting, ends every connection and waits for their
// handlers to return. An exchange in flight is cancelled through its
// context, which makes the driver abort and leave the mailbox idle.
func (s *Server) Close() error {
	s.acc.close()
	return nil
}

func withDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ServeConn serves one connection until the client ends it, an I/O error
// or timeout occurs, or ctx is cancelled; it closes conn before returning.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	log := s.logger().With("remote", conn.RemoteAddr().String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	mb := s.Mailbox
	if s.Connect != nil {
		m, release, err := s.Connect(ctx, conn)
		if err != nil {
			log.Warn("connection refused", "err", err)
			s.reply(conn, Frame{Command: CommandUnknown, Transport: TransportPCIDOE, Payload: []byte(err.Error())})
			return
		}
		if release != nil {
			defer release()
		}
		mb = m
	}
	if mb == nil {
		log.Error("server has no mailbox to serve")
		return
	}
	maxPayload := s.MaxPayload
	if maxPayload <= 0 {
		maxPayload = MaxFramePayload
	}
	log.Debug("connection opened")
	var objects int
	for ctx.Err() == nil {
		if err := conn.SetReadDeadline(time.Now().Add(withDefault(s.IdleTimeout, 10*time.Minute))); err != nil {
			return
		}
		f, err := ReadFrame(conn, maxPayload)
		if err != nil {
			if errors.Is(err, io.EOF) {
				log.Debug("connection closed by client", "objects", objects)
			} else if ctx.Err() != nil {
				log.Debug("connection ended by server shutdown", "objects", objects)
			} else {
				log.Warn("connection dropped: bad or incomplete frame", "err", err, "objects", objects)
				if errors.Is(err, ErrTooLarge) {
					s.reply(conn, Frame{Command: CommandUnknown, Transport: TransportPCIDOE, Payload: []byte(err.Error())})
				}
			}
			return
		}
		switch f.Command {
		case CommandNormal:
			objects++
			if !s.reply(conn, s.handleNormal(ctx, log, mb, f)) {
				return
			}
		case CommandTest:
			if !s.reply(conn, Frame{Command: CommandTest, Transport: f.Transport, Payload: []byte("Server Hello!\x00")}) {
				return
			}
		case CommandShutdown, CommandContinue:
			s.reply(conn, Frame{Command: f.Command, Transport: f.Transport})
			log.Debug("connection ended by client", "command", CommandName(f.Command), "objects", objects)
			return
		default:
			log.Warn("unknown socket command", "command", CommandName(f.Command))
			reason := fmt.Sprintf("unknown socket command %s", CommandName(f.Command))
			if !s.reply(conn, Frame{Command: CommandUnknown, Transport: f.Transport, Payload: []byte(reason)}) {
				return
			}
		}
	}
}

// handleNormal turns one NORMAL frame into its reply frame.
func (s *Server) handleNormal(ctx context.Context, log *slog.Logger, mb Mailbox, f Frame) Frame {
	refuse := func(err error) Frame {
		log.Warn("request refused", "err", err)
		return Frame{Command: CommandUnknown, Transport: f.Transport, Payload: []byte(err.Error())}
	}
	if f.Transport != TransportPCIDOE {
		return refuse(fmt.Errorf("%w: transport type %d is not served here; use PCI_DOE (2)", ErrMalformed, f.Transport))
	}
	req, err := Decode(f.Payload)
	if err != nil {
		return refuse(fmt.Errorf("request object: %w", err))
	}
	ectx, cancel := context.WithTimeout(ctx, withDefault(s.ExchangeTimeout, 2*time.Second))
	defer cancel()
	resp, err := mb.Exchange(ectx, req)
	if err != nil {
		return refuse(err)
	}
	payload, err := resp.Encode()
	if err != nil {
		return refuse(fmt.Errorf("response object: %w", err))
	}
	return Frame{Command: CommandNormal, Transport: TransportPCIDOE, Payload: payload}
}

// reply writes f with a write deadline; false means the connection is gone.
// A reply to a request that was cancelled is still sent (the client is
// owed an answer), then ServeConn's loop sees the cancellation and ends.
func (s *Server) reply(conn net.Conn, f Frame) bool {
	if err := conn.SetWriteDeadline(time.Now().Add(withDefault(s.WriteTimeout, 10*time.Second))); err != nil {
		return false
	}
	return WriteFrame(conn, f) == nil
}
