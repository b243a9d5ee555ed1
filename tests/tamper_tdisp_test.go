package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

// tdispPolicy is the TDISP part of a device rule describing evidence t
// exactly, as `devattest policy init` writes it.
func tdispPolicy(t *testing.T, td *evidence.TDISP) string {
	t.Helper()
	state, info, ranges, err := policy.TDISPRules(td)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    require_tdisp: true\n    tdisp_state: %s\n    tdisp_interface_info: [%s]\n    tdisp_mmio_ranges:\n", state, strings.Join(info, ", "))
	for _, m := range ranges {
		fmt.Fprintf(&b, "      - {pages: %d, attributes: [%s], range_id: %d}\n", m.Pages, strings.Join(m.Attributes, ", "), *m.RangeID)
	}
	return b.String()
}

func tdispEnv(t *testing.T) *tamperEnv {
	t.Helper()
	env := newTamperEnv(t)
	env.tdisp = true
	return env
}

// TestTamperTDISP: through `devattest relay`'s tamper mode, a bit flipped
// in any object of the TDISP exchanges (the last nine requests before
// END_SESSION and their responses, each inside the secure session) is
// refused: the guest fails the device at a named step and the verifier
// rejects the report. The pass run's report, with TDISP required by the
// policy, is accepted.
func TestTamperTDISP(t *testing.T) {
	env := tdispEnv(t)
	lane := newTamperLane(t)
	const budget = 4 * time.Second
	pass := lane.run(t, env, doe.RelayMode{Kind: doe.RelayPass}, budget)
	if pass.err != nil {
		t.Fatalf("pass run: %v", pass.err)
	}
	env.base = pass.rep.ParsedBody().Devices[0]
	if env.base.TDISP == nil || env.base.TDISP.State != "RUN" {
		t.Fatalf("pass run TDISP %+v", env.base.TDISP)
	}
	env.pol = writePolicy(t, lane.dir, env.root, pass.rep, env.att.Roots())
	if got := env.judge(t, pass, budget); got != "ok" {
		t.Fatalf("pass run: %s", got)
	}
	// VERSION, CAPABILITIES, STATE, LOCK, STATE, REPORT x2 (devsim sends
	// 0x40-byte portions of its 84-byte report), START, STATE.
	const tdispExchanges = 9
	up := pass.stats.Up
	var modes []doe.RelayMode
	for n := up - tdispExchanges; n < up; n++ {
		for _, d := range []struct {
			dir  string
			size int
		}{{doe.DirUp, pass.stats.UpSizes[n-1]}, {doe.DirDown, pass.stats.DownSizes[n-1]}} {
			bits := []int{d.size * 8 / 2, d.size*8 - 9} // the body; the AEAD tag
			if !testing.Short() {
				bits = append(bits, 0, 13, 8*8+3) // session ID; length; the ciphertext's start
			}
			for _, bit := range bits {
				modes = append(modes, doe.RelayMode{Kind: doe.RelayTamper, N: n, Dir: d.dir, Bit: bit})
			}
		}
	}
	work := make(chan doe.RelayMode)
	var wg sync.WaitGroup
	var mu sync.Mutex
	classes := map[string]int{}
	lanes := []*tamperLane{lane, newTamperLane(t)}
	for _, l := range lanes {
		wg.Go(func() {
			for m := range work {
				out := l.run(t, env, m, budget)
				class := env.judge(t, out, budget)
				if !strings.HasPrefix(class, "error at ") {
					t.Errorf("%s: %s (%v): a flipped bit in a TDISP object must be refused", m, class, out.err)
				}
				mu.Lock()
				classes[class]++
				mu.Unlock()
			}
		})
	}
	for _, m := range modes {
		work <- m
	}
	close(work)
	wg.Wait()
	t.Logf("%d TDISP tamper cases: %v", len(modes), classes)
}

// TestFaultTDISPHostReconfigures: a host that moves the VF's BAR0 right
// after LOCK_INTERFACE, or right after START_INTERFACE, puts the TDI in
// ERROR; the guest's report shows the device failed at TDISP and the
// verifier refuses it.
func TestFaultTDISPHostReconfigures(t *testing.T) {
	for _, fl := range []devsim.Faults{{TDISPChangeAfterLock: true}, {TDISPChangeWhileRunning: true}} {
		env := tdispEnv(t)
		lane := newTamperLane(t)
		pass := lane.run(t, env, doe.RelayMode{Kind: doe.RelayPass}, 4*time.Second)
		if pass.err != nil {
			t.Fatal(pass.err)
		}
		env.base = pass.rep.ParsedBody().Devices[0]
		env.pol = writePolicy(t, lane.dir, env.root, pass.rep, env.att.Roots())
		env.faults = fl
		out := lane.run(t, env, doe.RelayMode{Kind: doe.RelayPass}, 4*time.Second)
		var de *guest.DeviceError
		if !errors.As(out.err, &de) || de.Step != guest.StepTDISP {
			t.Fatalf("%+v: %v", fl, out.err)
		}
		d := out.rep.ParsedBody().Devices[0]
		if d.Status != evidence.StatusFailed || d.FailedStep != guest.StepTDISP || !strings.Contains(d.Error, "ERROR") {
			t.Fatalf("%+v: device %+v", fl, d)
		}
		v, err := env.verify(out)
		if err != nil || v.OK {
			t.Fatalf("%+v: verifier %v, %v", fl, v.OK, err)
		}
		if got := env.judge(t, out, 4*time.Second); got != "error at TDISP" {
			t.Fatalf("%+v: %s", fl, got)
		}
		t.Logf("%+v: device failed at %s: %s", fl, d.FailedStep, d.Error)
	}
}

// TestReplayedStartRefusedByDevsim: a host that records the secured
// START_INTERFACE record and plays it to the device again (after the
// guest stopped and re-locked the interface) gets nothing: devsim refuses
// the stale record, and the TDI stays CONFIG_LOCKED. The nonce inside
// would be refused as well (devsim.TestTDISPReplayedStart).
func TestReplayedStartRefusedByDevsim(t *testing.T) {
	vf, _, err := devsim.NewSPDMVF(tdispEnv(t).ids, devsim.NewMeasurements())
	if err != nil {
		t.Fatal(err)
	}
	drv := vf.Driver()
	var mu sync.Mutex
	var records []doe.Object
	host := doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		if req.Protocol() == doe.ProtocolSecuredCMA {
			mu.Lock()
			records = append(records, req)
			mu.Unlock()
		}
		return drv.Exchange(ctx, req)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: host}, secchan.DefaultRequesterConfig())
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ss, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(devsim.SamplePSK), PSKHint: []byte(devsim.SamplePSKHint)})
	if err != nil {
		t.Fatal(err)
	}
	v := q.Negotiated().Version
	if _, err := ide.RunCheck(ctx, ss, &ide.SimRootPort{}, ide.CheckOptions{Version: v, KeepKeys: true}); err != nil {
		t.Fatal(err)
	}
	r, err := tdisp.NewRequester(ss, v, tdisp.DefaultFunctionID)
	if err != nil {
		t.Fatal(err)
	}
	nonce, err := r.Lock(ctx, tdisp.LockParams{})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	mark := len(records)
	mu.Unlock()
	if err := r.Start(ctx, &nonce); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	start := records[mark]
	mu.Unlock()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(ctx, tdisp.LockParams{}); err != nil {
		t.Fatal(err)
	}
	resp, err := drv.Exchange(ctx, start)
	t.Logf("replayed START record: response %d bytes, %v", len(resp.Payload), err)
	if st := vf.TDI().State(); st != tdisp.StateConfigLocked {
		t.Fatalf("after the replayed START the TDI is %v, want CONFIG_LOCKED", st)
	}
}
