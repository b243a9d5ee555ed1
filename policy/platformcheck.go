package policy

import (
	"errors"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/policy/platform"
)

// PlatformFacts is what a verified platform report vouches for.
type PlatformFacts struct {
	// Kind is "snp", "tdx" or "tpm".
	Kind string
	// Registers are the signed runtime register values by index: TDX
	// RTMR 0..3, the TPM quote's SHA-256 PCRs; nil for SEV-SNP.
	Registers map[uint32][]byte
	// BootRegister is the register carrying devattest's boot binding
	// (TDX RTMR DefaultTDXRTMR, TPM PCR DefaultTPMPCR); -1 for SEV-SNP.
	BootRegister int
	// EventLog is the event log carried with the platform report. It is
	// NOT signed: trust it only after replaying it against Registers
	// (platform.ReplayEventLog).
	EventLog []platform.Event
	// TestRoots: the report chains to a known test root of the fake
	// platforms, which the policy allows (allow_test_roots).
	TestRoots bool
}

// CheckPlatform verifies the encoded platform report (the bytes of
// platform.Report.MarshalBinary) for wantUserData against p's platform
// rule and anchors, and returns one Result per check, Device
// SubjectPlatform, in this order: CheckPlatform (decoding, the kind, the
// signature and certificate chain up to the policy's roots or the
// vendor's, and the user data), CheckTestRoots, CheckEventLog (every
// register the carried log names replays to its signed value), then the
// rule lines of the policy's kind (platformChecks). Their number depends
// only on the policy's kind: a check the policy switches off still
// returns its line, OK with a reason "skipped: policy allows …"; when
// the report does not verify, the rule lines fail with "not checked".
//
// Secure defaults, where the policy says nothing:
//   - test roots: a report chaining to a fake platform's root
//     (platform.TestRoot) fails unless allow_test_roots: true, and then
//     passes with a reason starting "WARNING:".
//   - SEV-SNP: debugging and MIGRATE_MA refused, VMPL 0 only, an all-zero
//     reported or current TCB refused, report version at least
//     DefaultSNPMinReportVersion.
//   - TDX: a debug TD refused, SEAM attributes zero, MRSIGNERSEAM zero
//     (Intel), MRSEAM and TEE_TCB_SVN not all zero, no reserved TD
//     attribute and XFAM within the architecture's fixed bits.
//   - vTPM: the quote covers the boot-binding PCR.
//
// facts is nil when the report's signature, chain or user data did not
// verify, or when it chains to a test root the policy does not allow:
// non-nil facts rest on signed bytes the policy's anchors vouch for.
func (p *Policy) CheckPlatform(report []byte, wantUserData [64]byte) (facts *PlatformFacts, results []Result) {
	rule := &p.Platform
	add := func(check string, l line) bool {
		r := Result{Device: SubjectPlatform, Check: check, OK: l.err == nil, Reason: l.what}
		if l.err != nil {
			r.Reason = l.err.Error()
		}
		results = append(results, r)
		return l.err == nil
	}
	notChecked := func(why string) {
		for _, c := range append([]string{CheckEventLog}, platformChecks[rule.Kind]...) {
			add(c, line{err: errors.New("not checked: " + why)})
		}
	}

	var pr platform.Report
	err := pr.UnmarshalBinary(report)
	if err == nil && string(pr.Kind) != rule.Kind {
		err = fmt.Errorf("the signed report is from platform %q, the policy requires %q", pr.Kind, rule.Kind)
	}
	var signed signedReport
	if err == nil {
		signed, err = verifySigned(&pr, rule.anchors, wantUserData)
	}
	add(CheckPlatform, line{signed.what, err})
	testOK := add(CheckTestRoots, ln(rule.checkTestRoots()))
	if err != nil {
		notChecked("the platform report did not verify")
		return nil, results
	}
	add(CheckEventLog, ln(checkEventLog(&pr, signed)))
	switch pr.Kind {
	case platform.KindSNP:
		rule.SNP.check(signed.snp, add)
	case platform.KindTDX:
		rule.TDX.check(signed.tdx, signed.registers, add)
	case platform.KindTPM:
		rule.TPM.check(&pr, signed.registers, add)
	}
	if !testOK {
		return nil, results
	}
	return &PlatformFacts{
		Kind:         rule.Kind,
		Registers:    signed.registers,
		BootRegister: signed.boot,
		EventLog:     pr.EventLog,
		TestRoots:    rule.testRoot != "",
	}, results
}

// signedReport is what verifySigned read from a verified report.
type signedReport struct {
	what      string // the passing reason of CheckPlatform
	snp       *spb.Report
	tdx       *tdxpb.TDQuoteBody
	registers map[uint32][]byte
	boot      int
}

// verifySigned checks pr's signature, chain and user data with the
// platform package and parses what the rules read.
func verifySigned(pr *platform.Report, anchors platform.TrustAnchors, ud [64]byte) (signedReport, error) {
	switch pr.Kind {
	case platform.KindSNP:
		if err := platform.VerifySNP(pr.Raw, pr.Certs, anchors.SNP, ud); err != nil {
			return signedReport{}, err
		}
		r, err := abi.ReportToProto(pr.Raw)
		if err != nil {
			return signedReport{}, err
		}
		return signedReport{what: fmt.Sprintf("SEV-SNP report signed by a VCEK of %s; REPORT_DATA matches", snpAnchorName(anchors)),
			snp: r, boot: -1}, nil
	case platform.KindTDX:
		q, err := platform.VerifyTDX(pr.Raw, anchors.TDX, ud)
		if err != nil {
			return signedReport{}, err
		}
		root := "Intel's SGX root CA"
		if anchors.TDX != nil {
			root = "the policy's tdx_root"
		}
		return signedReport{what: "TDX quote signed by a PCK chain to " + root + "; REPORTDATA matches",
			tdx: q.GetTdQuoteBody(), registers: platform.TDXRegisters(q.GetTdQuoteBody()), boot: DefaultTDXRTMR}, nil
	case platform.KindTPM:
		if err := platform.VerifyTPM(pr.Raw, pr.Signature, pr.AKPublic, pr.PCRs, ud); err != nil {
			return signedReport{}, err
		}
		return signedReport{what: "TPM quote signed by its attestation key (judged below); qualifying data matches",
			registers: platform.TPMRegisters(pr.PCRs), boot: DefaultTPMPCR}, nil
	}
	return signedReport{}, fmt.Errorf("unknown platform kind %q", pr.Kind)
}

func snpAnchorName(a platform.TrustAnchors) string {
	if a.SNP == nil {
		return "AMD's production roots"
	}
	return "the policy's snp_ark and snp_ask"
}

// checkTestRoots judges the policy's roots of its kind.
func (r *PlatformRule) checkTestRoots() (string, error) {
	switch {
	case r.testRoot == "":
		if r.Kind == KindTPM {
			return "no test root: a vTPM quote has no root (its key is judged by the attestation key check; a fake vTPM's key is not recognised as a test key)", nil
		}
		return "no test root among the anchors", nil
	case r.AllowTestRoots:
		return fmt.Sprintf("WARNING: the report chains to a test root, %s, accepted because the policy says allow_test_roots: true; such reports prove nothing about real hardware: never use this policy in production", r.testRoot), nil
	default:
		return "", fmt.Errorf("the report chains to a test root, %s, which proves nothing about real hardware; refused unless the policy says allow_test_roots: true", r.testRoot)
	}
}

// checkEventLog replays the carried log against the signed registers;
// every event must extend the boot register.
func checkEventLog(pr *platform.Report, s signedReport) (string, error) {
	if err := platform.CheckEventLog(pr.Kind, pr.EventLog, s.registers); err != nil {
		return "", err
	}
	if s.boot < 0 {
		return "no event log (SEV-SNP has no runtime register)", nil
	}
	for i, e := range pr.EventLog {
		if int(e.Register) != s.boot {
			return "", fmt.Errorf("event %d extends register %d; devattest extends only register %d", i, e.Register, s.boot)
		}
	}
	if len(pr.EventLog) == 0 {
		return fmt.Sprintf("no events (register %d is judged by the boot binding)", s.boot), nil
	}
	return fmt.Sprintf("%d events replay to the signed register %d", len(pr.EventLog), s.boot), nil
}

// line is one check's outcome: what matched, or why it failed.
type line struct {
	what string
	err  error
}

func ln(what string, err error) line { return line{what, err} }

type addFunc func(check string, l line) bool

func (s *SNPRule) check(r *spb.Report, add addFunc) {
	add(CheckSNPMeasurement, ln(func() (string, error) {
		if s == nil {
			return "", errors.New("the policy has no snp rule")
		}
		return checkAllowed("launch measurement", "measurement", r.GetMeasurement(), s.Measurement)
	}()))
	pol, perr := abi.ParseSnpPolicy(r.GetPolicy())
	add(CheckSNPDebug, ln(func() (string, error) {
		switch {
		case perr != nil:
			return "", fmt.Errorf("guest policy 0x%x: %w", r.GetPolicy(), perr)
		case !pol.Debug:
			return "the guest policy forbids debugging", nil
		case s != nil && s.PolicyDebugAllowed:
			return skipped("debugging (policy_debug_allowed: true), which this guest policy allows: the host can read and change guest memory"), nil
		}
		return "", errors.New("the guest policy allows debugging (the host can read and change guest memory); refused unless the policy says policy_debug_allowed: true")
	}()))
	add(CheckSNPMigrateMA, ln(func() (string, error) {
		switch {
		case perr != nil:
			return "", fmt.Errorf("guest policy 0x%x: %w", r.GetPolicy(), perr)
		case !pol.MigrateMA:
			return "the guest policy forbids a migration agent (MIGRATE_MA clear)", nil
		case s != nil && s.AllowMigrateMA:
			return skipped("a migration agent (allow_migrate_ma: true), which this guest policy allows: it can export the guest's memory"), nil
		}
		return "", errors.New("the guest policy allows a migration agent (MIGRATE_MA), which can export the guest's memory; refused unless the policy says allow_migrate_ma: true")
	}()))
	add(CheckSNPVMPL, ln(s.CheckVMPL(r.GetVmpl())))
	add(CheckSNPTCB, ln(func() (string, error) {
		rep, err := s.CheckTCB("reported TCB", SNPTCBOf(r.GetReportedTcb()))
		if err != nil {
			return "", err
		}
		cur, err := s.CheckTCB("current TCB", SNPTCBOf(r.GetCurrentTcb()))
		if err != nil {
			return "", err
		}
		return rep + "; " + cur, nil
	}()))
	add(CheckSNPReportVersion, ln(s.CheckReportVersion(r.GetVersion())))
}

func (t *TDXRule) check(body *tdxpb.TDQuoteBody, regs map[uint32][]byte, add addFunc) {
	add(CheckTDXMRTD, ln(func() (string, error) {
		if t == nil {
			return "", errors.New("the policy has no tdx rule")
		}
		return checkAllowed("MRTD", "mrtd", body.GetMrTd(), t.MRTD)
	}()))
	add(CheckTDXDebug, ln(t.CheckDebug(body.GetTdAttributes())))
	add(CheckTDXSEAMAttributes, ln(CheckSEAMAttributes(body.GetSeamAttributes())))
	add(CheckTDXMRSEAM, ln(t.CheckMRSEAM(body.GetMrSeam())))
	add(CheckTDXMRSignerSEAM, ln(t.CheckMRSignerSEAM(body.GetMrSignerSeam())))
	add(CheckTDXTCB, ln(t.CheckTEETCBSVN(body.GetTeeTcbSvn())))
	add(CheckTDXAttribute, ln(t.CheckTDAttributes(body.GetTdAttributes())))
	add(CheckTDXXFAM, ln(t.CheckXFAM(body.GetXfam())))
	add(CheckTDXRTMRs, ln(t.CheckRTMRs(regs, DefaultTDXRTMR)))
}

func (t *TPMRule) check(pr *platform.Report, regs map[uint32][]byte, add addFunc) {
	add(CheckTPMAK, ln(func() (string, error) {
		if t == nil {
			return "", errors.New("the policy has no tpm rule")
		}
		return checkAllowed("attestation key", "ak_public", pr.AKPublic, t.AKPublic)
	}()))
	add(CheckTPMQuotedPCRs, ln(t.CheckQuotedPCRs(regs, DefaultTPMPCR)))
	add(CheckTPMPCRs, ln(t.CheckPCRs(regs, DefaultTPMPCR)))
}
