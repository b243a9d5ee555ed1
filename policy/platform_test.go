package policy_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/devattest/devattest/policy"
)

// wantRule checks err against want: nil for "", else an error naming it.
func wantRule(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v, want it accepted", name, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: %v, want an error saying %q", name, err, want)
	}
}

// wantLine checks one rule's outcome: what it says when it passes (it
// must say something), or the error it gives.
func wantLine(t *testing.T, name string, what string, err error, want string) {
	t.Helper()
	wantRule(t, name, err, want)
	if err == nil && what == "" {
		t.Errorf("%s: passes without saying what matched", name)
	}
}

func TestSNPRules(t *testing.T) {
	r := &policy.SNPRule{MinTCB: &policy.SNPTCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}, VMPL: []uint8{0, 2}}
	for _, tc := range []struct {
		name string
		got  policy.SNPTCB
		want string
	}{
		{"equal", policy.SNPTCB{Bootloader: 3, SNP: 8, Microcode: 115}, ""},
		{"higher", policy.SNPTCB{Bootloader: 4, TEE: 1, SNP: 9, Microcode: 200}, ""},
		{"bootloader low", policy.SNPTCB{Bootloader: 2, SNP: 8, Microcode: 115}, "min_tcb: reported TCB: bootloader SVN 2 is below the minimum 3"},
		{"snp low", policy.SNPTCB{Bootloader: 3, SNP: 7, Microcode: 115}, "min_tcb: reported TCB: snp SVN 7 is below the minimum 8"},
		{"microcode low", policy.SNPTCB{Bootloader: 3, SNP: 8, Microcode: 114}, "microcode SVN 114 is below the minimum 115"},
	} {
		what, err := r.CheckTCB("reported TCB", tc.got)
		wantLine(t, "min_tcb "+tc.name, what, err, tc.want)
	}
	withTEE := &policy.SNPRule{MinTCB: &policy.SNPTCB{TEE: 1}}
	_, err := withTEE.CheckTCB("current TCB", policy.SNPTCB{})
	wantRule(t, "min_tcb tee", err, "current TCB: tee SVN 0 is below the minimum 1")
	for _, tc := range []struct {
		vmpl uint32
		want string
	}{{0, ""}, {2, ""}, {1, "vmpl: the report is from VMPL 1, the policy allows [0 2]"}, {7, "VMPL 7"}} {
		what, err := r.CheckVMPL(tc.vmpl)
		wantLine(t, "vmpl", what, err, tc.want)
	}
	// Absent rules are secure defaults, not "anything goes".
	none := &policy.SNPRule{}
	what, err := none.CheckTCB("reported TCB", policy.SNPTCB{Bootloader: 1})
	wantLine(t, "no min_tcb, non-zero TCB", what, err, "")
	_, err = none.CheckTCB("reported TCB", policy.SNPTCB{})
	wantRule(t, "no min_tcb, zero TCB", err, "the reported TCB is all zero")
	what, err = none.CheckVMPL(0)
	wantLine(t, "no vmpl, VMPL 0", what, err, "")
	_, err = none.CheckVMPL(3)
	wantRule(t, "no vmpl, VMPL 3", err, "vmpl: the report is from VMPL 3, the policy allows [0]")
	_, err = none.CheckReportVersion(1)
	wantRule(t, "report version 1", err, "report version 1 is below the minimum 2")
	what, err = none.CheckReportVersion(3)
	wantLine(t, "report version 3", what, err, "")
	_, err = (&policy.SNPRule{MinReportVersion: 5}).CheckReportVersion(3)
	wantRule(t, "min_report_version 5", err, "report version 3 is below the minimum 5")
}

func TestTDXRules(t *testing.T) {
	v := func(b byte) []byte { return bytes.Repeat([]byte{b}, 48) }
	rtmrs := map[uint32][]byte{0: v(0), 1: v(1), 2: v(2), 3: v(3)}
	r := &policy.TDXRule{
		RTMRs:        map[uint8]policy.HexList{0: {v(0)}, 2: {v(9), v(2)}},
		TDAttributes: policy.HexBytes{0, 0, 0, 0x10, 0, 0, 0, 0},
		XFAM:         policy.HexBytes{0xe7, 2, 6, 0, 0, 0, 0, 0},
		MRSEAM:       policy.HexList{v(5)},
		MRSignerSEAM: policy.HexList{v(6)},
		MinTEETCBSVN: policy.HexBytes{3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	check := func(name string, want string, f func() (string, error)) {
		t.Helper()
		what, err := f()
		wantLine(t, name, what, err, want)
	}
	check("rtmrs", "", func() (string, error) { return r.CheckRTMRs(rtmrs, 3) })
	check("rtmr changed", "rtmrs: RTMR 2 is 0707", func() (string, error) {
		return r.CheckRTMRs(map[uint32][]byte{0: v(0), 1: v(1), 2: v(7), 3: v(3)}, 3)
	})
	check("rtmr missing", "rtmrs: RTMR 2 is not in the report", func() (string, error) {
		return r.CheckRTMRs(map[uint32][]byte{0: v(0)}, 3)
	})
	boot := &policy.TDXRule{RTMRs: map[uint8]policy.HexList{3: {v(3)}}}
	check("boot rtmr pinned", "rtmrs: RTMR 3 carries the boot binding", func() (string, error) { return boot.CheckRTMRs(rtmrs, 3) })
	check("td_attributes", "", func() (string, error) { return r.CheckTDAttributes([]byte{0, 0, 0, 0x10, 0, 0, 0, 0}) })
	check("td_attributes debug", "td_attributes: the quote has 0100001000000000, the policy requires 0000001000000000", func() (string, error) {
		return r.CheckTDAttributes([]byte{1, 0, 0, 0x10, 0, 0, 0, 0})
	})
	check("xfam", "", func() (string, error) { return r.CheckXFAM([]byte{0xe7, 2, 6, 0, 0, 0, 0, 0}) })
	check("xfam differs", "xfam: the quote has e700060000000000", func() (string, error) { return r.CheckXFAM([]byte{0xe7, 0, 6, 0, 0, 0, 0, 0}) })
	check("mrseam listed", "", func() (string, error) { return r.CheckMRSEAM(v(5)) })
	check("mrseam unknown", "MRSEAM 0707", func() (string, error) { return r.CheckMRSEAM(v(7)) })
	check("mrsigner_seam listed", "", func() (string, error) { return r.CheckMRSignerSEAM(v(6)) })
	check("mrsigner_seam unknown", "MRSIGNERSEAM 0000", func() (string, error) { return r.CheckMRSignerSEAM(v(0)) })
	check("tee_tcb_svn equal", "", func() (string, error) {
		return r.CheckTEETCBSVN([]byte{3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	})
	check("tee_tcb_svn higher", "", func() (string, error) {
		return r.CheckTEETCBSVN([]byte{4, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	})
	check("tee_tcb_svn low", "SVN 0 is 2, below the minimum 3", func() (string, error) {
		return r.CheckTEETCBSVN([]byte{2, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	})

	// Absent rules are secure defaults.
	none := &policy.TDXRule{}
	zero16 := make([]byte, 16)
	check("no rtmrs", "", func() (string, error) { return none.CheckRTMRs(rtmrs, 3) })
	check("debug", "a debug TD", func() (string, error) { return none.CheckDebug([]byte{1, 0, 0, 0, 0, 0, 0, 0}) })
	check("debug allowed", "", func() (string, error) {
		return (&policy.TDXRule{AllowDebug: true}).CheckDebug([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	})
	check("not debug", "", func() (string, error) { return none.CheckDebug(make([]byte, 8)) })
	check("seam attributes", "SEAM attributes 0100000000000000 are not zero", func() (string, error) {
		return policy.CheckSEAMAttributes([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	})
	check("mrseam zero", "MRSEAM is all zero", func() (string, error) { return none.CheckMRSEAM(v(0)) })
	check("mrseam any", "", func() (string, error) { return none.CheckMRSEAM(v(5)) })
	check("mrsigner_seam not Intel", "not signed by Intel", func() (string, error) { return none.CheckMRSignerSEAM(v(6)) })
	check("mrsigner_seam Intel", "", func() (string, error) { return none.CheckMRSignerSEAM(v(0)) })
	check("tee_tcb_svn zero", "TEE_TCB_SVN is all zero", func() (string, error) { return none.CheckTEETCBSVN(zero16) })
	check("tee_tcb_svn non-zero", "", func() (string, error) { return none.CheckTEETCBSVN(append([]byte{1}, zero16[1:]...)) })
	check("td_attributes reserved bit", "set bits the architecture reserves", func() (string, error) {
		return none.CheckTDAttributes([]byte{2, 0, 0, 0, 0, 0, 0, 0})
	})
	check("td_attributes sept_ve_disable", "", func() (string, error) { return none.CheckTDAttributes([]byte{0, 0, 0, 0x10, 0, 0, 0, 0}) })
	check("xfam fixed bits", "outside the architecture's fixed bits", func() (string, error) { return none.CheckXFAM([]byte{0xe4, 0, 0, 0, 0, 0, 0, 0}) })
	check("xfam within", "", func() (string, error) { return none.CheckXFAM([]byte{0xe7, 0, 0, 0, 0, 0, 0, 0}) })
}

func TestTPMRules(t *testing.T) {
	v := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	pcrs := map[uint32][]byte{0: v(0), 7: v(7), 15: v(15)}
	r := &policy.TPMRule{PCRs: map[uint8]policy.HexList{0: {v(0)}, 7: {v(1), v(7)}}, QuotedPCRs: []uint8{0, 7}}
	what, err := r.CheckPCRs(pcrs, 15)
	wantLine(t, "pcrs", what, err, "")
	_, err = r.CheckPCRs(map[uint32][]byte{0: v(0), 7: v(8)}, 15)
	wantRule(t, "pcr changed", err, "pcrs: PCR 7 is 0808")
	_, err = r.CheckPCRs(map[uint32][]byte{0: v(0)}, 15)
	wantRule(t, "pcr not quoted", err, "pcrs: PCR 7 is not in the report")
	boot := &policy.TPMRule{PCRs: map[uint8]policy.HexList{14: {v(0)}}}
	_, err = boot.CheckPCRs(map[uint32][]byte{14: v(0)}, 14)
	wantRule(t, "boot pcr pinned", err, "pcrs: PCR 14 carries the boot binding")
	what, err = (&policy.TPMRule{}).CheckPCRs(nil, 15)
	wantLine(t, "no pcrs", what, err, "")
	if !strings.HasPrefix(what, "skipped: policy allows") {
		t.Errorf("no pcrs: %q, want a skipped line", what)
	}
	what, err = r.CheckQuotedPCRs(pcrs, 15)
	wantLine(t, "quoted", what, err, "")
	_, err = r.CheckQuotedPCRs(map[uint32][]byte{0: v(0), 7: v(7)}, 15)
	wantRule(t, "boot pcr not quoted", err, "the quote does not cover PCR [15]")
	_, err = (&policy.TPMRule{}).CheckQuotedPCRs(map[uint32][]byte{0: v(0)}, 15)
	wantRule(t, "default: boot pcr required", err, "the quote does not cover PCR [15]")
}
