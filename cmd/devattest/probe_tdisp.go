package main

import (
	"context"
	"fmt"
	"io"

	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

// tdispJSON is the --tdisp part of the probe's output: each step with the
// TDI state read after it, and the interface report (hex and decoded).
type tdispJSON struct {
	FunctionID string        `json:"function_id"`
	Steps      []stepJSON    `json:"steps"`
	Report     string        `json:"report,omitempty"`
	Decoded    *tdisp.Report `json:"decoded,omitempty"`
	OK         bool          `json:"ok"`
}

// runTDISP runs the TDISP lifecycle spdm-emu's requester runs, over the
// session and on the IDE stream --ide keyed: GET_VERSION,
// GET_CAPABILITIES, the state, LOCK_INTERFACE, the report, START with
// the lock's nonce, then STOP, the state after each.
func runTDISP(ctx context.Context, pf probeFlags, ss *secchan.SecureSession, v secchan.Version, rep *spdmReport) error {
	tj := &tdispJSON{FunctionID: fmt.Sprintf("0x%x", pf.tdispID), Steps: []stepJSON{}}
	rep.TDISP = tj
	q, err := tdisp.NewRequester(ss, v, pf.tdispID)
	if err != nil {
		tj.Steps = append(tj.Steps, stepJSON{Name: "open TDISP requester", Error: err.Error()})
		return err
	}
	p := tdisp.LockParams{Flags: tdisp.LockNoFWUpdate | tdisp.LockMSIX, DefaultStreamID: pf.ideStream}
	b, err := q.Bind(ctx, p, nil, func(name, detail string) {
		tj.Steps = append(tj.Steps, stepJSON{Name: name, OK: true, Detail: detail})
	})
	if err != nil {
		if se, ok := err.(*tdisp.StepError); ok {
			tj.Steps = append(tj.Steps, stepJSON{Name: se.Step, Error: se.Err.Error()})
		}
		return err
	}
	tj.Report = fmt.Sprintf("%x", b.ReportBytes)
	tj.Decoded = b.Report
	err = q.Stop(ctx)
	if err == nil {
		err = q.ExpectState(ctx, tdisp.StateConfigUnlocked)
	}
	s := stepJSON{Name: "STOP_INTERFACE", OK: err == nil, Detail: "CONFIG_UNLOCKED"}
	if err != nil {
		s.Error, s.Detail = err.Error(), ""
	}
	tj.Steps = append(tj.Steps, s)
	tj.OK = err == nil
	return err
}

func printTDISP(w io.Writer, t *tdispJSON) {
	if t == nil {
		return
	}
	fmt.Fprintf(w, "  TDISP         interface %s\n", t.FunctionID)
	for _, st := range t.Steps {
		res := "ok"
		switch {
		case !st.OK:
			res = "FAILED: " + st.Error
		case st.Detail != "":
			res = "ok: " + st.Detail
		}
		fmt.Fprintf(w, "    %-28s %s\n", st.Name, res)
	}
	if t.Decoded != nil {
		printReport(w, "    ", t.Decoded)
	}
}

// printReport shows a decoded interface report.
func printReport(w io.Writer, indent string, r *tdisp.Report) {
	fmt.Fprintf(w, "%sinterface info   0x%04x %v\n", indent, r.InterfaceInfo, tdisp.InfoNames(r.InterfaceInfo))
	fmt.Fprintf(w, "%sMSI-X control    0x%04x, LNR control 0x%04x, TPH control 0x%08x\n", indent, r.MSIXMessageControl, r.LNRControl, r.TPHControl)
	for i, m := range r.Ranges {
		fmt.Fprintf(w, "%sMMIO range %-5d first page 0x%x, %d pages (%d KiB), range ID %d, attributes %v\n",
			indent, i, m.FirstPage, m.Pages, m.Size()>>10, m.RangeID, tdisp.AttrNames(m.Attributes))
	}
	fmt.Fprintf(w, "%sdevice info      %q\n", indent, r.DeviceSpecific)
}
