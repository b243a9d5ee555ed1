// Package hostshim is the host-side shim: it serves a guest narrow,
// mediated access to one VF's DOE mailbox over the socket framing. The shim
// is untrusted by the guest and never parses SPDM; it defends the host
// against a hostile guest by forwarding only allowed DOE object types,
// bounding sizes and time, and never letting two clients interleave on one
// mailbox.
package hostshim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/devattest/devattest/doe"
)

// ErrNotAllowed: the guest sent a DOE object type the shim does not forward.
var ErrNotAllowed = errors.New("hostshim: DOE object type not allowed")

// ErrMailboxHeld: another connection held the VF's mailbox for longer than
// the configured wait.
var ErrMailboxHeld = errors.New("hostshim: mailbox held by another connection")

// DefaultAllowed is the default protocol allowlist: discovery, CMA/SPDM
// and secured CMA/SPDM.
var DefaultAllowed = []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA}

// Mediator guards one VF's mailbox. One connection at a time holds it, for
// the life of that connection: an SPDM connection's state lives in the
// device, and another requester's GET_VERSION would reset it. Within the
// holding connection exchanges pass one at a time through the checks.
type Mediator struct {
	vf      string
	backend doe.Mailbox
	allowed map[doe.Protocol]bool
	maxSize int
	waitFor time.Duration
	log     *slog.Logger
	claim   chan struct{}
	holder  chan string // the current holder's name, for busy errors
}

// Options configures a Mediator.
type Options struct {
	// VF names the device in logs and errors (a BDF, "devsim", ...).
	VF string
	// Allowed is the protocol allowlist (default DefaultAllowed).
	Allowed []doe.Protocol
	// MaxObjectSize bounds request objects in bytes (default 64 KiB).
	MaxObjectSize int
	// Wait bounds how long a connection waits for the mailbox (default 5 s).
	Wait time.Duration
	// Logger receives the audit log; nil discards.
	Logger *slog.Logger
}

// DefaultMaxObjectSize bounds guest requests. SPDM requests are small; the
// large objects (certificates, measurements) travel in responses.
const DefaultMaxObjectSize = 64 << 10

// NewMediator wraps backend with the shim's checks.
func NewMediator(backend doe.Mailbox, o Options) *Mediator {
	m := &Mediator{
		vf:      o.VF,
		backend: backend,
		allowed: make(map[doe.Protocol]bool),
		maxSize: o.MaxObjectSize,
		waitFor: o.Wait,
		log:     o.Logger,
		claim:   make(chan struct{}, 1),
		holder:  make(chan string, 1),
	}
	if m.maxSize <= 0 {
		m.maxSize = DefaultMaxObjectSize
	}
	if m.waitFor <= 0 {
		m.waitFor = 5 * time.Second
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	allowed := o.Allowed
	if allowed == nil {
		allowed = DefaultAllowed
	}
	for _, p := range allowed {
		m.allowed[p] = true
	}
	return m
}

// Connect is a doe.Server Connect hook: it waits for the VF's mailbox and
// returns a Mailbox bound to this connection, released when it ends.
func (m *Mediator) Connect(ctx context.Context, conn net.Conn) (doe.Mailbox, func(), error) {
	name := conn.RemoteAddr().String()
	if name == "" || name == "@" {
		name = "unix client"
	}
	wait, cancel := context.WithTimeout(ctx, m.waitFor)
	defer cancel()
	select {
	case m.claim <- struct{}{}:
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("hostshim: the shim is shutting down")
		}
		holder := "another connection"
		select {
		case h := <-m.holder:
			holder = h
			m.holder <- h
		default:
		}
		// The holder's identity goes to the audit log only: a guest learns
		// nothing about other clients of the host.
		m.log.Warn("connection refused: mailbox busy", "vf", m.vf, "client", name, "holder", holder)
		return nil, nil, fmt.Errorf("%w: the VF is in use by another connection; waited %v", ErrMailboxHeld, m.waitFor)
	}
	m.holder <- name
	m.log.Info("connection holds mailbox", "vf", m.vf, "client", name)
	release := func() {
		<-m.holder
		<-m.claim
		m.log.Info("connection released mailbox", "vf", m.vf, "client", name)
	}
	return doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		return m.exchange(ctx, name, req)
	}), release, nil
}

// exchange checks one request and passes it to the backend. The caller
// (doe.Server) sends one request at a time per connection, and only the
// holder reaches here, so exchanges never interleave on the mailbox.
func (m *Mediator) exchange(ctx context.Context, client string, req doe.Object) (doe.Object, error) {
	start := time.Now()
	log := m.log.With("vf", m.vf, "client", client, "vendor", req.Vendor, "type", req.Type, "request_bytes", req.Size())
	if !m.allowed[req.Protocol()] {
		log.Warn("exchange refused", "result", "not_allowed")
		return doe.Object{}, fmt.Errorf("%w: %v is not forwarded", ErrNotAllowed, req.Protocol())
	}
	if req.Size() > m.maxSize {
		log.Warn("exchange refused", "result", "too_large")
		return doe.Object{}, fmt.Errorf("%w: request of %d bytes exceeds the shim's bound of %d", doe.ErrTooLarge, req.Size(), m.maxSize)
	}
	resp, err := m.backend.Exchange(ctx, req)
	d := time.Since(start)
	if err != nil {
		// The audit log keeps the backend's own words; the guest gets the
		// class of failure only, not host paths or addresses.
		log.Warn("exchange failed", "result", "error", "duration", d, "err", err)
		return doe.Object{}, guestError(err)
	}
	log.Info("exchange", "result", "ok", "response_bytes", resp.Size(), "duration", d)
	return resp, nil
}

// guestError reduces a backend failure to what the guest may learn: the
// DOE-level class of the failure.
func guestError(err error) error {
	for _, class := range []error{doe.ErrTimeout, doe.ErrBusy, doe.ErrDeviceError, doe.ErrAbortFailed, doe.ErrUnexpectedResponse, doe.ErrTooLarge, doe.ErrMalformed} {
		if errors.Is(err, class) {
			return fmt.Errorf("device exchange failed: %w", class)
		}
	}
	var remote *doe.RemoteError
	if errors.As(err, &remote) {
		return fmt.Errorf("device exchange failed: %w", doe.ErrRefused)
	}
	return errors.New("device exchange failed: the device is unreachable")
}
