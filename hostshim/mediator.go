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
//     A holder that has kept the VF for Options.MaxHold while another
//     connection waits loses it (after its exchange in flight).
//  2. Per request, the connection's Mailbox takes the connection's own
//     mutex (one exchange at a time), then checks the guest's rate (one
//     token bucket per Mediator, so reconnecting does not refill it), the
//     allowlist and the size, before anything reaches the device. Frames
//     the doe.Server answers itself (TEST, malformed, unknown commands)
//     pass through GuardFrame: they take tokens too and are audited.
//  3. The backend exchange runs under Options.ExchangeTimeout, which
//     bounds all of it (busy waiting, a slow device's answer, the aborts
//     after a failure), and is cancelled if the client disconnects
//     meanwhile (watchPeer); the DOE driver then aborts, so the mailbox is
//     idle for the next holder. Foreign activity the driver finds on the
//     mailbox is audited as its own event, not as the device's failure.
//  4. A DOE-level failure (timeout, busy, error bit, failed abort) is
//     followed by an explicit abort when the backend can. A DOE Error that
//     this abort clears is the guest's failure (its request made the
//     device refuse it) and leaves the VF healthy. The VF is wedged
//     (Health, metric, error log) when an abort fails, or after
//     MaxConsecutiveFailures timeouts or busy failures in a row (the
//     device stopped answering), until an exchange succeeds.
//  5. The connection's release waits for an exchange still in flight,
//     then hands the VF to the next waiter.
//
// Every event goes to the guest's audit log once (audit: bounded lines
// per second, repeated refusals summed up), with the guest and the VF.
//
// Locks: fifoLock.mu guards the queue; conn.mu serialises one connection's
// exchanges; Mediator.mu guards the failure count, the rate bucket, the
// holder and the closed flag and is never held across a backend call or
// while taking conn.mu.
package hostshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/devattest/devattest/doe"
)

// ErrNotAllowed: the guest sent a DOE object type the shim does not forward.
var ErrNotAllowed = errors.New("hostshim: DOE object type not allowed")

// ErrMailboxHeld: another connection held the VF's mailbox for longer than
// the configured wait.
var ErrMailboxHeld = errors.New("hostshim: mailbox held by another connection")

// ErrRateLimited: the guest sent exchanges faster than its rate.
var ErrRateLimited = errors.New("hostshim: exchange rate limit exceeded")

// ErrWedged: the VF's mailbox stopped answering (Options.MaxConsecutiveFailures
// timeouts in a row) or an abort failed (Health reports it).
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
	// DefaultMaxHold is how long one connection may keep the VF while
	// another waits.
	DefaultMaxHold = time.Minute
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
	// Rate is the guest's sustained frames per second (exchanges, TEST
	// and refused frames alike), over all its connections; 0 means
	// unlimited.
	Rate float64
	// Burst is how many frames the guest may send at once before Rate
	// applies (default 1 when Rate is set).
	Burst int
	// MaxHold bounds how long one connection keeps the VF while another
	// connection waits for it (default DefaultMaxHold); the holder then
	// loses it after its exchange in flight and is disconnected.
	MaxHold time.Duration
	// AuditLinesPerSecond bounds the guest's audit lines (default
	// DefaultAuditLinesPerSecond); see audit.
	AuditLinesPerSecond int
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
	maxHold         time.Duration
	maxFailures     int
	log             *slog.Logger
	audit           *audit
	metrics         vfMetrics
	lock            fifoLock

	mu         sync.Mutex
	closed     bool
	bucket     *tokenBucket // the guest's rate, shared by its connections
	holder     *connection
	failures   int    // consecutive failures of the VF (not the guest's)
	lastErr    error  // the last DOE-level failure, for Health
	wedgeCause string // why the VF is wedged ("" while it is not)
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
		maxHold:         o.MaxHold,
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
	if m.maxHold <= 0 {
		m.maxHold = DefaultMaxHold
	}
	if m.rate > 0 {
		m.bucket = newTokenBucket(m.rate, m.burst, time.Now())
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("vf", m.vf)
	if m.guest != "" {
		m.log = m.log.With("guest", m.guest)
	}
	m.audit = newAudit(m.log, m.metrics, o.AuditLinesPerSecond)
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
		m.audit.event(slog.LevelInfo, "connection waiting for mailbox", "client", name, "holder", holder, "place", place)
		m.armHoldLimit()
	})
	switch {
	case err == nil:
	case errors.Is(err, errLockClosed):
		return nil, nil, fmt.Errorf("%w: the shim is shutting down or was reconfigured", ErrShimClosed)
	case errors.Is(err, errWaitExpired):
		m.metrics.incBusy()
		// The holder's identity goes to the audit log only: a guest
		// learns nothing about other clients of the host.
		m.audit.refusal(kindMailboxHeld, "connection refused: mailbox busy", "client", name, "holder", m.lock.currentHolder(), "waited", m.waitFor)
		return nil, nil, fmt.Errorf("%w: the VF is in use by another connection; waited %v", ErrMailboxHeld, m.waitFor)
	default: // ctx ended: the server is shutting down
		return nil, nil, fmt.Errorf("%w: the shim is shutting down", ErrShimClosed)
	}
	c := &connection{m: m, conn: conn, name: name, opened: time.Now()}
	m.mu.Lock()
	m.holder = c
	m.mu.Unlock()
	m.metrics.addConnections(1)
	m.audit.event(slog.LevelInfo, "connection holds mailbox", "client", name)
	if m.lock.waiting() > 0 {
		m.armHoldLimit()
	}
	return c, c.release, nil
}

// kindMailboxHeld is the audit kind of a connection refused after its
// wait (devattest_shim_busy_total counts them).
const kindMailboxHeld = "mailbox_held"

// armHoldLimit makes the holder lose the VF once it has held it for
// maxHold, if a connection is still waiting then.
func (m *Mediator) armHoldLimit() {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.holder
	if c == nil || c.holdTimer != nil {
		return
	}
	c.holdTimer = time.AfterFunc(max(time.Until(c.opened.Add(m.maxHold)), 0), func() {
		m.mu.Lock()
		if m.holder != c {
			m.mu.Unlock()
			return
		}
		c.holdTimer = nil // the next waiter arms it again
		m.mu.Unlock()
		if m.lock.waiting() > 0 {
			c.preempt()
		}
	})
}

// clientName is how the audit log names a connection's peer: a unix
// peer by its process and user (SO_PEERCRED), others by address.
func clientName(conn net.Conn) string {
	if s, ok := unixPeerName(conn); ok {
		return s
	}
	if a := conn.RemoteAddr(); a != nil {
		if s := a.String(); s != "" && s != "@" {
			return a.Network() + ":" + s
		}
		return a.Network() + " client"
	}
	return "client"
}

// allow takes one of the guest's tokens for a frame.
func (m *Mediator) allow(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bucket == nil || m.bucket.allow(now)
}

func (m *Mediator) rateError() error {
	return fmt.Errorf("%w: at most %g per second, bursts of %d", ErrRateLimited, m.rate, max(m.burst, 1))
}

// Health reports nil while the VF's mailbox works, and an error wrapping
// ErrWedged with the cause while it is wedged (until an exchange
// succeeds again).
func (m *Mediator) Health() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.wedgeCause != "" {
		return fmt.Errorf("%w: VF %s: %s; last error: %v", ErrWedged, m.vf, m.wedgeCause, m.lastErr)
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
	m.audit.close()
}

// connection is the Mailbox one holding connection exchanges through.
type connection struct {
	m      *Mediator
	conn   net.Conn
	name   string
	opened time.Time

	mu        sync.Mutex // one exchange at a time; guards the fields below
	exchanges int
	released  bool

	holdTimer *time.Timer // guarded by m.mu
}

// release ends the connection's hold, after an exchange still in flight.
func (c *connection) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return
	}
	c.released = true
	m := c.m
	m.mu.Lock()
	if m.holder == c {
		m.holder = nil
	}
	if c.holdTimer != nil {
		c.holdTimer.Stop()
		c.holdTimer = nil
	}
	m.mu.Unlock()
	m.metrics.addConnections(-1)
	m.audit.event(slog.LevelInfo, "connection released mailbox", "client", c.name, "duration_ms", ms(time.Since(c.opened)), "exchanges", c.exchanges)
	m.lock.release()
}

// preempt takes the VF from a connection that held it for maxHold while
// others waited: after its exchange in flight, the VF goes to the next
// waiter and the connection is ended.
func (c *connection) preempt() {
	c.mu.Lock()
	released := c.released
	c.mu.Unlock()
	if released {
		return
	}
	c.m.metrics.incPreempted()
	c.m.audit.event(slog.LevelWarn, "connection lost the mailbox: held it for max_hold while another waited", "client", c.name, "held", time.Since(c.opened).Round(time.Millisecond), "max_hold", c.m.maxHold)
	c.release()
	endConn(c.conn)
}

// endConn ends a connection the server is serving: a drainConn stops
// reading (its reply in flight still goes out); any other is closed.
func endConn(conn net.Conn) {
	if d, ok := conn.(interface{ endReads() }); ok {
		d.endReads()
		return
	}
	_ = conn.Close()
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
	args := []any{"client", c.name, "vendor", req.Vendor, "type", req.Type, "request_bytes", req.Size()}
	refuse := func(kind string, err error) (doe.Object, error) {
		m.metrics.failure(kind, false, 0)
		m.audit.refusal(kind, "exchange refused", args...)
		return doe.Object{}, err
	}
	if !m.allow(start) {
		return refuse(KindRateLimited, m.rateError())
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
		m.audit.event(slog.LevelInfo, "exchange", append(args, "result", "ok", "response_bytes", resp.Size(), "duration_ms", ms(d))...)
		return resp, nil
	}
	kind := errorKind(err)
	args = append(args, "duration_ms", ms(d), "err", err)
	switch {
	case left:
		// Not the device's fault: no failure is counted. The driver has
		// aborted the exchange; the mailbox is idle for the next holder.
		m.metrics.failure(KindDisconnected, true, d.Seconds())
		m.audit.refusal(KindDisconnected, "exchange abandoned: client disconnected", args...)
	case ctx.Err() != nil:
		m.metrics.failure(kind, true, d.Seconds())
		m.audit.event(slog.LevelWarn, "exchange abandoned: shim shutting down", append(args, "result", kind)...)
	case kind == KindForeignActivity:
		// Someone else drove the VF's mailbox: most likely this guest,
		// through its VF's config space, past the shim. The driver has
		// aborted it away; the device did not fail.
		m.metrics.failure(kind, true, d.Seconds())
		m.audit.refusal(kind, "foreign activity on the mailbox", args...)
	case kind == KindBackend:
		// The audit log keeps the backend's own words; the guest gets the
		// class of failure only, not host paths or addresses.
		m.metrics.failure(kind, true, d.Seconds())
		m.audit.refusal(kind, "exchange failed", args...)
	default:
		cleared, abortErr := m.recover(deadline)
		if kind == KindDeviceError && cleared {
			// The device refused this request and one abort cleared it:
			// the guest's failure, not the VF's.
			kind = KindGuestDeviceError
		}
		m.metrics.failure(kind, true, d.Seconds())
		m.audit.refusal(kind, "exchange failed", args...)
		if kind != KindGuestDeviceError {
			m.failed(kind, err, abortErr)
		}
	}
	return doe.Object{}, guestError(err)
}

// GuardFrame implements doe.FrameGuard: the frames the server answers
// itself take the guest's tokens and are audited and counted like
// exchanges.
func (c *connection) GuardFrame(f doe.Frame, err error) error {
	m := c.m
	args := []any{"client", c.name}
	readErr := err != nil && f.Command == 0 && !errors.Is(err, doe.ErrUnknownCommand)
	if readErr {
		// The connection ends whatever is answered.
		c.mu.Lock()
		released := c.released
		c.mu.Unlock()
		kind := frameErrorKind(err)
		switch {
		case released: // preempted or shut down by the shim: audited there
		case errors.Is(err, os.ErrDeadlineExceeded):
			m.audit.event(slog.LevelInfo, "connection closed: idle", append(args, "err", err)...)
		default:
			m.metrics.failure(kind, false, 0)
			m.audit.refusal(kind, "connection dropped: bad or incomplete frame", append(args, "err", err)...)
		}
		return nil
	}
	args = append(args, "command", doe.CommandName(f.Command), "transport", f.Transport, "frame_bytes", len(f.Payload))
	if !m.allow(time.Now()) {
		m.metrics.failure(KindRateLimited, false, 0)
		m.audit.refusal(KindRateLimited, "frame refused", args...)
		return m.rateError()
	}
	if err == nil {
		m.audit.event(slog.LevelInfo, "test frame", args...)
		return nil
	}
	kind := frameErrorKind(err)
	m.metrics.failure(kind, false, 0)
	m.audit.refusal(kind, "frame refused", append(args, "err", err)...)
	return nil
}

// frameErrorKind classifies a frame the server refused or could not read.
func frameErrorKind(err error) string {
	switch {
	case errors.Is(err, doe.ErrUnknownCommand):
		return KindUnknownCommand
	case errors.Is(err, doe.ErrWrongTransport):
		return KindWrongTransport
	case errors.Is(err, doe.ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return KindDisconnected
	}
	return KindMalformed
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
// within it, and an abort there is no time for is left to the next
// exchange. cleared reports that an abort ran and left the mailbox idle;
// err is the abort's failure.
func (m *Mediator) recover(deadline time.Time) (cleared bool, err error) {
	a, ok := m.backend.(aborter)
	if !ok || !time.Now().Before(deadline) {
		return false, nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	m.metrics.incAborts()
	if err := a.Abort(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// failed counts a failure of the VF: an abort that failed wedges it at
// once; timeouts and busy failures after maxFailures in a row.
func (m *Mediator) failed(kind string, err, abortErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures++
	m.lastErr = err
	var cause string
	switch {
	case abortErr != nil:
		m.lastErr = errors.Join(err, abortErr)
		cause = "an abort after a failed exchange did not complete"
	case kind == KindAbortFailed:
		cause = "an abort did not complete"
	case m.failures >= m.maxFailures:
		cause = fmt.Sprintf("the device stopped answering: %d exchanges in a row failed (%s)", m.failures, kind)
	}
	if cause != "" && m.wedgeCause == "" {
		m.wedgeCause = cause
		m.metrics.setWedged(true)
		m.log.Error("VF wedged", "cause", cause, "err", m.lastErr)
	}
}

// succeeded resets the failure count.
func (m *Mediator) succeeded() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures, m.lastErr = 0, nil
	if m.wedgeCause != "" {
		m.wedgeCause = ""
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

// ms is a duration for the audit log, in milliseconds: slog would write a
// time.Duration as bare nanoseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
