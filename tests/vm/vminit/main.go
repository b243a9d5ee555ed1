//go:build linux

// Command vminit is PID 1 of the QEMU guest in which tests/vm checks the
// DOE driver and the shim's sysfs backend against an independent DOE
// implementation (QEMU's CXL type-3 model) under a real kernel (Debian's,
// with cxl_pci using the same mailbox). tests/vm builds it statically,
// packs it into an initramfs with the CXL modules under /modules, boots
// QEMU and reads the serial console: one vm.Result line per scenario,
// the kernel's lines about CXL and DOE, then the end marker (see package
// vm). Then it powers the VM off.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/devattest/devattest/tests/vm"
)

// scenarioTimeout bounds each scenario; the host's deadline on the whole
// VM is above the sum.
const scenarioTimeout = 45 * time.Second

type scenario struct {
	name string
	run  func(ctx context.Context, e *env, r *vm.Result) error
}

func main() {
	defer powerOff()
	if err := setup(); err != nil {
		say(vm.Result{Name: "setup", Error: err.Error()})
		return
	}
	e := &env{}
	scenarios := []scenario{
		{"no driver bound: capability walk, discovery, CDAT against the kernel's copy", scenarioRawDriver},
		{"devattest-shim: cxl_pci bound, unbound, serving, second shim, SIGTERM", scenarioShim},
		{"faults on QEMU's model: dropped request, read past the end", scenarioFaults},
		{"mailbox left idle: cxl_pci rebinds and reads CDAT again", scenarioRebind},
	}
	for i, s := range scenarios {
		r := vm.Result{Scenario: i + 1, Name: s.name}
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		start := time.Now()
		err := runGuarded(ctx, e, &r, s.run)
		cancel()
		r.Millis = time.Since(start).Milliseconds()
		r.OK = err == nil
		if err != nil {
			r.Error = err.Error()
		}
		say(r)
	}
	for _, line := range kernelLog() {
		fmt.Fprintln(os.Stdout, "\n"+vm.KernelMarker+line)
	}
	fmt.Fprintln(os.Stdout, "\n"+vm.EndMarker)
}

// runGuarded runs one scenario, turning a panic into its error: PID 1
// must not die, or the kernel panics and the host sees no results.
func runGuarded(ctx context.Context, e *env, r *vm.Result, f func(context.Context, *env, *vm.Result) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f(ctx, e, r)
}

func say(r vm.Result) {
	b, err := json.Marshal(r)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"scenario":%d,"ok":false,"error":%q}`, r.Scenario, err.Error()))
	}
	// One write per line, so the console does not split it, starting on a
	// line of its own: the firmware and the kernel may leave one open.
	os.Stdout.Write(append([]byte("\n"+vm.ResultMarker), append(b, '\n')...))
}

// setup mounts what the scenarios read and loads nothing yet: scenario 1
// runs with no CXL driver at all.
func setup() error {
	mounts := []struct{ fs, dir string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"securityfs", "/sys/kernel/security"}, {"devtmpfs", "/dev"}, {"tmpfs", "/run"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mounting %s on %s: %w", m.fs, m.dir, err)
		}
	}
	return nil
}

func powerOff() {
	os.Stdout.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Not reached unless power-off failed; PID 1 must not exit.
	for {
		time.Sleep(time.Hour)
	}
}
