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
//   - anything else (spdm-emu's out-of-band commands such as 0x8001,
//     start an encapsulated KEY_UPDATE, included): answered with an UNKNOWN
//     frame with no payload, in the request's transport type, as spdm-emu's
//     own responder answers a command it does not know. libspdm's requester
//     reads the reply to an out-of-band command into a zero-length buffer:
//     a reason text there would fail its read and leave the rest of the
//     frame in the stream. The reason goes to the log instead.
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
	// ExchangeTimeout bounds one exchange through the Mailbox (default
	// 2 s), all of it: a register Driver behind the server lets the
	// device use the whole bound (FollowDeadline) instead of PCIe's 1 s
	// per object, so a server's bound is the one that counts.
	ExchangeTimeout time.Duration
	// IdleTimeout bounds the wait for a client's next frame (default 10 min).
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response (default 10 s).
	WriteTimeout time.Duration
	// Audited says that the Connect hook and the Mailboxes it returns
	// audit every refusal themselves (the host shim does, once per event
	// and rate-bounded per guest): the server then logs refusals at Debug
	// only, so that a flooding client cannot double the log.
	Audited bool
	// Commands serves out-of-band socket commands beside NORMAL (spdm-emu's
	// CommandOOBEncapKeyUpdate); nil serves none.
	Commands map[uint32]CommandHandler

	acc acceptor
}

// ErrUnknownCommand: a frame whose command the server does not know.
var ErrUnknownCommand = errors.New("doe: unknown socket command")

// ErrWrongTransport: a NORMAL frame on a transport other than PCI_DOE.
var ErrWrongTransport = errors.New("doe: transport type not served")

// FrameGuard is optionally implemented by the Mailbox a Connect hook
// returns, so that frames the server answers without an exchange still
// pass through the connection's limits and audit:
//
//   - a TEST frame, with err nil;
//   - a frame the server refuses, with the reason: a NORMAL frame on
//     another transport (ErrWrongTransport) or with a malformed object
//     (ErrMalformed), an unknown command (ErrUnknownCommand), or a frame
//     that could not be read (then the connection ends whatever the
//     guard says).
//
// GuardFrame returns what to tell the client: nil answers a TEST as
// usual; an error is sent in an UNKNOWN frame (err itself, or a refusal
// of the guard's own such as a rate limit).
type FrameGuard interface {
	GuardFrame(f Frame, err error) error
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

	// warn logs a refusal, at Debug when the Connect hook audits.
	warn := log.Warn
	if s.Audited {
		warn = log.Debug
	}
	mb := s.Mailbox
	if s.Connect != nil {
		m, release, err := s.Connect(ctx, conn)
		if err != nil {
			warn("connection refused", "err", err)
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
	guard, _ := mb.(FrameGuard)
	// refused passes a refusal through the guard, if any, and returns
	// the reason the client gets.
	refused := func(f Frame, err error) error {
		if guard != nil {
			if gerr := guard.GuardFrame(f, err); gerr != nil {
				return gerr
			}
		}
		return err
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
			switch {
			case errors.Is(err, io.EOF):
				log.Debug("connection closed by client", "objects", objects)
			case ctx.Err() != nil:
				log.Debug("connection ended by server shutdown", "objects", objects)
			default:
				if guard != nil {
					_ = guard.GuardFrame(Frame{}, err)
				}
				warn("connection dropped: bad or incomplete frame", "err", err, "objects", objects)
				if errors.Is(err, ErrTooLarge) {
					s.reply(conn, Frame{Command: CommandUnknown, Transport: TransportPCIDOE, Payload: []byte(err.Error())})
				}
			}
			return
		}
		if h := s.Commands[f.Command]; h != nil { // doe/oob.go
			if err := h(ctx, f.Transport, f.Payload); err != nil {
				warn("out-of-band command failed", "command", fmt.Sprintf("0x%04x", f.Command), "err", err)
			}
			if !s.reply(conn, Frame{Command: f.Command, Transport: f.Transport}) {
				return
			}
			continue
		}
		var reply Frame
		switch f.Command {
		case CommandNormal:
			objects++
			reply = s.handleNormal(ctx, warn, mb, f, refused)
		case CommandTest:
			reply = Frame{Command: CommandTest, Transport: f.Transport, Payload: []byte("Server Hello!\x00")}
			if guard != nil {
				if err := guard.GuardFrame(f, nil); err != nil {
					reply = Frame{Command: CommandUnknown, Transport: f.Transport, Payload: []byte(err.Error())}
				}
			}
		case CommandShutdown, CommandContinue:
			s.reply(conn, Frame{Command: f.Command, Transport: f.Transport})
			log.Debug("connection ended by client", "command", CommandName(f.Command), "objects", objects)
			return
		default:
			err := refused(f, fmt.Errorf("%w %s", ErrUnknownCommand, CommandName(f.Command)))
			warn("unknown socket command answered with an empty UNKNOWN", "command", CommandName(f.Command), "err", err)
			reply = Frame{Command: CommandUnknown, Transport: f.Transport}
		}
		if !s.reply(conn, reply) {
			return
		}
	}
}

// handleNormal turns one NORMAL frame into its reply frame. refused
// passes the server's own refusals through the connection's FrameGuard.
func (s *Server) handleNormal(ctx context.Context, warn func(string, ...any), mb Mailbox, f Frame, refused func(Frame, error) error) Frame {
	refuse := func(err error) Frame {
		warn("request refused", "err", err)
		return Frame{Command: CommandUnknown, Transport: f.Transport, Payload: []byte(err.Error())}
	}
	if f.Transport != TransportPCIDOE {
		return refuse(refused(f, fmt.Errorf("%w: %w: transport type %d is not served here; use PCI_DOE (2)", ErrMalformed, ErrWrongTransport, f.Transport)))
	}
	req, err := Decode(f.Payload)
	if err != nil {
		return refuse(refused(f, fmt.Errorf("request object: %w", err)))
	}
	ectx, cancel := context.WithTimeout(ctx, withDefault(s.ExchangeTimeout, 2*time.Second))
	defer cancel()
	resp, err := mb.Exchange(FollowDeadline(ectx), req)
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
