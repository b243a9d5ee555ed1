package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
)

// shimConfig writes a configuration with one devsim listener per name.
func shimConfig(t *testing.T, path, dir string, names ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "run_dir: %s\nmetrics: {listen: none}\nlisteners:\n", filepath.Join(dir, "run"))
	for _, n := range names {
		fmt.Fprintf(&b, "  - name: %s\n    vf: {backend: devsim}\n    listen: {unix: {path: %s}}\n", n, filepath.Join(dir, n+".sock"))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLogLine waits for s in the process's stderr.
func waitLogLine(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q:\n%s", p.name, s, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestShimBinaryConfigAndSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries; skipped with -short")
	}
	bin := buildBinaries(t)
	shimBin := filepath.Join(bin, "devattest-shim")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "shim.yaml")
	shimConfig(t, cfgPath, dir, "a", "b")

	// --config and the development flags do not mix.
	_, stderr, code := run(t, shimBin, "--config", cfgPath, "--listen", "unix:"+filepath.Join(dir, "x.sock"))
	if code == 0 || !strings.Contains(stderr, "mutually exclusive") {
		t.Errorf("--config with --listen exited %d: %s", code, stderr)
	}
	// A bad file is refused at start with its key.
	badPath := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badPath, []byte("listeners:\n  - name: a\n    vf: {backend: devsim}\n    listen: {vsock: {cid: 2, port: 9}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, shimBin, "--config", badPath)
	if code != 1 || !strings.Contains(stderr, "listen.vsock.cid") || !strings.Contains(stderr, "2 is the host") {
		t.Errorf("bad configuration exited %d: %s", code, stderr)
	}

	shim := startProc(t, "devattest-shim", exec.Command(shimBin, "--config", cfgPath))
	waitSocket(t, filepath.Join(dir, "a.sock"), shim)
	waitSocket(t, filepath.Join(dir, "b.sock"), shim)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := doe.Dial(ctx, "unix:"+filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Exchange(ctx, doe.EncodeDiscoveryRequest(0, 0)); err != nil {
		t.Fatalf("exchange on a: %v", err)
	}

	// Reload: b goes, c comes; a's connection stays.
	shimConfig(t, cfgPath, dir, "a", "c")
	if err := shim.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogLine(t, shim, `"msg":"configuration reloaded"`)
	waitSocket(t, filepath.Join(dir, "c.sock"), shim)
	if _, err := os.Stat(filepath.Join(dir, "b.sock")); err == nil {
		t.Errorf("b's socket is still there after the reload removed it")
	}
	if _, err := a.Exchange(ctx, doe.EncodeDiscoveryRequest(0, 0)); err != nil {
		t.Fatalf("exchange on a after the reload: %v", err)
	}

	// A bad file on SIGHUP is logged and changes nothing.
	if err := os.WriteFile(cfgPath, []byte("listeners:\n  - name: a\n    vf: {backend: devsim}\n    listen: {unix: {path: /x.sock}}\n    sped: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := shim.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogLine(t, shim, `"msg":"reload refused; the running configuration stays"`)
	if !strings.Contains(shim.stderr.String(), `unknown key \"sped\"`) {
		t.Errorf("the refusal does not name the unknown key:\n%s", shim.stderr)
	}
	if _, err := a.Exchange(ctx, doe.EncodeDiscoveryRequest(0, 0)); err != nil {
		t.Fatalf("exchange on a after a refused reload: %v", err)
	}
	waitSocket(t, filepath.Join(dir, "c.sock"), shim)

	shim.terminate(t)
	for _, n := range []string{"a", "c"} {
		if _, err := os.Stat(filepath.Join(dir, n+".sock")); err == nil {
			t.Errorf("%s's socket is still there after SIGTERM", n)
		}
	}
}
