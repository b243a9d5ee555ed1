//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
	"github.com/devattest/devattest/tests/vm"
)

// shimExchangeTimeout is the shim's bound on one device exchange here.
const shimExchangeTimeout = 500 * time.Millisecond

// shimConfig is a one-listener shim configuration serving bdf's mailbox
// on a unix socket: discovery, CDAT, and CMA, which QEMU's CXL device does
// not offer (so a CMA request shows the shim's handling of a device that
// never answers).
func shimConfig(bdf, sock string) *hostshim.Config {
	return &hostshim.Config{
		RunDir:  "/run/devattest",
		Metrics: hostshim.MetricsConfig{Listen: hostshim.MetricsDisabled},
		Listeners: []hostshim.ListenerConfig{{
			Name:            "cxl0",
			VF:              hostshim.VFConfig{Backend: hostshim.BackendSysfs, BDF: bdf},
			Listen:          hostshim.ListenConfig{Unix: &hostshim.UnixListen{Path: sock}},
			AllowedTypes:    []string{"discovery", "1e98:02", "cma"},
			ExchangeTimeout: hostshim.Duration{D: shimExchangeTimeout},
		}},
	}
}

// scenarioShim: the shim refuses a device cxl_pci holds and names the
// driver; once unbound, it serves discovery and CDAT to a client through
// its socket, refuses what is not allowed, survives a request the device
// drops; a second shim on the same device refuses to start.
func scenarioShim(ctx context.Context, e *env, r *vm.Result) error {
	if e.bdf == "" {
		return errors.New("no device (scenario 1 failed)")
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
	const sock = "/run/cxl0.sock"
	s, err := hostshim.New(shimConfig(e.bdf, sock), nil, log, nil)
	if err == nil {
		s.Shutdown()
		return errors.New("the shim started on a device cxl_pci is bound to")
	}
	if !errors.Is(err, hostshim.ErrDriverBound) || !strings.Contains(err.Error(), `"cxl_pci"`) {
		return fmt.Errorf("the shim's refusal %q does not name cxl_pci as the holder", err)
	}
	r.Fact("refusal_bound", err.Error())
	r.Step("with cxl_pci bound the shim refuses: %v", err)

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

	s, err = hostshim.New(shimConfig(e.bdf, sock), nil, log, nil)
	if err != nil {
		return fmt.Errorf("the shim does not start on the unbound device: %w", err)
	}
	defer s.Shutdown()
	r.Step("the shim serves %s on unix:%s", e.bdf, sock)

	c, err := doe.Dial(ctx, "unix:"+sock)
	if err != nil {
		return err
	}
	defer c.Release()
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
	if took < shimExchangeTimeout || took > shimExchangeTimeout+5*time.Second {
		return fmt.Errorf("the dropped request through the shim ended after %v with a %v exchange timeout", took, shimExchangeTimeout)
	}
	if table, err = doe.ReadCDAT(ctx, c); err != nil || !bytes.Equal(table, e.cdat) {
		return fmt.Errorf("CDAT through the shim after its timeout: %v", err)
	}
	r.Fact("shim_timeout_ms", took.Milliseconds())
	r.Step("a CMA request QEMU drops: the shim's timeout ends it after %v (%q), and CDAT reads again", took.Round(time.Millisecond), remote.Reason)

	// A second shim, in a process of its own, on the same device.
	out, err := exec.CommandContext(ctx, "/proc/self/exe", secondShimCommand, e.bdf).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitClaimed {
		return fmt.Errorf("a second shim process on %s: %v, want exit %d (claimed)\n%s", e.bdf, err, exitClaimed, out)
	}
	refusal := strings.TrimSpace(string(out))
	r.Fact("refusal_claimed", refusal)
	r.Step("a second shim process refuses to start: %s", refusal)
	return nil
}

// secondShimCommand as vminit's first argument makes it a second shim
// (runSecondShim) instead of init.
const secondShimCommand = "second-shim"

// exitClaimed is the second shim's exit status when the claim is held.
const exitClaimed = 3

// runSecondShim tries to start a shim on bdf, prints the outcome and
// returns the exit status: 0 started (and stopped), exitClaimed refused
// for the claim, 1 any other failure.
func runSecondShim(bdf string) int {
	s, err := hostshim.New(shimConfig(bdf, "/run/cxl0-second.sock"), nil, nil, nil)
	if err != nil {
		fmt.Println(err)
		if errors.Is(err, hostshim.ErrClaimed) {
			return exitClaimed
		}
		return 1
	}
	s.Shutdown()
	fmt.Println("started")
	return 0
}
