package guest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/tdisp"
)

// TestAttestTDISP: after IDE keying the guest locks, reads, checks and
// starts the device's interface; the evidence carries the report bytes
// and RUN, and the device's TDI is running on the keyed stream.
func TestAttestTDISP(t *testing.T) {
	dir := t.TempDir()
	v := newLiveVF(t, dir, "a", true)
	_, _, boot, err, _ := startService(t, dir, "ide: true\ntdisp: true\n", v)
	if err != nil {
		t.Fatal(err)
	}
	d := boot.ParsedBody().Devices[0]
	if d.TDISP == nil || d.TDISP.State != "RUN" || d.TDISP.DefaultStream != d.IDE.Stream || d.TDISP.FunctionID != tdisp.DefaultFunctionID {
		t.Fatalf("tdisp evidence %+v", d.TDISP)
	}
	rep, err := tdisp.ParseReport(d.TDISP.InterfaceReport)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Ranges) != 3 || rep.Ranges[0].FirstPage != devsim.DefaultBAR0/tdisp.PageSize || rep.InterfaceInfo&tdisp.InfoNoUpdateAfterLock == 0 {
		t.Fatalf("report %+v", rep)
	}
	if v.vf.TDI().State() != tdisp.StateRun {
		t.Fatalf("device TDI %v", v.vf.TDI().State())
	}
	if x := d.IDE; x.KeySet != "K1" {
		t.Fatalf("IDE %+v", x)
	}
}

func TestTDISPNeedsIDEConfig(t *testing.T) {
	_, err := ParseConfig([]byte("platform: fake-snp\ntdisp: true\ndevices:\n  - label: a\n    shim: unix:/x\n    trust_anchors: [a.pem]\n"), "")
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "tdisp needs ide") {
		t.Fatalf("tdisp without ide: %v", err)
	}
}

// TestAttestTDISPConfigChangedAfterLock: a host that moves a BAR between
// LOCK and START leaves the TDI in ERROR; the guest reports the device
// failed at TDISP.
func TestAttestTDISPConfigChangedAfterLock(t *testing.T) {
	dir := t.TempDir()
	v := newLiveVF(t, dir, "a", true)
	v.vf.SetFaults(devsim.Faults{TDISPChangeAfterLock: true})
	_, _, boot, err, _ := startService(t, dir, "ide: true\ntdisp: true\n", v)
	var de *DeviceError
	if !errors.As(err, &de) || de.Step != StepTDISP {
		t.Fatalf("boot error %v", err)
	}
	d := boot.ParsedBody().Devices[0]
	if d.Status != evidence.StatusFailed || d.FailedStep != StepTDISP || !strings.Contains(d.Error, "ERROR") {
		t.Fatalf("device %+v", d)
	}
}

// TestServiceTDISPLeavesRun: the host moves a BAR while the TDI runs;
// the next re-measurement finds it in ERROR: an event and a failed
// device. The service then stops, re-locks and restarts it with the new
// layout, which the report shows.
func TestServiceTDISPLeavesRun(t *testing.T) {
	dir := t.TempDir()
	v := newLiveVF(t, dir, "a", true)
	svc, att, boot, err, c := startService(t, dir, "ide: true\ntdisp: true\n", v)
	if err != nil {
		t.Fatal(err)
	}
	v.vf.MoveBAR0()
	waitFor(t, "the TDISP event", func() bool { return hasEvent(svc.Devices()[0], EventTDISP, "ERROR") })
	waitFor(t, "dev0 back in RUN", func() bool {
		st := svc.Devices()[0]
		return st.Status == evidence.StatusOK && st.Sessions >= 2
	})
	rep := fetchReport(t, c, att.Roots(), bytes.Repeat([]byte{5}, 32))
	d := rep.ParsedBody().Devices[0]
	if !reportHasEvent(d, EventTDISP) || !reportHasEvent(d, EventFailed) {
		t.Fatalf("events %+v", d.Events)
	}
	if bytes.Equal(d.TDISP.InterfaceReport, boot.ParsedBody().Devices[0].TDISP.InterfaceReport) {
		t.Fatal("the report after the move still shows the old layout")
	}
}
