// TestQEMUCXLDOE boots Linux under QEMU with a CXL type-3 device and runs
// the DOE driver, the sysfs config space and the shim's mediation against
// QEMU's own DOE model while the kernel's cxl_pci driver shares the
// mailbox. The program that runs inside is ./vminit.
package vm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/tests/vm"
)

const (
	// kernelDirEnv names a directory holding an extracted Debian kernel
	// package (boot/vmlinuz-*, lib/modules/*/kernel/drivers/cxl/*.ko);
	// tests/vm/fetch-kernel.sh makes one.
	kernelDirEnv = "DEVATTEST_VM_KERNEL_DIR"
	// defaultKernelDir is where fetch-kernel.sh puts it, from the repo root.
	defaultKernelDir = "out/vm-kernel"
	// requiredEnv, when set (.ci/run sets it), turns a missing QEMU or
	// kernel into a failure instead of a skip.
	requiredEnv = "DEVATTEST_VM_REQUIRED"
	// vmDeadline bounds the whole VM run (boot takes about 4 s in TCG;
	// the scenarios a few more; a loaded CI machine gets ample room).
	vmDeadline = 4 * time.Minute
)

// cxlModules are loaded in this order by vminit.
var cxlModules = []string{"cxl_acpi", "cxl_pci", "cxl_mem"}

func TestQEMUCXLDOE(t *testing.T) {
	skip := t.Skipf
	if os.Getenv(requiredEnv) != "" {
		skip = t.Fatalf
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		skip("qemu-system-x86_64 not found: skipping the QEMU CXL DOE test (apt-get install qemu-system-x86; .ci/run does)")
	}
	kdir := os.Getenv(kernelDirEnv)
	if kdir == "" {
		kdir = filepath.Join("..", "..", defaultKernelDir)
	}
	vmlinuz, modules, err := findKernel(kdir)
	if err != nil {
		skip("no kernel for the QEMU CXL DOE test: %v (run make vm-kernel, or set %s)", err, kernelDirEnv)
	}
	t.Logf("kernel %s", vmlinuz)

	dir := t.TempDir()
	initramfs := filepath.Join(dir, "initramfs.cpio")
	if err := buildInitramfs(t, dir, initramfs, modules); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	out, err := runQEMU(t, qemu, vmlinuz, initramfs)
	took := time.Since(start)
	con, parseErr := vm.ParseConsole(out)
	results := con.Results
	t.Logf("VM ran %v", took.Round(100*time.Millisecond))
	for _, r := range results {
		t.Logf("scenario %d (%s): ok=%v in %d ms", r.Scenario, r.Name, r.OK, r.Millis)
		for _, s := range r.Steps {
			t.Logf("    %s", s)
		}
	}
	for _, k := range con.Kernel {
		t.Logf("kernel: %s", k)
	}
	if err != nil || parseErr != nil || !con.End {
		t.Fatalf("QEMU: %v; console: %v; end marker seen: %v\nconsole tail:\n%s", err, parseErr, con.End, tail(out, 60))
	}

	if len(results) != 4 {
		t.Fatalf("got %d scenario results, want 4\nconsole tail:\n%s", len(results), tail(out, 60))
	}
	for i, r := range results {
		if r.Scenario != i+1 {
			t.Fatalf("result %d is for scenario %d", i, r.Scenario)
		}
		if !r.OK {
			t.Errorf("scenario %d (%s) failed: %s", r.Scenario, r.Name, r.Error)
		}
	}
	if t.Failed() {
		t.Fatalf("console tail:\n%s", tail(out, 60))
	}

	// What the scenarios saw, checked again here so that a vminit that
	// said ok without looking fails too.
	s1, s2, s3, s4 := results[0].Facts, results[1].Facts, results[2].Facts, results[3].Facts
	if p := fmt.Sprint(s1["protocols"]); p != "[0001:00 1e98:02]" {
		t.Errorf("discovery listed %s, want [0001:00 1e98:02]", p)
	}
	if s1["cdat_sha256"] == nil || s1["cdat_sha256"] != s1["kernel_cdat_sha256"] {
		t.Errorf("our CDAT (sha256 %v) and the kernel's (%v) differ", s1["cdat_sha256"], s1["kernel_cdat_sha256"])
	}
	if n, _ := s1["cdat_bytes"].(float64); n <= 16 {
		t.Errorf("CDAT of %v bytes: want a header and structures", s1["cdat_bytes"])
	}
	if r, _ := s2["refusal_bound"].(string); !strings.Contains(r, `"cxl_pci"`) {
		t.Errorf("the shim's refusal %q does not name cxl_pci", r)
	}
	if r, _ := s2["refusal_claimed"].(string); !strings.Contains(r, "claimed") || !strings.Contains(r, "/bin/devattest-shim --config") {
		t.Errorf("the second shim's refusal %q does not say who holds the claim", r)
	}
	// The device has all but the eighth the driver keeps for its abort.
	if ms, _ := s2["shim_timeout_ms"].(float64); ms < 500*7/8 {
		t.Errorf("a dropped request through the shim ended after %v ms, before its 500 ms exchange timeout less the abort's share", s2["shim_timeout_ms"])
	}
	if p := fmt.Sprint(s2["check_protocols"]); !strings.Contains(p, "1e98:02") {
		t.Errorf("devattest-shim check listed %s, want CXL Table Access (1e98:02)", p)
	}
	t.Logf("devattest-shim check on the QEMU device:\n%v", s2["check_text"])
	if ms, _ := s3["drop_timeout_ms"].(float64); ms < 300 {
		t.Errorf("a dropped request ended after %v ms, before the 300 ms timeout", s3["drop_timeout_ms"])
	}
	// The kernel may reuse the endpoint's name; scenario 2 checked that
	// the first one went away with the unbind.
	if s4["kernel_cdat_sha256"] == nil || s4["kernel_cdat_sha256"] != s1["cdat_sha256"] {
		t.Errorf("after the rebind the kernel's CDAT has sha256 %v, want %v", s4["kernel_cdat_sha256"], s1["cdat_sha256"])
	}
}

// findKernel finds vmlinuz and the CXL modules in an extracted kernel
// package.
func findKernel(dir string) (vmlinuz string, modules map[string]string, err error) {
	k, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(k) != 1 {
		return "", nil, fmt.Errorf("want one boot/vmlinuz-* under %s, found %d", dir, len(k))
	}
	modules = make(map[string]string)
	for _, m := range cxlModules {
		p, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*", "kernel", "drivers", "cxl", m+".ko"))
		if len(p) != 1 {
			return "", nil, fmt.Errorf("want one %s.ko under %s, found %d", m, dir, len(p))
		}
		modules[m] = p[0]
	}
	return k[0], modules, nil
}

// buildInitramfs builds vminit and devattest-shim statically for x86-64
// Linux and packs them as /init and /bin/devattest-shim, with the modules
// under /modules and a /dev/console node (the kernel opens it for init's
// output before devtmpfs is mounted).
func buildInitramfs(t *testing.T, dir, out string, modules map[string]string) error {
	initBin := filepath.Join(dir, "init")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", initBin, "./vminit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building vminit: %v\n%s", err, b)
	}
	shimBin := filepath.Join(dir, "devattest-shim")
	cmd = exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", shimBin, "../../cmd/devattest-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building devattest-shim: %v\n%s", err, b)
	}
	initData, err := os.ReadFile(initBin)
	if err != nil {
		return err
	}
	shimData, err := os.ReadFile(shimBin)
	if err != nil {
		return err
	}
	entries := []cpioEntry{
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeChar | 0o600, major: 5, minor: 1},
		{name: "proc", mode: modeDir | 0o755},
		{name: "sys", mode: modeDir | 0o755},
		{name: "run", mode: modeDir | 0o755},
		{name: "modules", mode: modeDir | 0o755},
		{name: "init", mode: modeFile | 0o755, data: initData},
		{name: "bin", mode: modeDir | 0o755},
		{name: "bin/devattest-shim", mode: modeFile | 0o755, data: shimData},
	}
	for _, m := range cxlModules {
		b, err := os.ReadFile(modules[m])
		if err != nil {
			return err
		}
		entries = append(entries, cpioEntry{name: "modules/" + m + ".ko", mode: modeFile | 0o644, data: b})
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := writeCPIO(f, entries); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runQEMU boots the VM and returns its serial console. The machine has no
// network device at all (-nodefaults): the guest reaches nothing.
//
// The topology is the one QEMU documents for CXL: a pxb-cxl host bridge,
// a cxl-rp root port, a cxl-type3 device with its memory and label
// storage backends, and one CXL fixed memory window on that bridge.
func runQEMU(t *testing.T, qemu, vmlinuz, initramfs string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), vmDeadline)
	defer cancel()
	args := []string{
		"-accel", "tcg",
		"-machine", "q35,cxl=on,cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
		"-m", "512M", "-smp", "1",
		"-nodefaults", "-nographic", "-no-reboot",
		"-serial", "stdio", "-monitor", "none",
		"-object", "memory-backend-ram,id=cxl-mem0,size=256M",
		"-object", "memory-backend-ram,id=cxl-lsa0,size=1M",
		"-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
		"-device", "cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2",
		"-device", "cxl-type3,bus=root_port13,memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-pmem0",
		"-kernel", vmlinuz,
		"-initrd", initramfs,
		"-append", "console=ttyS0 loglevel=3 panic=-1 rdinit=/init",
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.Bytes(), fmt.Errorf("the VM did not power off within %v", vmDeadline)
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("qemu: %w", err)
	}
	return out.Bytes(), nil
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestParseConsole: interleaved kernel lines are ignored, a malformed
// result line is an error, the end marker is seen.
func TestParseConsole(t *testing.T) {
	out := []byte("[    1.0] cxl_pci 0000:0d:00.0: something\r\n" +
		`DEVATTEST-VM {"scenario":1,"name":"a","ok":true,"ms":5,"steps":["x"]}` + "\r\n" +
		"noise DEVATTEST-VM {\n" +
		"DEVATTEST-VM-KLOG cxl_pci: probed\n" +
		`DEVATTEST-VM {"scenario":2,"ok":false,"error":"boom"}` + "\n" +
		"DEVATTEST-VM-END\r\n")
	c, err := vm.ParseConsole(out)
	rs := c.Results
	if err != nil || !c.End || len(rs) != 2 || !rs[0].OK || rs[1].OK || rs[1].Error != "boom" || !slices.Equal(rs[0].Steps, []string{"x"}) ||
		!slices.Equal(c.Kernel, []string{"cxl_pci: probed"}) {
		t.Fatalf("ParseConsole = %+v, %v", c, err)
	}
	if _, err := vm.ParseConsole([]byte("DEVATTEST-VM {broken\n")); err == nil {
		t.Fatal("a broken result line parsed")
	}
	if _, err := vm.ParseConsole([]byte("DEVATTEST-VM {}\n")); err != nil {
		t.Fatal(err)
	}
	if c, _ := vm.ParseConsole([]byte("DEVATTEST-VM-ENDING\n")); c.End {
		t.Fatal("a line that only starts with the end marker counted as the end")
	}
}
