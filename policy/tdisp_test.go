package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/tdisp"
)

const tdispRules = `    require_tdisp: true
    tdisp_state: RUN
    tdisp_interface_info: [NO_UPDATE_AFTER_LOCK, DMA_WITHOUT_PASID]
    tdisp_mmio_ranges:
      - pages: 16
        attributes: []
        range_id: 0
      - pages: 1
        attributes: [MSIX_TABLE]
      - pages: 1
        attributes: [MSIX_PBA, IS_NON_TEE_MEM]
`

func resultOf(rs []policy.Result, check string) policy.Result {
	for _, r := range rs {
		if r.Check == check {
			return r
		}
	}
	return policy.Result{Check: check, Reason: "missing"}
}

// TestCheckDeviceTDISP: each TDISP rule passes on the devsim evidence and
// fails when the evidence or the rule changes; every line is printed.
func TestCheckDeviceTDISP(t *testing.T) {
	a := attestDevice(t)
	if a.dev.TDISP == nil {
		t.Fatal("the attested device has no TDISP evidence")
	}
	full := fullRule(a) + tdispRules
	otherRange := func(mut func(*tdisp.Report)) func(*evidence.Device) {
		return func(d *evidence.Device) {
			r, err := tdisp.ParseReport(d.TDISP.InterfaceReport)
			if err != nil {
				t.Fatal(err)
			}
			mut(r)
			d.TDISP.InterfaceReport = r.Marshal()
		}
	}
	tests := []struct {
		name  string
		rule  func(string) string
		dev   func(*evidence.Device)
		fails []string
	}{
		{"passes", nil, nil, nil},
		{"no tdisp", nil, func(d *evidence.Device) { d.TDISP = nil }, []string{policy.CheckTDISP, policy.CheckTDISPInfo, policy.CheckTDISPMMIO}},
		{"state error", nil, func(d *evidence.Device) { d.TDISP.State = "ERROR" }, []string{policy.CheckTDISP}},
		{"state locked allowed", func(s string) string { return strings.Replace(s, "tdisp_state: RUN", "tdisp_state: CONFIG_LOCKED", 1) },
			func(d *evidence.Device) { d.TDISP.State = "CONFIG_LOCKED" }, nil},
		{"report garbage", nil, func(d *evidence.Device) { d.TDISP.InterfaceReport = d.TDISP.InterfaceReport[:10] },
			[]string{policy.CheckTDISP, policy.CheckTDISPInfo, policy.CheckTDISPMMIO}},
		{"stream not keyed", nil, func(d *evidence.Device) { d.TDISP.DefaultStream = 7 }, []string{policy.CheckTDISP}},
		{"info flags", nil, otherRange(func(r *tdisp.Report) { r.InterfaceInfo |= tdisp.InfoATSSupported }), []string{policy.CheckTDISPInfo}},
		{"range count", nil, otherRange(func(r *tdisp.Report) { r.Ranges = r.Ranges[:2] }), []string{policy.CheckTDISPMMIO}},
		{"range size", nil, otherRange(func(r *tdisp.Report) { r.Ranges[0].Pages = 32 }), []string{policy.CheckTDISPMMIO}},
		{"range attributes", nil, otherRange(func(r *tdisp.Report) { r.Ranges[1].Attributes |= tdisp.AttrNonTEEMem }), []string{policy.CheckTDISPMMIO}},
		{"range id", nil, otherRange(func(r *tdisp.Report) { r.Ranges[0].RangeID = 5 }), []string{policy.CheckTDISPMMIO}},
		{"layout not listed", func(s string) string { return s[:strings.Index(s, "    tdisp_mmio_ranges")] },
			otherRange(func(r *tdisp.Report) { r.Ranges = r.Ranges[:1] }), nil},
		{"not required", func(s string) string { return fullRule(a) }, func(d *evidence.Device) { d.TDISP = nil }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := attestDevice(t)
			rule := full
			if tc.rule != nil {
				rule = tc.rule(full)
			}
			p := loadPolicy(t, a.dir, rule)
			if tc.dev != nil {
				tc.dev(&a.dev)
			}
			rs := p.CheckDevice(a.dev, a.nonce)
			wantOnly(t, rs, tc.fails...)
			for _, c := range []string{policy.CheckTDISP, policy.CheckTDISPInfo, policy.CheckTDISPMMIO} {
				if r := resultOf(rs, c); r.Reason == "missing" {
					t.Errorf("no %q line", c)
				} else if tc.name == "not required" && !strings.HasPrefix(r.Reason, "skipped") {
					t.Errorf("%q: %q, want a skipped line", c, r.Reason)
				}
			}
		})
	}
}

func TestTDISPRuleErrors(t *testing.T) {
	a := attestDevice(t)
	for name, extra := range map[string]string{
		"unknown state":         "    require_tdisp: true\n    tdisp_state: RUNNING\n",
		"unknown info flag":     "    require_tdisp: true\n    tdisp_interface_info: [FAST]\n",
		"unknown attribute":     "    require_tdisp: true\n    tdisp_mmio_ranges:\n      - pages: 1\n        attributes: [SECRET]\n",
		"zero pages":            "    require_tdisp: true\n    tdisp_mmio_ranges:\n      - pages: 0\n",
		"rules without require": "    tdisp_state: RUN\n",
	} {
		yml := "devices:\n" + fullRule(a) + extra + "platform:\n  kind: snp\n  snp:\n    measurement: [" + strings.Repeat("00", 48) + "]\n"
		path := filepath.Join(a.dir, "bad.yaml")
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := policy.Load(path); err == nil || !strings.Contains(err.Error(), "tdisp") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
