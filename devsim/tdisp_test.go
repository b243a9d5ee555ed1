package devsim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

// tdispVF is a VF with a PSK session through its DOE registers, IDE keys
// in use on stream 0 of port 1 (as spdm-emu's requester leaves them) when
// keyed is set, and a TDISP requester for its TDI.
func tdispVF(t *testing.T, keyed bool, opts ...Option) (*Function, *tdisp.Requester, context.Context) {
	t.Helper()
	_, ids, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := NewSPDMVF(ids, NewMeasurements(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: f.Driver()}, secchan.DefaultRequesterConfig())
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ss, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(SamplePSK), PSKHint: []byte(SamplePSKHint)})
	if err != nil {
		t.Fatal(err)
	}
	if keyed {
		r, err := ide.NewRequester(ss, q.Negotiated().Version, &ide.SimRootPort{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.ProgramKeySet(ctx, 1, 0, ide.K0); err != nil {
			t.Fatal(err)
		}
		if err := r.Go(ctx, 1, 0, ide.K0); err != nil {
			t.Fatal(err)
		}
	}
	tq, err := tdisp.NewRequester(ss, q.Negotiated().Version, DefaultTDISPFunctionID)
	if err != nil {
		t.Fatal(err)
	}
	return f, tq, ctx
}

// TestTDISPReportFromConfig: the report describes the function's BARs
// and MSI-X capability as they are at LOCK, with the reporting offset.
func TestTDISPReportFromConfig(t *testing.T) {
	f, q, ctx := tdispVF(t, true)
	q.Chunk = 0x20 // several portions
	const off = 0x1_0000_0000
	b, err := q.Bind(ctx, tdisp.LockParams{Flags: tdisp.LockNoFWUpdate | tdisp.LockMSIX, MMIOReportingOffset: off}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := b.Report
	if len(r.Ranges) != 3 || r.Ranges[0].FirstPage != (DefaultBAR0+off)/4096 || r.Ranges[0].Size() != BAR0Size ||
		r.Ranges[1].Attributes != tdisp.AttrMSIXTable || r.Ranges[2].Attributes != tdisp.AttrMSIXPBA|tdisp.AttrNonTEEMem ||
		r.Ranges[2].FirstPage != (DefaultBAR2+MSIXPBAOffset+off)/4096 {
		t.Fatalf("ranges %+v", r.Ranges)
	}
	if r.InterfaceInfo != tdisp.InfoNoUpdateAfterLock|tdisp.InfoDMAWithoutPASID || r.MSIXMessageControl != MSIXEntries-1 ||
		string(r.DeviceSpecific) != TDISPDeviceInfo {
		t.Fatalf("report %+v", r)
	}
	if f.TDI().State() != tdisp.StateRun {
		t.Fatal(f.TDI().State())
	}
	// The host moves BAR0 while the TDI runs: ERROR.
	if err := f.WriteConfig32(RegBAR0, DefaultBAR0+0x100000); err != nil {
		t.Fatal(err)
	}
	if err := q.ExpectState(ctx, tdisp.StateError); err != nil {
		t.Fatal(err)
	}
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Unlocked, the host may reconfigure; the next report shows it.
	b, err = q.Bind(ctx, tdisp.LockParams{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Report.Ranges[0].FirstPage != (DefaultBAR0+0x100000)/4096 || b.Report.Ranges[1].Attributes != tdisp.AttrMSIXTable|tdisp.AttrNonTEEMem {
		t.Fatalf("ranges after the move %+v", b.Report.Ranges)
	}
}

// TestTDISPNeedsIDE: LOCK_INTERFACE binds the default stream, which must
// have keys in use.
func TestTDISPNeedsIDE(t *testing.T) {
	_, q, ctx := tdispVF(t, false)
	if _, err := q.Lock(ctx, tdisp.LockParams{}); !errors.Is(err, tdisp.ErrInvalidRequest) {
		t.Fatalf("lock without IDE keys: %v", err)
	}
}

// TestTDISPFaultKnobs: a host that moves BAR0 right after the lock, or
// right after the start, leaves the TDI in ERROR.
func TestTDISPFaultKnobs(t *testing.T) {
	for _, fl := range []Faults{{TDISPChangeAfterLock: true}, {TDISPChangeWhileRunning: true}} {
		f, q, ctx := tdispVF(t, true)
		f.SetFaults(fl)
		_, err := q.Bind(ctx, tdisp.LockParams{}, nil, nil)
		var se *tdisp.StepError
		if fl.TDISPChangeAfterLock {
			if !errors.As(err, &se) || se.Step != "LOCK_INTERFACE" || !errors.Is(err, tdisp.ErrState) {
				t.Fatalf("change after lock: %v", err)
			}
		} else {
			if !errors.As(err, &se) || se.Step != "START_INTERFACE" || !errors.Is(err, tdisp.ErrState) {
				t.Fatalf("change while running: %v", err)
			}
		}
		if f.TDI().State() != tdisp.StateError || len(f.TDI().Events()) != 1 {
			t.Fatalf("state %v, events %v", f.TDI().State(), f.TDI().Events())
		}
		t.Logf("%+v: %v; device: %v", fl, err, f.TDI().Events())
	}
}

// TestTDISPReplayedStart: devsim refuses a START_INTERFACE with a nonce
// it already took, or with an earlier lock's nonce.
func TestTDISPReplayedStart(t *testing.T) {
	f, q, ctx := tdispVF(t, true)
	nonce, err := q.Lock(ctx, tdisp.LockParams{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx, &nonce); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx, &nonce); !errors.Is(err, tdisp.ErrInvalidInterfaceState) {
		t.Fatalf("replayed START: %v", err)
	}
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Lock(ctx, tdisp.LockParams{}); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx, &nonce); !errors.Is(err, tdisp.ErrInvalidNonce) {
		t.Fatalf("START with the earlier lock's nonce: %v", err)
	}
	if f.TDI().State() != tdisp.StateConfigLocked {
		t.Fatal(f.TDI().State())
	}
	// A function reset unlocks the TDI.
	f.Reset()
	if f.TDI().State() != tdisp.StateConfigUnlocked {
		t.Fatal(f.TDI().State())
	}
}

func TestConfigWrites(t *testing.T) {
	var heard []string
	f := New(WithConfigHook(func(w string) { heard = append(heard, w) }))
	_ = f.WriteConfig32(RegBAR0, 0xFFFFFFFF) // sizing
	v, _ := f.ReadConfig32(RegBAR0)
	if v != ^uint32(BAR0Size-1)|barMem64 {
		t.Fatalf("BAR0 sizing reads 0x%08x", v)
	}
	_ = f.WriteConfig32(0x2C, 1)                // subsystem IDs: read-only
	_ = f.WriteConfig32(MSIXOffset, 0x8000<<16) // MSI-X enable
	if c := f.MemoryConfig(); c.MSIXControl != 0x8000|(MSIXEntries-1) {
		t.Fatalf("MSI-X control 0x%04x", c.MSIXControl)
	}
	if len(heard) != 2 || heard[0] != "BAR0" || heard[1] != "MSI-X Message Control" {
		t.Fatalf("heard %v", heard)
	}
}
