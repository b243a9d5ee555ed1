//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/tests/vm"
)

// shimBinary is the host operator's daemon, cmd/devattest-shim, which
// the test packs into the initramfs.
const shimBinary = "/bin/devattest-shim"

// shimExchangeTimeout is the shim's bound on one device exchange here.
const shimExchangeTimeout = 500 * time.Millisecond

// writeShimConfig writes a one-listener configuration serving bdf's
// mailbox on sock: discovery, CDAT, and CMA, which QEMU's CXL device does
// not offer (so a CMA request shows the shim's handling of a device that
// never answers).
func writeShimConfig(path, bdf, sock string) error {
	y := fmt.Sprintf(`run_dir: /run/devattest
metrics: {listen: none}
listeners:
  - name: cxl0
    vf: {backend: sysfs, bdf: %q}
    listen: {unix: {path: %s}}
    allowed_types: [discovery, "1e98:02", cma]
    exchange_timeout: %s
`, bdf, sock, shimExchangeTimeout)
	return os.WriteFile(path, []byte(y), 0o600)
}

// runShimToExit runs the shim with cfg, expecting it to refuse to start;
// it returns the exit status and what it printed.
func runShimToExit(ctx context.Context, cfg string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, shimBinary, "--config", cfg).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out), errors.New("the shim ran and exited 0")
	case errors.As(err, &exit):
		return exit.ExitCode(), strings.TrimSpace(string(out)), nil
	}
	return -1, string(out), err
}

// scenarioShim: devattest-shim refuses a device cxl_pci holds and names
// the driver; once unbound, it serves discovery and CDAT to a client
// through its socket, refuses what is not allowed, survives a request the
// device drops, and logs each exchange; a second shim on the same device
// refuses to start and names the holder; SIGTERM stops the first cleanly.
func scenarioShim(ctx context.Context, e *env, r *vm.Result) error {
	if e.bdf == "" {
		return errors.New("no device (scenario 1 failed)")
	}
	const cfg, sock = "/run/shim.yaml", "/run/cxl0.sock"
	if err := writeShimConfig(cfg, e.bdf, sock); err != nil {
		return err
	}
	code, out, err := runShimToExit(ctx, cfg)
	if err != nil || code != 1 || !strings.Contains(out, `"cxl_pci"`) {
		return fmt.Errorf("devattest-shim on a device cxl_pci holds: exit %d, %v, want exit 1 naming cxl_pci:\n%s", code, err, out)
	}
	r.Fact("refusal_bound", out)
	r.Step("with cxl_pci bound devattest-shim exits %d: %s", code, out)
	bound, err := checkBound(ctx, cfg)
	if err != nil {
		return err
	}
	r.Step("devattest-shim check with cxl_pci bound: %s", bound)

	if err := writeSysfs(cxlPCIDrv+"/unbind", e.bdf); err != nil {
		return err
	}
	if err := waitDriver(ctx, e.bdf, ""); err != nil {
		return err
	}
	if _, err := os.Stat(cxlDevices + "/" + e.endpoint); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("after unbind the kernel's %s should be gone (%v)", e.endpoint, err)
	}
	r.Step("unbound cxl_pci; %s is gone", e.endpoint)
	rep, text, err := checkUnbound(ctx, cfg)
	if err != nil {
		return err
	}
	r.Fact("check_protocols", rep.VFs[0].Protocols)
	r.Fact("check_text", text)
	r.Step("devattest-shim check with no driver: exit 0, VF usable, DOE instance 0x%x lists %v", rep.VFs[0].Sysfs.DOE[0].Offset, rep.VFs[0].Protocols)

	var audit syncBuffer
	shim := exec.Command(shimBinary, "--config", cfg)
	shim.Stdout, shim.Stderr = &audit, &audit
	if err := shim.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- shim.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = shim.Process.Kill()
			<-exited
		}
	}()
	if err := poll(ctx, "the shim's socket", func() (bool, error) {
		select {
		case err := <-exited:
			stopped = true
			return false, fmt.Errorf("devattest-shim exited: %v\n%s", err, audit.String())
		default:
		}
		_, err := os.Stat(sock)
		return err == nil, nil
	}); err != nil {
		return err
	}
	r.Step("devattest-shim (pid %d) serves %s on unix:%s", shim.Process.Pid, e.bdf, sock)
	claim, err := checkServing(ctx, cfg, shim.Process.Pid)
	if err != nil {
		return err
	}
	r.Step("devattest-shim check while it serves: usable, discovery skipped, %s", claim)

	c, err := doe.Dial(ctx, "unix:"+sock)
	if err != nil {
		return err
	}
	defer c.Release() // a second Release does nothing
	protos, err := doe.Discover(ctx, c, 0)
	if err != nil {
		return fmt.Errorf("discovery through the shim: %w", err)
	}
	if !slices.Equal(protos, wantProtocols) {
		return fmt.Errorf("discovery through the shim listed %v, want %v", protos, wantProtocols)
	}
	table, err := doe.ReadCDAT(ctx, c)
	if err != nil {
		return fmt.Errorf("CDAT through the shim: %w", err)
	}
	if !bytes.Equal(table, e.cdat) {
		return fmt.Errorf("CDAT through the shim (sha256 %s) differs from the direct read (%s)", sum(table), sum(e.cdat))
	}
	r.Step("through the shim: discovery lists %v, CDAT is the same %d bytes", protos, len(table))

	_, err = c.Exchange(ctx, doe.NewObject(doe.ProtocolSecuredCMA, make([]byte, 8)))
	var remote *doe.RemoteError
	if !errors.As(err, &remote) || !strings.Contains(remote.Reason, "not allowed") {
		return fmt.Errorf("a secured CMA request, which the listener does not allow = %v, want a refusal", err)
	}
	if _, err := doe.Discover(ctx, c, 0); err != nil {
		return fmt.Errorf("the connection after a refusal: %w", err)
	}
	r.Step("a secured CMA request is refused (%q) and the connection goes on", remote.Reason)

	// CMA is allowed but QEMU's instance does not offer it and drops the
	// request: the shim's exchange timeout ends it, the shim aborts, the
	// guest is told it timed out, and the mailbox serves the next request.
	start := time.Now()
	_, err = c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte{0x10, 0x84, 0, 0}))
	took := time.Since(start)
	if !errors.As(err, &remote) || !strings.Contains(remote.Reason, "timeout") {
		return fmt.Errorf("a CMA request QEMU drops, through the shim = %v, want a timeout refusal", err)
	}
	// The device has the timeout but the eighth the driver keeps for its
	// abort; the abort ends the exchange by the timeout.
	if took < shimExchangeTimeout*7/8 || took > shimExchangeTimeout+5*time.Second {
		return fmt.Errorf("the dropped request through the shim ended after %v with a %v exchange timeout", took, shimExchangeTimeout)
	}
	if table, err = doe.ReadCDAT(ctx, c); err != nil || !bytes.Equal(table, e.cdat) {
		return fmt.Errorf("CDAT through the shim after its timeout: %v", err)
	}
	r.Fact("shim_timeout_ms", took.Milliseconds())
	r.Step("a CMA request QEMU drops: the shim's timeout ends it after %v (%q), and CDAT reads again", took.Round(time.Millisecond), remote.Reason)

	c.Release() // before the second shim: the first holds the mailbox while connected

	// A second shim on the same device, same configuration but another
	// socket.
	const cfg2 = "/run/shim-second.yaml"
	if err := writeShimConfig(cfg2, e.bdf, "/run/cxl0-second.sock"); err != nil {
		return err
	}
	code, out, err = runShimToExit(ctx, cfg2)
	holder := fmt.Sprintf("pid %d %s --config %s", shim.Process.Pid, shimBinary, cfg)
	if err != nil || code != 1 || !strings.Contains(out, "claimed") || !strings.Contains(out, holder) {
		return fmt.Errorf("a second devattest-shim: exit %d, %v, want exit 1 naming the holder %q:\n%s", code, err, holder, out)
	}
	r.Fact("refusal_claimed", out)
	r.Step("a second devattest-shim exits %d: %s", code, out)

	// SIGTERM: the first stops cleanly, and its audit log shows the
	// exchanges, without payloads.
	if err := shim.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return fmt.Errorf("devattest-shim after SIGTERM: %v\n%s", err, audit.String())
		}
	case <-time.After(15 * time.Second):
		return errors.New("devattest-shim did not stop within 15 s of SIGTERM")
	}
	log := audit.String()
	for _, want := range []string{`"msg":"exchange"`, `"vendor":7832`, `"result":"not_allowed"`, `"result":"timeout"`} {
		if !strings.Contains(log, want) {
			return fmt.Errorf("the shim's audit log lacks %s:\n%s", want, log)
		}
	}
	r.Fact("audit_lines", strings.Count(log, "\n"))
	r.Step("SIGTERM stops devattest-shim (exit 0); its audit log has %d lines: CDAT exchanges, the refusal, the timeout", strings.Count(log, "\n"))
	return nil
}

// syncBuffer is a bytes.Buffer safe for the shim's two output streams.
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
