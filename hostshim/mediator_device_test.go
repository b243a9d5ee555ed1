package hostshim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

// exchange_timeout bounds the whole exchange with a device that stays
// busy, the driver's busy waiting and the aborts after it included. Before,
// each such exchange took 3.0 s with 2s and 2.2 s with 200ms (the driver's
// 1 s abort, then the shim's own). Each bound is checked with a margin of
// its own size or 600 ms, well short of the old times.
func TestMediatorExchangeTimeoutBoundsBusyDevice(t *testing.T) {
	for _, tc := range []struct {
		timeout, limit time.Duration
	}{
		{200 * time.Millisecond, 800 * time.Millisecond},
		{2 * time.Second, 2600 * time.Millisecond},
	} {
		t.Run(tc.timeout.String(), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			vf := devsim.NewVF()
			s := startShim(t, vf.Driver(), hostshim.Options{ExchangeTimeout: tc.timeout, Metrics: hostshim.NewMetrics(reg)})
			c := dial(t, s.addr)
			mustDiscover0(t, c)
			vf.SetFaults(devsim.Faults{StayBusy: true})
			for i := range 2 {
				start := time.Now()
				_, err := exchange(c, discoveryRequest(0))
				el := time.Since(start)
				wantRefusal(t, err)
				t.Logf("exchange %d with a device that stays busy: %v (exchange_timeout %v)", i, el.Round(time.Millisecond), tc.timeout)
				if el > tc.limit {
					t.Errorf("exchange %d took %v with exchange_timeout %v", i, el, tc.timeout)
				}
			}
			vf.SetFaults(devsim.Faults{})
			mustDiscover0(t, c) // the failed abort is retried, the mailbox works
		})
	}
}

// A device that answers in 1.5 s works with exchange_timeout 2s: the
// driver's per-object 1 s follows the shim's bound. Before, it failed
// after 1 s.
func TestMediatorSlowDeviceWithinExchangeTimeout(t *testing.T) {
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{ExchangeTimeout: 2 * time.Second})
	c := dial(t, s.addr)
	mustDiscover0(t, c)
	vf.SetFaults(devsim.Faults{Delay: 1500 * time.Millisecond})
	start := time.Now()
	mustDiscover0(t, c)
	t.Logf("a device answering in 1.5 s, exchange_timeout 2s: answered after %v", time.Since(start).Round(time.Millisecond))
	if err := s.med.Health(); err != nil {
		t.Errorf("Health after a slow answer = %v", err)
	}
}

// A second writer drives the VF's DOE registers between the guest's
// exchanges (as the guest itself could through vfio-pci's raw config
// access): the shim refuses the guest's next exchange as foreign activity,
// logs it as its own event with the guest, counts it in its own kind, does
// not count it against the device, and the exchange after works.
func TestMediatorForeignActivity(t *testing.T) {
	reg := prometheus.NewRegistry()
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{VF: "vf0", Guest: "guest-a", Metrics: hostshim.NewMetrics(reg), MaxConsecutiveFailures: 1})
	c := dial(t, s.addr)
	mustDiscover0(t, c)

	// The second writer: a whole discovery request and Go, straight into
	// the function's registers; its answer is left in the read mailbox.
	req, _ := discoveryRequest(1).Encode()
	for i := 0; i < len(req); i += 4 {
		v := uint32(req[i]) | uint32(req[i+1])<<8 | uint32(req[i+2])<<16 | uint32(req[i+3])<<24
		if err := vf.WriteConfig32(devsim.DOEOffset+doe.RegWriteMailbox, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := vf.WriteConfig32(devsim.DOEOffset+doe.RegControl, doe.ControlGo); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for vf.Stats().Responses < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the foreign request was not answered")
		}
		time.Sleep(time.Millisecond)
	}

	_, err := exchange(c, discoveryRequest(0))
	wantRefusal(t, err, "foreign activity")
	mustDiscover0(t, c)

	var event map[string]any
	for _, l := range auditLines(t, s.audit.String()) {
		if l["msg"] == "foreign activity on the mailbox" {
			event = l
		}
	}
	if event == nil {
		t.Fatalf("no foreign-activity event in the audit log:\n%s", s.audit)
	}
	if event["guest"] != "guest-a" || event["vf"] != "vf0" || event["result"] != hostshim.KindForeignActivity {
		t.Errorf("foreign-activity event %v, want guest guest-a, vf vf0, result %s", event, hostshim.KindForeignActivity)
	}
	if strings.Count(s.audit.String(), `"result":"foreign_activity"`) != 1 {
		t.Errorf("want exactly one foreign_activity line:\n%s", s.audit)
	}
	if got := metricValue(t, reg, "devattest_shim_errors_total", map[string]string{"vf": "vf0", "kind": hostshim.KindForeignActivity}); got != 1 {
		t.Errorf("errors_total{kind=foreign_activity} = %v, want 1", got)
	}
	// One failure would mark the VF wedged (MaxConsecutiveFailures 1);
	// foreign activity is not the device's failure.
	if err := s.med.Health(); err != nil {
		t.Errorf("Health = %v after foreign activity; the device did not fail", err)
	}
}
