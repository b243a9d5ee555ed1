package tdisp

import (
	"context"
	"fmt"
	"strings"
)

// StepError names the lifecycle step that failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Bound is what Bind saw: the device's versions and capabilities, the
// lock it asked for, the report bytes and their decoding, and the TDI
// state at the end (RUN on success).
type Bound struct {
	Versions    []uint8
	Caps        *Capabilities
	Lock        LockParams
	ReportBytes []byte
	Report      *Report
	State       State
}

// Bind runs the lifecycle a guest needs before it uses the device: the
// TDISP version and capabilities, the state (a TDI left locked, running
// or in ERROR by an earlier session is stopped first), LOCK_INTERFACE
// with p (only flags the device supports: any other is an error), the
// state CONFIG_LOCKED, the whole report, check on it (nil accepts any),
// START_INTERFACE with the lock's nonce and the state RUN. step, when
// not nil, hears each step done with a short detail. A failure is a
// *StepError naming the step.
func (r *Requester) Bind(ctx context.Context, p LockParams, check func(*Report) error, step func(name, detail string)) (*Bound, error) {
	if step == nil {
		step = func(string, string) {}
	}
	fail := func(name string, err error) (*Bound, error) { return nil, &StepError{name, err} }
	b := &Bound{Lock: p}
	var err error
	if b.Versions, err = r.Version(ctx); err != nil {
		return fail("GET_TDISP_VERSION", err)
	}
	vs := make([]string, len(b.Versions))
	for i, v := range b.Versions {
		vs[i] = fmt.Sprintf("%d.%d", v>>4, v&0xF)
	}
	step("GET_TDISP_VERSION", "versions "+strings.Join(vs, ", "))
	if b.Caps, err = r.Capabilities(ctx, 0); err != nil {
		return fail("GET_TDISP_CAPABILITIES", err)
	}
	step("GET_TDISP_CAPABILITIES", fmt.Sprintf("lock flags supported %v, address width %d", LockFlagNames(b.Caps.LockFlagsSupported), b.Caps.DevAddrWidth))
	if extra := p.Flags &^ b.Caps.LockFlagsSupported; extra != 0 {
		return fail("GET_TDISP_CAPABILITIES", fmt.Errorf("tdisp: the device does not support lock flags %v", LockFlagNames(extra)))
	}
	st, err := r.State(ctx)
	if err != nil {
		return fail("GET_DEVICE_INTERFACE_STATE", err)
	}
	step("GET_DEVICE_INTERFACE_STATE", st.String())
	if st != StateConfigUnlocked {
		if err := r.Stop(ctx); err != nil {
			return fail("STOP_INTERFACE", err)
		}
		if err := r.ExpectState(ctx, StateConfigUnlocked); err != nil {
			return fail("STOP_INTERFACE", err)
		}
		step("STOP_INTERFACE", "left "+st.String()+" by an earlier session, now CONFIG_UNLOCKED")
	}
	nonce, err := r.Lock(ctx, p)
	defer clear(nonce[:])
	if err != nil {
		return fail("LOCK_INTERFACE", err)
	}
	if err := r.ExpectState(ctx, StateConfigLocked); err != nil {
		return fail("LOCK_INTERFACE", err)
	}
	step("LOCK_INTERFACE", fmt.Sprintf("flags %v, default stream %d: CONFIG_LOCKED", LockFlagNames(p.Flags), p.DefaultStreamID))
	if b.ReportBytes, b.Report, err = r.Report(ctx); err != nil {
		return fail("GET_DEVICE_INTERFACE_REPORT", err)
	}
	step("GET_DEVICE_INTERFACE_REPORT", fmt.Sprintf("%d bytes: %d MMIO ranges, interface info %v", len(b.ReportBytes), len(b.Report.Ranges), InfoNames(b.Report.InterfaceInfo)))
	if check != nil {
		if err := check(b.Report); err != nil {
			return fail("check report", err)
		}
		step("check report", "accepted")
	}
	if err := r.Start(ctx, &nonce); err != nil {
		return fail("START_INTERFACE", err)
	}
	if err := r.ExpectState(ctx, StateRun); err != nil {
		return fail("START_INTERFACE", err)
	}
	b.State = StateRun
	step("START_INTERFACE", "RUN")
	return b, nil
}
