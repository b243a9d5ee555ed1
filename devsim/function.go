// Package devsim emulates a PCIe function that carries a DOE mailbox: its
// configuration space, the DOE register state machine (busy, error, abort,
// data object ready, interrupt status) and protocol handlers behind it. It
// is a faithful peer for the doe driver and, through the socket framing, for
// every other layer; fault knobs let tests make it misbehave on purpose.
//
// devsim knows no guest and no shim.
package devsim

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

// Config-space layout of the emulated function. The extended capability
// list has a Device Serial Number capability first, so that a driver must
// walk the list to find the DOE capability.
const (
	VendorID   = 0x1234 // a vendor ID conventionally left to emulators
	DeviceID   = 0xD0E0
	DSNOffset  = 0x100
	DOEOffset  = 0x150
	DOEVersion = 2 // DOE capability version 2: discovery version 2 (PCIe 6.1)

	extCapIDDSN = 0x0003
)

// Handler answers the DOE objects of one protocol. An error makes the
// mailbox set its Error bit, as a device does when it cannot process a
// request.
type Handler interface {
	HandleDOE(ctx context.Context, req doe.Object) (doe.Object, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req doe.Object) (doe.Object, error)

// HandleDOE calls f.
func (f HandlerFunc) HandleDOE(ctx context.Context, req doe.Object) (doe.Object, error) {
	return f(ctx, req)
}

// Function is one emulated PCIe function. Its methods are safe for
// concurrent use; config-space accesses are serialized as on a real bus.
type Function struct {
	mu        sync.Mutex
	static    [doe.ConfigSpaceSize]byte
	mbox      mailboxState
	faults    Faults
	protocols []doe.Protocol // discovery order; index 0 is discovery itself
	handlers  map[doe.Protocol]Handler
	stats     Stats
	// resetHooks run on a function reset: device state kept outside the
	// mailbox handlers (IDE keys) is lost on a reset too.
	resetHooks []func()
	spdm       Handler // WithSPDM, for NewVF
	// configHooks hear host changes to the memory configuration
	// (config.go); tdi is the function's TDISP interface, if any.
	configHooks []func(what string)
	tdi         *tdisp.Responder
	tdiID       *uint32 // WithTDISPFunctionID
	// spdmConfig adjusts the SPDM responder of NewSPDMVF (WithMutualAuth).
	spdmConfig []func(*secchan.ResponderConfig) error

	// MaxRequestDW bounds an incoming object; beyond it the mailbox sets
	// Error, as a device with a finite buffer does.
	maxRequestDW int
}

// Stats counts what the function's mailbox did; tests read it to check
// behaviour at the device itself.
type Stats struct {
	Requests  int // objects taken with Go
	Responses int // responses made available
	Errors    int // times the Error bit was set
	Aborts    int // aborts performed
	Resets    int // function resets
}

// Option configures a new Function.
type Option func(*Function)

// WithMaxRequestDW bounds incoming objects (default 2^18 DW, 1 MiB).
func WithMaxRequestDW(n int) Option { return func(f *Function) { f.maxRequestDW = n } }

// WithResetHook runs h on every function reset.
func WithResetHook(h func()) Option {
	return func(f *Function) { f.resetHooks = append(f.resetHooks, h) }
}

// WithSerial sets the Device Serial Number capability's value.
func WithSerial(sn uint64) Option {
	return func(f *Function) {
		binary.LittleEndian.PutUint64(f.static[DSNOffset+4:], sn)
	}
}

// New returns a function whose DOE mailbox answers discovery and nothing
// else until handlers are registered with Handle.
func New(opts ...Option) *Function {
	f := &Function{
		protocols:    []doe.Protocol{doe.ProtocolDiscovery},
		handlers:     make(map[doe.Protocol]Handler),
		maxRequestDW: doe.MaxObjectDW,
	}
	s := f.static[:]
	binary.LittleEndian.PutUint16(s[0x00:], VendorID)
	binary.LittleEndian.PutUint16(s[0x02:], DeviceID)
	s[0x08] = 0x01                               // revision
	s[0x09], s[0x0A], s[0x0B] = 0x00, 0x80, 0x12 // class: processing accelerator, other
	// Extended capabilities: DSN at 0x100 -> DOE at 0x150 -> end.
	binary.LittleEndian.PutUint32(s[DSNOffset:], extCapIDDSN|1<<16|DOEOffset<<20)
	binary.LittleEndian.PutUint64(s[DSNOffset+4:], 0x00D0E0D0E0D0E001)
	binary.LittleEndian.PutUint32(s[DOEOffset:], doe.ExtCapIDDOE|DOEVersion<<16)
	// DOE Capabilities: interrupt support, message number 0.
	binary.LittleEndian.PutUint32(s[DOEOffset+doe.RegCapabilities:], 1)
	f.initMemoryConfig()
	for _, o := range opts {
		o(f)
	}
	return f
}

// Handle registers h for protocol p and lists p in discovery. Registering
// the same protocol again replaces its handler.
func (f *Function) Handle(p doe.Protocol, h Handler) error {
	if p == doe.ProtocolDiscovery {
		return fmt.Errorf("devsim: discovery is built in and cannot be replaced")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.handlers[p]; !ok {
		if len(f.protocols) >= 256 {
			return fmt.Errorf("devsim: discovery holds at most 256 protocols")
		}
		f.protocols = append(f.protocols, p)
	}
	f.handlers[p] = h
	return nil
}

// Protocols returns the protocols listed in discovery, in index order.
func (f *Function) Protocols() []doe.Protocol {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]doe.Protocol(nil), f.protocols...)
}

// Stats returns a snapshot of the mailbox counters.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// DOECap describes the function's DOE capability for doe.NewDriver.
func (f *Function) DOECap() doe.ExtCap {
	return doe.ExtCap{Offset: DOEOffset, ID: doe.ExtCapIDDOE, Version: DOEVersion}
}

// Driver returns a doe driver over this function's DOE mailbox: the same
// register-level path a host takes over real config space.
func (f *Function) Driver() *doe.Driver { return doe.NewDriver(f, f.DOECap()) }

// ReadConfig32 implements doe.ConfigSpace.
func (f *Function) ReadConfig32(off int) (uint32, error) {
	if off < 0 || off > doe.ConfigSpaceSize-4 || off%4 != 0 {
		return 0, fmt.Errorf("%w: devsim: offset 0x%x is not an aligned DW", doe.ErrConfigSpace, off)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= DOEOffset+doe.RegControl && off < DOEOffset+doe.CapabilitySize {
		return f.readDOE(off - DOEOffset), nil
	}
	return binary.LittleEndian.Uint32(f.static[off:]), nil
}

// WriteConfig32 implements doe.ConfigSpace. Besides the DOE registers,
// the host may write the BARs, the command register and MSI-X Message
// Control (config.go); other writes are ignored, as writes to read-only
// registers are.
func (f *Function) WriteConfig32(off int, v uint32) error {
	if off < 0 || off > doe.ConfigSpaceSize-4 || off%4 != 0 {
		return fmt.Errorf("%w: devsim: offset 0x%x is not an aligned DW", doe.ErrConfigSpace, off)
	}
	f.mu.Lock()
	if off >= DOEOffset+doe.RegControl && off < DOEOffset+doe.CapabilitySize {
		f.writeDOE(off-DOEOffset, v)
		f.mu.Unlock()
		return nil
	}
	changed := f.writableConfig(off, v)
	hooks := f.configHooks
	f.mu.Unlock()
	if changed != "" {
		for _, h := range hooks { // outside f.mu: a hook may read the configuration
			h(changed)
		}
	}
	return nil
}
