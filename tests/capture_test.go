package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dumpOut is the part of devattest dump --json these tests read (the
// decoder itself is cmd/internal/capture, tested there).
type dumpOut struct {
	Device  string `json:"device"`
	View    string `json:"view"`
	Records []struct {
		Index     int    `json:"index"`
		Decrypted bool   `json:"decrypted"`
		App       string `json:"app"`
		Message   string `json:"message"`
		Problem   string `json:"problem"`
	} `json:"records"`
	Problems  int `json:"problems"`
	Encrypted int `json:"encrypted"`
}

// dumpJSON runs devattest dump --json and returns the decoded dump.
func dumpJSON(t *testing.T, devattest, pcap string, args ...string) (*dumpOut, int) {
	t.Helper()
	stdout, stderr, code := run(t, devattest, append([]string{"dump", pcap, "--json"}, args...)...)
	var dm dumpOut
	if err := json.Unmarshal([]byte(stdout), &dm); err != nil {
		t.Fatalf("devattest dump %s: %v (exit %d)\nstderr:\n%s", pcap, err, code, stderr)
	}
	return &dm, code
}

// requireFullDecode checks that a capture decoded with no problem and
// nothing left encrypted, with at least one decrypted secured message
// and the IDE_KM objects of a keyed device.
func requireFullDecode(t *testing.T, name string, dm *dumpOut, code int) {
	t.Helper()
	decrypted, ide := 0, 0
	for _, r := range dm.Records {
		if r.Decrypted {
			decrypted++
		}
		if strings.HasPrefix(r.App, "IDE_KM KEY_PROG") {
			ide++
		}
	}
	if code != 0 || dm.Problems != 0 || dm.Encrypted != 0 || decrypted < 10 || ide == 0 {
		t.Fatalf("%s: exit %d, %d problems, %d left encrypted, %d decrypted, %d KEY_PROG\n%+v", name, code, dm.Problems, dm.Encrypted, decrypted, ide, dm.Records)
	}
}

// TestCapturesOfAFullAttestation captures a whole devsim attestation
// three ways (the probe through the shim, the guest with two devices, the
// shim itself) and reads every capture back: the probe's and the guest's
// decode fully with their key logs, secured messages included; the
// shim's keeps its sessions encrypted. With SPDM_DUMP_BIN naming a
// locally built DMTF spdm_dump, it decodes the probe's and the guest's
// captures too, every secured message included.
func TestCapturesOfAFullAttestation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries; skipped with -short")
	}
	bin := buildBinaries(t)
	devattest := filepath.Join(bin, "devattest")
	dir := t.TempDir()
	var roots [2]string
	for i := range roots {
		sock := filepath.Join(dir, fmt.Sprintf("dev%d.sock", i))
		roots[i] = filepath.Join(dir, fmt.Sprintf("dev%d-root.pem", i))
		p := startProc(t, "devattest devsim", exec.Command(devattest, "devsim", "--listen", "unix:"+sock, "--ca-out", roots[i]))
		waitSocket(t, sock, p)
	}
	shimSock := filepath.Join(dir, "shim.sock")
	shimPcap := filepath.Join(dir, "shim.pcap")
	shim := startProc(t, "devattest-shim", exec.Command(filepath.Join(bin, "devattest-shim"), "--listen", "unix:"+shimSock,
		"--device", "socket:unix:"+filepath.Join(dir, "dev0.sock"), "--run-dir", filepath.Join(dir, "run"), "--pcap", shimPcap))
	waitSocket(t, shimSock, shim)

	// The probe, through the shim.
	probePcap, probeKeys := filepath.Join(dir, "probe.pcap"), filepath.Join(dir, "probe.keys")
	_, stderr, code := run(t, devattest, "probe", "--connect", "unix:"+shimSock, "--trust-anchor", roots[0], "--session", "--ide",
		"--pcap", probePcap, "--keylog", probeKeys)
	if code != 0 {
		t.Fatalf("probe exited %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "WARNING: writing SPDM session secrets to the key log") {
		t.Errorf("the probe wrote a key log without the warning:\n%s", stderr)
	}
	if fi, err := os.Stat(probeKeys); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key log %v, %v: want mode 0600", fi, err)
	}
	dm, code := dumpJSON(t, devattest, probePcap, "--keylog", probeKeys)
	requireFullDecode(t, "probe", dm, code)

	// The guest: two devices, one capture each.
	cfg := filepath.Join(dir, "guest.yaml")
	yaml := fmt.Sprintf("platform: fake-snp\nide: true\ndevices:\n  - label: \"0000:01:00.1\"\n    shim: unix:%s\n    trust_anchors: [%s]\n  - label: \"0000:02:00.1\"\n    shim: unix:%s\n    trust_anchors: [%s]\n",
		shimSock, roots[0], filepath.Join(dir, "dev1.sock"), roots[1])
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	guestPcap, guestKeys := filepath.Join(dir, "guest.pcap"), filepath.Join(dir, "guest.keys")
	_, stderr, code = run(t, filepath.Join(bin, "devattest-guest"), "attest", "--config", cfg, "--pcap", guestPcap, "--keylog", guestKeys)
	if code != 0 {
		t.Fatalf("devattest-guest attest exited %d\n%s", code, stderr)
	}
	guestPcaps := []string{filepath.Join(dir, "guest-0000_01_00.1.pcap"), filepath.Join(dir, "guest-0000_02_00.1.pcap")}
	for i, p := range guestPcaps {
		dm, code := dumpJSON(t, devattest, p, "--keylog", guestKeys)
		requireFullDecode(t, filepath.Base(p), dm, code)
		if want := fmt.Sprintf("0000:0%d:00.1", i+1); dm.Device != want || dm.View != "guest" {
			t.Errorf("%s names device %q (%s view), want %q", p, dm.Device, dm.View, want)
		}
	}

	// The shim's capture: the host's view, sessions stay encrypted.
	shim.terminate(t)
	// A listener's capture is path-LISTENER.pcap (the default listener
	// here is named "default").
	dm, code = dumpJSON(t, devattest, strings.TrimSuffix(shimPcap, ".pcap")+"-default.pcap")
	if code != 0 || dm.Problems != 0 || dm.Encrypted == 0 || dm.View != "shim" {
		t.Fatalf("shim capture: exit %d, %d problems, %d encrypted, view %q", code, dm.Problems, dm.Encrypted, dm.View)
	}
	for _, r := range dm.Records {
		if r.Decrypted {
			t.Fatalf("the shim's capture decrypted record %d", r.Index)
		}
	}
	// The shim's key log is no option at all.
	if _, stderr, code := run(t, filepath.Join(bin, "devattest-shim"), "--listen", "unix:x", "--device", "devsim", "--keylog", "k"); code == 0 || !strings.Contains(stderr, "keylog") {
		t.Errorf("devattest-shim accepted --keylog (exit %d): %s", code, stderr)
	}

	spdmDump := os.Getenv("SPDM_DUMP_BIN")
	if spdmDump == "" {
		t.Log("SPDM_DUMP_BIN not set: skipping the decode by DMTF spdm_dump")
		return
	}
	for _, c := range []struct{ pcap, keys string }{{probePcap, probeKeys}, {guestPcaps[0], guestKeys}, {guestPcaps[1], guestKeys}} {
		checkSpdmDump(t, spdmDump, devattest, c.pcap, c.keys)
	}
}

var spdmDumpLine = regexp.MustCompile(`^(\d+) \(\d+\) PCI_DOE\((\d+), (\d+)\) ?(.*)$`)

// checkSpdmDump runs DMTF spdm_dump over a capture with the secrets
// devattest dump --spdm-dump-args gives, and requires every record shown,
// every secured record decrypted and no decode error.
func checkSpdmDump(t *testing.T, spdmDump, devattest, pcap, keys string) {
	t.Helper()
	args, stderr, code := run(t, devattest, "dump", pcap, "--keylog", keys, "--spdm-dump-args")
	if code != 0 {
		t.Fatalf("dump --spdm-dump-args: exit %d\n%s", code, stderr)
	}
	out, stderr, code := run(t, spdmDump, strings.Fields(args)...)
	if code != 0 {
		t.Fatalf("spdm_dump %s: exit %d\n%s\n%s", args, code, out, stderr)
	}
	dm, _ := dumpJSON(t, devattest, pcap, "--keylog", keys)
	lines, secured := 0, 0
	for _, l := range strings.Split(out, "\n") {
		m := spdmDumpLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		lines++
		if strings.Contains(l, "(?)->(?)") || strings.Contains(l, "!!!") || strings.HasSuffix(strings.TrimSpace(l), "<Unknown>") {
			t.Errorf("%s: spdm_dump could not decode: %s", filepath.Base(pcap), l)
		}
		if m[2] == "1" && m[3] == "2" {
			secured++
			if !strings.Contains(m[4], "SecuredSPDM(0x") || !strings.Contains(m[4], ") SPDM(") {
				t.Errorf("%s: spdm_dump left a secured record encrypted: %s", filepath.Base(pcap), l)
			}
		}
	}
	want := 0
	for _, r := range dm.Records {
		if r.Decrypted {
			want++
		}
	}
	if lines != len(dm.Records) || secured != want || secured == 0 {
		t.Fatalf("%s: spdm_dump showed %d records (%d secured), devattest dump %d (%d decrypted)\n%s", filepath.Base(pcap), lines, secured, len(dm.Records), want, out)
	}
	t.Logf("%s: spdm_dump decoded %d records, %d secured, no errors", filepath.Base(pcap), lines, secured)
}
