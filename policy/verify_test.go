package policy_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
)

// okPlatform is a platform verifier that accepts and records what it saw.
func okPlatform(saw *[64]byte) policy.PlatformVerifier {
	return func(rep *evidence.Report, ud [64]byte) []policy.Result {
		*saw = ud
		return []policy.Result{{Device: policy.SubjectPlatform, Check: policy.CheckPlatform, OK: true}}
	}
}

func testReport(t *testing.T, a attested, kind string) *evidence.Report {
	t.Helper()
	rep, err := evidence.NewReport(a.nonce, []evidence.Device{a.dev})
	if err != nil {
		t.Fatal(err)
	}
	rep.PolicyDigest = []byte("guest policy digest")
	rep.Created = time.Now()
	rep.Platform = evidence.Platform{Kind: kind, BootBinding: evidence.BootBindingNoRegister}
	if kind != policy.KindSNP {
		rep.Platform.BootBinding = evidence.BootBindingExtended
		for _, d := range policy.BootLog(rep) {
			rep.Platform.EventLog = append(rep.Platform.EventLog, evidence.Event{Register: 3, Digest: d})
		}
	}
	return rep
}

// withBoot turns rep into a report taken after boot: its boot section is
// its own evidence with change applied to each device, and the event log
// is that boot section's.
func withBoot(t *testing.T, rep *evidence.Report, change func(*evidence.Device)) {
	t.Helper()
	rep.Boot = &evidence.Boot{PolicyDigest: bytes.Clone(rep.PolicyDigest)}
	for _, d := range rep.Devices {
		change(&d)
		b, err := evidence.DeviceEvidenceBytes(d)
		if err != nil {
			t.Fatal(err)
		}
		rep.Boot.Evidence = append(rep.Boot.Evidence, b)
	}
	relog(rep)
}

// relog rewrites rep's event log from policy.BootLog.
func relog(rep *evidence.Report) {
	rep.Platform.EventLog = nil
	for _, d := range policy.BootLog(rep) {
		rep.Platform.EventLog = append(rep.Platform.EventLog, evidence.Event{Register: 3, Digest: d})
	}
}

func platformPolicy(t *testing.T, a attested, platformYAML string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte("devices:\n"+fullRule(a)+platformYAML), a.dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	snpYAML = "platform:\n  kind: snp\n  snp:\n    measurement: [" + "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" + "]\n"
	tdxYAML = "platform:\n  kind: tdx\n  tdx:\n    mrtd: [" + "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" + "]\n"
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

func TestVerify(t *testing.T) {
	tests := []struct {
		name     string
		platform string
		kind     string
		mut      func(*evidence.Report, *[]byte)
		pv       func(*[64]byte) policy.PlatformVerifier
		fails    []string
	}{
		{name: "snp passes", platform: snpYAML, kind: "snp"},
		{name: "tdx passes", platform: tdxYAML, kind: "tdx"},
		{name: "no nonce", platform: snpYAML, kind: "snp", mut: func(_ *evidence.Report, n *[]byte) { *n = nil },
			fails: []string{policy.CheckOwnerNonce}},
		{name: "wrong nonce", platform: snpYAML, kind: "snp", mut: func(_ *evidence.Report, n *[]byte) { *n = []byte("stale") },
			fails: []string{policy.CheckOwnerNonce}},
		{name: "report nonce replaced", platform: snpYAML, kind: "snp", mut: func(r *evidence.Report, n *[]byte) {
			r.Nonce = []byte("stale")
			*n = r.Nonce
		}, fails: []string{policy.CheckNonce}},
		{name: "other platform kind", platform: snpYAML, kind: "tdx", fails: []string{policy.CheckKind, policy.CheckPlatform}},
		{name: "no platform verifier", platform: snpYAML, kind: "snp",
			pv: func(*[64]byte) policy.PlatformVerifier { return nil }, fails: []string{policy.CheckPlatform}},
		{name: "platform refused", platform: snpYAML, kind: "snp",
			pv: func(*[64]byte) policy.PlatformVerifier {
				return func(*evidence.Report, [64]byte) []policy.Result {
					return []policy.Result{{Device: policy.SubjectPlatform, Check: policy.CheckPlatform, Reason: "bad signature"}}
				}
			}, fails: []string{policy.CheckPlatform}},
		{name: "no register not allowed for tdx", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			r.Platform.BootBinding, r.Platform.EventLog = evidence.BootBindingNoRegister, nil
		}, fails: []string{policy.CheckBootBinding}},
		{name: "no register allowed by the policy", platform: tdxYAML + "  allow_no_runtime_register: true\n", kind: "tdx",
			mut: func(r *evidence.Report, _ *[]byte) {
				r.Platform.BootBinding, r.Platform.EventLog = evidence.BootBindingNoRegister, nil
			}},
		{name: "no register refused for snp", platform: snpYAML + "  allow_no_runtime_register: false\n", kind: "snp",
			fails: []string{policy.CheckBootBinding}},
		{name: "boot binding failed", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			r.Platform.BootBinding = evidence.BootBindingFailed
		}, fails: []string{policy.CheckBootBinding}},
		{name: "event log of other evidence", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			r.Platform.EventLog[1].Digest[0] ^= 1
		}, fails: []string{policy.CheckBootBinding}},
		{name: "event log of another guest policy", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			r.PolicyDigest = []byte("another")
		}, fails: []string{policy.CheckBootBinding}},
		{name: "event log short", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			r.Platform.EventLog = r.Platform.EventLog[:1]
		}, fails: []string{policy.CheckBootBinding}},
		{name: "event log on two registers", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			r.Platform.EventLog[1].Register = 2
		}, fails: []string{policy.CheckBootBinding}},
		{name: "evidence bytes", platform: snpYAML, kind: "snp", mut: func(r *evidence.Report, _ *[]byte) {
			r.Evidence[0][len(r.Evidence[0])/2] ^= 1
		}, fails: []string{policy.CheckFormat}},
		{name: "guest policy digest", platform: "guest_policy_digest: abcd\n" + snpYAML, kind: "snp",
			fails: []string{policy.CheckGuestPolicy}},
		{name: "guest policy digest matches", platform: "guest_policy_digest: " + "677565737420706f6c69637920646967657374" + "\n" + snpYAML, kind: "snp"},
		{name: "later report with its boot section", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			withBoot(t, r, func(*evidence.Device) {})
		}},
		{name: "boot section of another chain", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			withBoot(t, r, func(d *evidence.Device) { d.CertChain = append([]byte(nil), d.CertChain[:len(d.CertChain)-1]...) })
		}, fails: []string{policy.CheckBootBinding}},
		{name: "boot section of a failed device", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			withBoot(t, r, func(d *evidence.Device) {
				d.Status, d.FailedStep, d.Error, d.Measurements = evidence.StatusFailed, "GET_MEASUREMENTS", "timeout", nil
			})
		}, fails: []string{policy.CheckBootBinding}},
		{name: "boot section of another label", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			withBoot(t, r, func(d *evidence.Device) { d.Label = "elsewhere" })
		}, fails: []string{policy.CheckBootBinding}},
		{name: "boot section of another guest policy", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			withBoot(t, r, func(*evidence.Device) {})
			r.Boot.PolicyDigest = []byte("another")
			relog(r)
		}, fails: []string{policy.CheckBootBinding}},
		{name: "boot section the log does not show", platform: tdxYAML, kind: "tdx", mut: func(r *evidence.Report, _ *[]byte) {
			withBoot(t, r, func(*evidence.Device) {})
			r.Boot.Evidence[0] = append(bytes.Clone(r.Boot.Evidence[0][:len(r.Boot.Evidence[0])-1]), ' ', '}')
		}, fails: []string{policy.CheckBootBinding}},
		{name: "device missing", platform: snpYAML, kind: "snp", mut: func(r *evidence.Report, _ *[]byte) {
			r.Devices, r.Evidence = []evidence.Device{}, [][]byte{}
		}, fails: []string{policy.CheckDevicePresent}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := attestDevice(t)
			p := platformPolicy(t, a, tc.platform)
			rep := testReport(t, a, tc.kind)
			nonce := a.nonce
			if tc.mut != nil {
				tc.mut(rep, &nonce)
			}
			var saw [64]byte
			pv := okPlatform(&saw)
			if tc.pv != nil {
				pv = tc.pv(&saw)
			}
			v := p.Verify(rep, nonce, pv)
			wantVerdict(t, v, tc.fails...)
			if v.OK && saw != evidence.UserData(rep.Nonce, rep.Evidence) {
				t.Error("the platform verifier was not given the user data of the nonce and the carried evidence")
			}
		})
	}
}
