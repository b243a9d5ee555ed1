// Package tests holds end-to-end, fault-injection and interop tests that
// cross package boundaries: devsim behind the host shim, the binaries as a
// user runs them, and libspdm's emulators.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
	"github.com/devattest/devattest/ide"
)

var wantProtocols = []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA}

// serve listens on addr and serves srv until the test ends.
func serve(t *testing.T, srv *doe.Server, addr string) {
	t.Helper()
	ln, err := doe.Listen(context.Background(), addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	serveOn(t, srv, ln)
}

// serveLoopback serves srv on a fresh loopback TCP port and returns its
// address; unlike freeLoopbackPort, no other test can take the port
// between choosing and listening.
func serveLoopback(t *testing.T, srv *doe.Server) string {
	t.Helper()
	ln, err := doe.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)
	return ln.Addr().String()
}

// serveOn serves srv on ln until the test ends.
func serveOn(t *testing.T, srv *doe.Server, ln net.Listener) {
	t.Helper()
	addr := ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve(%s) after Close: %v", addr, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve(%s) did not return within 5s of Close", addr)
		}
	})
}

// startShim serves a Mediator in front of a SocketBackend to upstream on a
// unix socket in dir and returns the shim's address. The backend is
// closed (CONTINUE upstream) when the test ends, after the shim's server.
func startShim(t *testing.T, dir, upstream string) string {
	t.Helper()
	backend := &hostshim.SocketBackend{Addr: upstream}
	t.Cleanup(func() { backend.Close() })
	med := hostshim.NewMediator(backend, hostshim.Options{VF: "upstream " + upstream})
	addr := "unix:" + filepath.Join(dir, "shim.sock")
	// A generous exchange bound keeps a loaded machine from turning these
	// into timeout tests.
	serve(t, &doe.Server{Connect: med.Connect, ExchangeTimeout: 10 * time.Second}, addr)
	return addr
}

// discover dials addr, walks discovery and ends the session with SHUTDOWN
// (or CONTINUE when release is set).
func discover(t *testing.T, addr string, release bool) []doe.Protocol {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := doe.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer func() {
		if release {
			c.Release()
		} else {
			c.Close()
		}
	}()
	got, err := doe.Discover(ctx, c, 0)
	if err != nil {
		t.Fatalf("Discover via %s: %v (so far %v)", addr, err, got)
	}
	return got
}

func TestShimInFrontOfDevsimInProcess(t *testing.T) {
	dir := t.TempDir()
	vf := devsim.NewVF()
	devAddr := "unix:" + filepath.Join(dir, "dev.sock")
	serve(t, &doe.Server{Mailbox: vf.Driver()}, devAddr)
	shimAddr := startShim(t, dir, devAddr)

	for i := range 2 { // a second guest session reuses the shim's upstream
		if got := discover(t, shimAddr, false); !slices.Equal(got, wantProtocols) {
			t.Fatalf("session %d: Discover through the shim = %v, want exactly %v", i+1, got, wantProtocols)
		}
	}
	if st := vf.Stats(); st.Requests != 6 || st.Errors != 0 {
		t.Errorf("device stats %+v: want 6 requests, no errors", st)
	}
}

// syncBuffer collects a child process's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a child process the test owns.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	stdout *syncBuffer
	done   chan struct{}
	err    error // from Wait, valid once done is closed
}

// startProc starts a child process; it is killed at the end of the test
// if it is still running.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit within 10s of SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.stdout, name, p.stderr)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to d for the process to exit and reports whether it did.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// terminate sends SIGTERM and expects a clean exit (status 0) within 10s.
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited before SIGTERM: %v\nstderr:\n%s", p.name, p.err, p.stderr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to %s: %v", p.name, err)
	}
	if !p.waitExit(10 * time.Second) {
		t.Fatalf("%s did not exit within 10s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Errorf("%s on SIGTERM: %v, want exit status 0\nstderr:\n%s", p.name, p.err, p.stderr)
	}
}

// waitSocket waits (bounded) until a unix socket at path accepts a
// connection, failing early if owner exits.
func waitSocket(t *testing.T, path string, owner *proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			conn, err := net.DialTimeout("unix", path, time.Second)
			if err == nil {
				conn.Close()
				return
			}
		}
		if owner.exited() {
			t.Fatalf("%s exited before serving %s: %v\nstderr:\n%s", owner.name, path, owner.err, owner.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve %s within 10s\nstderr:\n%s", owner.name, path, owner.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goTool finds the go command that is running this test.
func goTool(t *testing.T) string {
	t.Helper()
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		if p := filepath.Join(goroot, "bin", "go"); fileExists(p) {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	return p
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// buildBinaries builds every command under ./cmd into a temporary
// directory and returns it.
func buildBinaries(t *testing.T) string {
	t.Helper()
	gocmd := goTool(t)
	out, err := exec.Command(gocmd, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside the module", gomod)
	}
	root := filepath.Dir(gomod)
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, gocmd, "build", "-o", bin+string(filepath.Separator), "./cmd/...")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	for _, name := range []string{"devattest", "devattest-shim", "devattest-guest"} {
		if !fileExists(filepath.Join(bin, name)) {
			t.Fatalf("go build ./cmd/... did not produce %s", name)
		}
	}
	return bin
}

// run runs a short-lived command and returns its output and exit code.
func run(t *testing.T, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %v: %v\nstderr:\n%s", filepath.Base(name), args, err, e.String())
	}
	return o.String(), e.String(), code
}

func TestBinariesDevsimShimProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries; skipped with -short")
	}
	bin := buildBinaries(t)
	devattest := filepath.Join(bin, "devattest")
	dir := t.TempDir()
	devSock := filepath.Join(dir, "dev.sock")
	shimSock := filepath.Join(dir, "shim.sock")

	rootPEM := filepath.Join(dir, "root.pem")
	dev := startProc(t, "devattest devsim", exec.Command(devattest, "devsim", "--listen", "unix:"+devSock, "--ca-out", rootPEM))
	waitSocket(t, devSock, dev)
	shim := startProc(t, "devattest-shim", exec.Command(filepath.Join(bin, "devattest-shim"),
		"--listen", "unix:"+shimSock, "--device", "socket:unix:"+devSock))
	waitSocket(t, shimSock, shim)

	// Discovery through the shim, as JSON. The shim forwards discovery as
	// it is, so the device's simulated IDE link (which the shim will not
	// forward) is listed too.
	devProtocols := append(slices.Clone(wantProtocols), ide.LinkProtocol)
	stdout, stderr, code := run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--discovery", "--json")
	if code != 0 {
		t.Fatalf("probe --discovery --json exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var out struct {
		Protocols []map[string]json.RawMessage `json:"protocols"`
		Error     json.RawMessage              `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("probe output is not the documented JSON: %v\n%s", err, stdout)
	}
	if string(out.Error) != "null" {
		t.Errorf(`"error" = %s, want null`, out.Error)
	}
	if len(out.Protocols) != len(devProtocols) {
		t.Fatalf("probe listed %d protocols, want %d:\n%s", len(out.Protocols), len(devProtocols), stdout)
	}
	for i, p := range devProtocols {
		got := out.Protocols[i]
		// Numbers must be JSON numbers, not strings.
		for field, want := range map[string]string{"vendor": strconv.Itoa(int(p.Vendor)), "type": strconv.Itoa(int(p.Type))} {
			if string(got[field]) != want {
				t.Errorf("protocol %d: %q = %s, want the JSON number %s", i, field, got[field], want)
			}
		}
		var name string
		if err := json.Unmarshal(got["name"], &name); err != nil || name != p.Name() {
			t.Errorf("protocol %d: name = %s, want %q", i, got["name"], p.Name())
		}
	}

	// SPDM authentication through the shim, as JSON, against the root
	// devsim wrote out.
	stdout, stderr, code = run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--trust-anchor", rootPEM, "--version", "1.2", "--json")
	if code != 0 {
		t.Fatalf("probe --trust-anchor exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var auth struct {
		Version    string `json:"version"`
		Algorithms struct {
			Hash, Asym string
		} `json:"algorithms"`
		Certificates []string `json:"certificates"`
		Measurements []struct {
			Index  int    `json:"index"`
			Type   string `json:"type"`
			Digest string `json:"digest"`
		} `json:"measurements"`
		Verified bool    `json:"verified"`
		Error    *string `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &auth); err != nil {
		t.Fatalf("probe --trust-anchor output is not the documented JSON: %v\n%s", err, stdout)
	}
	if auth.Version != "1.2" || !auth.Verified || auth.Error != nil || len(auth.Certificates) != 3 || len(auth.Measurements) != 5 ||
		auth.Algorithms.Hash == "" || auth.Algorithms.Asym == "" || len(auth.Measurements[0].Digest) != 96 {
		t.Fatalf("probe --trust-anchor reported\n%s", stdout)
	}

	// A secure session with IDE keying through the shim: every step ok,
	// except the simulated link's, which the shim does not forward: those
	// are skipped, and say why.
	sess := probeSessionIDE(t, devattest, "unix:"+shimSock, rootPEM)
	for _, st := range sess.IDE.Steps {
		if isLinkStep(st.Name) && (!st.Skipped || !strings.Contains(st.Detail, "does not forward")) {
			t.Errorf("through the shim, link step %+v: want skipped because the shim refuses the protocol", st)
		}
	}
	if !strings.Contains(shim.stderr.String(), `"result":"not_allowed"`) {
		t.Errorf("shim's audit log lacks the refused link protocol:\n%s", shim.stderr)
	}

	// Directly to devsim (no shim on the way): the link steps run, the
	// root port's keys in the probe and the device's in devsim, only
	// protected TLPs crossing.
	sess = probeSessionIDE(t, devattest, "unix:"+devSock, rootPEM)
	links := 0
	for _, st := range sess.IDE.Steps {
		if isLinkStep(st.Name) {
			links++
			if !st.OK || st.Skipped {
				t.Errorf("directly to devsim, link step %+v: want ok, not skipped", st)
			}
		}
	}
	if links != 3 {
		t.Errorf("directly to devsim: %d link steps, want 3: %+v", links, sess.IDE.Steps)
	}

	// Against another root the chain is refused: exit 1, verified false.
	otherRoot := filepath.Join(dir, "other.der")
	other := startProc(t, "second devsim", exec.Command(devattest, "devsim", "--listen", "unix:"+filepath.Join(dir, "other.sock"), "--ca-out", otherRoot))
	waitSocket(t, filepath.Join(dir, "other.sock"), other)
	stdout, _, code = run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--trust-anchor", otherRoot, "--json")
	if code != 1 || !strings.Contains(stdout, `"verified": false`) || !strings.Contains(stdout, "certificate chain rejected") {
		t.Fatalf("probe with the wrong anchor exited %d:\n%s", code, stdout)
	}
	other.terminate(t)

	// The guest's own tool walks discovery through the shim too.
	stdout, stderr, code = run(t, filepath.Join(bin, "devattest-guest"), "discover", "--shim", "unix:"+shimSock)
	if code != 0 {
		t.Fatalf("devattest-guest discover exited %d\nstderr:\n%s", code, stderr)
	}
	wantLines := "0001:00 DOE Discovery\n0001:01 CMA/SPDM\n0001:02 Secured CMA/SPDM\n1234:49 simulated IDE link (devsim, test only)\n"
	if stdout != wantLines {
		t.Errorf("devattest-guest discover printed\n%s\nwant\n%s", stdout, wantLines)
	}

	// An allowed raw object passes through to the device: devsim's SPDM
	// responder answers GET_VERSION with VERSION (1.0 to 1.3, padded to a DW).
	stdout, stderr, code = run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--raw", "01000100"+"03000000"+"10840000")
	if code != 0 {
		t.Fatalf("probe --raw (CMA) exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "0100010006000000"+"1004000000040010001100120013"+"0000") {
		t.Errorf("probe --raw (CMA) output lacks devsim's VERSION response:\n%s", stdout)
	}

	// A disallowed object (vendor 0x1E98, type 2) is refused by the shim.
	stdout, stderr, code = run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--raw", "981e0200"+"03000000"+"00000000")
	if code == 0 {
		t.Fatalf("probe --raw with a disallowed object exited 0\nstdout:\n%s", stdout)
	}
	if !strings.Contains(stderr, "not allowed") {
		t.Errorf("probe --raw stderr does not say the object is not allowed:\n%s", stderr)
	}
	if !strings.Contains(shim.stderr.String(), `"result":"not_allowed"`) {
		t.Errorf("shim's audit log lacks the refusal:\n%s", shim.stderr)
	}

	// A guest connection that holds the mailbox does not keep the shim
	// from stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	holder, err := doe.Dial(ctx, "unix:"+shimSock)
	if err != nil {
		t.Fatalf("dial the shim: %v", err)
	}
	defer holder.Close()
	if _, err := holder.Exchange(ctx, doe.EncodeDiscoveryRequest(0, 0)); err != nil {
		t.Fatalf("exchange through the shim binary: %v", err)
	}

	// Shut down in order: the shim first (it releases its upstream with
	// CONTINUE), then devsim. Both exit 0 on SIGTERM.
	shim.terminate(t)
	if _, err := holder.Exchange(ctx, doe.EncodeDiscoveryRequest(0, 0)); err == nil {
		t.Errorf("exchange through a stopped shim succeeded")
	}
	dev.terminate(t)
}

// sessionIDEReport is the part of `probe --session --ide --json` the
// tests read.
type sessionIDEReport struct {
	Session struct {
		ID    string     `json:"id"`
		Steps []stepJSON `json:"steps"`
		OK    bool       `json:"ok"`
	} `json:"session"`
	IDE struct {
		Steps []stepJSON `json:"steps"`
		OK    bool       `json:"ok"`
	} `json:"ide"`
}

type stepJSON struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped"`
	Detail  string `json:"detail"`
}

func isLinkStep(name string) bool {
	return strings.HasPrefix(name, "link check") || strings.Contains(name, "refused after rotation")
}

// probeSessionIDE runs `probe --session --ide --json` against addr and
// checks that the session and IDE_KM succeeded with every step ok or
// skipped.
func probeSessionIDE(t *testing.T, devattest, addr, rootPEM string) sessionIDEReport {
	t.Helper()
	stdout, stderr, code := run(t, devattest, "probe", "--connect", addr, "--trust-anchor", rootPEM, "--session", "--ide", "--json")
	if code != 0 {
		t.Fatalf("probe --session --ide at %s exited %d\nstdout:\n%s\nstderr:\n%s", addr, code, stdout, stderr)
	}
	var sess sessionIDEReport
	if err := json.Unmarshal([]byte(stdout), &sess); err != nil {
		t.Fatalf("probe --session --ide output: %v\n%s", err, stdout)
	}
	if !sess.Session.OK || sess.Session.ID == "" || len(sess.Session.Steps) < 5 || !sess.IDE.OK || len(sess.IDE.Steps) != 9 {
		t.Fatalf("probe --session --ide at %s reported\n%s", addr, stdout)
	}
	for _, st := range append(sess.Session.Steps, sess.IDE.Steps...) {
		if !st.OK && !st.Skipped {
			t.Fatalf("step %q failed:\n%s", st.Name, stdout)
		}
	}
	return sess
}
