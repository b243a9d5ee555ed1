//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// wantProtocols is what QEMU's CXL type-3 DOE instance lists.
var wantProtocols = []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCDAT}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func protoNames(ps []doe.Protocol) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%04x:%02x", p.Vendor, p.Type))
	}
	return out
}

// scenarioRawDriver: with no driver bound, our driver finds the DOE
// capability, runs discovery, reads the whole CDAT; then the kernel's CXL
// drivers load and read the CDAT themselves, and the two tables must be
// the same bytes.
func scenarioRawDriver(ctx context.Context, e *env, r *vm.Result) error {
	bdf, err := findCXLDevice()
	if err != nil {
		return err
	}
	e.bdf = bdf
	r.Fact("bdf", bdf)
	if d, err := boundDriver(bdf); err != nil || d != "" {
		return fmt.Errorf("%s should have no driver yet, has %q (%v)", bdf, d, err)
	}
	r.Step("%s (class %s) has no driver bound", bdf, cxlMemClass)

	cs, err := doe.OpenSysfs(doe.SysfsRoot, bdf)
	if err != nil {
		return err
	}
	defer cs.Close()
	caps, err := doe.WalkExtCaps(cs)
	if err != nil {
		return err
	}
	var list []string
	for _, c := range caps {
		list = append(list, fmt.Sprintf("0x%03x:id 0x%04x v%d", c.Offset, c.ID, c.Version))
	}
	r.Step("extended capabilities: %s", strings.Join(list, ", "))
	does, err := doe.FindDOE(cs)
	if err != nil {
		return err
	}
	if len(does) != 1 {
		return fmt.Errorf("want one DOE capability, found %d", len(does))
	}
	r.Fact("doe_offset", fmt.Sprintf("0x%x", does[0].Offset))
	d := doe.NewDriver(cs, does[0])

	protos, err := doe.Discover(ctx, d, doe.DiscoveryVersion(does[0].Version))
	if err != nil {
		return err
	}
	r.Fact("protocols", protoNames(protos))
	if !slices.Equal(protos, wantProtocols) {
		return fmt.Errorf("discovery listed %v, want %v", protos, wantProtocols)
	}
	r.Step("discovery at 0x%x lists %v", does[0].Offset, protos)

	table, err := doe.ReadCDAT(ctx, d)
	if err != nil {
		return err
	}
	h, entries, err := doe.ParseCDAT(table)
	if err != nil {
		return err
	}
	var types []string
	for _, en := range entries {
		types = append(types, doe.CDATTypeName(en.Type))
	}
	e.cdat = table
	r.Fact("cdat_bytes", len(table))
	r.Fact("cdat_sha256", sum(table))
	r.Fact("cdat_entries", types)
	r.Step("CDAT read by our driver: %d bytes, revision %d, checksum ok, %d structures (%s)", len(table), h.Revision, len(entries), strings.Join(types, " "))

	for _, m := range []string{"cxl_acpi", "cxl_pci", "cxl_mem"} {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	if err := waitDriver(ctx, bdf, "cxl_pci"); err != nil {
		return err
	}
	r.Step("loaded cxl_acpi, cxl_pci, cxl_mem; cxl_pci bound to %s", bdf)
	ep, kernel, err := kernelCDAT(ctx, "")
	if err != nil {
		return err
	}
	e.endpoint = ep
	r.Fact("kernel_endpoint", ep)
	r.Fact("kernel_cdat_sha256", sum(kernel))
	if !bytes.Equal(kernel, table) {
		return fmt.Errorf("the kernel's %s/CDAT (%d bytes, sha256 %s) differs from ours (%d bytes, sha256 %s)",
			ep, len(kernel), sum(kernel), len(table), sum(table))
	}
	r.Step("the kernel's %s/%s/CDAT is the same %d bytes", cxlDevices, ep, len(kernel))
	return nil
}

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

// scenarioFaults: QEMU's silent drops end in our timeout and abort, a
// read past the end of a response sets Error, and after each the driver
// gets the mailbox back.
func scenarioFaults(ctx context.Context, e *env, r *vm.Result) error {
	if e.bdf == "" {
		return errors.New("no device (scenario 1 failed)")
	}
	if d, err := boundDriver(e.bdf); err != nil || d != "" {
		return fmt.Errorf("%s should be unbound, has %q (%v)", e.bdf, d, err)
	}
	const timeout = 300 * time.Millisecond
	cs, d, c, err := openMailbox(e.bdf, timeout)
	if err != nil {
		return err
	}
	defer cs.Close()
	discover := func(what string) error {
		protos, err := doe.Discover(ctx, d, doe.DiscoveryVersion(c.Version))
		if err != nil {
			return fmt.Errorf("discovery %s: %w", what, err)
		}
		if !slices.Equal(protos, wantProtocols) {
			return fmt.Errorf("discovery %s listed %v", what, protos)
		}
		return nil
	}
	if err := discover("before the faults"); err != nil {
		return err
	}

	// 1. A protocol the instance does not offer: QEMU discards it without
	// Ready or Error, so only our deadline and abort end the exchange.
	start := time.Now()
	_, err = d.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte{0x10, 0x84, 0, 0}))
	took := time.Since(start)
	if !errors.Is(err, doe.ErrTimeout) {
		return fmt.Errorf("an unsupported protocol = %v, want ErrTimeout", err)
	}
	if took < timeout || took > timeout+5*time.Second {
		return fmt.Errorf("the unsupported request ended after %v with a %v timeout", took, timeout)
	}
	if err := idle(cs, c); err != nil {
		return fmt.Errorf("after the timeout: %w", err)
	}
	if err := discover("after the timeout"); err != nil {
		return err
	}
	r.Fact("drop_timeout_ms", took.Milliseconds())
	r.Step("a CMA request (not offered) is dropped by QEMU: ErrTimeout after %v, aborted, mailbox idle, next discovery works", took.Round(time.Millisecond))

	// 2. A length field that disagrees with the DWs written: discarded too.
	reg := func(off int) int { return c.Offset + off }
	for _, v := range []uint32{uint32(doe.VendorPCISIG), 4, 0} { // says 4 DW, writes 3
		if err := cs.WriteConfig32(reg(doe.RegWriteMailbox), v); err != nil {
			return err
		}
	}
	if err := cs.WriteConfig32(reg(doe.RegControl), doe.ControlGo); err != nil {
		return err
	}
	time.Sleep(timeout)
	st, err := cs.ReadConfig32(reg(doe.RegStatus))
	if err != nil {
		return err
	}
	if st&(doe.StatusReady|doe.StatusError) != 0 {
		return fmt.Errorf("a request with a wrong length field left status 0x%08x, want it discarded silently", st)
	}
	if err := discover("after a wrong length field"); err != nil {
		return err
	}
	r.Step("a request whose length field says 4 DW with 3 written is discarded silently (status 0x%08x); next discovery works", st)

	// 3. One pop past the end of a response sets Error; the driver finds
	// it before its next request, aborts, and goes on.
	for _, v := range []uint32{uint32(doe.VendorPCISIG), 3, 0} {
		if err := cs.WriteConfig32(reg(doe.RegWriteMailbox), v); err != nil {
			return err
		}
	}
	if err := cs.WriteConfig32(reg(doe.RegControl), doe.ControlGo); err != nil {
		return err
	}
	if st, err = cs.ReadConfig32(reg(doe.RegStatus)); err != nil || st&doe.StatusReady == 0 {
		return fmt.Errorf("raw discovery: status 0x%08x (%v), want Data Object Ready", st, err)
	}
	for range 3 + 1 { // the response's 3 DW, and one more
		if err := cs.WriteConfig32(reg(doe.RegReadMailbox), 0); err != nil {
			return err
		}
	}
	if st, err = cs.ReadConfig32(reg(doe.RegStatus)); err != nil || st&doe.StatusError == 0 {
		return fmt.Errorf("after a read past the end: status 0x%08x (%v), want Error", st, err)
	}
	r.Fact("past_end_status", fmt.Sprintf("0x%08x", st))
	if err := discover("after a read past the end"); err != nil {
		return err
	}
	if err := idle(cs, c); err != nil {
		return fmt.Errorf("after recovering: %w", err)
	}
	r.Step("a read past the end of a response sets Error (status 0x%08x); the driver aborts it away and discovery works", st)
	return nil
}

// idle checks that the mailbox shows neither Busy, Error nor Ready.
func idle(cs doe.ConfigSpace, c doe.ExtCap) error {
	st, err := cs.ReadConfig32(c.Offset + doe.RegStatus)
	if err != nil {
		return err
	}
	if st&(doe.StatusBusy|doe.StatusError|doe.StatusReady) != 0 {
		return fmt.Errorf("mailbox not idle: status 0x%08x", st)
	}
	return nil
}

// scenarioRebind: after everything above, the mailbox is idle and
// cxl_pci binds again, and the kernel reads the same CDAT through it.
func scenarioRebind(ctx context.Context, e *env, r *vm.Result) error {
	if e.bdf == "" {
		return errors.New("no device (scenario 1 failed)")
	}
	cs, err := doe.OpenSysfs(doe.SysfsRoot, e.bdf)
	if err != nil {
		return err
	}
	does, err := doe.FindDOE(cs)
	if err == nil {
		err = idle(cs, does[0])
	}
	cs.Close()
	if err != nil {
		return err
	}
	r.Step("the mailbox is idle before the rebind")
	before := len(kernelErrors())
	if err := writeSysfs(cxlPCIDrv+"/bind", e.bdf); err != nil {
		return err
	}
	if err := waitDriver(ctx, e.bdf, "cxl_pci"); err != nil {
		return err
	}
	r.Step("cxl_pci binds %s again", e.bdf)
	ep, kernel, err := kernelCDAT(ctx, "")
	if err != nil {
		return err
	}
	r.Fact("kernel_endpoint", ep)
	r.Fact("kernel_cdat_sha256", sum(kernel))
	if !bytes.Equal(kernel, e.cdat) {
		return fmt.Errorf("the kernel's CDAT after the rebind (%s, sha256 %s) differs from ours (%s)", ep, sum(kernel), sum(e.cdat))
	}
	r.Step("the kernel reads its CDAT again: %s/CDAT is the same %d bytes", ep, len(kernel))
	if errs := kernelErrors(); len(errs) > before {
		return fmt.Errorf("the kernel reported CXL/DOE errors after the rebind: %q", errs[before:])
	}
	r.Step("the kernel logged no CXL/DOE error")
	return nil
}
