package guest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
)

// policyFor writes a device policy for the two devices of twoDevices from
// what a first attestation showed, with the value of block changeBlock of
// the first device altered when changeBlock > 0, and a guest
// configuration enforcing it; it returns the loaded configuration.
func policyFor(t *testing.T, devs [2]simDevice, rep *evidence.Report, changeBlock uint8, extra string) *Config {
	t.Helper()
	dir := filepath.Dir(devs[0].anchor)
	var pol, cfg strings.Builder
	pol.WriteString("devices:\n")
	cfg.WriteString("platform: fake-snp\nide: true\npolicy: device-policy.yaml\ndevices:\n")
	for i, d := range rep.ParsedBody().Devices {
		fmt.Fprintf(&pol, "  - label: %q\n    trust_anchors: [%s]\n    min_spdm_version: %q\n    require_session: true\n    require_ide: true\n    allow_simulated_root_port: true\n%s    reference_measurements:\n",
			d.Label, filepath.Base(devs[i].anchor), d.SPDMVersion, extra)
		for _, b := range d.Measurements.Blocks {
			v := b.Value.String()
			if i == 0 && b.Index == changeBlock {
				v = strings.Repeat("ab", len(b.Value))
			}
			fmt.Fprintf(&pol, "      - {index: %d, digest: [%s]}\n", b.Index, v)
		}
		fmt.Fprintf(&cfg, "  - label: %q\n    shim: %s\n", d.Label, devs[i].addr)
	}
	if err := os.WriteFile(filepath.Join(dir, "device-policy.yaml"), []byte(pol.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "guest-policy.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v\npolicy:\n%s", err, pol.String())
	}
	return c
}

// TestGuestEnforcesPolicy: with a policy file, the guest attests devices
// that pass their rules, refuses one whose measurement is not a reference
// value (naming the device, the step and the block), and binds the
// policy file into the report's policy digest.
func TestGuestEnforcesPolicy(t *testing.T) {
	plain, devs := twoDevices(t, true)
	att := fakeSNP(t)
	first, err := AttestWith(ctxT(t), plain, att, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}

	cfg := policyFor(t, devs, first, 0, "")
	if cfg.Devices[0].Policy == nil || len(cfg.PolicySHA256) != 32 || len(cfg.Devices[0].Anchors) != 0 {
		t.Fatalf("policy not loaded: %+v", cfg)
	}
	rep, err := AttestWith(ctxT(t), cfg, att, []byte("with policy"))
	if err != nil {
		t.Fatalf("AttestWith under a policy the devices meet: %v", err)
	}
	for _, d := range rep.ParsedBody().Devices {
		if !d.OK() {
			t.Fatalf("device %s: %s at %s", d.Label, d.Error, d.FailedStep)
		}
	}
	if bytes.Equal(rep.ParsedBody().PolicyDigest, first.ParsedBody().PolicyDigest) {
		t.Error("the policy digest does not change when a policy file is enforced")
	}
	verifyReport(t, rep, att.Roots())

	// Block 2 of the first device is not a reference value.
	bad := policyFor(t, devs, first, 2, "")
	rep, err = AttestWith(ctxT(t), bad, att, []byte("wrong reference"))
	var de *DeviceError
	if !errors.As(err, &de) || de.Label != rep.ParsedBody().Devices[0].Label || de.Step != StepPolicy {
		t.Fatalf("AttestWith = %v, want device %s failed at %s", err, rep.ParsedBody().Devices[0].Label, StepPolicy)
	}
	if !strings.Contains(err.Error(), "reference measurements") || !strings.Contains(err.Error(), "block 2") {
		t.Errorf("the refusal %q does not name the check and the block", err)
	}
	if d := rep.ParsedBody().Devices[0]; d.OK() || d.FailedStep != StepPolicy || d.IDE != nil {
		t.Errorf("device 0 evidence: status %s at %q, IDE %+v (a refused device gets no IDE keys)", d.Status, d.FailedStep, d.IDE)
	}
	if !rep.ParsedBody().Devices[1].OK() {
		t.Errorf("device 1 failed: %s", rep.ParsedBody().Devices[1].Error)
	}
	if bytes.Equal(rep.ParsedBody().PolicyDigest, first.ParsedBody().PolicyDigest) {
		t.Error("two different policy files give the same policy digest")
	}

	// A certificate rule the chain breaks is refused while the chain is
	// validated, before any session.
	pin := policyFor(t, devs, first, 0, "    pin: {chain_sha256: "+strings.Repeat("00", 32)+"}\n")
	_, err = AttestWith(ctxT(t), pin, att, []byte("wrong pin"))
	if !errors.As(err, &de) || de.Step != StepCertificate || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("AttestWith with a wrong pin = %v, want a failure at %s naming the pin", err, StepCertificate)
	}
}

// TestServiceEnforcesPolicy: the daemon applies the policy to each
// measurement; its standing session passes (the "ended cleanly" check is
// left to report verifiers) and a device failing its rule is reported
// failed with its session ended.
func TestServiceEnforcesPolicy(t *testing.T) {
	plain, devs := twoDevices(t, true)
	first, err := AttestWith(ctxT(t), plain, fakeSNP(t), []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		block uint8
		ok    bool
	}{{"meets the policy", 0, true}, {"block 3 not a reference value", 3, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := policyFor(t, devs, first, tc.block, "")
			cfg.RemeasureInterval = time.Hour
			svc, err := NewService(cfg, ServiceOptions{Attester: fakeSNP(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			rep, err := svc.Start(ctxT(t), []byte("boot"))
			d0 := rep.ParsedBody().Devices[0]
			if tc.ok {
				if err != nil || !d0.OK() || d0.Session == nil || d0.Session.Ended || d0.IDE == nil || d0.IDE.KeySet == "" {
					t.Fatalf("Start = %v; device 0 %s at %q, session %+v, IDE %+v", err, d0.Status, d0.FailedStep, d0.Session, d0.IDE)
				}
				return
			}
			var de *DeviceError
			if !errors.As(err, &de) || de.Step != StepPolicy || !strings.Contains(err.Error(), "block 3") {
				t.Fatalf("Start = %v, want device 0 failed at %s naming block 3", err, StepPolicy)
			}
			if st := svc.Devices()[0]; st.Status != evidence.StatusFailed || st.FailedStep != StepPolicy || st.SessionID != 0 {
				t.Errorf("device 0 state %+v", st)
			}
			if d0.IDE != nil {
				t.Errorf("a device refused by its policy was keyed: %+v", d0.IDE)
			}
		})
	}
}

func TestPolicyConfigErrors(t *testing.T) {
	dir := t.TempDir()
	dev := startDevice(t, dir, "a")
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("rules.yaml", "devices:\n  - label: other\n    trust_anchors: ["+filepath.Base(dev.anchor)+"]\n")
	write("whole.yaml", "devices: [{default: true, trust_anchors: ["+filepath.Base(dev.anchor)+"]}]\nplatform: {kind: tpm}\n")
	for name, c := range map[string]struct{ yml, want string }{
		"anchors and policy": {"policy: rules.yaml\ndevices:\n  - {label: a, shim: " + dev.addr + ", trust_anchors: [x.pem]}\n", "remove trust_anchors"},
		"no rule":            {"policy: rules.yaml\ndevices:\n  - {label: a, shim: " + dev.addr + "}\n", `no rule for device "a"`},
		"missing file":       {"policy: nowhere.yaml\ndevices:\n  - {label: a, shim: " + dev.addr + "}\n", "nowhere.yaml"},
		"platform block":     {"policy: whole.yaml\ndevices:\n  - {label: a, shim: " + dev.addr + "}\n", "no platform block"},
	} {
		_, err := LoadConfig(write("guest-"+strings.ReplaceAll(name, " ", "-")+".yaml", c.yml))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: LoadConfig = %v, want ErrConfig mentioning %q", name, err, c.want)
		}
	}
}
