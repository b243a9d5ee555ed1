package doe

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Driver is a Mailbox over the registers of one DOE capability.
//
// The exchange, in order (PCIe Base 6.x §6.30.2):
//  1. Take the mailbox (one caller at a time; waiting honours ctx). The
//     first exchange of a new driver aborts first, to start from idle.
//  2. Check that the mailbox is as the driver left it, idle. Busy is
//     waited out (a device may be busy on its own); an Error or Data
//     Object Ready that nobody asked this driver for is foreign activity:
//     another user drove the registers. It is aborted away and the
//     exchange fails with ErrForeignActivity, unsent.
//  3. Write the request DW by DW into the Write Data Mailbox, then set Go.
//  4. Poll Status with back-off until Data Object Ready or Error, or the
//     deadline (1 s from Go by default, as the spec allows a device).
//  5. Read the response DW by DW, writing the Read Data Mailbox after each
//     DW to pop it; check Ready before the last pop and Error after it. A
//     response of another protocol than the request's answers someone
//     else's request: foreign activity too.
//  6. On any failure after step 1, Abort and wait for the abort to finish,
//     so the next caller finds the mailbox idle.
//
// With a deadline on ctx, the whole exchange, that abort included, ends
// by it: the steps before the abort keep a share of the time for it (see
// abortShare). A caller may let the device use all of its deadline
// instead of Timeout per object with FollowDeadline.
type Driver struct {
	cs         ConfigSpace
	base       int
	capVersion int
	lock       chan struct{}
	// clean is false until the driver has aborted once, and again after
	// an abort that did not complete: whatever an earlier user left
	// half-written in the write mailbox is invisible in Status, so the
	// exchange starts with an abort, as Linux does when it takes a
	// mailbox over. While clean, the driver left the mailbox idle.
	clean bool

	// Timeout bounds each wait on the device, for Busy to clear and for the
	// response after Go (PCIe allows a device 1 s per object), unless the
	// caller's ctx says FollowDeadline. The caller's ctx bounds the whole
	// exchange, config-space transfers and the abort after a failure
	// included.
	Timeout time.Duration
	// AbortTimeout bounds the wait for an abort to complete.
	AbortTimeout time.Duration
	// MaxResponseDW bounds the response length the driver will read.
	MaxResponseDW int
}

// DefaultTimeout is the per-object response time PCIe allows (§6.30.2).
const DefaultTimeout = time.Second

// abortShare: of the time a caller's deadline leaves, the driver keeps
// 1/abortShare (at most AbortTimeout) for the abort after a failure, so
// that a device that stays busy or silent still lets the exchange end,
// recovered, by the deadline. An eighth of a 2 s bound is 250 ms, ample
// for an abort, which a device completes in microseconds to milliseconds.
const abortShare = 8

type followKey struct{}

// FollowDeadline marks ctx so that a Driver lets the device use all of
// ctx's deadline (less the abort's share), for Busy to clear and for the
// response, in place of its per-object Timeout. A mediator that bounds
// each exchange by a configured time uses it, so that a slow device that
// needs more than PCIe's 1 s still works within that bound. Without a
// deadline on ctx the mark changes nothing.
func FollowDeadline(ctx context.Context) context.Context {
	return context.WithValue(ctx, followKey{}, true)
}

// NewDriver returns a driver for the DOE capability c of cs.
func NewDriver(cs ConfigSpace, c ExtCap) *Driver {
	return &Driver{
		cs:            cs,
		base:          c.Offset,
		capVersion:    c.Version,
		lock:          make(chan struct{}, 1),
		Timeout:       DefaultTimeout,
		AbortTimeout:  DefaultTimeout,
		MaxResponseDW: MaxObjectDW,
	}
}

// CapVersion is the DOE capability version (selects the discovery version).
func (d *Driver) CapVersion() int { return d.capVersion }

// Offset is the config-space offset of the capability.
func (d *Driver) Offset() int { return d.base }

// budget is one exchange's time: work bounds everything but the abort
// after a failure, which ends by abortBy (zero: AbortTimeout from when it
// starts); follow lets the device use all of work's deadline.
type budget struct {
	work    context.Context
	abortBy time.Time
	follow  bool
}

// plan splits the caller's deadline between the work and the abort.
func (d *Driver) plan(ctx context.Context) (budget, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return budget{work: ctx}, func() {}
	}
	reserve := min(d.AbortTimeout, time.Until(deadline)/abortShare)
	work, cancel := context.WithDeadline(ctx, deadline.Add(-reserve))
	follow, _ := ctx.Value(followKey{}).(bool)
	return budget{work: work, abortBy: deadline, follow: follow}, cancel
}

// abortContext bounds an abort: AbortTimeout, and no later than abortBy.
func (b budget) abortContext(d *Driver) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d.AbortTimeout)
	if b.abortBy.IsZero() {
		return ctx, cancel
	}
	ctx2, cancel2 := context.WithDeadline(ctx, b.abortBy)
	return ctx2, func() { cancel2(); cancel() }
}

// deviceWait bounds one wait on the device: Timeout, unless the caller
// asked to follow its deadline; work's deadline always.
func (b budget) deviceWait(d *Driver) (context.Context, context.CancelFunc) {
	if b.follow {
		return context.WithCancel(b.work)
	}
	return context.WithTimeout(b.work, d.Timeout)
}

// Exchange sends req and returns the device's response.
func (d *Driver) Exchange(ctx context.Context, req Object) (Object, error) {
	if err := req.Validate(); err != nil {
		return Object{}, err
	}
	b, cancel := d.plan(ctx)
	defer cancel()
	select {
	case d.lock <- struct{}{}:
	case <-b.work.Done():
		return Object{}, fmt.Errorf("%w: waiting for the mailbox: %w", ErrBusy, b.work.Err())
	}
	defer func() { <-d.lock }()

	if !d.clean {
		if err := d.abort(b); err != nil {
			return Object{}, err
		}
	}
	resp, err := d.exchange(b, req)
	if err != nil {
		if aerr := d.abort(b); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return Object{}, err
	}
	return resp, nil
}

// Abort aborts whatever the mailbox is doing and waits until it is idle,
// for at most AbortTimeout and no longer than ctx's deadline.
func (d *Driver) Abort(ctx context.Context) error {
	select {
	case d.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the mailbox: %w", ErrBusy, ctx.Err())
	}
	defer func() { <-d.lock }()
	var b budget
	if deadline, ok := ctx.Deadline(); ok {
		b.abortBy = deadline
	}
	return d.abort(b)
}

func (d *Driver) read(reg int) (uint32, error) {
	v, err := d.cs.ReadConfig32(d.base + reg)
	if err != nil {
		return 0, fmt.Errorf("%w: read of DOE register +0x%02x: %w", ErrConfigSpace, reg, err)
	}
	return v, nil
}

func (d *Driver) write(reg int, v uint32) error {
	if err := d.cs.WriteConfig32(d.base+reg, v); err != nil {
		return fmt.Errorf("%w: write of DOE register +0x%02x: %w", ErrConfigSpace, reg, err)
	}
	return nil
}

func (d *Driver) exchange(b budget, req Object) (Object, error) {
	if err := d.prepare(b); err != nil {
		return Object{}, err
	}
	if err := d.send(b.work, req); err != nil {
		return Object{}, err
	}
	// The device's time to answer starts when Go is set; moving the DWs
	// through config space is ours and is bounded by the caller alone.
	wait, cancel := b.deviceWait(d)
	defer cancel()
	if _, err := d.poll(wait, "response", func(st uint32) bool { return st&(StatusReady|StatusError) != 0 }); err != nil {
		return Object{}, err
	}
	return d.receive(b.work, req.Protocol())
}

// prepare checks that the mailbox is idle, as this driver left it, before
// a request is written. Busy is waited out: a device may be busy on its
// own, and a foreign request in flight shows itself when it ends. Error or
// Data Object Ready is foreign activity: aborted away, and the exchange
// fails without sending, so that its caller learns that someone else
// drove the registers (and may have changed the device's protocol state).
func (d *Driver) prepare(b budget) error {
	st, err := d.read(RegStatus)
	if err != nil {
		return err
	}
	if st&StatusBusy != 0 {
		wait, cancel := b.deviceWait(d)
		defer cancel()
		busy := st
		if st, err = d.poll(wait, "not busy", func(st uint32) bool { return st&StatusBusy == 0 }); err != nil {
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("%w: still busy at the deadline: %w", ErrBusy, err)
			}
			return err
		}
		if st&(StatusError|StatusReady) != 0 {
			return d.foreign(b, fmt.Sprintf("status 0x%08x at the start of an exchange turned into 0x%08x: a request this driver did not send was processed", busy, st))
		}
	}
	if st&(StatusError|StatusReady) != 0 {
		return d.foreign(b, fmt.Sprintf("status 0x%08x at the start of an exchange, on a mailbox this driver left idle", st))
	}
	return nil
}

// foreign aborts away another user's state and reports it.
func (d *Driver) foreign(b budget, what string) error {
	err := fmt.Errorf("%w: %s", ErrForeignActivity, what)
	if aerr := d.abort(b); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

func (d *Driver) send(ctx context.Context, req Object) error {
	dw0, dw1 := req.header()
	if err := d.write(RegWriteMailbox, dw0); err != nil {
		return err
	}
	if err := d.write(RegWriteMailbox, dw1); err != nil {
		return err
	}
	for i := 0; i < len(req.Payload); i += 4 {
		if i%4096 == 0 && ctx.Err() != nil {
			return fmt.Errorf("%w: writing request: %w", ErrTimeout, ctx.Err())
		}
		v := uint32(req.Payload[i]) | uint32(req.Payload[i+1])<<8 | uint32(req.Payload[i+2])<<16 | uint32(req.Payload[i+3])<<24
		if err := d.write(RegWriteMailbox, v); err != nil {
			return err
		}
	}
	return d.write(RegControl, ControlGo)
}

// receive reads one response object out of the read mailbox; want is the
// request's protocol, which the response must carry.
func (d *Driver) receive(ctx context.Context, want Protocol) (Object, error) {
	st, err := d.read(RegStatus)
	if err != nil {
		return Object{}, err
	}
	if st&StatusError != 0 {
		return Object{}, fmt.Errorf("%w (status 0x%08x)", ErrDeviceError, st)
	}
	pop := func() (uint32, error) {
		v, err := d.read(RegReadMailbox)
		if err != nil {
			return 0, err
		}
		return v, d.write(RegReadMailbox, 0)
	}
	dw0, err := pop()
	if err != nil {
		return Object{}, err
	}
	dw1, err := pop()
	if err != nil {
		return Object{}, err
	}
	p, n, err := DecodeHeader(dw0, dw1)
	if err != nil {
		return Object{}, fmt.Errorf("response header: %w", err)
	}
	if p != want {
		// Stop here: the rest is someone else's answer.
		return Object{}, fmt.Errorf("%w: %w: request was %v, response is %v: the answer to a request this driver did not send, or a broken device", ErrForeignActivity, ErrUnexpectedResponse, want, p)
	}
	if n > d.MaxResponseDW {
		return Object{}, fmt.Errorf("%w: response of %d DW exceeds the bound of %d DW", ErrTooLarge, n, d.MaxResponseDW)
	}
	payload := make([]byte, (n-2)*4)
	for i := 0; i < len(payload); i += 4 {
		if i%4096 == 0 && ctx.Err() != nil {
			return Object{}, fmt.Errorf("%w: reading response: %w", ErrTimeout, ctx.Err())
		}
		v, err := d.read(RegReadMailbox)
		if err != nil {
			return Object{}, err
		}
		payload[i], payload[i+1], payload[i+2], payload[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		if i == len(payload)-4 {
			// The device keeps Ready set until the last DW is popped; if it
			// is gone already, the response was shorter than its header said.
			st, err := d.read(RegStatus)
			if err != nil {
				return Object{}, err
			}
			if st&StatusReady == 0 {
				return Object{}, fmt.Errorf("%w: Data Object Ready cleared before the last of %d DW", ErrMalformed, n)
			}
		}
		if err := d.write(RegReadMailbox, 0); err != nil {
			return Object{}, err
		}
	}
	st, err = d.read(RegStatus)
	if err != nil {
		return Object{}, err
	}
	if st&StatusError != 0 {
		return Object{}, fmt.Errorf("%w while reading the response (status 0x%08x)", ErrDeviceError, st)
	}
	return Object{Vendor: p.Vendor, Type: p.Type, Payload: payload}, nil
}

// abort sets Abort and waits for Busy, Error and Ready to clear, for up to
// AbortTimeout and no later than b.abortBy. It does not use the work's
// deadline: it usually runs because that ran out. An abort that does not
// complete leaves the driver unclean, so the next exchange aborts first.
func (d *Driver) abort(b budget) error {
	ctx, cancel := b.abortContext(d)
	defer cancel()
	d.clean = false
	if err := d.write(RegControl, ControlAbort); err != nil {
		return fmt.Errorf("%w: %w", ErrAbortFailed, err)
	}
	if _, err := d.poll(ctx, "abort", func(st uint32) bool { return st&(StatusBusy|StatusError|StatusReady) == 0 }); err != nil {
		return fmt.Errorf("%w: %w", ErrAbortFailed, err)
	}
	d.clean = true
	return nil
}

// poll reads Status until done reports true or ctx ends. It spins briefly
// (an emulated or fast device answers within microseconds), then sleeps
// with exponential back-off capped at maxPollSleep, so a device that takes
// most of its second is still seen promptly without a busy loop.
func (d *Driver) poll(ctx context.Context, what string, done func(uint32) bool) (uint32, error) {
	const spins = 32
	sleep := minPollSleep
	var timer *time.Timer
	for i := 0; ; i++ {
		st, err := d.read(RegStatus)
		if err != nil {
			return st, err
		}
		if done(st) {
			return st, nil
		}
		if i < spins {
			if ctx.Err() != nil {
				return st, fmt.Errorf("%w: waiting for %s (status 0x%08x): %w", ErrTimeout, what, st, ctx.Err())
			}
			runtime.Gosched()
			continue
		}
		if timer == nil {
			timer = time.NewTimer(sleep)
			defer timer.Stop()
		} else {
			timer.Reset(sleep)
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("%w: waiting for %s (status 0x%08x): %w", ErrTimeout, what, st, ctx.Err())
		case <-timer.C:
		}
		sleep = min(sleep*2, maxPollSleep)
	}
}

const (
	minPollSleep = 5 * time.Microsecond
	maxPollSleep = time.Millisecond
)
