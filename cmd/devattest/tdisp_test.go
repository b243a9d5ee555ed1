package main

import (
	"os"
	"strings"
	"testing"

	"github.com/devattest/devattest/guest/platform"
)

// TestTDISPPolicyInitVerifyInspect: policy init writes the TDISP rules
// from a report whose devices locked and started their interfaces, verify
// judges them (three lines per device), a policy with another MMIO layout
// or interface info is refused, and inspect decodes the report.
func TestTDISPPolicyInitVerifyInspect(t *testing.T) {
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	e := attestOn(t, "fake-snp", att, snpRoots(t, att))
	pol, err := os.ReadFile(e.policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"require_tdisp: true", "tdisp_state: RUN", "tdisp_interface_info: [NO_UPDATE_AFTER_LOCK, DMA_WITHOUT_PASID]",
		"- pages: 16\n        attributes: []\n        range_id: 0", "attributes: [MSIX_PBA, IS_NON_TEE_MEM]"} {
		if !strings.Contains(string(pol), want) {
			t.Fatalf("policy init wrote no %q:\n%s", want, pol)
		}
	}
	code, out, errOut := runCmd("verify", e.report, "--policy", e.policy, "--nonce", e.nonceHex)
	if code != 0 || strings.Count(out, "tdisp mmio layout       pass    3 ranges as listed") != 2 || strings.Count(out, "tdisp interface info    pass") != 2 {
		t.Fatalf("verify: %d\n%s%s", code, out, errOut)
	}
	for name, edit := range map[string][3]string{
		"range size":     {"- pages: 16", "- pages: 32", "tdisp mmio layout: range 0: 16 pages, the policy requires 32"},
		"range attrs":    {"attributes: [MSIX_TABLE]", "attributes: [MSIX_TABLE, IS_NON_TEE_MEM]", "tdisp mmio layout: range 1: attributes"},
		"interface info": {"[NO_UPDATE_AFTER_LOCK, DMA_WITHOUT_PASID]", "[DMA_WITHOUT_PASID]", "tdisp interface info: interface info"},
		"state":          {"tdisp_state: RUN", "tdisp_state: CONFIG_LOCKED", "/ tdisp: interface 0xbeef is RUN, the policy requires CONFIG_LOCKED"},
	} {
		bad := writeFile(t, e.dir+"/policy/bad.yaml", []byte(strings.ReplaceAll(string(pol), edit[0], edit[1])))
		code, out, _ := runCmd("verify", e.report, "--policy", bad, "--nonce", e.nonceHex)
		if code != 1 || !strings.Contains(out, edit[2]) {
			t.Errorf("%s: verify exited %d\n%s", name, code, out)
		}
	}
	code, out, errOut = runCmd("inspect", e.report)
	if code != 0 || !strings.Contains(out, "TDISP                interface 0xbeef RUN") || !strings.Contains(out, "MMIO range 2") {
		t.Fatalf("inspect: %d\n%s%s", code, out, errOut)
	}
}

func TestDevsimTDISPFaultFlag(t *testing.T) {
	code, _, errOut := runCmd("devsim", "--tdisp-fault", "sometimes")
	if code != 2 || !strings.Contains(errOut, "want none, after-lock or while-running") {
		t.Fatalf("devsim --tdisp-fault sometimes: %d %s", code, errOut)
	}
}
