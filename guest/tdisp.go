package guest

// TDISP for a device (after IDE keying): lock its TEE device interface
// bound to the keyed IDE stream, read the interface report and check it
// against the device's policy rule, start the interface, and on every
// re-measurement read its state again. A TDI that leaves RUN (the host
// changed its configuration, the device was reset) is an event and a
// failed device.

import (
	"context"
	"fmt"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

// EventTDISP is the event of a TDI found out of RUN.
const EventTDISP = policy.EventTDISP

// tdispLockFlags are the LOCK_INTERFACE flags the guest asks for: no
// device firmware update while locked, and the MSI-X table locked with
// the interface.
const tdispLockFlags = tdisp.LockNoFWUpdate | tdisp.LockMSIX

func (d *DeviceConfig) tdispFunctionID() uint32 {
	if d.TDISPFunctionID != nil {
		return *d.TDISPFunctionID
	}
	return tdisp.DefaultFunctionID
}

// bindTDISP runs tdisp.Requester.Bind with the device's report rules (its
// policy rule's, if it has one) and returns the interface's evidence.
func bindTDISP(ctx context.Context, ss *secchan.SecureSession, v secchan.Version, dev *DeviceConfig, stream uint8) (*evidence.TDISP, error) {
	id := dev.tdispFunctionID()
	q, err := tdisp.NewRequester(ss, v, id)
	if err != nil {
		return nil, err
	}
	var check func(*tdisp.Report) error
	if dev.Policy != nil {
		if r, ok := dev.Policy.Rule(dev.Label); ok {
			check = r.CheckReport
		}
	}
	p := tdisp.LockParams{Flags: tdispLockFlags, DefaultStreamID: stream}
	b, err := q.Bind(ctx, p, check, nil)
	if err != nil {
		return nil, err
	}
	return &evidence.TDISP{FunctionID: id, LockFlags: p.Flags, DefaultStream: stream,
		MMIOReportingOffset: p.MMIOReportingOffset, InterfaceReport: b.ReportBytes, State: b.State.String()}, nil
}

// recheckTDISP reads the state of a device's TDI inside its standing
// session; anything but RUN is recorded as an event and returned.
func (s *Service) recheckTDISP(ctx context.Context, d *device) error {
	if !d.cfg.TDISP || d.base.TDISP == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.devTimeout)
	defer cancel()
	q, err := tdisp.NewRequester(d.conn.ss, d.conn.neg.Version, d.base.TDISP.FunctionID)
	if err != nil {
		return err
	}
	st, err := q.State(ctx)
	if err != nil {
		return err // the session's trouble: the caller drops it and retries
	}
	if st != tdisp.StateRun {
		err = fmt.Errorf("%w: interface 0x%x is %v, was RUN", tdisp.ErrState, d.base.TDISP.FunctionID, st)
		s.log.Warn("device interface left RUN", "device", d.cfg.Label, "err", err)
		d.record(Event{Kind: EventTDISP, Message: err.Error()})
		d.base.TDISP.State = st.String()
	}
	return err
}
