package hostshim_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

// metricValue reads one series from reg: a counter's or gauge's value, or
// a histogram's sample count. Missing series read as 0.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return seriesValue(m)
		}
	}
	return 0
}

func seriesValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// recordingBackend passes exchanges to mb and records each request's
// discovery index (or -1) in arrival order at the device.
type recordingBackend struct {
	mb   doe.Mailbox
	mu   sync.Mutex
	seen []int
}

func (r *recordingBackend) Exchange(ctx context.Context, req doe.Object) (doe.Object, error) {
	idx := -1
	if i, _, err := doe.DecodeDiscoveryRequest(req); err == nil && req.Protocol() == doe.ProtocolDiscovery {
		idx = int(i)
	}
	r.mu.Lock()
	r.seen = append(r.seen, idx)
	r.mu.Unlock()
	return r.mb.Exchange(ctx, req)
}

func (r *recordingBackend) order() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// countLog counts audit lines containing s.
func (sh *shim) countLog(s string) int {
	return strings.Count(sh.audit.String(), s)
}

// waitLogCount polls until the audit log has n lines containing s.
func (sh *shim) waitLogCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for sh.countLog(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("audit log has %d of %d %q within 5s:\n%s", sh.countLog(s), n, s, sh.audit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestMediatorWaitersServedInArrivalOrder(t *testing.T) {
	vf := devsim.NewVF()
	rec := &recordingBackend{mb: vf.Driver()}
	s := startShim(t, rec, hostshim.Options{Wait: 20 * time.Second})

	holder := dial(t, s.addr)
	if _, err := exchange(holder, discoveryRequest(0)); err != nil {
		t.Fatal(err)
	}
	s.events.waitFor(t, "granted 1")

	// Three waiters queue one after the other; each sends a discovery
	// request with its own index, which the device sees only once the
	// waiter holds the mailbox. Each closes right after its answer.
	const waiters = 3
	errs := make(chan error, waiters)
	for i := range waiters {
		c := dial(t, s.addr)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			resp, err := c.Exchange(ctx, discoveryRequest(uint8(i)))
			if err == nil {
				_, _, err = doe.DecodeDiscoveryResponse(resp)
			}
			c.Close()
			errs <- err
		}()
		s.waitLogCount(t, "connection waiting for mailbox", i+1)
	}
	if !strings.Contains(s.audit.String(), `"place":3`) {
		t.Errorf("audit log does not show the third waiter third in line:\n%s", s.audit)
	}
	holder.Close()
	for range waiters {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("waiter: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("waiters not served within 15s")
		}
	}
	if got, want := rec.order(), []int{0, 0, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("device saw discovery indices %v, want %v (holder, then waiters in arrival order)", got, want)
	}
}

func TestMediatorRateLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{Rate: 5, Burst: 3, Metrics: hostshim.NewMetrics(reg)})
	c := dial(t, s.addr)
	for range 3 {
		mustDiscover0(t, c)
	}
	before := vf.Stats().Requests
	_, err := exchange(c, discoveryRequest(0))
	wantRefusal(t, err, "rate limit")
	if got := vf.Stats().Requests; got != before {
		t.Errorf("device saw %d requests, want %d: a rate-limited request reached the VF", got, before)
	}
	if got := metricValue(t, reg, "devattest_shim_errors_total", map[string]string{"vf": "devsim", "kind": "rate_limited"}); got != 1 {
		t.Errorf("errors_total{kind=rate_limited} = %v, want 1", got)
	}
	if !strings.Contains(s.audit.String(), `"result":"rate_limited"`) {
		t.Errorf("audit log lacks the rate-limited exchange:\n%s", s.audit)
	}
	// One token comes back every 200 ms.
	time.Sleep(250 * time.Millisecond)
	mustDiscover0(t, c)
	// The limit is the guest's: a new connection does not refill the
	// bucket (at most one token came back meanwhile).
	c.Close()
	s.waitLog(t, "connection released mailbox")
	c2 := dial(t, s.addr)
	var refused int
	for range 3 {
		if _, err := exchange(c2, discoveryRequest(0)); err != nil {
			wantRefusal(t, err, "rate limit")
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("3 exchanges at once on a new connection all passed: reconnecting refilled the rate")
	}
}

func TestMediatorExchangeDeadline(t *testing.T) {
	reg := prometheus.NewRegistry()
	vf := devsim.NewVF()
	const deadline = 150 * time.Millisecond
	s := startShim(t, vf.Driver(), hostshim.Options{ExchangeTimeout: deadline, Metrics: hostshim.NewMetrics(reg)})
	c := dial(t, s.addr)
	mustDiscover0(t, c)

	vf.SetFaults(devsim.Faults{NeverRespond: true})
	start := time.Now()
	_, err := exchange(c, discoveryRequest(0))
	elapsed := time.Since(start)
	wantRefusal(t, err, "timeout")
	// The device gets all but the eighth the driver keeps for its abort.
	if elapsed < deadline*7/8 || elapsed > doe.DefaultTimeout {
		t.Errorf("refused after %v; want the shim's %v deadline, not the driver's %v", elapsed, deadline, doe.DefaultTimeout)
	}
	if st := vf.Stats(); st.Aborts < 2 { // the driver's own and the shim's recovery
		t.Errorf("device stats %+v: want the stuck request aborted", st)
	}
	vf.SetFaults(devsim.Faults{})
	mustDiscover0(t, c) // the mailbox is idle again
	if got := metricValue(t, reg, "devattest_shim_errors_total", map[string]string{"kind": "timeout"}); got != 1 {
		t.Errorf("errors_total{kind=timeout} = %v, want 1", got)
	}
}

func TestMediatorClientGoneMidExchange(t *testing.T) {
	vf := devsim.NewVF()
	// A slow device: the answer comes 3 s after Go, within the driver's
	// bound only because the test raises it.
	d := vf.Driver()
	d.Timeout = 10 * time.Second
	s := startShim(t, d, hostshim.Options{ExchangeTimeout: 10 * time.Second, Wait: 10 * time.Second})

	raw, err := net.Dial("unix", strings.TrimPrefix(s.addr, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	vf.SetFaults(devsim.Faults{Delay: 3 * time.Second})
	req, _ := discoveryRequest(0).Encode()
	if err := doe.WriteFrame(raw, doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: req}); err != nil {
		t.Fatal(err)
	}
	// Wait until the request is at the device, then vanish.
	deadline := time.Now().Add(5 * time.Second)
	for vf.Stats().Requests == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request did not reach the device")
		}
		time.Sleep(time.Millisecond)
	}
	abortsBefore := vf.Stats().Aborts
	raw.Close()
	closedAt := time.Now()

	// The next holder is served long before the slow answer would come.
	c := dial(t, s.addr)
	vf.SetFaults(devsim.Faults{})
	mustDiscover0(t, c)
	if d := time.Since(closedAt); d > 2*time.Second {
		t.Errorf("next holder served %v after the client left; the abandoned exchange was not aborted", d)
	}
	st := vf.Stats()
	if st.Aborts <= abortsBefore && st.Responses < 2 {
		t.Errorf("device stats %+v: the abandoned request was neither aborted nor completed", st)
	}
	if !strings.Contains(s.audit.String(), "client disconnected") {
		t.Errorf("audit log does not record the abandoned exchange:\n%s", s.audit)
	}
	if err := s.med.Health(); err != nil {
		t.Errorf("Health after a client left mid-exchange = %v; a client leaving is not the device's failure", err)
	}
}

func TestMediatorWedgedAndRecovered(t *testing.T) {
	reg := prometheus.NewRegistry()
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{MaxConsecutiveFailures: 3, ExchangeTimeout: 100 * time.Millisecond, Metrics: hostshim.NewMetrics(reg)})
	c := dial(t, s.addr)
	mustDiscover0(t, c)
	wedged := func() float64 {
		return metricValue(t, reg, "devattest_shim_vf_wedged", map[string]string{"vf": "devsim"})
	}

	// The device stops answering: three timeouts in a row wedge it.
	vf.SetFaults(devsim.Faults{NeverRespond: true})
	for i := 1; i <= 3; i++ {
		_, err := exchange(c, discoveryRequest(0))
		wantRefusal(t, err, "timeout")
		h := s.med.Health()
		if i < 3 && (h != nil || wedged() != 0) {
			t.Fatalf("after %d failures: Health %v, wedged %v; want healthy", i, h, wedged())
		}
	}
	h := s.med.Health()
	if !errors.Is(h, hostshim.ErrWedged) || !strings.Contains(h.Error(), "devsim") || !strings.Contains(h.Error(), "stopped answering: 3 exchanges in a row") {
		t.Fatalf("Health after 3 failures = %v, want ErrWedged naming the VF, the cause and the count", h)
	}
	if wedged() != 1 {
		t.Errorf("vf_wedged = %v, want 1", wedged())
	}
	if n := s.countLog(`"msg":"VF wedged"`); n != 1 {
		t.Errorf("audit log has %d \"VF wedged\" lines, want 1:\n%s", n, s.audit)
	}
	// The driver aborts within each exchange's deadline; the shim's own
	// recovery abort runs only if time is left (exchange_timeout bounds
	// the whole exchange), so on a loaded machine some are left to the
	// next exchange.
	if got := metricValue(t, reg, "devattest_shim_aborts_total", map[string]string{"vf": "devsim"}); got < 1 || got > 3 {
		t.Errorf("aborts_total = %v, want 1 to 3 (a recovery per failure when time is left)", got)
	}
	if got := metricValue(t, reg, "devattest_shim_errors_total", map[string]string{"kind": "timeout"}); got != 3 {
		t.Errorf("errors_total{kind=timeout} = %v, want 3", got)
	}

	// A fourth failure keeps it wedged, without a second error line.
	_, err := exchange(c, discoveryRequest(0))
	wantRefusal(t, err, "timeout")
	if n := s.countLog(`"msg":"VF wedged"`); n != 1 {
		t.Errorf("audit log has %d \"VF wedged\" lines after a 4th failure, want 1", n)
	}

	// One success clears it and resets the count.
	vf.SetFaults(devsim.Faults{})
	mustDiscover0(t, c)
	if h := s.med.Health(); h != nil || wedged() != 0 {
		t.Fatalf("after a success: Health %v, wedged %v; want healthy", h, wedged())
	}
	s.waitLog(t, "VF recovered")
	vf.SetFaults(devsim.Faults{NeverRespond: true})
	for range 2 {
		_, err := exchange(c, discoveryRequest(0))
		wantRefusal(t, err, "timeout")
	}
	if h := s.med.Health(); h != nil {
		t.Errorf("2 failures after a success: Health %v, want healthy (the count restarts)", h)
	}
}

// TestMediatorGuestDeviceError: a DOE Error that one abort clears is the
// guest's failure: however many, the VF stays healthy. An abort that
// fails wedges it at once.
func TestMediatorGuestDeviceError(t *testing.T) {
	reg := prometheus.NewRegistry()
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{MaxConsecutiveFailures: 3, Metrics: hostshim.NewMetrics(reg)})
	c := dial(t, s.addr)
	mustDiscover0(t, c)
	vf.SetFaults(devsim.Faults{ErrorOnGo: true})
	for range 5 {
		_, err := exchange(c, discoveryRequest(0))
		wantRefusal(t, err, "DOE error bit")
	}
	if h := s.med.Health(); h != nil {
		t.Errorf("Health after 5 errors an abort cleared = %v, want healthy", h)
	}
	if got := metricValue(t, reg, "devattest_shim_errors_total", map[string]string{"kind": "guest_device_error"}); got != 5 {
		t.Errorf("errors_total{kind=guest_device_error} = %v, want 5", got)
	}
	vf.SetFaults(devsim.Faults{ErrorOnGo: true, IgnoreAbort: true})
	if _, err := exchange(c, discoveryRequest(0)); err == nil {
		t.Fatal("exchange with a device that ignores aborts succeeded")
	}
	if h := s.med.Health(); !errors.Is(h, hostshim.ErrWedged) || !strings.Contains(h.Error(), "abort") {
		t.Errorf("Health after a failed abort = %v, want ErrWedged naming the abort", h)
	}
}

func TestMediatorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := hostshim.NewMetrics(reg)
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{VF: "0000:3b:00.1", MaxObjectSize: 64, Wait: 100 * time.Millisecond, Metrics: m})
	get := func(name string, labels map[string]string) float64 {
		t.Helper()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["vf"] = "0000:3b:00.1"
		return metricValue(t, reg, name, labels)
	}

	c := dial(t, s.addr)
	for range 4 {
		mustDiscover0(t, c)
	}
	_, err := exchange(c, doe.NewObject(protocolCDAT, []byte{1, 2, 3, 4}))
	wantRefusal(t, err, "not allowed")
	_, err = exchange(c, doe.NewObject(doe.ProtocolCMA, make([]byte, 64)))
	wantRefusal(t, err, "too large")
	if got := get("devattest_shim_connections", nil); got != 1 {
		t.Errorf("connections = %v while one holds the VF, want 1", got)
	}

	// A second connection times out waiting: busy.
	c2 := dial(t, s.addr)
	_, err = exchange(c2, discoveryRequest(0))
	wantRefusal(t, err, "in use by")

	c.Close()
	s.waitLog(t, "connection released mailbox")

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"devattest_shim_exchanges_total", map[string]string{"result": "ok"}, 4},
		{"devattest_shim_exchanges_total", map[string]string{"result": "not_allowed"}, 1},
		{"devattest_shim_exchanges_total", map[string]string{"result": "too_large"}, 1},
		{"devattest_shim_errors_total", map[string]string{"kind": "not_allowed"}, 1},
		{"devattest_shim_errors_total", map[string]string{"kind": "too_large"}, 1},
		{"devattest_shim_exchange_seconds", nil, 4}, // forwarded exchanges only
		{"devattest_shim_busy_total", nil, 1},
		{"devattest_shim_aborts_total", nil, 0},
		{"devattest_shim_vf_wedged", nil, 0},
		{"devattest_shim_connections", nil, 0},
	} {
		if got := get(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Exactly the series that happened exist (no kind label for errors
	// that did not occur).
	if n, err := testutil.GatherAndCount(reg, "devattest_shim_errors_total"); err != nil || n != 2 {
		t.Errorf("errors_total has %d series (%v), want 2", n, err)
	}

	// A second Mediator for another VF shares the Metrics.
	s2 := startShim(t, devsim.NewVF().Driver(), hostshim.Options{VF: "other", Metrics: m})
	mustDiscover0(t, dial(t, s2.addr))
	if got := metricValue(t, reg, "devattest_shim_exchanges_total", map[string]string{"vf": "other", "result": "ok"}); got != 1 {
		t.Errorf("exchanges_total{vf=other} = %v, want 1", got)
	}
	m.ForgetVF("other")
	if got := metricValue(t, reg, "devattest_shim_exchanges_total", map[string]string{"vf": "other"}); got != 0 {
		t.Errorf("exchanges_total{vf=other} after ForgetVF = %v, want no series", got)
	}

	// Nil Metrics is fine.
	s3 := startShim(t, devsim.NewVF().Driver(), hostshim.Options{})
	mustDiscover0(t, dial(t, s3.addr))
}

func TestMediatorClose(t *testing.T) {
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{Wait: 20 * time.Second})
	holder := dial(t, s.addr)
	mustDiscover0(t, holder)

	waiter := dial(t, s.addr)
	res := make(chan error, 1)
	go func() { _, err := exchange(waiter, discoveryRequest(0)); res <- err }()
	s.waitLogCount(t, "connection waiting for mailbox", 1)

	s.med.Close()
	select {
	case err := <-res:
		// The waiter is refused as soon as Connect returns; if its request
		// was still being written it sees the connection close instead.
		var re *doe.RemoteError
		if err == nil {
			t.Fatal("the waiter was served after Close")
		} else if errors.As(err, &re) {
			wantRefusal(t, err, "no longer served")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not refused within 5s of Close")
	}
	// The holder keeps working until its connection ends ...
	mustDiscover0(t, holder)
	holder.Close()
	s.waitLog(t, "connection released mailbox")
	// ... and nobody new gets in. The server refuses at once, so the
	// client may see the refusal or, if it was still writing its request,
	// a closed connection.
	_, err := exchange(dial(t, s.addr), discoveryRequest(0))
	if err == nil {
		t.Fatal("exchange on a connection made after Close succeeded")
	}
	var re *doe.RemoteError
	if errors.As(err, &re) && !strings.Contains(re.Reason, "no longer served") {
		t.Errorf("refusal %q does not say the VF is no longer served", re.Reason)
	}
	s.events.waitFor(t, "refused 3")
}
