package tdisp

// The TDISP requester, run by the guest over an established SPDM secure
// session with the device: it locks the TEE device interface, reads the
// interface report in portions, starts the interface with the nonce the
// lock gave, reads its state and stops it.

import (
	"context"
	"errors"
	"fmt"

	"github.com/devattest/devattest/secchan"
)

// Session carries one VENDOR_DEFINED_REQUEST and returns the whole
// response. Only an established *secchan.SecureSession is accepted: the
// report and the start nonce must never travel in the clear.
type Session interface {
	VendorDefined(ctx context.Context, req []byte) ([]byte, error)
}

// Requester errors.
var (
	ErrNotSecure          = errors.New("tdisp: TDISP needs an established SPDM secure session (*secchan.SecureSession)")
	ErrUnexpectedResponse = errors.New("tdisp: unexpected TDISP response")
	ErrNoVersion10        = errors.New("tdisp: the device does not offer TDISP 1.0")
	ErrBadReportPortion   = errors.New("tdisp: inconsistent DEVICE_INTERFACE_REPORT portion")
	ErrState              = errors.New("tdisp: TDI in an unexpected state")
)

// DefaultFunctionID is the interface a requester addresses unless told
// otherwise: 0xBEEF, the function ID spdm-emu's requester uses and
// devsim's TDI answers to.
const DefaultFunctionID = 0xBEEF

// DefaultChunk is the portion length the requester asks for; a device
// may send less (libspdm's sample device sends at most 0x40 bytes).
const DefaultChunk = 0x400

// Requester speaks TDISP for one interface (function ID) over one
// secure session.
type Requester struct {
	s  *secchan.SecureSession
	v  secchan.Version
	id uint32
	// Chunk is the portion length asked for in each
	// GET_DEVICE_INTERFACE_REPORT (DefaultChunk when 0).
	Chunk uint16
}

// NewRequester returns a requester for the TDI with function ID id over
// sess, which must be an established *secchan.SecureSession; v is the
// connection's negotiated SPDM version.
func NewRequester(sess Session, v secchan.Version, id uint32) (*Requester, error) {
	ss, ok := sess.(*secchan.SecureSession)
	if !ok || ss == nil || ss.Phase() != secchan.PhaseEstablished {
		return nil, ErrNotSecure
	}
	return &Requester{s: ss, v: v, id: id}, nil
}

// FunctionID is the interface this requester addresses.
func (r *Requester) FunctionID() uint32 { return r.id }

// exchange sends req and returns the response, which must be of type
// want, TDISP 1.0 and for the same interface. A TDISP_ERROR is returned
// as an error matching its code (errors.Is(err, ErrInvalidNonce)).
func (r *Requester) exchange(ctx context.Context, req Message, want uint8) (Message, error) {
	if r.s.Phase() != secchan.PhaseEstablished {
		return nil, ErrNotSecure
	}
	raw := WrapRequest(r.v, req)
	defer clear(raw) // START carries the nonce
	resp, err := r.s.VendorDefined(ctx, raw)
	if err != nil {
		return nil, err
	}
	v, body, err := UnwrapResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnexpectedResponse, err)
	}
	if v != r.v {
		return nil, fmt.Errorf("%w: SPDM version %v", ErrUnexpectedResponse, v)
	}
	m, err := Parse(body)
	if err != nil {
		return nil, err
	}
	h := m.Hdr()
	if h.Version != Version10 || h.FunctionID != r.id {
		return nil, fmt.Errorf("%w: %s version 0x%02x for function 0x%x, want 0x%02x for 0x%x",
			ErrUnexpectedResponse, TypeName(m.Type()), h.Version, h.FunctionID, Version10, r.id)
	}
	if e, ok := m.(*ErrorResp); ok {
		return nil, e
	}
	if m.Type() != want {
		return nil, fmt.Errorf("%w: %s, want %s", ErrUnexpectedResponse, TypeName(m.Type()), TypeName(want))
	}
	return m, nil
}

func (r *Requester) hdr() bare { return bare{H(r.id)} }

// Version asks for the device's TDISP versions, which must include 1.0.
func (r *Requester) Version(ctx context.Context) ([]uint8, error) {
	m, err := r.exchange(ctx, &GetVersion{r.hdr()}, TypeVersion)
	if err != nil {
		return nil, fmt.Errorf("tdisp: GET_TDISP_VERSION: %w", err)
	}
	vs := m.(*VersionResp).Versions
	for _, v := range vs {
		if v == Version10 {
			return vs, nil
		}
	}
	return vs, fmt.Errorf("%w: versions % x", ErrNoVersion10, vs)
}

// Capabilities exchanges capabilities (tsmCaps are the requester's).
func (r *Requester) Capabilities(ctx context.Context, tsmCaps uint32) (*Capabilities, error) {
	m, err := r.exchange(ctx, &GetCapabilities{bare: r.hdr(), TSMCaps: tsmCaps}, TypeCapabilities)
	if err != nil {
		return nil, fmt.Errorf("tdisp: GET_TDISP_CAPABILITIES: %w", err)
	}
	return m.(*Capabilities), nil
}

// State reads the TDI state.
func (r *Requester) State(ctx context.Context) (State, error) {
	m, err := r.exchange(ctx, &GetState{r.hdr()}, TypeState)
	if err != nil {
		return 0, fmt.Errorf("tdisp: GET_DEVICE_INTERFACE_STATE: %w", err)
	}
	return m.(*StateResp).State, nil
}

// Lock locks the interface and returns the START_INTERFACE_NONCE. The
// caller zeroes it after Start.
func (r *Requester) Lock(ctx context.Context, p LockParams) ([NonceSize]byte, error) {
	m, err := r.exchange(ctx, &LockInterface{bare: r.hdr(), LockParams: p}, TypeLockInterfaceRs)
	if err != nil {
		return [NonceSize]byte{}, fmt.Errorf("tdisp: LOCK_INTERFACE: %w", err)
	}
	lr := m.(*LockInterfaceResp)
	n := lr.Nonce
	clear(lr.Nonce[:])
	return n, nil
}

// Report reads the whole interface report, portion by portion, and
// decodes it. Each portion must continue where the last ended, be no
// longer than asked, and agree with the total the first one announced.
func (r *Requester) Report(ctx context.Context) ([]byte, *Report, error) {
	chunk := r.Chunk
	if chunk == 0 {
		chunk = DefaultChunk
	}
	var buf []byte
	total := -1
	for total < 0 || len(buf) < total {
		ask := chunk
		if total >= 0 {
			ask = uint16(min(int(chunk), total-len(buf)))
		}
		req := &GetReport{bare: r.hdr(), Offset: uint16(len(buf)), Length: ask}
		m, err := r.exchange(ctx, req, TypeReport)
		if err != nil {
			return nil, nil, fmt.Errorf("tdisp: GET_DEVICE_INTERFACE_REPORT offset %d: %w", req.Offset, err)
		}
		p := m.(*ReportResp)
		t := len(buf) + len(p.Portion) + int(p.Remainder)
		switch {
		case len(p.Portion) == 0:
			return nil, nil, fmt.Errorf("%w: empty portion at offset %d", ErrBadReportPortion, req.Offset)
		case len(p.Portion) > int(ask):
			return nil, nil, fmt.Errorf("%w: %d bytes at offset %d, asked for %d", ErrBadReportPortion, len(p.Portion), req.Offset, ask)
		case total >= 0 && t != total:
			return nil, nil, fmt.Errorf("%w: portion at offset %d makes the report %d bytes, the first said %d", ErrBadReportPortion, req.Offset, t, total)
		case t > MaxReportSize:
			return nil, nil, fmt.Errorf("%w: report of %d bytes, more than %d", ErrBadReportPortion, t, MaxReportSize)
		}
		total = t
		buf = append(buf, p.Portion...)
	}
	rep, err := ParseReport(buf)
	if err != nil {
		return nil, nil, err
	}
	return buf, rep, nil
}

// Start starts the interface with the nonce Lock returned.
func (r *Requester) Start(ctx context.Context, nonce *[NonceSize]byte) error {
	req := &Start{}
	req.bare = r.hdr()
	req.Nonce = *nonce
	defer clear(req.Nonce[:])
	if _, err := r.exchange(ctx, req, TypeStartRs); err != nil {
		return fmt.Errorf("tdisp: START_INTERFACE: %w", err)
	}
	return nil
}

// Stop stops the interface (back to CONFIG_UNLOCKED).
func (r *Requester) Stop(ctx context.Context) error {
	if _, err := r.exchange(ctx, &Stop{r.hdr()}, TypeStopRs); err != nil {
		return fmt.Errorf("tdisp: STOP_INTERFACE: %w", err)
	}
	return nil
}

// ExpectState reads the state and fails unless it is want.
func (r *Requester) ExpectState(ctx context.Context, want State) error {
	s, err := r.State(ctx)
	if err != nil {
		return err
	}
	if s != want {
		return fmt.Errorf("%w: %v, want %v", ErrState, s, want)
	}
	return nil
}
