package tests

// The hostile-guest suite (issue 15): each test is one way a guest, or a
// careless operator, could hurt the host or another guest through the
// shim, reproduced on loopback with bounded floods. Figures the issue asks
// for (log bytes per second, fds and goroutines, guest B's latency) are
// logged with t.Logf; the assertions use generous bounds only.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

// hostileEnv is an in-process shim whose listeners each serve their own
// devsim VF on a unix socket in dir.
type hostileEnv struct {
	dir  string
	log  *syncBuffer
	shim *hostshim.Shim

	mu  sync.Mutex
	vfs map[string]*devsim.Function
}

// hostileConfig renders a configuration: one devsim listener per name,
// each with the extra YAML (flow style, "{...}" keys) given for it.
func hostileConfig(dir string, extra map[string]string, names ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "run_dir: %s\nshutdown_grace: 2s\nmetrics: {listen: \"127.0.0.1:0\"}\nlisteners:\n", filepath.Join(dir, "run"))
	for _, n := range names {
		fmt.Fprintf(&b, "  - name: %s\n    guest: guest-%s\n    vf: {backend: devsim}\n", n, n)
		if !strings.Contains(extra[n], "listen:") {
			fmt.Fprintf(&b, "    listen: {unix: {path: %s}}\n", filepath.Join(dir, n+".sock"))
		}
		for l := range strings.Lines(extra[n]) {
			fmt.Fprintf(&b, "    %s\n", strings.TrimSpace(l))
		}
	}
	return b.String()
}

func startHostile(t *testing.T, extra map[string]string, names ...string) *hostileEnv {
	t.Helper()
	e := &hostileEnv{dir: t.TempDir(), log: &syncBuffer{}, vfs: make(map[string]*devsim.Function)}
	cfg, err := hostshim.ParseConfig([]byte(hostileConfig(e.dir, extra, names...)))
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	open := func(_ context.Context, vf hostshim.VFConfig, _ []doe.Protocol) (doe.Mailbox, io.Closer, error) {
		f := devsim.NewVF()
		e.mu.Lock()
		e.vfs[vf.Listener] = f
		e.mu.Unlock()
		return f.Driver(), nil, nil
	}
	log := slog.New(slog.NewJSONHandler(e.log, nil)) // info, as a host runs it
	s, err := hostshim.New(cfg, open, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("hostshim.New: %v", err)
	}
	e.shim = s
	t.Cleanup(s.Shutdown)
	return e
}

func (e *hostileEnv) sock(name string) string { return filepath.Join(e.dir, name+".sock") }

func (e *hostileEnv) vf(name string) *devsim.Function {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.vfs[name]
}

// rawConn is a guest speaking the socket framing by hand.
type rawConn struct{ net.Conn }

func dialRaw(t *testing.T, network, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c}
}

// roundTrip sends one frame and reads the reply.
func (c *rawConn) roundTrip(f doe.Frame) (doe.Frame, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := doe.WriteFrame(c, f); err != nil {
		return doe.Frame{}, err
	}
	return doe.ReadFrame(c, doe.MaxFramePayload)
}

func normalFrame(o doe.Object) doe.Frame {
	b, err := o.Encode()
	if err != nil {
		panic(err)
	}
	return doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: b}
}

var (
	discovery0 = doe.EncodeDiscoveryRequest(0, doe.DiscoveryVersion(devsim.DOEVersion))
	// badDiscovery has reserved bits set: the device raises its Error bit.
	badDiscovery = doe.NewObject(doe.ProtocolDiscovery, []byte{0, 0, 0xff, 0xff})
	// cdat is outside the default allowlist.
	cdat = doe.NewObject(doe.Protocol{Vendor: 0x1e98, Type: 2}, []byte{0, 0, 0, 0})
)

// scrape reads one series from the shim's /metrics (0 if absent).
func scrape(t *testing.T, addr, series string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHostileReconnectKeepsRate (finding 2): the rate is the guest's, not
// the connection's, so reconnecting after each refusal gains nothing;
// TEST frames take tokens too.
func TestHostileReconnectKeepsRate(t *testing.T) {
	const rate, burst = 10, 5
	e := startHostile(t, map[string]string{"a": fmt.Sprintf("rate: %d\nburst: %d", rate, burst)}, "a")
	run := 1500 * time.Millisecond
	if testing.Short() {
		run = 700 * time.Millisecond
	}
	start := time.Now()
	var ok, refused, conns int
	for time.Since(start) < run && conns < 5000 {
		c := dialRaw(t, "unix", e.sock("a"))
		conns++
		for {
			r, err := c.roundTrip(normalFrame(discovery0))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if r.Command != doe.CommandNormal {
				refused++
				break
			}
			ok++
		}
		c.Close()
	}
	elapsed := time.Since(start)
	bound := burst + int(rate*elapsed.Seconds()) + 2
	t.Logf("reconnecting after each refusal: %d ok, %d refused, %d connections in %v (bound %d)", ok, refused, conns, elapsed.Round(time.Millisecond), bound)
	if ok > bound {
		t.Errorf("%d exchanges passed in %v with rate %d burst %d over %d connections; want at most %d", ok, elapsed, rate, burst, conns, bound)
	}

	// TEST frames count: with the bucket empty, a TEST is refused.
	c := dialRaw(t, "unix", e.sock("a"))
	var testRefused bool
	for range 3 * burst {
		r, err := c.roundTrip(doe.Frame{Command: doe.CommandTest, Transport: doe.TransportPCIDOE})
		if err != nil {
			t.Fatal(err)
		}
		if r.Command == doe.CommandUnknown && strings.Contains(string(r.Payload), "rate limit") {
			testRefused = true
			break
		}
	}
	if !testRefused {
		t.Errorf("%d TEST frames at once were all answered: TEST frames do not count against the rate", 3*burst)
	}
}

// flood sends frames from one connection (reconnecting when the shim ends
// it, or after every frame with reconnect) for d or n frames, whichever
// comes first, and returns the count.
func flood(t *testing.T, sock string, d time.Duration, n int, f doe.Frame, reconnect bool) int {
	t.Helper()
	var sent int
	c := dialRaw(t, "unix", sock)
	defer func() { c.Close() }()
	for start := time.Now(); time.Since(start) < d && sent < n; {
		if _, err := c.roundTrip(f); err != nil || reconnect {
			c.Close()
			c = dialRaw(t, "unix", sock)
		}
		sent++
	}
	return sent
}

// logBound is the stated bound on one flooding guest's audit log: the
// default 50 lines per second of ~400 bytes, plus one summary per kind
// and one for drops.
const logBound = 32 << 10 // bytes per second

// TestHostileLogFloodBounded (finding 3): whatever a guest floods with,
// its audit log stays under logBound bytes per second, repeated refusals
// are summed up, every line names the guest and the VF, and the other
// guest keeps being served (its p99 is reported).
func TestHostileLogFloodBounded(t *testing.T) {
	e := startHostile(t, map[string]string{"r": "rate: 10\nburst: 5"}, "a", "b", "r")
	each := 1500 * time.Millisecond
	if testing.Short() {
		each = 500 * time.Millisecond
	}
	const maxFrames = 200_000

	// Guest B exchanges throughout, alone first, then while A floods.
	bLatency := func(stop <-chan struct{}) []time.Duration {
		c := dialRaw(t, "unix", e.sock("b"))
		defer c.Close() // the next run takes the VF
		var lat []time.Duration
		for {
			select {
			case <-stop:
				slices.Sort(lat)
				return lat
			default:
			}
			t0 := time.Now()
			r, err := c.roundTrip(normalFrame(discovery0))
			if err != nil || r.Command != doe.CommandNormal {
				t.Errorf("guest B's exchange during A's flood: %v %s", err, r.Payload)
				slices.Sort(lat)
				return lat
			}
			lat = append(lat, time.Since(t0))
			time.Sleep(time.Millisecond)
		}
	}
	pct := func(l []time.Duration, p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(p*float64(len(l))))].Round(time.Microsecond)
	}
	stop := make(chan struct{})
	done := make(chan []time.Duration)
	go func() { done <- bLatency(stop) }()
	time.Sleep(each / 2)
	close(stop)
	alone := <-done

	floods := []struct {
		name, guest string
		frame       doe.Frame
		reconnect   bool
	}{
		{"disallowed types", "a", normalFrame(cdat), false},
		{"malformed objects", "a", doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: []byte{1, 2, 3}}, false},
		{"device errors", "a", normalFrame(badDiscovery), false},
		{"unknown commands", "a", doe.Frame{Command: 0x1234, Transport: doe.TransportPCIDOE}, false},
		{"rate-limited", "r", normalFrame(discovery0), false},
		{"reconnects", "a", normalFrame(discovery0), true},
	}
	stop = make(chan struct{})
	go func() { done <- bLatency(stop) }()
	for _, f := range floods {
		before := len(e.log.String())
		start := time.Now()
		n := flood(t, e.sock(f.guest), each, maxFrames, f.frame, f.reconnect)
		time.Sleep(1100 * time.Millisecond) // the window's summaries
		elapsed := time.Since(start)
		var out strings.Builder // every line but guest B's
		for l := range strings.Lines(e.log.String()[before:]) {
			if !strings.Contains(l, `"listener":"b"`) {
				out.WriteString(l)
			}
		}
		rate := float64(out.Len()) / elapsed.Seconds()
		t.Logf("flood of %-17s %7d frames in %v: %6d log bytes, %6.0f bytes/s (%d lines)", f.name, n, each, out.Len(), rate, strings.Count(out.String(), "\n"))
		if rate > logBound {
			t.Errorf("flood of %s: the log grew %.0f bytes/s, over the bound of %d", f.name, rate, logBound)
		}
		for l := range strings.Lines(out.String()) {
			if !strings.Contains(l, `"guest":"guest-`+f.guest+`"`) || !strings.Contains(l, `"vf":"devsim:`+f.guest+`"`) {
				t.Errorf("flood of %s: log line without guest and vf: %s", f.name, l)
				break
			}
		}
		want := "refusals of kind" // "N refusals of kind K in the last second"
		if f.reconnect {
			want = "audit lines dropped"
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("flood of %s: no summary line %q:\n%.2000s", f.name, want, out.String())
		}
	}
	close(stop)
	during := <-done
	t.Logf("guest B while A floods: %d exchanges, p50 %v p99 %v (alone: %d exchanges, p50 %v p99 %v)",
		len(during), pct(during, 0.5), pct(during, 0.99), len(alone), pct(alone, 0.5), pct(alone, 0.99))
	if code, body := healthz(t, e.shim.MetricsAddr().String()); code != 200 {
		t.Errorf("/healthz after the floods = %d %s", code, body)
	}
}

// TestHostileMalformedKeepsHealth (finding 4): a guest's requests that
// make the device raise its Error bit are that guest's failures: /healthz
// stays 200 and the other listener serves.
func TestHostileMalformedKeepsHealth(t *testing.T) {
	e := startHostile(t, nil, "a", "b")
	a := dialRaw(t, "unix", e.sock("a"))
	for range 5 {
		r, err := a.roundTrip(normalFrame(badDiscovery))
		if err != nil || r.Command != doe.CommandUnknown {
			t.Fatalf("bad discovery answered %v %v", r.Command, err)
		}
	}
	if st := e.vf("a").Stats(); st.Errors < 5 {
		t.Fatalf("device stats %+v: the bad requests did not raise the Error bit", st)
	}
	addr := e.shim.MetricsAddr().String()
	if code, body := healthz(t, addr); code != 200 {
		t.Errorf("/healthz after guest A's malformed requests = %d %q, want 200", code, body)
	}
	if r, err := a.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Errorf("guest A's good request after its bad ones: %v %s", err, r.Payload)
	}
	b := dialRaw(t, "unix", e.sock("b"))
	if r, err := b.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Errorf("guest B: %v %s", err, r.Payload)
	}
	if v := scrape(t, addr, `devattest_shim_errors_total{kind="guest_device_error",vf="devsim:a"}`); v != 5 {
		t.Errorf("errors_total{kind=guest_device_error} = %v, want 5", v)
	}

	// A VF that stops answering is wedged, and /healthz names the
	// listener and the cause.
	e.vf("b").SetFaults(devsim.Faults{NeverRespond: true, IgnoreAbort: true})
	if r, err := b.roundTrip(normalFrame(discovery0)); err != nil || r.Command == doe.CommandNormal {
		t.Fatalf("exchange with a dead VF: %v %v", r.Command, err)
	}
	code, body := healthz(t, addr)
	if code != 503 || !strings.Contains(body, "listener b") || !strings.Contains(body, "abort") || strings.Contains(body, "listener a") {
		t.Errorf("/healthz with B's VF dead = %d %q, want 503 naming listener b and the failed abort", code, body)
	}
}

// TestHostileHolderLosesVFAtMaxHold (finding 5): a holder that stays
// silent, or sends only TEST frames, loses the VF at max_hold once
// another connection waits.
func TestHostileHolderLosesVFAtMaxHold(t *testing.T) {
	const maxHold = 600 * time.Millisecond
	e := startHostile(t, map[string]string{"a": "max_hold: 600ms\nwait: 5s\nidle_timeout: 1m"}, "a")
	for _, mode := range []string{"silent", "TEST every 50ms"} {
		t.Run(mode, func(t *testing.T) {
			h := dialRaw(t, "unix", e.sock("a"))
			if r, err := h.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
				t.Fatalf("holder: %v %s", err, r.Payload)
			}
			held := time.Now()
			holderDone := make(chan error, 1)
			go func() {
				if mode == "silent" {
					_ = h.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, err := h.Read(make([]byte, 1))
					holderDone <- err
					return
				}
				for range 200 { // 10 s
					time.Sleep(50 * time.Millisecond)
					r, err := h.roundTrip(doe.Frame{Command: doe.CommandTest, Transport: doe.TransportPCIDOE})
					if err != nil {
						holderDone <- err
						return
					}
					if r.Command != doe.CommandTest {
						holderDone <- fmt.Errorf("TEST answered %s %s", doe.CommandName(r.Command), r.Payload)
						return
					}
				}
				holderDone <- nil
			}()
			w := dialRaw(t, "unix", e.sock("a"))
			r, err := w.roundTrip(normalFrame(discovery0))
			served := time.Since(held)
			if err != nil || r.Command != doe.CommandNormal {
				t.Fatalf("waiter: %v %s (after %v)", err, r.Payload, served)
			}
			if served < maxHold {
				t.Errorf("waiter served %v after the holder took the VF, before max_hold %v", served, maxHold)
			}
			select {
			case err := <-holderDone:
				if err == nil {
					t.Errorf("the holder's connection was not ended")
				}
			case <-time.After(12 * time.Second):
				t.Errorf("the holder's connection is still open 12s after losing the VF")
			}
			w.Close()
			h.Close()
		})
	}
	if !strings.Contains(e.log.String(), "held it for max_hold while another waited") {
		t.Errorf("the log does not record the preemption")
	}
}

// TestHostileTwoSpellingsOfOneVF (finding 6): one socket VF spelled two
// ways is refused in one configuration and claimed once across two.
func TestHostileTwoSpellingsOfOneVF(t *testing.T) {
	dir := t.TempDir()
	for _, pair := range [][2]string{{"127.0.0.1:13400", "localhost:13400"}, {"tcp:127.0.0.1:13400", "127.0.0.1:13400"}, {"unix:" + dir + "//r.sock", "unix:" + dir + "/r.sock"}} {
		doc := fmt.Sprintf("run_dir: %s\nmetrics: {listen: none}\nlisteners:\n"+
			"  - {name: a, vf: {backend: socket, address: %q}, listen: {unix: {path: %s}}}\n"+
			"  - {name: b, vf: {backend: socket, address: %q}, listen: {unix: {path: %s}}}\n",
			dir, pair[0], filepath.Join(dir, "a.sock"), pair[1], filepath.Join(dir, "b.sock"))
		if _, err := hostshim.ParseConfig([]byte(doc)); err == nil || !strings.Contains(err.Error(), "already served") {
			t.Errorf("%s and %s in one configuration: %v, want refused", pair[0], pair[1], err)
		}
		// Two shims, one spelling each: the second finds the VF claimed.
		one := func(addr, name string) (*hostshim.Shim, error) {
			doc := fmt.Sprintf("run_dir: %s\nmetrics: {listen: none}\nlisteners:\n  - {name: %s, vf: {backend: socket, address: %q}, listen: {unix: {path: %s}}}\n",
				filepath.Join(dir, "run"), name, addr, filepath.Join(dir, name+".sock"))
			cfg, err := hostshim.ParseConfig([]byte(doc))
			if err != nil {
				t.Fatalf("configuration: %v", err)
			}
			return hostshim.New(cfg, nil, nil, nil)
		}
		s1, err := one(pair[0], "a")
		if err != nil {
			t.Fatalf("first shim: %v", err)
		}
		s2, err := one(pair[1], "b")
		if err == nil {
			s2.Shutdown()
			t.Errorf("%s and %s: two shims serve one VF", pair[0], pair[1])
		} else if !errors.Is(err, hostshim.ErrClaimed) {
			t.Errorf("second shim: %v, want ErrClaimed", err)
		}
		s1.Shutdown()
	}
}

// TestHostileOperatorMistakes (finding 7): a world-writable socket is
// refused unless allowed, and so is the flag mode's --listen off loopback.
func TestHostileOperatorMistakes(t *testing.T) {
	dir := t.TempDir()
	doc := fmt.Sprintf("run_dir: %s\nlisteners:\n  - {name: a, vf: {backend: devsim}, listen: {unix: {path: %s, mode: \"0777\"}}}\n", dir, filepath.Join(dir, "a.sock"))
	if _, err := hostshim.ParseConfig([]byte(doc)); err == nil || !strings.Contains(err.Error(), "listen.unix.mode") {
		t.Errorf("mode 0777: %v, want refused", err)
	}
	if testing.Short() {
		t.Skip("the flag check builds and runs the binary; skipped with -short")
	}
	bin := buildBinaries(t)
	_, stderr, code := run(t, filepath.Join(bin, "devattest-shim"), "--listen", "0.0.0.0:0", "--device", "devsim", "--run-dir", dir)
	if code == 0 || !strings.Contains(stderr, "not loopback") {
		t.Errorf("--listen 0.0.0.0:0 exited %d: %s", code, stderr)
	}
}

// TestHostileHalfCloseAnswered (finding 9): a client that sends its
// request and shuts down its write side still gets the answer, on unix
// and TCP listeners, from a device slower than the shim's peer check.
func TestHostileHalfCloseAnswered(t *testing.T) {
	e := startHostile(t, map[string]string{"t": "listen: {tcp: {address: \"127.0.0.1:0\"}}"}, "a", "t")
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			var addr string
			if network == "unix" {
				addr = e.sock("a")
			} else {
				addr = e.shim.Addr("t").String()
			}
			e.vf(map[string]string{"unix": "a", "tcp": "t"}[network]).SetFaults(devsim.Faults{Delay: 150 * time.Millisecond})
			c := dialRaw(t, network, addr)
			if err := doe.WriteFrame(c, normalFrame(discovery0)); err != nil {
				t.Fatal(err)
			}
			if err := c.Conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			r, err := doe.ReadFrame(c, doe.MaxFramePayload)
			if err != nil || r.Command != doe.CommandNormal {
				t.Fatalf("half-closed client got %v %s %v, want its answer", doe.CommandName(r.Command), r.Payload, err)
			}
		})
	}
}

// TestHostileFrameMetrics (finding 10): malformed frames, unknown
// commands, wrong transports and a client leaving mid-exchange each have
// their own kind; none is a timeout.
func TestHostileFrameMetrics(t *testing.T) {
	e := startHostile(t, nil, "a")
	c := dialRaw(t, "unix", e.sock("a"))
	for _, f := range []doe.Frame{
		{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: []byte{1, 2, 3}},
		{Command: 0x4242, Transport: doe.TransportPCIDOE},
		{Command: doe.CommandNormal, Transport: doe.TransportMCTP, Payload: []byte{1, 2, 3, 4}},
	} {
		if r, err := c.roundTrip(f); err != nil || r.Command != doe.CommandUnknown {
			t.Fatalf("frame %+v answered %v %v", f, r.Command, err)
		}
	}
	// A client that leaves mid-exchange.
	e.vf("a").SetFaults(devsim.Faults{Delay: 2 * time.Second})
	if err := doe.WriteFrame(c, normalFrame(discovery0)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); e.vf("a").Stats().Requests == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the device")
		}
	}
	c.Close()
	addr := e.shim.MetricsAddr().String()
	series := func(kind string) string {
		return fmt.Sprintf(`devattest_shim_errors_total{kind=%q,vf="devsim:a"}`, kind)
	}
	deadline := time.Now().Add(5 * time.Second)
	for scrape(t, addr, series(hostshim.KindDisconnected)) < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, k := range []string{hostshim.KindMalformed, hostshim.KindUnknownCommand, hostshim.KindWrongTransport, hostshim.KindDisconnected} {
		if v := scrape(t, addr, series(k)); v != 1 {
			t.Errorf("%s = %v, want 1", series(k), v)
		}
	}
	if v := scrape(t, addr, series(hostshim.KindTimeout)); v != 0 {
		t.Errorf("%s = %v, want 0: a client leaving is not a timeout", series(hostshim.KindTimeout), v)
	}
	if !strings.Contains(e.log.String(), `"client":"unix:pid=`+strconv.Itoa(os.Getpid())) {
		t.Errorf("the audit log does not name the unix peer by its pid:\n%.2000s", e.log.String())
	}
}

// procFDs counts a process's open file descriptors.
func procFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestHostileFDFlood (finding 1): a connection flood on guest A's
// listener neither stops guest B's listener nor A's own. The shim runs as
// a child process with a low RLIMIT_NOFILE (prlimit), so the test process
// keeps its own descriptors. First with the default max_connections: the
// excess is refused at once and fds stay bounded. Then with
// max_connections above the fd limit: accept runs out of descriptors,
// pauses with one log line, and recovers when the flood ends.
func TestHostileFDFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the shim binary; skipped with -short")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	const fdLimit, floodConns = 64, 200
	bin := buildBinaries(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "shim.yaml")
	cfg := hostileConfig(dir, map[string]string{
		"a": "wait: 1s",
		"c": "wait: 1s\nmax_connections: 1000",
	}, "a", "b", "c")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	shim := startProc(t, "devattest-shim", exec.Command(prlimit, fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit), filepath.Join(bin, "devattest-shim"), "--config", cfgPath))
	for _, n := range []string{"a", "b", "c"} {
		waitSocket(t, filepath.Join(dir, n+".sock"), shim)
	}
	waitLogLine(t, shim, `"msg":"metrics and health serving"`)
	var metricsAddr string
	for l := range strings.Lines(shim.stderr.String()) {
		if _, rest, ok := strings.Cut(l, `"msg":"metrics and health serving","listen":"`); ok {
			metricsAddr, _, _ = strings.Cut(rest, `"`)
		}
	}
	pid := shim.cmd.Process.Pid
	exchangeOn := func(name string) error {
		c, err := net.DialTimeout("unix", filepath.Join(dir, name+".sock"), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		r, err := (&rawConn{c}).roundTrip(normalFrame(discovery0))
		if err != nil {
			return err
		}
		if r.Command != doe.CommandNormal {
			return fmt.Errorf("refused: %s", r.Payload)
		}
		return nil
	}
	// B holds a connection across both floods.
	b := dialRaw(t, "unix", filepath.Join(dir, "b.sock"))
	if r, err := b.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Fatalf("B before the flood: %v %s", err, r.Payload)
	}
	fdsIdle := procFDs(pid)

	floodOn := func(name string) []net.Conn {
		var conns []net.Conn
		for range floodConns {
			c, err := net.DialTimeout("unix", filepath.Join(dir, name+".sock"), 2*time.Second)
			if err != nil {
				break // the backlog is full: enough
			}
			conns = append(conns, c)
		}
		return conns
	}
	closeAll := func(cs []net.Conn) {
		for _, c := range cs {
			c.Close()
		}
	}

	// 1. Default max_connections on A: the excess is refused at once.
	conns := floodOn("a")
	time.Sleep(300 * time.Millisecond)
	fdsFlood := procFDs(pid)
	goroutines := scrape(t, metricsAddr, "go_goroutines")
	var lat []time.Duration
	for range 50 {
		t0 := time.Now()
		if r, err := b.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
			t.Fatalf("B during A's flood: %v %s", err, r.Payload)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.Close()
	if err := exchangeOn("b"); err != nil {
		t.Errorf("a new connection to B during A's flood: %v", err)
	}
	b = dialRaw(t, "unix", filepath.Join(dir, "b.sock"))
	if r, err := b.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Fatalf("B again during A's flood: %v %s", err, r.Payload)
	}
	refused := scrape(t, metricsAddr, `devattest_shim_connections_refused_total{reason="too_many_connections",vf="devsim:a"}`)
	t.Logf("flood of %d connections on A (max_connections %d): shim fds %d idle, %d flooded (limit %d); %v goroutines; %v refused at once; B p50 %v p99 %v",
		len(conns), hostshim.DefaultMaxConnections, fdsIdle, fdsFlood, fdLimit, goroutines, refused, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
	if refused < float64(len(conns)-hostshim.DefaultMaxConnections-2) {
		t.Errorf("%v connections refused at once, want about %d", refused, len(conns)-hostshim.DefaultMaxConnections)
	}
	if fdsFlood > fdsIdle+hostshim.DefaultMaxConnections+4 {
		t.Errorf("the shim holds %d fds under the flood (%d idle): the cap does not bound them", fdsFlood, fdsIdle)
	}
	closeAll(conns)

	// 2. C allows more connections than the process has fds: accept runs
	// out, pauses, and recovers; B's connection keeps serving.
	conns = floodOn("c")
	deadline := time.Now().Add(10 * time.Second)
	exhausted := func() bool { // the accept error, whatever the shim makes of it
		return strings.Contains(shim.stderr.String(), "too many open files")
	}
	for !exhausted() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !exhausted() {
		t.Fatalf("the flood of %d connections did not exhaust %d fds:\n%s", len(conns), fdLimit, shim.stderr)
	}
	if r, err := b.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Errorf("B's open connection while the shim is out of fds: %v %s", err, r.Payload)
	}
	closeAll(conns)
	var lastErr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if lastErr = exchangeOn("c"); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("listener C after the flood: %v", lastErr)
	}
	b.Close()
	for _, n := range []string{"a", "b"} {
		if err := exchangeOn(n); err != nil {
			t.Errorf("listener %s after the flood: %v", n, err)
		}
	}
	if code, body := healthz(t, metricsAddr); code != 200 {
		t.Errorf("/healthz after the flood = %d %q", code, body)
	}
	log := shim.stderr.String()
	paused, resumed := strings.Count(log, `"msg":"accept paused`), strings.Count(log, `"msg":"accept resumed"`)
	t.Logf("fd exhaustion on C: %d episodes logged (%d resumed)", paused, resumed)
	if paused > resumed+3 || paused > 20 {
		t.Errorf("%d \"accept paused\" lines for %d episodes: want one per episode", paused, resumed)
	}
	shim.terminate(t)
}

// TestHostileSecondWriter (issue 15, items 11 and 12): another user of the
// VF's mailbox (a guest reaching its DOE registers past the shim, or a
// kernel driver) leaves a request answered in the read mailbox. The
// shim's next exchange finds the Data Object Ready it did not cause,
// aborts, refuses that one exchange as foreign activity attributed to
// the listener's guest, and serves the next one; /healthz stays 200 and
// guest B is not disturbed.
func TestHostileSecondWriter(t *testing.T) {
	e := startHostile(t, nil, "a", "b")
	a := dialRaw(t, "unix", e.sock("a"))
	if r, err := a.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Fatalf("first exchange: %v %v", r.Command, err)
	}
	vf := e.vf("a")
	before := vf.Stats().Responses
	req, err := doe.EncodeDiscoveryRequest(1, doe.DiscoveryVersion(devsim.DOEVersion)).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(req); i += 4 {
		v := uint32(req[i]) | uint32(req[i+1])<<8 | uint32(req[i+2])<<16 | uint32(req[i+3])<<24
		if err := vf.WriteConfig32(devsim.DOEOffset+doe.RegWriteMailbox, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := vf.WriteConfig32(devsim.DOEOffset+doe.RegControl, doe.ControlGo); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); vf.Stats().Responses == before; {
		if time.Now().After(deadline) {
			t.Fatal("the second writer's request was not answered")
		}
		time.Sleep(time.Millisecond)
	}
	r, err := a.roundTrip(normalFrame(discovery0))
	if err != nil || r.Command == doe.CommandNormal || !strings.Contains(string(r.Payload), "foreign activity") {
		t.Fatalf("exchange after the second writer: %v %q %v, want a refusal naming foreign activity", r.Command, r.Payload, err)
	}
	if r, err := a.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Fatalf("the exchange after the abort: %v %v", r.Command, err)
	}
	b := dialRaw(t, "unix", e.sock("b"))
	if r, err := b.roundTrip(normalFrame(discovery0)); err != nil || r.Command != doe.CommandNormal {
		t.Fatalf("guest B: %v %v", r.Command, err)
	}
	addr := e.shim.MetricsAddr().String()
	if code, body := healthz(t, addr); code != 200 {
		t.Errorf("/healthz after foreign activity = %d %q, want 200", code, body)
	}
	if v := scrape(t, addr, `devattest_shim_errors_total{kind="foreign_activity",vf="devsim:a"}`); v != 1 {
		t.Errorf("errors_total{kind=foreign_activity} = %v, want 1", v)
	}
	found := false
	for l := range strings.Lines(e.log.String()) {
		if strings.Contains(l, `"foreign activity on the mailbox"`) {
			found = strings.Contains(l, `"guest":"guest-a"`) && strings.Contains(l, `"vf":"devsim:a"`)
		}
	}
	if !found {
		t.Errorf("no foreign-activity audit line naming guest-a and its VF:\n%s", e.log.String())
	}
}
