package policy

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Names of the platform rule checks. The PlatformVerifier reports them
// with the values it reads from the signed platform report.
const (
	CheckSNPTCB       = "snp min_tcb"
	CheckSNPVMPL      = "snp vmpl"
	CheckTDXRTMRs     = "tdx rtmrs"
	CheckTDXAttribute = "tdx td_attributes"
	CheckTDXXFAM      = "tdx xfam"
	CheckTPMPCRs      = "tpm pcrs"
)

// CheckTCB checks the reported TCB against min_tcb: every component must
// be at least the minimum. A rule without min_tcb accepts any TCB.
func (r *SNPRule) CheckTCB(got SNPTCB) error {
	if r == nil || r.MinTCB == nil {
		return nil
	}
	m := r.MinTCB
	var bad []string
	for _, c := range []struct {
		name      string
		got, want uint8
	}{{"bootloader", got.Bootloader, m.Bootloader}, {"tee", got.TEE, m.TEE}, {"snp", got.SNP, m.SNP}, {"microcode", got.Microcode, m.Microcode}} {
		if c.got < c.want {
			bad = append(bad, fmt.Sprintf("%s SVN %d is below the minimum %d", c.name, c.got, c.want))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("min_tcb: reported TCB: %s", strings.Join(bad, "; "))
	}
	return nil
}

// CheckVMPL checks the report's VMPL against the vmpl list. A rule
// without one accepts any VMPL.
func (r *SNPRule) CheckVMPL(got uint32) error {
	if r == nil || len(r.VMPL) == 0 {
		return nil
	}
	for _, v := range r.VMPL {
		if uint32(v) == got {
			return nil
		}
	}
	return fmt.Errorf("vmpl: the report is from VMPL %d, the policy allows %v", got, r.VMPL)
}

// CheckRTMRs checks the quote's RTMRs (rtmrs[i] is RTMR[i]) against the
// rtmrs rule. bootRTMR is the RTMR that carries the boot binding (the
// register of the event log, -1 when there is none); pinning it is
// refused, since its value depends on every attestation's nonce.
func (r *TDXRule) CheckRTMRs(rtmrs [][]byte, bootRTMR int) error {
	if r == nil {
		return nil
	}
	return checkRegisterValues("rtmrs", "RTMR", r.RTMRs, func(i uint8) ([]byte, bool) {
		if int(i) >= len(rtmrs) {
			return nil, false
		}
		return rtmrs[i], true
	}, bootRTMR)
}

// CheckTDAttributes checks the quote's TDATTRIBUTES against td_attributes.
func (r *TDXRule) CheckTDAttributes(got []byte) error {
	if r == nil || r.TDAttributes == nil || bytes.Equal(got, r.TDAttributes) {
		return nil
	}
	return fmt.Errorf("td_attributes: the quote has %x, the policy requires %x", got, []byte(r.TDAttributes))
}

// CheckXFAM checks the quote's XFAM against xfam.
func (r *TDXRule) CheckXFAM(got []byte) error {
	if r == nil || r.XFAM == nil || bytes.Equal(got, r.XFAM) {
		return nil
	}
	return fmt.Errorf("xfam: the quote has %x, the policy requires %x", got, []byte(r.XFAM))
}

// CheckPCRs checks quoted PCR values (index to SHA-256 bank value)
// against the pcrs rule. bootPCR is the PCR of the event log (-1 when
// there is none); pinning it is refused.
func (r *TPMRule) CheckPCRs(pcrs map[uint32][]byte, bootPCR int) error {
	if r == nil {
		return nil
	}
	return checkRegisterValues("pcrs", "PCR", r.PCRs, func(i uint8) ([]byte, bool) {
		v, ok := pcrs[uint32(i)]
		return v, ok
	}, bootPCR)
}

func checkRegisterValues(rule, name string, want map[uint8]HexList, get func(uint8) ([]byte, bool), boot int) error {
	var bad []string
	for _, i := range slices.Sorted(maps.Keys(want)) {
		if int(i) == boot {
			bad = append(bad, fmt.Sprintf("%s %d carries the boot binding, which is checked by replaying the event log; do not pin it", name, i))
			continue
		}
		v, ok := get(i)
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s %d is not in the report", name, i))
		case !want[i].Contains(v):
			bad = append(bad, fmt.Sprintf("%s %d is %x, not an accepted value", name, i, v))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %s", rule, strings.Join(bad, "; "))
	}
	return nil
}
