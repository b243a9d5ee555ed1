package policy

// TDISP rules of a device (TDISP 1.0, PCIe Base 6.x §11): whether the
// device's TEE device interface must have been locked and started, the
// state it must be in, the exact INTERFACE_INFO flags of its interface
// report and the exact MMIO layout (number of ranges, each one's size
// and attributes, optionally its range ID and first page). The guest
// applies the report rules before it starts the interface, and the
// verifier applies all of them to the report bytes the evidence carries.

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/tdisp"
)

// Check names of the TDISP rules.
const (
	CheckTDISP     = "tdisp"
	CheckTDISPInfo = "tdisp interface info"
	CheckTDISPMMIO = "tdisp mmio layout"
)

// EventTDISP is the device event kind of a TDI that left RUN.
const EventTDISP = "tdisp state"

// MMIORangeRule is what one MMIO range of the interface report must be.
type MMIORangeRule struct {
	// Pages is the range's size in 4 KiB pages.
	Pages uint32 `yaml:"pages"`
	// Attributes are exactly the range's attribute flags, by name
	// (MSIX_TABLE, MSIX_PBA, IS_NON_TEE_MEM, IS_MEM_ATTR_UPDATABLE); empty
	// means none.
	Attributes []string `yaml:"attributes"`
	// RangeID, when set, must be the range's ID.
	RangeID *uint16 `yaml:"range_id"`
	// FirstPage, when set, pins where the range is (its page number with
	// the lock's MMIO reporting offset added).
	FirstPage *uint64 `yaml:"first_page"`

	attrs uint16
}

// checkTDISPRule checks the TDISP keys of a device rule.
func (r *DeviceRule) checkTDISPRule(key string) error {
	if r.TDISPState != "" {
		if _, ok := tdisp.ParseState(r.TDISPState); !ok {
			return fmt.Errorf("%s.tdisp_state: %q (want CONFIG_UNLOCKED, CONFIG_LOCKED, RUN or ERROR)", key, r.TDISPState)
		}
	}
	r.tdispInfo = 0
	for j, n := range r.TDISPInterfaceInfo {
		b, ok := tdisp.InfoBit(n)
		if !ok {
			return fmt.Errorf("%s.tdisp_interface_info[%d]: %q (want one of %s)", key, j, n, strings.Join(tdisp.InfoNames(0x1F), ", "))
		}
		r.tdispInfo |= b
	}
	for i := range r.TDISPMMIORanges {
		m := &r.TDISPMMIORanges[i]
		m.attrs = 0
		for j, n := range m.Attributes {
			b, ok := tdisp.AttrBit(n)
			if !ok {
				return fmt.Errorf("%s.tdisp_mmio_ranges[%d].attributes[%d]: %q (want one of %s)", key, i, j, n, strings.Join(tdisp.AttrNames(0xF), ", "))
			}
			m.attrs |= b
		}
		if m.Pages == 0 {
			return fmt.Errorf("%s.tdisp_mmio_ranges[%d].pages: missing or 0", key, i)
		}
	}
	if !r.RequireTDISP && (r.TDISPState != "" || r.TDISPInterfaceInfo != nil || r.TDISPMMIORanges != nil) {
		return fmt.Errorf("%s: tdisp_state, tdisp_interface_info and tdisp_mmio_ranges need require_tdisp: true", key)
	}
	return nil
}

// wantState is the TDI state the rule requires (RUN unless it says).
func (r *DeviceRule) wantState() string {
	if r.TDISPState != "" {
		return r.TDISPState
	}
	return tdisp.StateRun.String()
}

// CheckReport applies the rule's report rules (interface info, MMIO
// layout) to a decoded interface report; the guest calls it before it
// starts the interface.
func (r *DeviceRule) CheckReport(rep *tdisp.Report) error {
	return errors.Join(r.checkInfo(rep), r.checkMMIO(rep))
}

func (r *DeviceRule) checkInfo(rep *tdisp.Report) error {
	if r.TDISPInterfaceInfo == nil || rep.InterfaceInfo == r.tdispInfo {
		return nil
	}
	return fmt.Errorf("interface info %v, the policy requires exactly %v", names(tdisp.InfoNames(rep.InterfaceInfo)), names(tdisp.InfoNames(r.tdispInfo)))
}

func (r *DeviceRule) checkMMIO(rep *tdisp.Report) error {
	if r.TDISPMMIORanges == nil {
		return nil
	}
	if len(rep.Ranges) != len(r.TDISPMMIORanges) {
		return fmt.Errorf("%d MMIO ranges, the policy requires %d", len(rep.Ranges), len(r.TDISPMMIORanges))
	}
	var bad []error
	for i, want := range r.TDISPMMIORanges {
		got := rep.Ranges[i]
		if got.Pages != want.Pages {
			bad = append(bad, fmt.Errorf("range %d: %d pages, the policy requires %d", i, got.Pages, want.Pages))
		}
		if got.Attributes != want.attrs {
			bad = append(bad, fmt.Errorf("range %d: attributes %v, the policy requires %v", i, names(tdisp.AttrNames(got.Attributes)), names(tdisp.AttrNames(want.attrs))))
		}
		if want.RangeID != nil && got.RangeID != *want.RangeID {
			bad = append(bad, fmt.Errorf("range %d: range ID %d, the policy requires %d", i, got.RangeID, *want.RangeID))
		}
		if want.FirstPage != nil && got.FirstPage != *want.FirstPage {
			bad = append(bad, fmt.Errorf("range %d: first page 0x%x, the policy requires 0x%x", i, got.FirstPage, *want.FirstPage))
		}
	}
	return errors.Join(bad...)
}

func names(n []string) string {
	if len(n) == 0 {
		return "(none)"
	}
	return strings.Join(n, "|")
}

// checkTDISP prints the three TDISP lines, always.
func (c *deviceCheck) checkTDISP() {
	d, r := c.d, c.rule
	if !r.RequireTDISP {
		why := "skipped: the policy does not require TDISP"
		if d.TDISP != nil {
			why += fmt.Sprintf(" (the device reports its interface %s)", d.TDISP.State)
		}
		c.pass(CheckTDISP, why)
		c.pass(CheckTDISPInfo, "skipped: the policy does not require TDISP")
		c.pass(CheckTDISPMMIO, "skipped: the policy does not require TDISP")
		return
	}
	t := d.TDISP
	if t == nil {
		c.fail(CheckTDISP, "required, but the device's interface was not locked and started (no tdisp in the evidence)")
		c.fail(CheckTDISPInfo, "not checked: no interface report")
		c.fail(CheckTDISPMMIO, "not checked: no interface report")
		return
	}
	rep, err := tdisp.ParseReport(t.InterfaceReport)
	switch {
	case err != nil:
		c.fail(CheckTDISP, "the interface report does not decode: "+err.Error())
	case t.State != r.wantState():
		c.fail(CheckTDISP, fmt.Sprintf("interface 0x%x is %s, the policy requires %s", t.FunctionID, t.State, r.wantState()))
	case d.IDE == nil || d.IDE.Stream != t.DefaultStream:
		c.fail(CheckTDISP, fmt.Sprintf("the interface is bound to IDE stream %d, which the evidence does not show keyed", t.DefaultStream))
	default:
		c.pass(CheckTDISP, fmt.Sprintf("interface 0x%x %s, lock flags %s, default stream %d, report of %d bytes",
			t.FunctionID, t.State, names(tdisp.LockFlagNames(t.LockFlags)), t.DefaultStream, len(t.InterfaceReport)))
	}
	if err != nil {
		c.fail(CheckTDISPInfo, "not checked: the interface report does not decode")
		c.fail(CheckTDISPMMIO, "not checked: the interface report does not decode")
		return
	}
	if r.TDISPInterfaceInfo == nil {
		c.pass(CheckTDISPInfo, "skipped: the policy lists no tdisp_interface_info (any flags accepted): "+names(tdisp.InfoNames(rep.InterfaceInfo)))
	} else if c.result(CheckTDISPInfo, r.checkInfo(rep)) {
		c.out[len(c.out)-1].Reason = names(tdisp.InfoNames(rep.InterfaceInfo))
	}
	if r.TDISPMMIORanges == nil {
		c.pass(CheckTDISPMMIO, fmt.Sprintf("skipped: the policy lists no tdisp_mmio_ranges (any layout accepted): %d ranges", len(rep.Ranges)))
	} else if c.result(CheckTDISPMMIO, r.checkMMIO(rep)) {
		c.out[len(c.out)-1].Reason = fmt.Sprintf("%d ranges as listed", len(rep.Ranges))
	}
}

// TDISPRules returns the TDISP keys that describe t's report exactly,
// for `devattest policy init`: require_tdisp, the state RUN, the
// interface info flags and every range's size and attributes (not its
// address, which the host chooses).
func TDISPRules(t *evidence.TDISP) (state string, info []string, ranges []MMIORangeRule, err error) {
	rep, err := tdisp.ParseReport(t.InterfaceReport)
	if err != nil {
		return "", nil, nil, err
	}
	info = slices.Clip(tdisp.InfoNames(rep.InterfaceInfo))
	if info == nil {
		info = []string{}
	}
	for _, m := range rep.Ranges {
		a := tdisp.AttrNames(m.Attributes)
		if a == nil {
			a = []string{}
		}
		id := m.RangeID
		ranges = append(ranges, MMIORangeRule{Pages: m.Pages, Attributes: a, RangeID: &id})
	}
	if ranges == nil {
		ranges = []MMIORangeRule{}
	}
	return tdisp.StateRun.String(), info, ranges, nil
}
