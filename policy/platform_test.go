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
		wantRule(t, "min_tcb "+tc.name, r.CheckTCB(tc.got), tc.want)
	}
	withTEE := &policy.SNPRule{MinTCB: &policy.SNPTCB{TEE: 1}}
	wantRule(t, "min_tcb tee", withTEE.CheckTCB(policy.SNPTCB{}), "tee SVN 0 is below the minimum 1")
	wantRule(t, "vmpl 0", r.CheckVMPL(0), "")
	wantRule(t, "vmpl 2", r.CheckVMPL(2), "")
	wantRule(t, "vmpl 1", r.CheckVMPL(1), "vmpl: the report is from VMPL 1, the policy allows [0 2]")
	none := &policy.SNPRule{}
	wantRule(t, "no min_tcb", none.CheckTCB(policy.SNPTCB{}), "")
	wantRule(t, "no vmpl", none.CheckVMPL(3), "")
}

func TestTDXRules(t *testing.T) {
	v := func(b byte) []byte { return bytes.Repeat([]byte{b}, 48) }
	rtmrs := [][]byte{v(0), v(1), v(2), v(3)}
	r := &policy.TDXRule{
		RTMRs:        map[uint8]policy.HexList{0: {v(0)}, 2: {v(9), v(2)}},
		TDAttributes: policy.HexBytes{0, 0, 0, 0x10, 0, 0, 0, 0},
		XFAM:         policy.HexBytes{0xe7, 2, 6, 0, 0, 0, 0, 0},
	}
	wantRule(t, "rtmrs", r.CheckRTMRs(rtmrs, 3), "")
	wantRule(t, "rtmr changed", r.CheckRTMRs([][]byte{v(0), v(1), v(7), v(3)}, 3), "rtmrs: RTMR 2 is 0707")
	wantRule(t, "rtmr missing", r.CheckRTMRs(rtmrs[:2], 3), "rtmrs: RTMR 2 is not in the report")
	boot := &policy.TDXRule{RTMRs: map[uint8]policy.HexList{3: {v(3)}}}
	wantRule(t, "boot rtmr pinned", boot.CheckRTMRs(rtmrs, 3), "rtmrs: RTMR 3 carries the boot binding")
	wantRule(t, "rtmr 3 without a log", boot.CheckRTMRs(rtmrs, -1), "")
	wantRule(t, "td_attributes", r.CheckTDAttributes([]byte{0, 0, 0, 0x10, 0, 0, 0, 0}), "")
	wantRule(t, "td_attributes debug", r.CheckTDAttributes([]byte{1, 0, 0, 0x10, 0, 0, 0, 0}), "td_attributes: the quote has 0100001000000000, the policy requires 0000001000000000")
	wantRule(t, "xfam", r.CheckXFAM([]byte{0xe7, 2, 6, 0, 0, 0, 0, 0}), "")
	wantRule(t, "xfam differs", r.CheckXFAM([]byte{0xe7, 0, 6, 0, 0, 0, 0, 0}), "xfam: the quote has e700060000000000")
	none := &policy.TDXRule{}
	wantRule(t, "no rules", firstErr(none.CheckRTMRs(nil, 3), none.CheckTDAttributes(nil), none.CheckXFAM(nil)), "")
}

func TestTPMRules(t *testing.T) {
	v := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	pcrs := map[uint32][]byte{0: v(0), 7: v(7), 15: v(15)}
	r := &policy.TPMRule{PCRs: map[uint8]policy.HexList{0: {v(0)}, 7: {v(1), v(7)}}}
	wantRule(t, "pcrs", r.CheckPCRs(pcrs, 15), "")
	wantRule(t, "pcr changed", r.CheckPCRs(map[uint32][]byte{0: v(0), 7: v(8)}, 15), "pcrs: PCR 7 is 0808")
	wantRule(t, "pcr not quoted", r.CheckPCRs(map[uint32][]byte{0: v(0)}, 15), "pcrs: PCR 7 is not in the report")
	boot := &policy.TPMRule{PCRs: map[uint8]policy.HexList{14: {v(0)}}}
	wantRule(t, "boot pcr pinned", boot.CheckPCRs(map[uint32][]byte{14: v(0)}, 14), "pcrs: PCR 14 carries the boot binding")
	wantRule(t, "no pcrs", (&policy.TPMRule{}).CheckPCRs(nil, 15), "")
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
