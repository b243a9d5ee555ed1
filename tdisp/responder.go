package tdisp

// The device side of TDISP: the state machine of one TEE device
// interface (TDI), answering inside an SPDM session (Handle has
// secchan.VendorHandler's signature).
//
//	CONFIG_UNLOCKED --LOCK_INTERFACE--> CONFIG_LOCKED --START_INTERFACE--> RUN
//	CONFIG_LOCKED, RUN --configuration change--> ERROR
//	CONFIG_LOCKED, RUN, ERROR --STOP_INTERFACE--> CONFIG_UNLOCKED
//
// LOCK_INTERFACE freezes the report (built by the device from its
// configuration at that moment) and hands out a fresh
// START_INTERFACE_NONCE; START_INTERFACE must return it and consumes it,
// so a replayed START is refused (INVALID_INTERFACE_STATE while running,
// INVALID_NONCE after a new lock). GET_DEVICE_INTERFACE_REPORT and
// START_INTERFACE are answered only in the session that locked the TDI.
// A configuration change while locked or running (ConfigChanged) moves
// the TDI to ERROR, where only GET_*_STATE, the version and capability
// exchanges and STOP_INTERFACE are answered.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/devattest/devattest/secchan"
)

// ResponderConfig describes the TDI.
type ResponderConfig struct {
	// FunctionID is the INTERFACE_ID's function ID the TDI answers to.
	FunctionID uint32
	// LockFlagsSupported are the LOCK_INTERFACE flags the device accepts.
	LockFlagsSupported uint16
	// DevAddrWidth is the device's address width in bits (capabilities).
	DevAddrWidth uint8
	// MaxPortion bounds a DEVICE_INTERFACE_REPORT portion (0x40 if 0, as
	// libspdm's sample device).
	MaxPortion uint16
	// Report builds the interface report from the device's configuration
	// as it is at LOCK_INTERFACE, for the lock's parameters.
	Report func(LockParams) (*Report, error)
	// StreamSecure, when set, tells whether the IDE stream a lock binds
	// as default stream has keys in use; LOCK_INTERFACE is refused
	// (INVALID_REQUEST) otherwise.
	StreamSecure func(stream uint8) bool
}

// Responder is one TDI's TDISP responder.
type Responder struct {
	cfg ResponderConfig

	mu      sync.Mutex
	state   State
	session uint32 // the session that locked the TDI
	params  LockParams
	report  []byte
	nonce   [NonceSize]byte
	armed   bool // nonce not yet used
	events  []string
}

// NewResponder checks cfg.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if cfg.Report == nil {
		return nil, errors.New("tdisp: a responder needs a Report function")
	}
	if cfg.MaxPortion == 0 {
		cfg.MaxPortion = 0x40
	}
	return &Responder{cfg: cfg}, nil
}

// State is the TDI's state.
func (r *Responder) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// ConfigChanged tells the TDI that its function's configuration changed
// (a BAR moved, MSI-X or the command register was rewritten): a locked
// or running TDI goes to ERROR. It reports whether it did.
func (r *Responder) ConfigChanged(what string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != StateConfigLocked && r.state != StateRun {
		return false
	}
	r.toError("configuration changed while " + r.state.String() + ": " + what)
	return true
}

// Reset returns the TDI to CONFIG_UNLOCKED, as a function reset does.
func (r *Responder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unlock()
}

func (r *Responder) toError(why string) {
	r.state = StateError
	clear(r.nonce[:])
	r.armed = false
	r.events = append(r.events, why)
}

func (r *Responder) unlock() {
	r.state, r.session, r.report, r.armed = StateConfigUnlocked, 0, nil, false
	clear(r.nonce[:])
}

// Events returns why the TDI went to ERROR, oldest first.
func (r *Responder) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// Handle answers one VENDOR_DEFINED_REQUEST carrying TDISP
// (secchan.VendorHandler). Outside a secure session nothing is answered.
func (r *Responder) Handle(_ context.Context, sessionID uint32, req []byte) ([]byte, error) {
	v, body, err := UnwrapRequest(req)
	if err != nil {
		if errors.Is(err, ErrNotTDISP) {
			return nil, fmt.Errorf("%w: %w", secchan.ErrCodeUnsupportedRequest, err)
		}
		return nil, fmt.Errorf("%w: %w", secchan.ErrCodeInvalidRequest, err)
	}
	if sessionID == 0 {
		return nil, fmt.Errorf("%w: TDISP outside a secure session", secchan.ErrCodeSessionRequired)
	}
	if len(body) < HeaderSize {
		return nil, fmt.Errorf("%w: TDISP message of %d bytes", secchan.ErrCodeInvalidRequest, len(body))
	}
	return WrapResponse(v, r.respond(sessionID, body)), nil
}

func (r *Responder) fail(body []byte, code ErrorCode, data uint32) Message {
	var h Header
	h.Version = body[0]
	if len(body) >= 8 {
		h.FunctionID = uint32(body[4]) | uint32(body[5])<<8 | uint32(body[6])<<16 | uint32(body[7])<<24
	}
	return &ErrorResp{bare: bare{h}, Code: code, Data: data}
}

func (r *Responder) respond(session uint32, body []byte) Message {
	if newMessage(body[1]) == nil || body[1]&0x80 == 0 {
		return r.fail(body, ErrUnsupportedRequest, uint32(body[1]))
	}
	if body[0] != Version10 {
		return r.fail(body, ErrVersionMismatch, 0)
	}
	m, err := Parse(body)
	if err != nil {
		return r.fail(body, ErrInvalidRequest, 0)
	}
	h := m.Hdr()
	if h.FunctionID != r.cfg.FunctionID {
		return r.fail(body, ErrInvalidInterface, 0)
	}
	var rep *Report
	var repErr error
	if l, ok := m.(*LockInterface); ok {
		// Built before taking the TDI's lock: the device's configuration
		// has a lock of its own, and a configuration change takes that
		// one first, then ours (ConfigChanged).
		rep, repErr = r.cfg.Report(l.LockParams)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	hb := bare{h}
	switch m := m.(type) {
	case *GetVersion:
		return &VersionResp{bare: hb, Versions: []uint8{Version10}}
	case *GetCapabilities:
		c := &Capabilities{bare: hb, LockFlagsSupported: r.cfg.LockFlagsSupported, DevAddrWidth: r.cfg.DevAddrWidth}
		c.ReqMsgSupported[0] = 0xFE // GET_TDISP_VERSION (0x81) to STOP_INTERFACE (0x87)
		return c
	case *GetState:
		return &StateResp{bare: hb, State: r.state}
	case *LockInterface:
		return r.lock(session, hb, m.LockParams, body, rep, repErr)
	case *GetReport:
		if r.state != StateConfigLocked && r.state != StateRun || session != r.session {
			return r.fail(body, ErrInvalidInterfaceState, 0)
		}
		if m.Length == 0 || int(m.Offset) >= len(r.report) {
			return r.fail(body, ErrInvalidRequest, 0)
		}
		n := min(int(m.Length), int(r.cfg.MaxPortion), len(r.report)-int(m.Offset))
		end := int(m.Offset) + n
		return &ReportResp{bare: hb, Portion: append([]byte(nil), r.report[m.Offset:end]...), Remainder: uint16(len(r.report) - end)}
	case *Start:
		defer clear(m.Nonce[:])
		if r.state != StateConfigLocked || session != r.session {
			return r.fail(body, ErrInvalidInterfaceState, 0)
		}
		if !r.armed || subtle.ConstantTimeCompare(m.Nonce[:], r.nonce[:]) != 1 {
			return r.fail(body, ErrInvalidNonce, 0)
		}
		clear(r.nonce[:])
		r.armed = false
		r.state = StateRun
		return &StartResp{hb}
	case *Stop:
		if r.state == StateConfigUnlocked {
			return r.fail(body, ErrInvalidInterfaceState, 0)
		}
		r.unlock()
		return &StopResp{hb}
	}
	return r.fail(body, ErrUnsupportedRequest, uint32(body[1]))
}

func (r *Responder) lock(session uint32, hb bare, p LockParams, body []byte, rep *Report, err error) Message {
	if r.state != StateConfigUnlocked {
		return r.fail(body, ErrInvalidInterfaceState, 0)
	}
	if p.Flags&^r.cfg.LockFlagsSupported != 0 {
		return r.fail(body, ErrInvalidRequest, 0)
	}
	if r.cfg.StreamSecure != nil && !r.cfg.StreamSecure(p.DefaultStreamID) {
		return r.fail(body, ErrInvalidRequest, 1)
	}
	var raw []byte
	if err == nil {
		if raw = rep.Marshal(); len(raw) > MaxReportSize {
			err = errors.New("report too large")
		}
	}
	if err != nil {
		return r.fail(body, ErrInvalidDeviceConfiguration, 0)
	}
	resp := &LockInterfaceResp{}
	resp.bare = hb
	if _, err := rand.Read(r.nonce[:]); err != nil {
		return r.fail(body, ErrInsufficientEntropy, 0)
	}
	resp.Nonce = r.nonce
	r.report = raw
	r.params = p
	r.session = session
	r.armed = true
	r.state = StateConfigLocked
	return resp
}
