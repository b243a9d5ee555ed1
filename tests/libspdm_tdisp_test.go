package tests

import (
	"errors"
	"testing"

	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/tdisp"
)

// TestLibspdmResponderTDISP runs our TDISP requester inside a
// KEY_EXCHANGE session with libspdm's spdm_responder_emu and its sample
// TDISP device (after IDE_KM on port 1, as spdm-emu's own requester
// does): version, capabilities, lock, the report in portions, start,
// stop, with the state read at each step.
//
// The emulator links spdm-emu's library/pci_tdisp_device_lib_sample,
// which compares the START nonce correctly (commit b68eea1); the second
// copy under spdm-device-sample/ still has the inverted comparison that
// commit fixed, so a responder built from that copy would refuse this
// requester's (correct) START with INVALID_NONCE.
func TestLibspdmResponderTDISP(t *testing.T) {
	ctx, q, ss := libspdmSession(t)
	v := q.Negotiated().Version
	kr, err := ide.NewRequester(ss, v, &ide.SimRootPort{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Query(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := kr.ProgramKeySet(ctx, 1, 0, ide.K0); err != nil {
		t.Fatal(err)
	}
	if err := kr.Go(ctx, 1, 0, ide.K0); err != nil {
		t.Fatal(err)
	}

	r, err := tdisp.NewRequester(ss, v, tdisp.DefaultFunctionID)
	if err != nil {
		t.Fatal(err)
	}
	state := func(want tdisp.State) {
		t.Helper()
		if err := r.ExpectState(ctx, want); err != nil {
			t.Fatal(err)
		}
		t.Logf("state %v", want)
	}
	vs, err := r.Version(ctx) // the sample device (re)creates its TDI here
	if err != nil {
		t.Fatal(err)
	}
	caps, err := r.Capabilities(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("versions % x, lock flags %v, address width %d", vs, tdisp.LockFlagNames(caps.LockFlagsSupported), caps.DevAddrWidth)
	state(tdisp.StateConfigUnlocked)
	nonce, err := r.Lock(ctx, tdisp.LockParams{Flags: caps.LockFlagsSupported, MMIOReportingOffset: 0xD0000000})
	if err != nil {
		t.Fatal(err)
	}
	state(tdisp.StateConfigLocked)
	raw, rep, err := r.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report of %d bytes: %d ranges, info %v, device info %q", len(raw), len(rep.Ranges), tdisp.InfoNames(rep.InterfaceInfo), rep.DeviceSpecific)
	if len(rep.Ranges) != 4 || rep.InterfaceInfo != tdisp.InfoNoUpdateAfterLock|tdisp.InfoDMAWithoutPASID {
		t.Fatalf("report %+v, want the sample device's four ranges", rep)
	}
	if err := r.Start(ctx, &nonce); err != nil {
		t.Fatal(err)
	}
	state(tdisp.StateRun)
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	state(tdisp.StateConfigUnlocked)
	if err := r.Stop(ctx); !errors.Is(err, tdisp.ErrInvalidInterfaceState) {
		t.Fatalf("STOP while unlocked: %v", err)
	}
	if err := ss.End(ctx); err != nil {
		t.Fatal(err)
	}
}
