package hostshim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

// testVFs is a BackendOpener that gives every listener its own devsim VF
// (whatever its backend), and records opens and closes.
type testVFs struct {
	mu     sync.Mutex
	vfs    map[string]*devsim.Function // by listener name, the latest
	opened map[string]int
	closed map[string]int
}

func newTestVFs() *testVFs {
	return &testVFs{vfs: make(map[string]*devsim.Function), opened: make(map[string]int), closed: make(map[string]int)}
}

func (v *testVFs) open(_ context.Context, vf hostshim.VFConfig, _ []doe.Protocol) (doe.Mailbox, io.Closer, error) {
	f := devsim.NewVF()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.vfs[vf.Listener] = f
	v.opened[vf.Listener]++
	return f.Driver(), closerFunc(func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.closed[vf.Listener]++
		return nil
	}), nil
}

func (v *testVFs) vf(name string) *devsim.Function {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.vfs[name]
}

func (v *testVFs) counts(name string) (opened, closed int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.opened[name], v.closed[name]
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// daemonEnv is a directory for one test's sockets and claims.
type daemonEnv struct {
	dir    string
	runDir string
	log    *syncBuffer
	vfs    *testVFs
}

func newDaemonEnv(t *testing.T) *daemonEnv {
	dir := t.TempDir()
	return &daemonEnv{dir: dir, runDir: filepath.Join(dir, "run"), log: &syncBuffer{}, vfs: newTestVFs()}
}

func (e *daemonEnv) sock(name string) string { return filepath.Join(e.dir, name+".sock") }

// config renders a configuration with one unix listener per name, each
// with the extra YAML lines given for it.
func (e *daemonEnv) config(t *testing.T, extra map[string]string, names ...string) *hostshim.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "run_dir: %s\nshutdown_grace: 5s\nmetrics: {listen: \"127.0.0.1:0\"}\nlisteners:\n", e.runDir)
	for _, n := range names {
		fmt.Fprintf(&b, "  - name: %s\n    guest: guest-%s\n    vf: {backend: devsim}\n    listen: {unix: {path: %s, mode: \"0600\"}}\n", n, n, e.sock(n))
		if !strings.Contains(extra[n], "exchange_timeout:") {
			b.WriteString("    exchange_timeout: 5s\n")
		}
		for l := range strings.Lines(extra[n]) {
			fmt.Fprintf(&b, "    %s", l)
			if !strings.HasSuffix(l, "\n") {
				b.WriteString("\n")
			}
		}
	}
	cfg, err := hostshim.ParseConfig([]byte(b.String()))
	if err != nil {
		t.Fatalf("test configuration: %v\n%s", err, b.String())
	}
	return cfg
}

// start runs a Shim until the test ends.
func (e *daemonEnv) start(t *testing.T, cfg *hostshim.Config) *hostshim.Shim {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := hostshim.New(cfg, e.vfs.open, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("hostshim.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	return s
}

func httpGet(t *testing.T, s *hostshim.Shim, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.MetricsAddr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestDaemonServesTwoListeners(t *testing.T) {
	e := newDaemonEnv(t)
	s := e.start(t, e.config(t, nil, "a", "b"))
	for _, n := range []string{"a", "b"} {
		if got := s.Addr(n).String(); got != e.sock(n) {
			t.Errorf("Addr(%s) = %s, want %s", n, got, e.sock(n))
		}
		fi, err := os.Stat(e.sock(n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want a socket with 0600", n, fi.Mode())
		}
		c := dial(t, "unix:"+e.sock(n))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := doe.Discover(ctx, c, 2)
		cancel()
		if err != nil || len(got) != 3 {
			t.Fatalf("listener %s: Discover = %v, %v", n, got, err)
		}
		if st := e.vfs.vf(n).Stats(); st.Requests != 3 {
			t.Errorf("VF of %s saw %d requests, want 3 (its own only)", n, st.Requests)
		}
	}
	// The audit log names the listener and the guest.
	if log := e.log.String(); !strings.Contains(log, `"guest":"guest-b"`) || !strings.Contains(log, `"listener":"a"`) {
		t.Errorf("audit log lacks listener or guest labels:\n%s", log)
	}
	// Claims are held under run_dir.
	for _, n := range []string{"a", "b"} {
		if _, err := hostshim.ClaimVF(e.runDir, "devsim:"+n); !errors.Is(err, hostshim.ErrClaimed) {
			t.Errorf("ClaimVF(devsim:%s) while served = %v, want ErrClaimed", n, err)
		}
	}
}

func TestDaemonReloadKeepsUnchangedListener(t *testing.T) {
	e := newDaemonEnv(t)
	s := e.start(t, e.config(t, nil, "a", "b"))
	ca := dial(t, "unix:"+e.sock("a"))
	cb := dial(t, "unix:"+e.sock("b"))
	mustDiscover0(t, ca)
	mustDiscover0(t, cb)
	oldB := e.vfs.vf("b")

	// Change b's limits, add c.
	next := e.config(t, map[string]string{"b": "rate: 100\nburst: 10"}, "a", "b", "c")
	if err := s.Reload(next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// a's connection lives on, on the same VF.
	mustDiscover0(t, ca)
	if o, c := e.vfs.counts("a"); o != 1 || c != 0 {
		t.Errorf("listener a: opened %d, closed %d; want 1, 0 (untouched)", o, c)
	}
	// b was restarted: its old connection is gone, its old VF closed, a
	// new connection works on a new VF.
	if _, err := exchange(cb, discoveryRequest(0)); err == nil {
		t.Errorf("exchange on b's connection from before the reload succeeded")
	}
	if o, c := e.vfs.counts("b"); o != 2 || c != 1 {
		t.Errorf("listener b: opened %d, closed %d; want 2, 1", o, c)
	}
	cb2 := dial(t, "unix:"+e.sock("b"))
	mustDiscover0(t, cb2)
	if e.vfs.vf("b") == oldB {
		t.Errorf("listener b serves its old VF after a change")
	}
	// c is new.
	mustDiscover0(t, dial(t, "unix:"+e.sock("c")))
	if s.Config() != next {
		t.Errorf("Config() is not the reloaded configuration")
	}

	// Removing b stops it and releases its claim.
	if err := s.Reload(e.config(t, nil, "a", "c")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := os.Stat(e.sock("b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b's socket after removal: %v", err)
	}
	cl, err := hostshim.ClaimVF(e.runDir, "devsim:b")
	if err != nil {
		t.Fatalf("b's claim after removal: %v", err)
	}
	cl.Release()
	mustDiscover0(t, ca)
	if s.Addr("b") != nil {
		t.Errorf("Addr(b) after removal = %v", s.Addr("b"))
	}
}

func TestDaemonReloadBadConfigChangesNothing(t *testing.T) {
	e := newDaemonEnv(t)
	cfg := e.config(t, nil, "a")
	s := e.start(t, cfg)
	c := dial(t, "unix:"+e.sock("a"))
	mustDiscover0(t, c)

	bad := e.config(t, nil, "a", "b")
	bad.Listeners[1].Listen = hostshim.ListenConfig{Vsock: &hostshim.VsockListen{CID: 2, Port: 5000}}
	bad.Listeners[0].Rate = -1
	err := s.Reload(bad)
	if !errors.Is(err, hostshim.ErrConfig) {
		t.Fatalf("Reload(bad) = %v, want ErrConfig", err)
	}
	for _, w := range []string{"listeners[1] (b).listen.vsock.cid", "2 is the host", "listeners[0] (a).rate"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if s.Config() != cfg {
		t.Errorf("a refused configuration replaced the running one")
	}
	mustDiscover0(t, c)
	if s.Addr("b") != nil {
		t.Errorf("listener b started from a refused configuration")
	}
	if o, cl := e.vfs.counts("a"); o != 1 || cl != 0 {
		t.Errorf("listener a: opened %d, closed %d; want 1, 0", o, cl)
	}
	if code, body := httpGet(t, s, "/healthz"); code != 200 {
		t.Errorf("/healthz after a refused reload = %d %q", code, body)
	}
}

func TestDaemonGracefulShutdownFinishesExchange(t *testing.T) {
	e := newDaemonEnv(t)
	cfg := e.config(t, nil, "a", "b")
	log := slog.New(slog.NewJSONHandler(e.log, nil))
	s, err := hostshim.New(cfg, e.vfs.open, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { s.Run(ctx); close(runDone) }()
	defer func() { cancel(); <-runDone }()

	busy := dial(t, "unix:"+e.sock("a"))
	idle := dial(t, "unix:"+e.sock("b"))
	mustDiscover0(t, busy)
	mustDiscover0(t, idle)
	const delay = 600 * time.Millisecond
	e.vfs.vf("a").SetFaults(devsim.Faults{Delay: delay})
	type result struct {
		err error
		at  time.Time
	}
	res := make(chan result, 1)
	go func() {
		_, err := exchange(busy, discoveryRequest(0))
		res <- result{err, time.Now()}
	}()
	time.Sleep(150 * time.Millisecond) // the exchange is now at the device
	start := time.Now()
	cancel()
	select {
	case <-runDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	stopped := time.Now()
	r := <-res
	if r.at.Before(start) {
		t.Fatalf("the exchange completed before the shutdown began: the test did not test anything")
	}
	if r.err != nil {
		t.Fatalf("the exchange in flight at shutdown failed: %v", r.err)
	}
	if d := stopped.Sub(start); d < delay/2 {
		t.Errorf("shutdown took %v: it did not wait for the exchange in flight", d)
	}
	// Every connection is closed, sockets removed, claims released.
	if _, err := exchange(busy, discoveryRequest(0)); err == nil {
		t.Errorf("exchange after shutdown succeeded")
	}
	if _, err := exchange(idle, discoveryRequest(0)); err == nil {
		t.Errorf("exchange on the idle connection after shutdown succeeded")
	}
	for _, n := range []string{"a", "b"} {
		if _, err := os.Stat(e.sock(n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s after shutdown: %v", n, err)
		}
		cl, err := hostshim.ClaimVF(e.runDir, "devsim:"+n)
		if err != nil {
			t.Errorf("claim of %s after shutdown: %v", n, err)
		} else {
			cl.Release()
		}
		if _, c := e.vfs.counts(n); c != 1 {
			t.Errorf("backend %s closed %d times, want 1", n, c)
		}
	}
}

func TestDaemonHealthz(t *testing.T) {
	e := newDaemonEnv(t)
	cfg := e.config(t, map[string]string{"b": "exchange_timeout: 200ms\nmax_consecutive_failures: 1"}, "a", "b")
	s := e.start(t, cfg)
	if code, body := httpGet(t, s, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}

	// A wedged VF: it never answers and ignores aborts.
	e.vfs.vf("b").SetFaults(devsim.Faults{NeverRespond: true, IgnoreAbort: true})
	c := dial(t, "unix:"+e.sock("b"))
	if _, err := exchange(c, discoveryRequest(0)); err == nil {
		t.Fatal("exchange with a wedged VF succeeded")
	}
	code, body := httpGet(t, s, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "listener b") || !strings.Contains(body, "wedged") || strings.Contains(body, "listener a") {
		t.Errorf("/healthz with VF b wedged = %d %q", code, body)
	}

	// A listener that cannot start: the next reload's error says so, and
	// so does /healthz.
	e.vfs.vf("b").SetFaults(devsim.Faults{})
	next := e.config(t, nil, "a", "b")
	next.Listeners[1].Listen.Unix.Path = filepath.Join(e.dir, "no-such-dir", "b.sock")
	err := s.Reload(next)
	if err == nil || !strings.Contains(err.Error(), "listeners b") {
		t.Fatalf("Reload with an unusable socket path = %v", err)
	}
	code, body = httpGet(t, s, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "listener b: not serving") {
		t.Errorf("/healthz with listener b down = %d %q", code, body)
	}
	// Fixing the configuration brings it back.
	if err := s.Reload(e.config(t, nil, "a", "b")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if code, body := httpGet(t, s, "/healthz"); code != 200 {
		t.Errorf("/healthz after the fix = %d %q", code, body)
	}
	mustDiscover0(t, dial(t, "unix:"+e.sock("b")))
}

func TestDaemonMetrics(t *testing.T) {
	e := newDaemonEnv(t)
	s := e.start(t, e.config(t, nil, "a"))
	c := dial(t, "unix:"+e.sock("a"))
	mustDiscover0(t, c)
	_, err := exchange(c, doe.NewObject(protocolCDAT, []byte{0, 0, 0, 0}))
	wantRefusal(t, err, "not allowed")
	code, body := httpGet(t, s, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, w := range []string{
		`devattest_shim_exchanges_total{result="ok",vf="devsim:a"} 1`,
		`devattest_shim_errors_total{kind="not_allowed",vf="devsim:a"} 1`,
		"devattest_shim_exchange_seconds_bucket",
		"devattest_shim_vf_wedged",
		"devattest_shim_connections",
	} {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %q:\n%s", w, body)
		}
	}
}

func TestDaemonSecondOnSameVFFails(t *testing.T) {
	e := newDaemonEnv(t)
	e.start(t, e.config(t, nil, "a"))

	// Same run_dir, same VF, another socket.
	cfg := e.config(t, nil, "a")
	cfg.Listeners[0].Listen.Unix.Path = e.sock("other")
	_, err := hostshim.New(cfg, e.vfs.open, nil, nil)
	if !errors.Is(err, hostshim.ErrClaimed) {
		t.Fatalf("second daemon on the same VF: %v, want ErrClaimed", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(err.Error(), "devsim:a") {
		t.Errorf("error %q does not name the holder and the VF", err)
	}
	if _, err := os.Stat(e.sock("other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed daemon left its socket: %v", err)
	}
	// Same socket, other VF: the live socket is refused.
	cfg = e.config(t, nil, "z")
	cfg.Listeners[0].Listen.Unix.Path = e.sock("a")
	if _, err := hostshim.New(cfg, e.vfs.open, nil, nil); err == nil || !strings.Contains(err.Error(), "another process listens") {
		t.Fatalf("second daemon on a live socket: %v", err)
	}
	// ... and its claim was given back.
	cl, err := hostshim.ClaimVF(e.runDir, "devsim:z")
	if err != nil {
		t.Fatalf("the failed daemon kept its claim: %v", err)
	}
	cl.Release()
}

func TestDaemonReplacesStaleSocket(t *testing.T) {
	e := newDaemonEnv(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: e.sock("a"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a dead shim's socket file stays behind
	s := e.start(t, e.config(t, nil, "a"))
	mustDiscover0(t, dial(t, "unix:"+e.sock("a")))

	// A regular file at the path is not replaced.
	if err := os.WriteFile(e.sock("f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(e.config(t, nil, "a", "f")); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Reload over a regular file = %v", err)
	}
}

func TestDaemonRefusesKernelDriver(t *testing.T) {
	const bdf = "0000:3b:00.1"
	e := newDaemonEnv(t)
	doc := fmt.Sprintf(`
run_dir: %s
sysfs_root: %s
metrics: {listen: none}
listeners:
  - name: nic
    vf: {backend: sysfs, bdf: %q}
    listen: {unix: {path: %s}}
`, e.runDir, fakeSysfs(t, bdf, "nvme"), bdf, e.sock("nic"))
	cfg, err := hostshim.ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hostshim.New(cfg, e.vfs.open, nil, nil); !errors.Is(err, hostshim.ErrDriverBound) {
		t.Fatalf("New with a VF bound to nvme = %v, want ErrDriverBound", err)
	}
	if o, _ := e.vfs.counts("nic"); o != 0 {
		t.Errorf("the backend was opened despite the bound driver")
	}
	cfg.Listeners[0].VF.AllowKernelDriver = true
	s := e.start(t, cfg)
	if s.MetricsAddr() != nil {
		t.Errorf("metrics listener runs with listen: none")
	}
	mustDiscover0(t, dial(t, "unix:"+e.sock("nic")))
}

func TestDaemonUnixSocketOwnerGroupMode(t *testing.T) {
	e := newDaemonEnv(t)
	cfg := e.config(t, nil, "a")
	u := cfg.Listeners[0].Listen.Unix
	u.Owner, u.Group, u.Mode = fmt.Sprint(os.Getuid()), fmt.Sprint(os.Getgid()), "0640"
	e.start(t, cfg)
	fi, err := os.Stat(e.sock("a"))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no stat_t here")
	}
	if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() || fi.Mode().Perm() != 0o640 {
		t.Errorf("socket owner %d:%d mode %v, want %d:%d 0640", st.Uid, st.Gid, fi.Mode().Perm(), os.Getuid(), os.Getgid())
	}
	// No temporary socket names are left in the directory.
	ents, _ := os.ReadDir(e.dir)
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), ".shim") {
			t.Errorf("temporary socket %s left behind", ent.Name())
		}
	}
}
