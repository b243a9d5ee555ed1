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
//  2. Clear stale state: an Error or Data Object Ready left by an earlier
//     user is aborted away; Busy is waited out until the deadline.
//  3. Write the request DW by DW into the Write Data Mailbox, then set Go.
//  4. Poll Status with back-off until Data Object Ready or Error, or the
//     deadline (1 s from Go by default, as the spec allows a device).
//  5. Read the response DW by DW, writing the Read Data Mailbox after each
//     DW to pop it; check Ready before the last pop and Error after it.
//  6. On any failure after step 1, Abort and wait for the abort to finish,
//     so the next caller finds the mailbox idle.
type Driver struct {
	cs         ConfigSpace
	base       int
	capVersion int
	lock       chan struct{}
	// clean is false until the driver has aborted once: whatever an earlier
	// user left half-written in the write mailbox is invisible in Status,
	// so the first exchange starts with an abort, as Linux does when it
	// takes a mailbox over.
	clean bool

	// Timeout bounds each wait on the device, for Busy to clear and for the
	// response after Go (PCIe allows a device 1 s per object). The caller's
	// ctx bounds the whole exchange, config-space transfers included.
	Timeout time.Duration
	// AbortTimeout bounds the wait for an abort to complete.
	AbortTimeout time.Duration
	// MaxResponseDW bounds the response length the driver will read.
	MaxResponseDW int
}

// DefaultTimeout is the per-object response time PCIe allows (§6.30.2).
const DefaultTimeout = time.Second

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

// Exchange sends req and returns the device's response.
func (d *Driver) Exchange(ctx context.Context, req Object) (Object, error) {
	if err := req.Validate(); err != nil {
		return Object{}, err
	}
	select {
	case d.lock <- struct{}{}:
	case <-ctx.Done():
		return Object{}, fmt.Errorf("%w: waiting for the mailbox: %w", ErrBusy, ctx.Err())
	}
	defer func() { <-d.lock }()

	if !d.clean {
		if err := d.abort(); err != nil {
			return Object{}, err
		}
		d.clean = true
	}
	resp, err := d.exchange(ctx, req)
	if err != nil {
		if aerr := d.abort(); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return Object{}, err
	}
	return resp, nil
}

// Abort aborts whatever the mailbox is doing and waits until it is idle.
func (d *Driver) Abort(ctx context.Context) error {
	select {
	case d.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the mailbox: %w", ErrBusy, ctx.Err())
	}
	defer func() { <-d.lock }()
	return d.abort()
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

func (d *Driver) exchange(ctx context.Context, req Object) (Object, error) {
	if err := d.prepare(ctx); err != nil {
		return Object{}, err
	}
	if err := d.send(ctx, req); err != nil {
		return Object{}, err
	}
	// The device's time to answer starts when Go is set; moving the DWs
	// through config space is ours and is bounded by ctx alone.
	wait, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	if _, err := d.poll(wait, "response", func(st uint32) bool { return st&(StatusReady|StatusError) != 0 }); err != nil {
		return Object{}, err
	}
	resp, err := d.receive(ctx)
	if err != nil {
		return Object{}, err
	}
	if err := CheckResponse(req, resp); err != nil {
		return Object{}, err
	}
	return resp, nil
}

// prepare brings the mailbox to idle before a request is written.
func (d *Driver) prepare(ctx context.Context) error {
	st, err := d.read(RegStatus)
	if err != nil {
		return err
	}
	if st&(StatusError|StatusReady) != 0 {
		// Left over from an earlier user: abort clears Error, Ready and
		// both mailboxes.
		if err := d.abort(); err != nil {
			return err
		}
	}
	if st&StatusBusy != 0 {
		wait, cancel := context.WithTimeout(ctx, d.Timeout)
		defer cancel()
		if _, err := d.poll(wait, "not busy", func(st uint32) bool { return st&StatusBusy == 0 }); err != nil {
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("%w: still busy at the deadline: %w", ErrBusy, err)
			}
			return err
		}
	}
	return nil
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

// receive reads one response object out of the read mailbox.
func (d *Driver) receive(ctx context.Context) (Object, error) {
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

// abort sets Abort and waits, up to AbortTimeout, for Busy, Error and
// Ready to clear. It uses its own deadline: it usually runs because the
// caller's ran out.
func (d *Driver) abort() error {
	ctx, cancel := context.WithTimeout(context.Background(), d.AbortTimeout)
	defer cancel()
	if err := d.write(RegControl, ControlAbort); err != nil {
		return fmt.Errorf("%w: %w", ErrAbortFailed, err)
	}
	if _, err := d.poll(ctx, "abort", func(st uint32) bool { return st&(StatusBusy|StatusError|StatusReady) == 0 }); err != nil {
		return fmt.Errorf("%w: %w", ErrAbortFailed, err)
	}
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
