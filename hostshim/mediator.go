// Package hostshim is the host-side shim: it serves a guest narrow,
// mediated access to one VF's DOE mailbox over the socket framing. The shim
// is untrusted by the guest and never parses SPDM; it defends the host
// against a hostile guest by forwarding only allowed DOE object types,
// bounding sizes, rates and time, and never letting two clients
// interleave on one mailbox.
//
// The path of one guest request, and what guards each step:
//
//  1. doe.Server accepts a connection and calls Mediator.Connect.
//     Connect queues the connection for the VF (fifoLock: one holder,
//     waiters served in arrival order, each for at most Options.Wait)
//     and returns a Mailbox bound to the connection; the connection holds
//     the VF until it ends, because SPDM state lives in the device and
//     another requester's GET_VERSION would reset it.
//  2. Per request, the connection's Mailbox takes the connection's own
//     mutex (one exchange at a time), then checks the rate (token
//     bucket), the allowlist and the size, before anything reaches the
//     device.
//  3. The backend exchange runs under Options.ExchangeTimeout, which
//     bounds all of it (busy waiting, a slow device's answer, the aborts
//     after a failure), and is cancelled if the client disconnects
//     meanwhile (watchPeer); the DOE driver then aborts, so the mailbox is
//     idle for the next holder. Foreign activity the driver finds on the
//     mailbox is logged as its own event, not as the device's failure.
//  4. A DOE-level failure (timeout, busy, error bit, failed abort) is
//     followed by an explicit abort when the backend can, and counted;
//     MaxConsecutiveFailures in a row mark the VF wedged (Health, metric,
//     error log) until an exchange succeeds.
//  5. The connection's release waits for an exchange still in flight,
//     then hands the VF to the next waiter.
//
// Locks: fifoLock.mu guards the queue; conn.mu serialises one connection's
// exchanges; Mediator.mu guards the failure count and the closed flag and
// is never held across a backend call.
package hostshim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/devattest/devattest/doe"
)

// ErrNotAllowed: the guest sent a DOE object type the shim does not forward.
var ErrNotAllowed = errors.New("hostshim: DOE object type not allowed")

// ErrMailboxHeld: another connection held the VF's mailbox for longer than
// the configured wait.
var ErrMailboxHeld = errors.New("hostshim: mailbox held by another connection")

// ErrRateLimited: the connection sent exchanges faster than its rate.
var ErrRateLimited = errors.New("hostshim: exchange rate limit exceeded")

// ErrWedged: the VF's mailbox failed Options.MaxConsecutiveFailures
// exchanges in a row (Health reports it).
var ErrWedged = errors.New("hostshim: VF mailbox wedged")

// ErrShimClosed: the Mediator was closed and takes no connections.
var ErrShimClosed = errors.New("hostshim: VF no longer served")

// DefaultAllowed is the default protocol allowlist: discovery, CMA/SPDM
// and secured CMA/SPDM.
var DefaultAllowed = []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA}

// Defaults for Options fields left zero (DefaultWait and
// DefaultExchangeTimeout are shared with the configuration file).
const (
	// DefaultMaxObjectSize bounds guest requests. SPDM requests are small;
	// the large objects (certificates, measurements) travel in responses.
	DefaultMaxObjectSize = 64 << 10
	// DefaultMaxConsecutiveFailures is when a VF counts as wedged.
	DefaultMaxConsecutiveFailures = 3
)

// Options configures a Mediator.
type Options struct {
	// VF names the device in logs, metrics and errors (a BDF, "devsim", ...).
	VF string
	// Guest names the guest the VF is assigned to, for the audit log.
	Guest string
	// Allowed is the protocol allowlist (nil: DefaultAllowed).
	Allowed []doe.Protocol
	// MaxObjectSize bounds request objects in bytes, header included
	// (default DefaultMaxObjectSize).
	MaxObjectSize int
	// Wait bounds how long a connection waits for the mailbox (default
	// DefaultWait).
	Wait time.Duration
	// ExchangeTimeout bounds one backend exchange, the aborts after a
	// failure included (default DefaultExchangeTimeout); a DOE driver
	// lets the device use all of it, beyond PCIe's 1 s per object. The
	// doe.Server's own ExchangeTimeout, if shorter, applies too.
	ExchangeTimeout time.Duration
	// Rate is each connection's sustained exchanges per second; 0 means
	// unlimited.
	Rate float64
	// Burst is how many exchanges a connection may make at once before
	// Rate applies (default 1 when Rate is set).
	Burst int
	// MaxConsecutiveFailures DOE-level failures in a row mark the VF
	// wedged (default DefaultMaxConsecutiveFailures).
	MaxConsecutiveFailures int
	// Logger receives the audit log; nil discards.
	Logger *slog.Logger
	// Metrics, if set, counts exchanges, errors and state per VF.
	Metrics *Metrics
}

// aborter is a backend that can abort its mailbox (doe.Driver, and so
// SysfsBackend).
type aborter interface {
	Abort(ctx context.Context) error
}

// Mediator guards one VF's mailbox. One connection at a time holds it, for
// the life of that connection; within the holding connection exchanges
// pass one at a time through the checks.
type Mediator struct {
	vf, guest       string
	backend         doe.Mailbox
	allowed         map[doe.Protocol]bool
	maxSize         int
	waitFor         time.Duration
	exchangeTimeout time.Duration
	rate            float64
	burst           int
	maxFailures     int
	log             *slog.Logger
	metrics         vfMetrics
	lock            fifoLock

	mu       sync.Mutex
	closed   bool
	failures int   // consecutive DOE-level failures
	lastErr  error // the last of them, for Health
	wedged   bool
}

// NewMediator wraps backend with the shim's checks.
func NewMediator(backend doe.Mailbox, o Options) *Mediator {
	m := &Mediator{
		vf:              o.VF,
		guest:           o.Guest,
		backend:         backend,
		allowed:         make(map[doe.Protocol]bool),
		maxSize:         o.MaxObjectSize,
		waitFor:         o.Wait,
		exchangeTimeout: o.ExchangeTimeout,
		rate:            o.Rate,
		burst:           o.Burst,
		maxFailures:     o.MaxConsecutiveFailures,
		log:             o.Logger,
		metrics:         o.Metrics.forVF(o.VF),
	}
	if m.maxSize <= 0 {
		m.maxSize = DefaultMaxObjectSize
	}
	if m.waitFor <= 0 {
		m.waitFor = DefaultWait
	}
	if m.exchangeTimeout <= 0 {
		m.exchangeTimeout = DefaultExchangeTimeout
	}
	if m.maxFailures <= 0 {
		m.maxFailures = DefaultMaxConsecutiveFailures
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("vf", m.vf)
	if m.guest != "" {
		m.log = m.log.With("guest", m.guest)
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

// Connect is a doe.Server Connect hook: it waits, in arrival order, for
// the VF's mailbox and returns a Mailbox bound to this connection,
// released when it ends.
func (m *Mediator) Connect(ctx context.Context, conn net.Conn) (doe.Mailbox, func(), error) {
	name := clientName(conn)
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, nil, fmt.Errorf("%w: the shim is shutting down or was reconfigured", ErrShimClosed)
	}
	err := m.lock.acquire(ctx, name, m.waitFor, func(holder string, place int) {
		m.log.Info("connection waiting for mailbox", "client", name, "holder", holder, "place", place)
	})
	switch {
	case err == nil:
	case errors.Is(err, errLockClosed):
		return nil, nil, fmt.Errorf("%w: the shim is shutting down or was reconfigured", ErrShimClosed)
	case errors.Is(err, errWaitExpired):
		m.metrics.incBusy()
		// The holder's identity goes to the audit log only: a guest
		// learns nothing about other clients of the host.
		m.log.Warn("connection refused: mailbox busy", "client", name, "holder", m.lock.currentHolder(), "waited", m.waitFor)
		return nil, nil, fmt.Errorf("%w: the VF is in use by another connection; waited %v", ErrMailboxHeld, m.waitFor)
	default: // ctx ended: the server is shutting down
		return nil, nil, fmt.Errorf("%w: the shim is shutting down", ErrShimClosed)
	}
	c := &connection{m: m, conn: conn, name: name, opened: time.Now()}
	if m.rate > 0 {
		c.bucket = newTokenBucket(m.rate, m.burst, c.opened)
	}
	m.metrics.addConnections(1)
	m.log.Info("connection holds mailbox", "client", name)
	return c, c.release, nil
}

// clientName is how the audit log names a connection's peer.
func clientName(conn net.Conn) string {
	if a := conn.RemoteAddr(); a != nil {
		if s := a.String(); s != "" && s != "@" {
			return a.Network() + ":" + s
		}
		return a.Network() + " client"
	}
	return "client"
}

// Health reports nil while the VF's mailbox works, and an error wrapping
// ErrWedged, with the reason, after MaxConsecutiveFailures DOE-level
// failures in a row (until an exchange succeeds again).
func (m *Mediator) Health() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.wedged {
		return fmt.Errorf("%w: VF %s: %d consecutive exchanges failed; last: %v", ErrWedged, m.vf, m.failures, m.lastErr)
	}
	return nil
}

// Close refuses new connections and drops the waiting ones. A connection
// that holds the mailbox keeps it until it ends; the doe.Server closes
// its connections on its own Close.
func (m *Mediator) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.lock.close()
}

// connection is the Mailbox one holding connection exchanges through.
type connection struct {
	m      *Mediator
	conn   net.Conn
	name   string
	opened time.Time

	mu        sync.Mutex // one exchange at a time; guards the fields below
	bucket    *tokenBucket
	exchanges int
	released  bool
}

// release ends the connection's hold, after an exchange still in flight.
func (c *connection) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return
	}
	c.released = true
	c.m.metrics.addConnections(-1)
	c.m.log.Info("connection released mailbox", "client", c.name, "duration", time.Since(c.opened), "exchanges", c.exchanges)
	c.m.lock.release()
}

// Exchange checks one request and passes it to the backend. Only the
// holder of the VF has a connection, and it exchanges one object at a
// time, so exchanges never interleave on the mailbox.
func (c *connection) Exchange(ctx context.Context, req doe.Object) (doe.Object, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return doe.Object{}, fmt.Errorf("%w: the connection released the VF", doe.ErrClosed)
	}
	c.exchanges++
	m := c.m
	start := time.Now()
	log := m.log.With("client", c.name, "vendor", req.Vendor, "type", req.Type, "request_bytes", req.Size())
	refuse := func(kind string, err error) (doe.Object, error) {
		m.metrics.failure(kind, false, 0)
		log.Warn("exchange refused", "result", kind)
		return doe.Object{}, err
	}
	if c.bucket != nil && !c.bucket.allow(start) {
		return refuse(KindRateLimited, fmt.Errorf("%w: at most %g per second, bursts of %d", ErrRateLimited, m.rate, max(m.burst, 1)))
	}
	if !m.allowed[req.Protocol()] {
		return refuse(KindNotAllowed, fmt.Errorf("%w: %v is not forwarded", ErrNotAllowed, req.Protocol()))
	}
	if req.Size() > m.maxSize {
		return refuse(KindTooLarge, fmt.Errorf("%w: request of %d bytes exceeds the shim's bound of %d", doe.ErrTooLarge, req.Size(), m.maxSize))
	}

	// exchange_timeout bounds the whole exchange, the driver's busy
	// waiting, a slow device's answer and the aborts after a failure
	// included (FollowDeadline lets a device use more than PCIe's 1 s).
	deadline := start.Add(m.exchangeTimeout)
	ectx, cancel := context.WithDeadline(ctx, deadline)
	var left bool // the client disconnected mid-exchange
	stop := watchPeer(c.conn, func() { left = true; cancel() })
	resp, err := m.backend.Exchange(doe.FollowDeadline(ectx), req)
	stop() // after stop, left is no longer written
	cancel()
	d := time.Since(start)
	if err == nil {
		m.succeeded()
		m.metrics.success(d.Seconds())
		log.Info("exchange", "result", "ok", "response_bytes", resp.Size(), "duration", d)
		return resp, nil
	}
	kind := errorKind(err)
	m.metrics.failure(kind, true, d.Seconds())
	switch {
	case left:
		// Not the device's fault: no failure is counted. The driver has
		// aborted the exchange; the mailbox is idle for the next holder.
		log.Warn("exchange abandoned: client disconnected", "result", kind, "duration", d, "err", err)
	case ctx.Err() != nil:
		log.Warn("exchange abandoned: shim shutting down", "result", kind, "duration", d, "err", err)
	case kind == KindForeignActivity:
		// Someone else drove the VF's mailbox: most likely this guest,
		// through its VF's config space, past the shim. The driver has
		// aborted it away; the device did not fail.
		log.Warn("foreign activity on the mailbox", "result", kind, "duration", d, "err", err)
	default:
		// The audit log keeps the backend's own words; the guest gets the
		// class of failure only, not host paths or addresses.
		log.Warn("exchange failed", "result", kind, "duration", d, "err", err)
		if kind != KindBackend {
			m.recover(log, deadline)
			m.failed(err)
		}
	}
	return doe.Object{}, guestError(err)
}

// errorKind classifies a backend failure for metrics and the audit log.
// A failed abort is the most telling (the mailbox may be stuck), so it
// wins when the driver joined it to the failure that caused the abort.
func errorKind(err error) string {
	switch {
	case errors.Is(err, doe.ErrAbortFailed):
		return KindAbortFailed
	case errors.Is(err, doe.ErrForeignActivity):
		return KindForeignActivity
	case errors.Is(err, doe.ErrTimeout):
		return KindTimeout
	case errors.Is(err, doe.ErrDeviceError):
		return KindDeviceError
	case errors.Is(err, doe.ErrBusy):
		return KindBusy
	}
	return KindBackend
}

// recover aborts the mailbox after a DOE-level failure, if the backend
// can, so that the next exchange (or the next holder) starts from idle.
// It ends by the exchange's deadline: the driver has aborted already
// within it, and a failed abort is retried by the next exchange.
func (m *Mediator) recover(log *slog.Logger, deadline time.Time) {
	a, ok := m.backend.(aborter)
	if !ok || !time.Now().Before(deadline) {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	m.metrics.incAborts()
	if err := a.Abort(ctx); err != nil {
		log.Error("abort after a failed exchange did not complete", "err", err)
		return
	}
	log.Info("mailbox aborted after a failed exchange")
}

// failed counts a DOE-level failure.
func (m *Mediator) failed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures++
	m.lastErr = err
	if m.failures >= m.maxFailures && !m.wedged {
		m.wedged = true
		m.metrics.setWedged(true)
		m.log.Error("VF wedged", "consecutive_failures", m.failures, "err", err)
	}
}

// succeeded resets the failure count.
func (m *Mediator) succeeded() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures, m.lastErr = 0, nil
	if m.wedged {
		m.wedged = false
		m.metrics.setWedged(false)
		m.log.Info("VF recovered")
	}
}

// guestError reduces a backend failure to what the guest may learn: the
// DOE-level class of the failure.
func guestError(err error) error {
	for _, class := range []error{doe.ErrForeignActivity, doe.ErrTimeout, doe.ErrBusy, doe.ErrDeviceError, doe.ErrAbortFailed, doe.ErrUnexpectedResponse, doe.ErrTooLarge, doe.ErrMalformed} {
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
