package tests

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeTDISPThroughShim: `devattest probe --session --ide --tdisp`
// through the shim to devsim runs the whole TDISP lifecycle (the shim
// forwards the secured messages it cannot read), prints each step with
// the TDI state, and decodes the report from devsim's BARs.
func TestProbeTDISPThroughShim(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries; skipped with -short")
	}
	bin := buildBinaries(t)
	devattest := filepath.Join(bin, "devattest")
	dir := t.TempDir()
	devSock, shimSock, rootPEM := filepath.Join(dir, "dev.sock"), filepath.Join(dir, "shim.sock"), filepath.Join(dir, "root.pem")
	dev := startProc(t, "devattest devsim", exec.Command(devattest, "devsim", "--listen", "unix:"+devSock, "--ca-out", rootPEM))
	waitSocket(t, devSock, dev)
	shim := startProc(t, "devattest-shim", exec.Command(filepath.Join(bin, "devattest-shim"),
		"--listen", "unix:"+shimSock, "--device", "socket:unix:"+devSock))
	waitSocket(t, shimSock, shim)

	stdout, stderr, code := run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--trust-anchor", rootPEM, "--session", "--ide", "--tdisp", "--json")
	if code != 0 {
		t.Fatalf("probe --tdisp exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var out struct {
		TDISP struct {
			Steps   []stepJSON `json:"steps"`
			Report  string     `json:"report"`
			Decoded struct {
				Ranges []struct{ Pages int } `json:"Ranges"`
			} `json:"decoded"`
			OK bool `json:"ok"`
		} `json:"tdisp"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range out.TDISP.Steps {
		if !s.OK {
			t.Fatalf("step %+v failed:\n%s", s, stdout)
		}
		names = append(names, s.Name+"="+s.Detail)
	}
	got := strings.Join(names, "\n")
	for _, want := range []string{"GET_DEVICE_INTERFACE_STATE=CONFIG_UNLOCKED", "CONFIG_LOCKED", "START_INTERFACE=RUN", "STOP_INTERFACE=CONFIG_UNLOCKED"} {
		if !strings.Contains(got, want) {
			t.Errorf("steps lack %q:\n%s", want, got)
		}
	}
	if !out.TDISP.OK || len(out.TDISP.Decoded.Ranges) != 3 || out.TDISP.Decoded.Ranges[0].Pages != 16 || out.TDISP.Report == "" {
		t.Fatalf("probe --tdisp reported\n%s", stdout)
	}
	// The text form names every step and the decoded ranges.
	text, _, code := run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--trust-anchor", rootPEM, "--session", "--ide", "--tdisp")
	if code != 0 || !strings.Contains(text, "START_INTERFACE              ok: RUN") || !strings.Contains(text, "MMIO range 1") {
		t.Fatalf("probe --tdisp text:\n%s", text)
	}
}
