package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/hostshim"
)

// writeCheckConfig writes a configuration with an emulated VF and a sysfs
// VF in a fake sysfs tree under dir, bound to driver.
func writeCheckConfig(t *testing.T, dir, driver string) (config, sys string) {
	t.Helper()
	sys = filepath.Join(dir, "sys")
	dev := filepath.Join(sys, "bus/pci/devices/0000:0d:00.1")
	for _, d := range []string{dev, filepath.Join(sys, "bus/pci/drivers", driver), filepath.Join(sys, "kernel/security")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dev, "config"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../bus/pci/drivers/"+driver, filepath.Join(dev, "driver")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "kernel/security/lockdown"), []byte("[none] integrity confidentiality\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`run_dir: %[1]s/run
sysfs_root: %[2]s/bus/pci/devices
metrics: {listen: none}
listeners:
  - name: emu
    vf: {backend: devsim, ca_out: %[1]s/must-not-exist.pem}
    listen: {unix: {path: %[1]s/emu.sock}}
  - name: cxl
    vf: {backend: sysfs, bdf: "0000:0d:00.1"}
    listen: {unix: {path: %[1]s/cxl.sock}}
`, dir, sys)
	config = filepath.Join(dir, "shim.yaml")
	if err := os.WriteFile(config, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return config, sys
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	config, sys := writeCheckConfig(t, dir, "cxl_pci")
	var out, errOut bytes.Buffer
	code := runCheck([]string{"--config", config, "--sys", sys}, &out, &errOut)
	text := out.String()
	t.Logf("check output:\n%s", text)
	if code != 1 {
		t.Fatalf("exit %d with a VF bound to cxl_pci, want 1; stderr %s", code, errOut.String())
	}
	for _, want := range []string{
		"kernel lockdown: none",
		"listener emu (guest emu): devsim:emu, devsim backend: usable",
		"listener cxl (guest cxl): 0000:0d:00.1, sysfs backend: UNUSABLE",
		`bound to the kernel driver "cxl_pci"`,
		"direct access:   none: no DOE capability",
		"1 of 2 VFs usable",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "must-not-exist.pem")); err == nil {
		t.Error("check wrote the devsim root certificate: a preflight writes nothing")
	}

	out.Reset()
	if code := runCheck([]string{"--config", config, "--sys", sys, "--json"}, &out, &errOut); code != 1 {
		t.Fatalf("--json: exit %d, want 1", code)
	}
	var rep hostshim.CheckReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out.String())
	}
	if rep.OK || len(rep.VFs) != 2 || !rep.VFs[0].Usable || rep.VFs[1].Usable || rep.VFs[1].Sysfs == nil || rep.VFs[1].Sysfs.Driver != "cxl_pci" {
		t.Errorf("JSON report: %+v", rep)
	}
}

func TestCheckCommandAllUsable(t *testing.T) {
	dir := t.TempDir()
	y := fmt.Sprintf("run_dir: %[1]s/run\nmetrics: {listen: none}\nlisteners:\n  - name: emu\n    vf: {backend: devsim}\n    listen: {unix: {path: %[1]s/emu.sock}}\n", dir)
	config := filepath.Join(dir, "shim.yaml")
	if err := os.WriteFile(config, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runCheck([]string{"--config", config}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, want 0:\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "1 of 1 VFs usable") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestCheckCommandUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"--config", "/nonexistent/shim.yaml"}, {"--config", "x", "extra"}, {"--bogus"}} {
		var out, errOut bytes.Buffer
		if code := runCheck(args, &out, &errOut); code != 2 {
			t.Errorf("check %q: exit %d, want 2", args, code)
		}
		if errOut.Len() == 0 {
			t.Errorf("check %q: no message on stderr", args)
		}
	}
}
