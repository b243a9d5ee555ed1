package devsim

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/devattest/devattest/doe"
)

// mailboxState is the DOE register state machine (PCIe Base 6.x §6.30.2,
// §7.9.24). The request is assembled DW by DW in the write mailbox; Go hands
// it to a handler goroutine while Busy is set; the response is offered DW by
// DW in the read mailbox with Data Object Ready set until its last DW is
// popped. Abort (and a function reset) drop everything and bump gen, so a
// handler that finishes later cannot deliver a stale response.
type mailboxState struct {
	incoming  []uint32
	outgoing  []uint32
	readIdx   int
	busy      bool
	err       bool
	ready     bool
	intStatus bool
	intEnable bool
	gen       uint64
	cancel    context.CancelFunc
}

// Faults make the mailbox misbehave for tests. The zero value is a healthy
// device.
type Faults struct {
	// StayBusy makes Busy read 1 at all times; Go is ignored.
	StayBusy bool
	// ErrorOnGo sets Error in place of answering each request.
	ErrorOnGo bool
	// Delay holds each response back this long (a slow device).
	Delay time.Duration
	// NeverRespond takes requests and stays Busy until aborted.
	NeverRespond bool
	// IgnoreAbort makes Abort do nothing (a wedged device).
	IgnoreAbort bool
	// TDISPChangeAfterLock and TDISPChangeWhileRunning play a host that
	// moves BAR0 right after the TDI is locked, or right after it is
	// started (tdisp.go): the TDI goes to ERROR.
	TDISPChangeAfterLock, TDISPChangeWhileRunning bool
}

// SetFaults replaces the active faults.
func (f *Function) SetFaults(fl Faults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = fl
}

// Reset models a function-level reset: in-flight work is dropped and the
// mailbox returns to idle. Registered handlers (the device's firmware)
// stay, but each one with a Reset method (an SPDM responder) is reset, so
// protocol state above the mailbox is lost as on a real device.
func (f *Function) Reset() {
	f.mu.Lock()
	f.clearMailbox()
	f.mbox.intEnable = false
	f.stats.Resets++
	var resets []interface{ Reset() }
	for _, p := range f.protocols {
		if r, ok := f.handlers[p].(interface{ Reset() }); ok {
			resets = append(resets, r)
		}
	}
	hooks := f.resetHooks
	f.mu.Unlock()
	// Outside the lock: a handler may be finishing a request and must not
	// wait on the mailbox lock while we wait on its own.
	for _, r := range resets {
		r.Reset()
	}
	for _, h := range hooks {
		h()
	}
}

// clearMailbox drops every request and response and cancels the handler.
func (f *Function) clearMailbox() {
	m := &f.mbox
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
	m.gen++
	m.incoming = nil
	m.outgoing = nil
	m.readIdx = 0
	m.busy, m.err, m.ready, m.intStatus = false, false, false, false
}

func (f *Function) readDOE(reg int) uint32 {
	m := &f.mbox
	switch reg {
	case doe.RegControl:
		if m.intEnable {
			return doe.ControlIntEnable
		}
		return 0
	case doe.RegStatus:
		var v uint32
		if m.busy || f.faults.StayBusy {
			v |= doe.StatusBusy
		}
		if m.intStatus {
			v |= doe.StatusIntStatus
		}
		if m.err {
			v |= doe.StatusError
		}
		if m.ready {
			v |= doe.StatusReady
		}
		return v
	case doe.RegReadMailbox:
		if !m.ready || m.readIdx >= len(m.outgoing) {
			return 0
		}
		return m.outgoing[m.readIdx]
	}
	return 0 // the write mailbox reads as zero
}

func (f *Function) writeDOE(reg int, v uint32) {
	m := &f.mbox
	switch reg {
	case doe.RegControl:
		m.intEnable = v&doe.ControlIntEnable != 0
		if v&doe.ControlAbort != 0 {
			if !f.faults.IgnoreAbort {
				f.clearMailbox()
				f.stats.Aborts++
			}
			return
		}
		if v&doe.ControlGo != 0 {
			f.goRequest()
		}
	case doe.RegStatus:
		if v&doe.StatusIntStatus != 0 { // RW1C
			m.intStatus = false
		}
	case doe.RegWriteMailbox:
		if m.err || m.busy || f.faults.StayBusy {
			return // a device in Error or Busy drops writes
		}
		if len(m.incoming) >= f.maxRequestDW {
			f.setError()
			return
		}
		m.incoming = append(m.incoming, v)
	case doe.RegReadMailbox:
		if !m.ready {
			return
		}
		m.readIdx++
		if m.readIdx >= len(m.outgoing) {
			m.outgoing, m.readIdx, m.ready = nil, 0, false
		}
	}
}

func (f *Function) setError() {
	m := &f.mbox
	m.err = true
	m.incoming = nil
	m.busy = false
	f.stats.Errors++
	if m.intEnable {
		m.intStatus = true
	}
}

// goRequest validates the assembled request and starts its handler.
func (f *Function) goRequest() {
	m := &f.mbox
	if m.err || m.busy || f.faults.StayBusy {
		return
	}
	words := m.incoming
	m.incoming = nil
	if len(words) < 2 {
		f.setError()
		return
	}
	p, n, err := doe.DecodeHeader(words[0], words[1])
	if err != nil || n != len(words) {
		f.setError()
		return
	}
	if m.ready {
		// A new request while a response is unread: the old response is
		// lost, as on hardware.
		m.outgoing, m.readIdx, m.ready = nil, 0, false
	}
	req := doe.Object{Vendor: p.Vendor, Type: p.Type, Payload: make([]byte, (n-2)*4)}
	for i, w := range words[2:] {
		binary.LittleEndian.PutUint32(req.Payload[i*4:], w)
	}
	f.stats.Requests++
	if f.faults.ErrorOnGo {
		f.setError()
		return
	}
	m.busy = true
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	gen := m.gen
	never := f.faults.NeverRespond
	delay := f.faults.Delay
	go f.run(ctx, gen, req, never, delay)
}

// run executes one request outside the lock and delivers its answer if the
// mailbox has not been aborted or reset meanwhile.
func (f *Function) run(ctx context.Context, gen uint64, req doe.Object, never bool, delay time.Duration) {
	if never {
		<-ctx.Done()
		return
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	resp, err := f.answer(ctx, req)
	var words []uint32
	if err == nil {
		var b []byte
		if b, err = resp.Encode(); err == nil {
			words = make([]uint32, len(b)/4)
			for i := range words {
				words[i] = binary.LittleEndian.Uint32(b[i*4:])
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := &f.mbox
	if m.gen != gen {
		return // aborted or reset while we worked
	}
	m.cancel = nil
	m.busy = false
	if err != nil {
		f.setError()
		return
	}
	m.outgoing, m.readIdx, m.ready = words, 0, true
	f.stats.Responses++
	if m.intEnable {
		m.intStatus = true
	}
}

// answer dispatches one request: discovery is built in, everything else
// goes to the registered handler. A protocol nobody handles is an error.
func (f *Function) answer(ctx context.Context, req doe.Object) (doe.Object, error) {
	if req.Protocol() == doe.ProtocolDiscovery {
		return f.discovery(req)
	}
	f.mu.Lock()
	h := f.handlers[req.Protocol()]
	f.mu.Unlock()
	if h == nil {
		return doe.Object{}, errUnsupported
	}
	resp, err := h.HandleDOE(ctx, req)
	if err != nil {
		return doe.Object{}, err
	}
	if err := doe.CheckResponse(req, resp); err != nil {
		return doe.Object{}, err
	}
	return resp, nil
}

var errUnsupported = doeError("devsim: no handler for this protocol")

type doeError string

func (e doeError) Error() string { return string(e) }

// discovery answers a discovery request from the registered protocols. An
// index past the end is answered with vendor 0xFFFF, as QEMU's model does.
func (f *Function) discovery(req doe.Object) (doe.Object, error) {
	index, _, err := doe.DecodeDiscoveryRequest(req)
	if err != nil {
		return doe.Object{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if int(index) >= len(f.protocols) {
		return doe.EncodeDiscoveryResponse(doe.Protocol{Vendor: 0xFFFF, Type: 0xFF}, 0), nil
	}
	next := uint8(0)
	if int(index)+1 < len(f.protocols) {
		next = index + 1
	}
	return doe.EncodeDiscoveryResponse(f.protocols[index], next), nil
}
