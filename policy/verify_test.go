package policy_test

import (
	"strings"
	"testing"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/policy"
)

func wantVerdict(t *testing.T, v policy.Verdict, fails ...string) {
	t.Helper()
	f := failed(v.Results)
	for _, c := range fails {
		if f[c] == "" {
			t.Errorf("check %q not refused with a reason; results %+v", c, v.Results)
		}
		delete(f, c)
	}
	for c, r := range f {
		if !strings.HasPrefix(r, "not checked") {
			t.Errorf("check %q also failed: %s", c, r)
		}
	}
	if v.OK != (len(fails) == 0) {
		t.Errorf("verdict OK = %t with %d expected failures", v.OK, len(fails))
	}
}

// verifyCase builds a report with a fake platform and the device that
// attestDevice attested, and says which checks must fail.
type verifyCase struct {
	name  string
	kind  string
	extra string // appended to the policy's platform block
	// build returns the report bytes and the nonce to verify with; nil
	// builds an honest report.
	build func(t *testing.T, pl *plat, a attested) ([]byte, []byte)
	fails []string
}

func honest(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
	body := newBody(pl.kind, a.nonce, a.dev)
	pl.bind(t, body)
	return pl.seal(t, body, nil), a.nonce
}

// laterReport is the daemon's report after boot: the register holds the
// boot body's devices, the report carries them in its boot section.
func laterReport(t *testing.T, pl *plat, a attested, change func(*evidence.Body)) ([]byte, []byte) {
	boot := newBody(pl.kind, a.nonce, a.dev)
	pl.bind(t, boot)
	devBytes, err := evidence.DeviceBytes(boot.Devices)
	if err != nil {
		t.Fatal(err)
	}
	later := newBody(pl.kind, a.nonce, a.dev)
	later.BootBinding = evidence.BootBindingExtended
	later.Boot = &evidence.Boot{PolicyDigest: boot.PolicyDigest}
	for _, b := range devBytes {
		later.Boot.Devices = append(later.Boot.Devices, b)
	}
	if change != nil {
		change(later)
	}
	return pl.seal(t, later, nil), a.nonce
}

func stripLog(pr *platform.Report) { pr.EventLog = nil }

func verifyCases() []verifyCase {
	cases := []verifyCase{
		{name: "snp passes", kind: "snp"},
		{name: "tdx passes", kind: "tdx"},
		{name: "tpm passes", kind: "tpm"},
		{name: "no nonce", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			b, _ := honest(t, pl, a)
			return b, nil
		}, fails: []string{policy.CheckOwnerNonce}},
		{name: "wrong nonce", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			b, _ := honest(t, pl, a)
			return b, []byte("stale")
		}, fails: []string{policy.CheckOwnerNonce}},
		{name: "body nonce replaced and signed anew", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			body := newBody(pl.kind, []byte("stale"), a.dev)
			pl.bind(t, body)
			return pl.seal(t, body, nil), []byte("stale")
		}, fails: []string{policy.CheckNonce}},
		{name: "other platform kind", kind: "tdx", extra: "", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			body := newBody("snp", a.nonce, a.dev)
			return pl.seal(t, body, nil), a.nonce
		}, fails: []string{policy.CheckKind, policy.CheckPlatform, policy.CheckBootBinding}},
		// Finding 1: SEV-SNP's policy digest was outside what REPORT_DATA
		// covered; now an edit anywhere in the body breaks the signature.
		{name: "snp policy digest edited after signing", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			b, n := honest(t, pl, a)
			return replaceInBody(t, b, hexStr("guest policy digest"), hexStr("enforced policy dig")), n
		}, fails: []string{policy.CheckPlatform, policy.CheckBootBinding}},
		{name: "snp created edited after signing", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			b, n := honest(t, pl, a)
			return replaceInBody(t, b, `"created":"2`, `"created":"1`), n
		}, fails: []string{policy.CheckPlatform, policy.CheckBootBinding}},
		{name: "guest policy digest differs", kind: "snp", extra: "guest_policy_digest: abcd\n", fails: []string{policy.CheckGuestPolicy}},
		{name: "guest policy digest matches", kind: "snp", extra: "guest_policy_digest: " + hexStr("guest policy digest") + "\n"},
		{name: "snp claims a register", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			body := newBody(pl.kind, a.nonce, a.dev)
			body.BootBinding = evidence.BootBindingExtended
			return pl.seal(t, body, nil), a.nonce
		}, fails: []string{policy.CheckBootBinding}},
		{name: "snp with a boot section", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			return laterReport(t, pl, a, func(b *evidence.Body) { b.BootBinding = evidence.BootBindingNoRegister })
		}, fails: []string{policy.CheckBootBinding}},
		{name: "no register refused for snp by the policy", kind: "snp", extra: "  allow_no_runtime_register: false\n", fails: []string{policy.CheckBootBinding}},
		{name: "device missing", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			body := newBody(pl.kind, a.nonce)
			pl.bind(t, body)
			return pl.seal(t, body, nil), a.nonce
		}, fails: []string{policy.CheckDevicePresent}},
		// Finding 4: the JSON parser differential.
		{name: "upper-case key beside the real one", kind: "snp", build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			b, n := honest(t, pl, a)
			return replaceInBody(t, b, `{"nonce":`, `{"NONCE":"00","nonce":`), n
		}, fails: []string{policy.CheckFormat}},
	}
	for _, kind := range []string{"tdx", "tpm"} {
		cases = append(cases,
			// Finding 2: the boot binding cannot be stripped or invented.
			verifyCase{name: kind + " event log stripped", kind: kind, build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
				body := newBody(pl.kind, a.nonce, a.dev)
				pl.bind(t, body)
				return pl.seal(t, body, stripLog), a.nonce
			}, fails: []string{policy.CheckBootBinding}},
			verifyCase{name: kind + " later body claims no register", kind: kind, extra: "  allow_no_runtime_register: true\n",
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					pl.bind(t, newBody(pl.kind, a.nonce, a.dev))
					forged := newBody(pl.kind, a.nonce, a.dev)
					forged.PolicyDigest = []byte("a policy nobody enforced")
					return pl.seal(t, forged, stripLog), a.nonce
				}, fails: []string{policy.CheckBootBinding}},
			verifyCase{name: kind + " later body claims no register, log kept", kind: kind, extra: "  allow_no_runtime_register: true\n",
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					pl.bind(t, newBody(pl.kind, a.nonce, a.dev))
					return pl.seal(t, newBody(pl.kind, a.nonce, a.dev), nil), a.nonce
				}, fails: []string{policy.CheckBootBinding}},
			verifyCase{name: kind + " nothing extended, allowed by the policy", kind: kind, extra: "  allow_no_runtime_register: true\n",
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					return pl.seal(t, newBody(pl.kind, a.nonce, a.dev), nil), a.nonce
				}},
			verifyCase{name: kind + " nothing extended, policy default", kind: kind,
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					return pl.seal(t, newBody(pl.kind, a.nonce, a.dev), nil), a.nonce
				}, fails: []string{policy.CheckBootBinding}},
			verifyCase{name: kind + " later report with its boot section", kind: kind,
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) { return laterReport(t, pl, a, nil) }},
			verifyCase{name: kind + " invented boot section", kind: kind,
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					return laterReport(t, pl, a, func(b *evidence.Body) {
						d := a.dev
						d.Label = "invented"
						db, _ := evidence.DeviceBytes([]evidence.Device{d})
						b.Boot.Devices[0] = db[0]
					})
				}, fails: []string{policy.CheckBootBinding}},
			verifyCase{name: kind + " boot section of another guest policy", kind: kind,
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					return laterReport(t, pl, a, func(b *evidence.Body) { b.Boot.PolicyDigest = []byte("another") })
				}, fails: []string{policy.CheckBootBinding}},
			verifyCase{name: kind + " policy digest differs from boot", kind: kind,
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					return laterReport(t, pl, a, func(b *evidence.Body) { b.PolicyDigest = []byte("another") })
				}, fails: []string{policy.CheckBootBinding}},
			verifyCase{name: kind + " boot binding failed", kind: kind,
				build: func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
					body := newBody(pl.kind, a.nonce, a.dev)
					pl.bind(t, body)
					body.BootBinding, body.BootError = evidence.BootBindingFailed, "extend failed"
					return pl.seal(t, body, nil), a.nonce
				}, fails: []string{policy.CheckBootBinding}},
		)
	}
	return cases
}

// TestVerify runs every case through the library entry point, bytes to
// verdict, with real platform signatures. TPM cases share the process's
// one simulator, so the cases run one at a time.
func TestVerify(t *testing.T) {
	for _, tc := range verifyCases() {
		t.Run(tc.name, func(t *testing.T) {
			a := attestDevice(t)
			pl := openPlatform(t, tc.kind, a.dir)
			build := tc.build
			if build == nil {
				build = honest
			}
			report, nonce := build(t, pl, a)
			yml := pl.yaml + tc.extra
			if strings.HasPrefix(tc.extra, "guest_policy_digest") {
				yml = tc.extra + pl.yaml
			}
			p := platformPolicy(t, a, yml)
			v := policy.VerifyReport(report, p, nonce)
			wantVerdict(t, v, tc.fails...)
		})
	}
}

func platformPolicy(t *testing.T, a attested, platformYAML string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte("devices:\n"+fullRule(a)+platformYAML), a.dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, platformYAML)
	}
	return p
}

// TestVerifyCountNeverShrinks: a check the policy switches off still
// prints its line (finding 6: reference_measurements: [] removed a line).
func TestVerifyCountNeverShrinks(t *testing.T) {
	a := attestDevice(t)
	pl := openPlatform(t, "snp", a.dir)
	report, nonce := honest(t, pl, a)
	full := policy.VerifyReport(report, platformPolicy(t, a, pl.yaml), nonce)
	rule := fullRule(a)
	rule = rule[:strings.Index(rule, "    reference_measurements:")] + "    reference_measurements: []\n"
	p, err := policy.Parse([]byte("devices:\n"+rule+pl.yaml), a.dir)
	if err != nil {
		t.Fatal(err)
	}
	bare := policy.VerifyReport(report, p, nonce)
	if len(bare.Results) != len(full.Results) {
		t.Fatalf("%d results with a bare rule, %d with the full one", len(bare.Results), len(full.Results))
	}
	for _, r := range bare.Results {
		if (r.Check == policy.CheckReference || r.Check == policy.CheckSession || r.Check == policy.CheckIDE) && !strings.HasPrefix(r.Reason, "skipped") {
			t.Errorf("%s: %q, want a skipped line", r.Check, r.Reason)
		}
	}
	if !full.OK || !bare.OK {
		t.Fatalf("verdicts %t %t", full.OK, bare.OK)
	}
}
