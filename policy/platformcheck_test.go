package policy_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	spb "github.com/google/go-sev-guest/proto/sevsnp"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/policy"
)

// platformEnv is a policy directory with a device anchor, for policies
// whose platform block a test writes.
type platformEnv struct {
	t   *testing.T
	dir string
}

func newPlatformEnv(t *testing.T) *platformEnv {
	dir := t.TempDir()
	writeSelfSigned(t, filepath.Join(dir, "dev.pem"))
	return &platformEnv{t: t, dir: dir}
}

func (e *platformEnv) file(name string, b []byte) string {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return name
}

// policy parses a policy whose platform block is platformYAML.
func (e *platformEnv) policy(platformYAML string) *policy.Policy {
	e.t.Helper()
	p, err := policy.Parse([]byte("devices:\n  - default: true\n    trust_anchors: [dev.pem]\nplatform:\n"+platformYAML), e.dir)
	if err != nil {
		e.t.Fatalf("policy: %v\n%s", err, platformYAML)
	}
	return p
}

// report is one encoded report of att for ud.
func report(t *testing.T, att platform.Attester, ud [64]byte) []byte {
	t.Helper()
	r, err := att.Report(context.Background(), ud)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checked runs CheckPlatform and checks what holds for every call: one
// line per check of the kind, all about the platform, every line with a
// reason, facts only when every signature check passed.
func checked(t *testing.T, p *policy.Policy, b []byte, ud [64]byte, lines int) (*policy.PlatformFacts, map[string]policy.Result) {
	t.Helper()
	facts, rs := p.CheckPlatform(b, ud)
	if len(rs) != lines {
		t.Fatalf("%d lines, want %d: %+v", len(rs), lines, rs)
	}
	out := map[string]policy.Result{}
	for _, r := range rs {
		if r.Device != policy.SubjectPlatform || r.Reason == "" {
			t.Errorf("line without subject or reason: %+v", r)
		}
		if _, dup := out[r.Check]; dup {
			t.Errorf("check %q twice", r.Check)
		}
		out[r.Check] = r
	}
	if facts != nil && (!out[policy.CheckPlatform].OK || !out[policy.CheckTestRoots].OK) {
		t.Errorf("facts although the report or its roots failed: %+v", rs)
	}
	return facts, out
}

func wantOK(t *testing.T, rs map[string]policy.Result, check, reason string) {
	t.Helper()
	if r := rs[check]; !r.OK || !strings.Contains(r.Reason, reason) {
		t.Errorf("%s: %+v, want it to pass saying %q", check, r, reason)
	}
}

func wantFail(t *testing.T, rs map[string]policy.Result, check, reason string) {
	t.Helper()
	if r := rs[check]; r.OK || !strings.Contains(r.Reason, reason) {
		t.Errorf("%s: %+v, want it to fail saying %q", check, r, reason)
	}
}

func allOK(t *testing.T, rs map[string]policy.Result) {
	t.Helper()
	for _, r := range rs {
		if !r.OK {
			t.Errorf("%s failed: %s", r.Check, r.Reason)
		}
	}
}

// TestCheckPlatformTDX: a fake TDX quote passes a policy with only mrtd
// (and its test root allowed); each secure default refuses the field the
// fake is made to show (finding 5 of issue 14).
func TestCheckPlatformTDX(t *testing.T) {
	const lines = 3 + 9
	e := newPlatformEnv(t)
	att, err := platform.NewFakeTDX(platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root := e.file("tdx-root.der", att.RootCertificate())
	zero48 := strings.Repeat("00", 48)
	base := "  kind: tdx\n  allow_test_roots: true\n  roots: {tdx_root: " + root + "}\n  tdx:\n    mrtd: [" + zero48 + "]\n"
	p := e.policy(base)
	ud := [64]byte{1, 2, 3}

	facts, rs := checked(t, p, report(t, att, ud), ud, lines)
	allOK(t, rs)
	wantOK(t, rs, policy.CheckTDXMRTD, "MRTD 0000000000000000… is allowed")
	wantOK(t, rs, policy.CheckTDXMRSignerSEAM, "signed by Intel")
	wantOK(t, rs, policy.CheckTestRoots, "WARNING: the report chains to a test root, devattest's fake TDX root")
	if facts == nil || facts.Kind != "tdx" || facts.BootRegister != 3 || len(facts.Registers) != 4 || !facts.TestRoots {
		t.Fatalf("facts %+v", facts)
	}

	edited := func(edit func(*tdxpb.TDQuoteBody)) []byte {
		att.EditQuotes(edit)
		defer att.EditQuotes(nil)
		return report(t, att, ud)
	}
	t.Run("debug TD with only mrtd", func(t *testing.T) {
		b := edited(func(b *tdxpb.TDQuoteBody) { b.TdAttributes[0] |= 1 })
		facts, rs := checked(t, p, b, ud, lines)
		wantFail(t, rs, policy.CheckTDXDebug, "a debug TD")
		if facts == nil {
			t.Error("no facts for a genuine report that fails a rule")
		}
		_, rs = checked(t, e.policy(base+"    allow_debug: true\n"), b, ud, lines)
		wantOK(t, rs, policy.CheckTDXDebug, "skipped: policy allows a debug TD")
	})
	t.Run("SEAM attributes", func(t *testing.T) {
		_, rs := checked(t, p, edited(func(b *tdxpb.TDQuoteBody) { b.SeamAttributes[7] = 0x80 }), ud, lines)
		wantFail(t, rs, policy.CheckTDXSEAMAttributes, "SEAM attributes 0000000000000080 are not zero")
	})
	t.Run("unknown MRSEAM", func(t *testing.T) {
		other := strings.Repeat("ab", 48)
		_, rs := checked(t, e.policy(base+"    mrseam: ["+other+"]\n"), report(t, att, ud), ud, lines)
		wantFail(t, rs, policy.CheckTDXMRSEAM, "is not in the policy's mrseam")
		_, rs = checked(t, p, edited(func(b *tdxpb.TDQuoteBody) { clear(b.MrSeam) }), ud, lines)
		wantFail(t, rs, policy.CheckTDXMRSEAM, "MRSEAM is all zero")
	})
	t.Run("unknown MRSIGNERSEAM", func(t *testing.T) {
		b := edited(func(b *tdxpb.TDQuoteBody) { b.MrSignerSeam[0] = 1 })
		_, rs := checked(t, p, b, ud, lines)
		wantFail(t, rs, policy.CheckTDXMRSignerSEAM, "not signed by Intel")
		_, rs = checked(t, e.policy(base+"    mrsigner_seam: ["+strings.Repeat("cd", 48)+"]\n"), b, ud, lines)
		wantFail(t, rs, policy.CheckTDXMRSignerSEAM, "is not in the policy's mrsigner_seam")
	})
	t.Run("TEE_TCB_SVN", func(t *testing.T) {
		_, rs := checked(t, p, edited(func(b *tdxpb.TDQuoteBody) { clear(b.TeeTcbSvn) }), ud, lines)
		wantFail(t, rs, policy.CheckTDXTCB, "TEE_TCB_SVN is all zero")
		_, rs = checked(t, e.policy(base+"    min_tee_tcb_svn: 0402"+strings.Repeat("00", 14)+"\n"), report(t, att, ud), ud, lines)
		wantFail(t, rs, policy.CheckTDXTCB, "SVN 0 is 3, below the minimum 4")
	})
	t.Run("reserved TD attribute and XFAM", func(t *testing.T) {
		_, rs := checked(t, p, edited(func(b *tdxpb.TDQuoteBody) { b.TdAttributes[1] = 1; b.Xfam[0] = 0 }), ud, lines)
		wantFail(t, rs, policy.CheckTDXAttribute, "reserves")
		wantFail(t, rs, policy.CheckTDXXFAM, "outside the architecture's fixed bits")
	})
	t.Run("test root not allowed", func(t *testing.T) {
		p := e.policy(strings.Replace(base, "  allow_test_roots: true\n", "", 1))
		facts, rs := checked(t, p, report(t, att, ud), ud, lines)
		wantFail(t, rs, policy.CheckTestRoots, "the report chains to a test root, devattest's fake TDX root")
		wantOK(t, rs, policy.CheckPlatform, "TDX quote signed by a PCK chain to the policy's tdx_root")
		if facts != nil {
			t.Error("facts for a report whose test root the policy does not allow")
		}
	})
	t.Run("other user data", func(t *testing.T) {
		facts, rs := checked(t, p, report(t, att, ud), [64]byte{9}, lines)
		wantFail(t, rs, policy.CheckPlatform, "REPORTDATA")
		wantFail(t, rs, policy.CheckTDXMRTD, "not checked")
		if facts != nil {
			t.Error("facts for a report of other user data")
		}
	})
}

// TestCheckPlatformSNP: a fake SEV-SNP report passes the policy policy
// init writes for it only with allow_test_roots, and then with a warning
// line (finding 9); VMPL 3 without a vmpl rule and MIGRATE_MA are refused
// (finding 6).
func TestCheckPlatformSNP(t *testing.T) {
	const lines = 3 + 6
	e := newPlatformEnv(t)
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	roots := att.Roots()
	roots4 := "  roots: {snp_ark: " + e.file("ark.der", roots.ARK) + ", snp_ask: " + e.file("ask.der", roots.ASK) + "}\n"
	// The fake's guest policy allows debugging and its TCB is zero.
	rules := "  snp:\n    measurement: [" + strings.Repeat("00", 48) + "]\n    policy_debug_allowed: true\n" +
		"    min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}\n"
	strict := e.policy("  kind: snp\n" + roots4 + rules)
	p := e.policy("  kind: snp\n  allow_test_roots: true\n" + roots4 + rules)
	ud := [64]byte{4, 5, 6}
	b := report(t, att, ud)

	t.Run("test roots", func(t *testing.T) {
		facts, rs := checked(t, strict, b, ud, lines)
		wantFail(t, rs, policy.CheckTestRoots, "the report chains to a test root, go-sev-guest's fake ARK")
		wantFail(t, rs, policy.CheckTestRoots, "allow_test_roots: true")
		if facts != nil {
			t.Error("facts without allow_test_roots")
		}
		facts, rs = checked(t, p, b, ud, lines)
		allOK(t, rs)
		wantOK(t, rs, policy.CheckTestRoots, "WARNING: the report chains to a test root, go-sev-guest's fake ARK")
		wantOK(t, rs, policy.CheckSNPVMPL, "VMPL 0")
		wantOK(t, rs, policy.CheckSNPDebug, "skipped: policy allows")
		if facts == nil || !facts.TestRoots || facts.BootRegister != -1 || facts.Registers != nil || facts.Kind != "snp" {
			t.Fatalf("facts %+v", facts)
		}
	})
	edited := func(edit func(*spb.Report)) []byte {
		att.EditReports(edit)
		defer att.EditReports(nil)
		return report(t, att, ud)
	}
	t.Run("VMPL 3 without a vmpl rule", func(t *testing.T) {
		_, rs := checked(t, p, edited(func(r *spb.Report) { r.Vmpl = 3 }), ud, lines)
		wantFail(t, rs, policy.CheckSNPVMPL, "the report is from VMPL 3, the policy allows [0]")
	})
	t.Run("MIGRATE_MA", func(t *testing.T) {
		mb := edited(func(r *spb.Report) { r.Policy |= 1 << 18 })
		_, rs := checked(t, p, mb, ud, lines)
		wantFail(t, rs, policy.CheckSNPMigrateMA, "migration agent")
		_, rs = checked(t, e.policy("  kind: snp\n  allow_test_roots: true\n"+roots4+rules+"    allow_migrate_ma: true\n"), mb, ud, lines)
		wantOK(t, rs, policy.CheckSNPMigrateMA, "skipped: policy allows a migration agent")
	})
	t.Run("debug", func(t *testing.T) {
		_, rs := checked(t, e.policy("  kind: snp\n  allow_test_roots: true\n"+roots4+strings.Replace(rules, "true", "false", 1)), b, ud, lines)
		wantFail(t, rs, policy.CheckSNPDebug, "the guest policy allows debugging")
	})
	t.Run("TCB", func(t *testing.T) {
		noMin := e.policy("  kind: snp\n  allow_test_roots: true\n" + roots4 + strings.Replace(rules, "    min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}\n", "", 1))
		_, rs := checked(t, noMin, b, ud, lines)
		wantFail(t, rs, policy.CheckSNPTCB, "the reported TCB is all zero")
		// A report whose reported TCB meets the minimum but whose
		// current TCB does not.
		tb := edited(func(r *spb.Report) { r.ReportedTcb = 0x0800000000000003 })
		_, rs = checked(t, e.policy("  kind: snp\n  allow_test_roots: true\n"+roots4+strings.Replace(rules, "bootloader: 0", "bootloader: 3", 1)), tb, ud, lines)
		wantFail(t, rs, policy.CheckSNPTCB, "current TCB: bootloader SVN 0 is below the minimum 3")
	})
	t.Run("report version", func(t *testing.T) {
		_, rs := checked(t, e.policy("  kind: snp\n  allow_test_roots: true\n"+roots4+rules+"    min_report_version: 5\n"), b, ud, lines)
		wantFail(t, rs, policy.CheckSNPReportVersion, "report version 3 is below the minimum 5")
	})
	t.Run("garbage keeps the count", func(t *testing.T) {
		facts, rs := checked(t, p, []byte("not a report"), ud, lines)
		wantFail(t, rs, policy.CheckPlatform, "malformed")
		wantFail(t, rs, policy.CheckSNPVMPL, "not checked")
		if facts != nil {
			t.Error("facts for garbage")
		}
	})
	t.Run("AMD roots", func(t *testing.T) {
		p := e.policy("  kind: snp\n" + rules)
		_, rs := checked(t, p, b, ud, lines)
		wantFail(t, rs, policy.CheckPlatform, "SEV-SNP")
		wantOK(t, rs, policy.CheckTestRoots, "no test root")
	})
}

// TestCheckPlatformTPM: a simulator quote passes with its key listed; the
// boot PCR must be quoted; facts carry the PCRs. The TPM simulator is one
// per process: not parallel.
func TestCheckPlatformTPM(t *testing.T) {
	const lines = 3 + 3
	e := newPlatformEnv(t)
	att, err := platform.NewFakeTPM(platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	ud := [64]byte{7}
	r, err := att.Report(context.Background(), ud)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ak := "  kind: tpm\n  tpm:\n    ak_public: [" + hexOf(r.AKPublic) + "]\n"
	facts, rs := checked(t, e.policy(ak), b, ud, lines)
	allOK(t, rs)
	wantOK(t, rs, policy.CheckTPMQuotedPCRs, "includes the required [15]")
	wantOK(t, rs, policy.CheckTPMPCRs, "skipped: policy allows any PCR values")
	wantOK(t, rs, policy.CheckTestRoots, "no test root")
	if facts == nil || facts.BootRegister != 15 || len(facts.Registers[15]) != 32 || facts.TestRoots {
		t.Fatalf("facts %+v", facts)
	}
	_, rs = checked(t, e.policy(ak+"    quoted_pcrs: [0, 16]\n"), b, ud, lines)
	wantFail(t, rs, policy.CheckTPMQuotedPCRs, "the quote does not cover PCR [16]")
	_, rs = checked(t, e.policy("  kind: tpm\n  tpm:\n    ak_public: [00]\n"), b, ud, lines)
	wantFail(t, rs, policy.CheckTPMAK, "is not in the policy's ak_public")
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// FuzzCheckPlatform: no input panics CheckPlatform, the number of lines
// depends only on the policy's kind, and facts come only with a verified
// report. Seeds: a fake SEV-SNP report, a fake TDX quote and a TPM
// simulator quote, all for the same user data.
func FuzzCheckPlatform(f *testing.F) {
	dir := f.TempDir()
	writeSelfSigned(f, filepath.Join(dir, "dev.pem"))
	ud := [64]byte{0xf0}
	snp, err := platform.NewFakeSNP()
	if err != nil {
		f.Fatal(err)
	}
	tdx, err := platform.NewFakeTDX(platform.Options{})
	if err != nil {
		f.Fatal(err)
	}
	var policies []*policy.Policy
	parse := func(platformYAML string) {
		p, err := policy.Parse([]byte("devices:\n  - default: true\n    trust_anchors: [dev.pem]\nplatform:\n"+platformYAML), dir)
		if err != nil {
			f.Fatal(err)
		}
		policies = append(policies, p)
	}
	write := func(name string, b []byte) string {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			f.Fatal(err)
		}
		return name
	}
	zero48 := strings.Repeat("00", 48)
	roots := snp.Roots()
	parse("  kind: snp\n  allow_test_roots: true\n  roots: {snp_ark: " + write("ark.der", roots.ARK) + ", snp_ask: " + write("ask.der", roots.ASK) +
		"}\n  snp:\n    measurement: [" + zero48 + "]\n    policy_debug_allowed: true\n")
	parse("  kind: tdx\n  allow_test_roots: true\n  roots: {tdx_root: " + write("tdx.der", tdx.RootCertificate()) + "}\n  tdx:\n    mrtd: [" + zero48 + "]\n")
	for _, a := range []platform.Attester{snp, tdx} {
		r, err := a.Report(context.Background(), ud)
		if err != nil {
			f.Fatal(err)
		}
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if tpm, err := platform.NewFakeTPM(platform.Options{}); err == nil {
		r, err := tpm.Report(context.Background(), ud)
		tpm.Close()
		if err != nil {
			f.Fatal(err)
		}
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		parse("  kind: tpm\n  tpm:\n    ak_public: [" + hexOf(r.AKPublic) + "]\n")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range policies {
			facts, rs := p.CheckPlatform(b, ud)
			want := map[string]int{"snp": 9, "tdx": 12, "tpm": 6}[p.Platform.Kind]
			if len(rs) != want {
				t.Fatalf("%s: %d lines, want %d", p.Platform.Kind, len(rs), want)
			}
			if facts != nil && (!rs[0].OK || facts.Kind != p.Platform.Kind) {
				t.Fatalf("facts %+v with %+v", facts, rs[0])
			}
		}
	})
}
