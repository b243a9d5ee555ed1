package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-sev-guest/kds"
)

// Names of the platform checks CheckPlatform returns, in its order. Every
// line of the policy's kind is returned for every report, so the count
// never shrinks silently.
const (
	CheckTestRoots = "test roots"
	CheckEventLog  = "event log"

	CheckSNPMeasurement   = "launch measurement"
	CheckSNPDebug         = "debug policy"
	CheckSNPMigrateMA     = "snp migrate_ma"
	CheckSNPVMPL          = "snp vmpl"
	CheckSNPTCB           = "snp min_tcb"
	CheckSNPReportVersion = "snp report version"

	CheckTDXMRTD           = "mrtd"
	CheckTDXDebug          = "tdx debug"
	CheckTDXSEAMAttributes = "tdx seam_attributes"
	CheckTDXMRSEAM         = "tdx mrseam"
	CheckTDXMRSignerSEAM   = "tdx mrsigner_seam"
	CheckTDXTCB            = "tdx min_tee_tcb_svn"
	CheckTDXAttribute      = "tdx td_attributes"
	CheckTDXXFAM           = "tdx xfam"
	CheckTDXRTMRs          = "tdx rtmrs"

	CheckTPMAK         = "attestation key"
	CheckTPMQuotedPCRs = "tpm quoted pcrs"
	CheckTPMPCRs       = "tpm pcrs"
)

// platformChecks are the rule lines of each kind, in order, after the
// platform report, test roots and event log lines.
var platformChecks = map[string][]string{
	KindSNP: {CheckSNPMeasurement, CheckSNPDebug, CheckSNPMigrateMA, CheckSNPVMPL, CheckSNPTCB, CheckSNPReportVersion},
	KindTDX: {CheckTDXMRTD, CheckTDXDebug, CheckTDXSEAMAttributes, CheckTDXMRSEAM, CheckTDXMRSignerSEAM, CheckTDXTCB,
		CheckTDXAttribute, CheckTDXXFAM, CheckTDXRTMRs},
	KindTPM: {CheckTPMAK, CheckTPMQuotedPCRs, CheckTPMPCRs},
}

// TDX attribute and XFAM bits the architecture allows (facts from the TDX
// module ABI as go-tdx-guest's validate package applies them): a bit that
// is 0 in a Fixed0 mask must be 0, a bit that is 1 in XFAMFixed1 must be 1.
const (
	// TDAttributesAllowed: DEBUG (0), SEPT_VE_DISABLE (28), PKS (30) and
	// PERFMON (63).
	TDAttributesAllowed uint64 = 1 | 1<<28 | 1<<30 | 1<<63
	// TDAttributeDebug is TD_ATTRIBUTES bit 0: the host can read and
	// change the TD's memory and state.
	TDAttributeDebug uint64 = 1
	XFAMFixed0       uint64 = 0x0006DBE7
	XFAMFixed1       uint64 = 0x00000003
)

// skipped is the reason of a line whose check the policy switches off.
func skipped(format string, args ...any) string {
	return "skipped: policy allows " + fmt.Sprintf(format, args...)
}

// short shows a long value in a passing line: its first 8 bytes.
func short(b []byte) string {
	if len(b) <= 8 {
		return hex.EncodeToString(b)
	}
	return hex.EncodeToString(b[:8]) + "…"
}

// checkAllowed checks got against a required allowlist.
func checkAllowed(what, key string, got []byte, list HexList) (string, error) {
	if !list.Contains(got) {
		return "", fmt.Errorf("%s %x is not in the policy's %s", what, got, key)
	}
	return fmt.Sprintf("%s %s is allowed", what, short(got)), nil
}

// SNPTCBOf splits a SEV-SNP TCB version into its SVNs.
func SNPTCBOf(v uint64) SNPTCB {
	p := kds.DecomposeTCBVersion(kds.TCBVersion(v))
	return SNPTCB{Bootloader: p.BlSpl, TEE: p.TeeSpl, SNP: p.SnpSpl, Microcode: p.UcodeSpl}
}

func (t SNPTCB) String() string {
	return fmt.Sprintf("bootloader %d, tee %d, snp %d, microcode %d", t.Bootloader, t.TEE, t.SNP, t.Microcode)
}

// CheckTCB checks a TCB (what, e.g. "reported TCB") against min_tcb:
// every component must be at least the minimum. Without min_tcb an
// all-zero TCB is refused and any other accepted.
func (r *SNPRule) CheckTCB(what string, got SNPTCB) (string, error) {
	if r == nil || r.MinTCB == nil {
		if got == (SNPTCB{}) {
			return "", fmt.Errorf("min_tcb: the %s is all zero (a test platform?); give min_tcb to accept it", what)
		}
		return fmt.Sprintf("%s %s (no min_tcb: only an all-zero TCB is refused)", what, got), nil
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
		return "", fmt.Errorf("min_tcb: %s: %s", what, strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%s %s meets the minimum", what, got), nil
}

// AllowedVMPLs applies the default of VMPL: [0].
func (r *SNPRule) AllowedVMPLs() []uint8 {
	if r == nil || len(r.VMPL) == 0 {
		return []uint8{0}
	}
	return r.VMPL
}

// CheckVMPL checks the report's VMPL against vmpl (default [0]).
func (r *SNPRule) CheckVMPL(got uint32) (string, error) {
	allowed := r.AllowedVMPLs()
	if got > 3 || !slices.Contains(allowed, uint8(got)) {
		return "", fmt.Errorf("vmpl: the report is from VMPL %d, the policy allows %v", got, allowed)
	}
	return fmt.Sprintf("VMPL %d (allowed: %v)", got, allowed), nil
}

// CheckReportVersion checks the report format version against
// min_report_version (default DefaultSNPMinReportVersion).
func (r *SNPRule) CheckReportVersion(got uint32) (string, error) {
	min := uint32(DefaultSNPMinReportVersion)
	if r != nil && r.MinReportVersion != 0 {
		min = r.MinReportVersion
	}
	if got < min {
		return "", fmt.Errorf("report version %d is below the minimum %d", got, min)
	}
	return fmt.Sprintf("report version %d (minimum %d)", got, min), nil
}

// CheckDebug checks TD_ATTRIBUTES' debug bit against allow_debug.
func (r *TDXRule) CheckDebug(tdAttributes []byte) (string, error) {
	debug := len(tdAttributes) == 8 && binary.LittleEndian.Uint64(tdAttributes)&TDAttributeDebug != 0
	switch {
	case !debug:
		return "not a debug TD (TD_ATTRIBUTES bit 0 clear)", nil
	case r != nil && r.AllowDebug:
		return skipped("a debug TD (allow_debug: true), which this TD is: the host can read and change its memory"), nil
	default:
		return "", errors.New("a debug TD (TD_ATTRIBUTES bit 0): the host can read and change its memory; refused unless the policy says allow_debug: true")
	}
}

// CheckSEAMAttributes checks that the quote's SEAM attributes are zero,
// as they are for every production TDX module.
func CheckSEAMAttributes(got []byte) (string, error) {
	if !allZero(got) {
		return "", fmt.Errorf("SEAM attributes %x are not zero (a debug or non-production TDX module)", got)
	}
	return "SEAM attributes zero", nil
}

// CheckMRSEAM checks the TDX module's measurement against mrseam.
func (r *TDXRule) CheckMRSEAM(got []byte) (string, error) {
	if r != nil && len(r.MRSEAM) > 0 {
		return checkAllowed("MRSEAM", "mrseam", got, r.MRSEAM)
	}
	if allZero(got) {
		return "", errors.New("MRSEAM is all zero, which no real TDX module has; list it in mrseam to accept it")
	}
	return fmt.Sprintf("MRSEAM %s (no mrseam list: any module that passes mrsigner_seam and min_tee_tcb_svn)", short(got)), nil
}

// CheckMRSignerSEAM checks the TDX module's signer against mrsigner_seam
// (default: all zero, Intel).
func (r *TDXRule) CheckMRSignerSEAM(got []byte) (string, error) {
	if r != nil && len(r.MRSignerSEAM) > 0 {
		return checkAllowed("MRSIGNERSEAM", "mrsigner_seam", got, r.MRSignerSEAM)
	}
	if !allZero(got) {
		return "", fmt.Errorf("MRSIGNERSEAM %x: the TDX module is not signed by Intel (all zero); list its signer in mrsigner_seam to accept it", got)
	}
	return "MRSIGNERSEAM zero: a TDX module signed by Intel", nil
}

// CheckTEETCBSVN checks TEE_TCB_SVN against min_tee_tcb_svn byte by byte.
// Without min_tee_tcb_svn an all-zero TEE_TCB_SVN is refused.
func (r *TDXRule) CheckTEETCBSVN(got []byte) (string, error) {
	if r == nil || r.MinTEETCBSVN == nil {
		if allZero(got) {
			return "", errors.New("TEE_TCB_SVN is all zero (a test platform?); give min_tee_tcb_svn to judge the TDX module's TCB")
		}
		return fmt.Sprintf("TEE_TCB_SVN %x (no min_tee_tcb_svn: only all zero is refused)", got), nil
	}
	min := r.MinTEETCBSVN
	if len(got) != len(min) {
		return "", fmt.Errorf("TEE_TCB_SVN is %d bytes, want %d", len(got), len(min))
	}
	var bad []string
	for i := range got {
		if got[i] < min[i] {
			bad = append(bad, fmt.Sprintf("SVN %d is %d, below the minimum %d", i, got[i], min[i]))
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("TEE_TCB_SVN %x: %s", got, strings.Join(bad, "; "))
	}
	return fmt.Sprintf("TEE_TCB_SVN %x meets the minimum %x", got, []byte(min)), nil
}

// CheckTDAttributes checks the quote's TD_ATTRIBUTES against
// td_attributes; without it, no bit outside TDAttributesAllowed may be
// set (the debug bit is judged by CheckDebug).
func (r *TDXRule) CheckTDAttributes(got []byte) (string, error) {
	if r != nil && r.TDAttributes != nil {
		if !bytes.Equal(got, r.TDAttributes) {
			return "", fmt.Errorf("td_attributes: the quote has %x, the policy requires %x", got, []byte(r.TDAttributes))
		}
		return fmt.Sprintf("TD attributes %x as required", got), nil
	}
	if len(got) != 8 {
		return "", fmt.Errorf("TD attributes are %d bytes, want 8", len(got))
	}
	if v := binary.LittleEndian.Uint64(got); v&^TDAttributesAllowed != 0 {
		return "", fmt.Errorf("TD attributes %x set bits the architecture reserves (mask %016x)", got, v&^TDAttributesAllowed)
	}
	return fmt.Sprintf("TD attributes %x: no reserved bit set (td_attributes not pinned)", got), nil
}

// CheckXFAM checks the quote's XFAM against xfam; without it, XFAM must
// keep the architecture's fixed bits.
func (r *TDXRule) CheckXFAM(got []byte) (string, error) {
	if r != nil && r.XFAM != nil {
		if !bytes.Equal(got, r.XFAM) {
			return "", fmt.Errorf("xfam: the quote has %x, the policy requires %x", got, []byte(r.XFAM))
		}
		return fmt.Sprintf("XFAM %x as required", got), nil
	}
	if len(got) != 8 {
		return "", fmt.Errorf("XFAM is %d bytes, want 8", len(got))
	}
	v := binary.LittleEndian.Uint64(got)
	if v&XFAMFixed1 != XFAMFixed1 || v&^XFAMFixed0 != 0 {
		return "", fmt.Errorf("XFAM %x is outside the architecture's fixed bits", got)
	}
	return fmt.Sprintf("XFAM %x within the architecture's fixed bits (xfam not pinned)", got), nil
}

// CheckRTMRs checks the quote's RTMRs (by index) against the rtmrs rule.
// bootRTMR carries the boot binding: pinning it is refused, since its
// value depends on every attestation's evidence.
func (r *TDXRule) CheckRTMRs(rtmrs map[uint32][]byte, bootRTMR int) (string, error) {
	if r == nil || len(r.RTMRs) == 0 {
		return skipped("any RTMR values (no rtmrs rule); RTMR %d is judged by the boot binding", bootRTMR), nil
	}
	return checkRegisterValues("rtmrs", "RTMR", r.RTMRs, rtmrs, bootRTMR)
}

// RequiredPCRs are the PCRs a quote must cover: the boot-binding PCR,
// quoted_pcrs and every pinned PCR, ascending.
func (r *TPMRule) RequiredPCRs(bootPCR int) []uint32 {
	want := []uint32{uint32(bootPCR)}
	if r != nil {
		for _, v := range r.QuotedPCRs {
			want = append(want, uint32(v))
		}
		for i := range r.PCRs {
			want = append(want, uint32(i))
		}
	}
	slices.Sort(want)
	return slices.Compact(want)
}

// CheckQuotedPCRs checks that the quote covers RequiredPCRs.
func (r *TPMRule) CheckQuotedPCRs(pcrs map[uint32][]byte, bootPCR int) (string, error) {
	var missing []uint32
	want := r.RequiredPCRs(bootPCR)
	for _, i := range want {
		if _, ok := pcrs[i]; !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the quote does not cover PCR %v (the policy requires %v)", missing, want)
	}
	return fmt.Sprintf("the quote covers PCRs %v, which includes the required %v", slices.Sorted(maps.Keys(pcrs)), want), nil
}

// CheckPCRs checks quoted PCR values (index to SHA-256 bank value)
// against the pcrs rule. bootPCR is the boot-binding PCR; pinning it is
// refused.
func (r *TPMRule) CheckPCRs(pcrs map[uint32][]byte, bootPCR int) (string, error) {
	if r == nil || len(r.PCRs) == 0 {
		return skipped("any PCR values (no pcrs rule); PCR %d is judged by the boot binding", bootPCR), nil
	}
	return checkRegisterValues("pcrs", "PCR", r.PCRs, pcrs, bootPCR)
}

func checkRegisterValues(rule, name string, want map[uint8]HexList, got map[uint32][]byte, boot int) (string, error) {
	var bad, ok []string
	for _, i := range slices.Sorted(maps.Keys(want)) {
		if int(i) == boot {
			bad = append(bad, fmt.Sprintf("%s %d carries the boot binding, which is checked by replaying the event log; do not pin it", name, i))
			continue
		}
		v, present := got[uint32(i)]
		switch {
		case !present:
			bad = append(bad, fmt.Sprintf("%s %d is not in the report", name, i))
		case !want[i].Contains(v):
			bad = append(bad, fmt.Sprintf("%s %d is %x, not an accepted value", name, i, v))
		default:
			ok = append(ok, fmt.Sprintf("%d", i))
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("%s: %s", rule, strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%s %s have accepted values", name, strings.Join(ok, ", ")), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
