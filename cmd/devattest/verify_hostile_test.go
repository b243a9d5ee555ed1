package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/guest/platform"
)

// TestVerifyReadsUnderACap: finding 10 of issue 14. verify reads a report
// only up to the cap, so an endless file is refused, not read whole.
func TestVerifyReadsUnderACap(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	e := attestOn(t, "fake-snp", att, snpRoots(t, att))
	code, out, errOut := runCmd("verify", "/dev/zero", "--policy", e.policy, "--nonce", e.nonceHex)
	if code != 1 || !strings.Contains(out, "report too large") {
		t.Fatalf("verify /dev/zero: exit %d, want 1 and a refusal naming the size\n%s%s", code, out, errOut)
	}
}

// TestVerifyOutputForPeople: after the verdict the failed checks come
// again, and a measurement mismatch shows what was expected and seen.
func TestVerifyOutputForPeople(t *testing.T) {
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	e := attestOn(t, "fake-snp", att, snpRoots(t, att))
	pol, err := os.ReadFile(e.policy)
	if err != nil {
		t.Fatal(err)
	}
	v := e.rep.ParsedBody().Devices[0].Measurements.Blocks[0].Value.String()
	wrong := strings.Replace(string(pol), v, strings.Repeat("11", len(v)/2), 1)
	p := writeFile(t, filepath.Join(filepath.Dir(e.policy), "wrong.yaml"), []byte(wrong))
	code, out, _ := runCmd("verify", e.report, "--policy", p, "--nonce", e.nonceHex)
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	i := strings.Index(out, "verdict: FAIL")
	if i < 0 {
		t.Fatalf("no verdict:\n%s", out)
	}
	tail := out[i:]
	for _, want := range []string{"FAIL 0000:01:00.1 / reference measurements", "expected " + strings.Repeat("11", len(v)/2), "seen " + v} {
		if !strings.Contains(tail, want) {
			t.Errorf("after the verdict, no %q:\n%s", want, tail)
		}
	}
	if !strings.Contains(out, "warning: platform: test roots: WARNING") {
		t.Errorf("no test-roots warning after the verdict:\n%s", out)
	}
}

// TestPolicyInitVerifiesFirst: finding 8 of issue 14. policy init writes
// nothing from a report that does not verify (here: the platform roots
// are not given, so the fake's signature chains to nothing trusted),
// refuses to overwrite, and --force does both.
func TestPolicyInitVerifiesFirst(t *testing.T) {
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	e := attestOn(t, "fake-snp", att, snpRoots(t, att))
	dir := t.TempDir()
	out := filepath.Join(dir, "policy.yaml")
	code, _, errOut := runCmd("policy", "init", "--from", e.report, "--out", out)
	if code != 1 || !strings.Contains(errOut, "does not verify") || !strings.Contains(errOut, "--force") {
		t.Fatalf("policy init of an unverifiable report: exit %d\n%s", code, errOut)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a refused policy init left %d files behind: %v", len(left), left)
	}
	// The same report with the roots: written once, then not overwritten.
	args := append([]string{"policy", "init", "--from", e.report, "--out", out}, snpRoots(t, att)(dir)...)
	if code, _, errOut := runCmd(args...); code != 0 {
		t.Fatalf("policy init: exit %d\n%s", code, errOut)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"leaf_not_ca: true", "leaf_key_usage_digital_signature: true", "snp_ark: \"ark.der\""} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the written policy lacks %q:\n%s", want, b)
		}
	}
	if code, _, errOut := runCmd(args...); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("policy init over an existing policy: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCmd(append(args, "--force")...); code != 0 {
		t.Fatalf("policy init --force: exit %d\n%s", code, errOut)
	}
	// --force writes an unverifiable report's policy, with the failures
	// as warnings.
	forced := filepath.Join(t.TempDir(), "forced.yaml")
	code, _, errOut = runCmd("policy", "init", "--from", e.report, "--out", forced, "--force")
	if code != 0 || !strings.Contains(errOut, "does not verify") {
		t.Fatalf("policy init --force of an unverifiable report: exit %d\n%s", code, errOut)
	}
}

// TestInspectMarksProvenance: finding 7 of issue 14. inspect says which
// fields are inside the signed body and which are not; the guest's
// platform error is shown as its unsigned word.
func TestInspectMarksProvenance(t *testing.T) {
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	e := attestOn(t, "fake-snp", att, snpRoots(t, att))
	code, out, _ := runCmd("inspect", e.report)
	if code != 0 {
		t.Fatalf("inspect: exit %d\n%s", code, out)
	}
	for _, want := range []string{"not verified", "[signed] created", "[signed] owner nonce", "[signed] device \"0000:01:00.1\"", "not checked against an anchor"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd("inspect", e.report, "--policy", e.policy, "--nonce", e.nonceHex)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("inspect --policy: exit %d\n%s", code, out)
	}
}
