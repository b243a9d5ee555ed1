package policy_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/secchan"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// rule is the YAML of one device rule, indented under "devices:".
func loadPolicy(t testing.TB, dir, rule string) *policy.Policy {
	t.Helper()
	yml := "devices:\n" + rule + "platform:\n  kind: snp\n  snp:\n    measurement: [" + strings.Repeat("00", 48) + "]\n"
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(path)
	if err != nil {
		t.Fatalf("Load:\n%s\n%v", yml, err)
	}
	return p
}

func fullRule(a attested) string {
	var refs strings.Builder
	for _, b := range a.dev.Measurements.Blocks {
		fmt.Fprintf(&refs, "      - index: %d\n        digest: [%x]\n", b.Index, []byte(b.Value))
	}
	return fmt.Sprintf(`  - label: %q
    trust_anchors: [vf-root.pem]
    min_spdm_version: "1.2"
    allowed_asym: [ECDSA_P384]
    allowed_hash: [SHA_384]
    pin:
      leaf_public_key_sha256: %x
      chain_sha256: %x
    reference_measurements:
%s    require_session: true
    require_ide: true
    allow_simulated_root_port: true
`, a.dev.Label, leafPin(a), sha256.Sum256(a.dev.CertChain), refs.String())
}

func leafPin(a attested) []byte {
	c, err := secchan.ParseCertChain(a.dev.CertChain, 6 /* crypto.SHA384 */)
	if err != nil {
		panic(err)
	}
	return policy.LeafPublicKeySHA256(c.Leaf())
}

// failed returns the failing results; want lists checks that must fail.
func failed(rs []policy.Result) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		if !r.OK {
			out[r.Check] = r.Reason
		}
	}
	return out
}

func wantOnly(t *testing.T, rs []policy.Result, checks ...string) {
	t.Helper()
	f := failed(rs)
	for _, c := range checks {
		if _, ok := f[c]; !ok {
			t.Errorf("check %q passed, want it refused; results %+v", c, rs)
		}
		if f[c] == "" {
			t.Errorf("check %q refused without a reason", c)
		}
		delete(f, c)
	}
	for c, r := range f {
		if !strings.HasPrefix(r, "not checked") {
			t.Errorf("check %q also failed: %s", c, r)
		}
	}
}

func TestCheckDevicePasses(t *testing.T) {
	a := attestDevice(t)
	p := loadPolicy(t, a.dir, fullRule(a))
	rs := p.CheckDevice(a.dev, a.nonce)
	wantOnly(t, rs)
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Check] = true
	}
	for _, c := range []string{policy.CheckRule, policy.CheckStatus, policy.CheckVersion, policy.CheckAlgorithms, policy.CheckChain,
		policy.CheckAnchors, policy.CheckPin, policy.CheckRequest, policy.CheckNonce, policy.CheckTranscript, policy.CheckSignature,
		policy.CheckBlocks, policy.CheckNegotiation, policy.CheckReference, policy.CheckSession, policy.CheckIDE} {
		if !seen[c] {
			t.Errorf("check %q not run", c)
		}
	}
}

// TestCheckDeviceRules makes each rule fail in turn.
func TestCheckDeviceRules(t *testing.T) {
	a := attestDevice(t)
	full := fullRule(a)
	other := filepath.Join(a.dir, "other.pem")
	writeSelfSigned(t, other)
	tests := []struct {
		name  string
		rule  func(string) string
		dev   func(*evidence.Device)
		fails []string
	}{
		{"no rule", func(string) string { return strings.Replace(full, testLabel, "0000:09:00.0", 1) }, nil, []string{policy.CheckRule}},
		{"default rule", func(string) string {
			return strings.Replace(full, fmt.Sprintf("label: %q", testLabel), "default: true", 1)
		}, nil, nil},
		{"status failed", nil, func(d *evidence.Device) { d.Status, d.FailedStep, d.Error = evidence.StatusFailed, "VCA", "boom" }, []string{policy.CheckStatus}},
		{"min version", func(s string) string { return strings.Replace(s, `"1.2"`, `"1.3"`, 1) },
			func(d *evidence.Device) { d.SPDMVersion = "1.2" }, []string{policy.CheckVersion}},
		{"asym", func(s string) string { return strings.Replace(s, "[ECDSA_P384]", "[ECDSA_P256]", 1) }, nil, []string{policy.CheckAlgorithms}},
		{"hash", func(s string) string { return strings.Replace(s, "[SHA_384]", "[SHA_256, SHA_512]", 1) }, nil, []string{policy.CheckAlgorithms}},
		{"algorithm name lies", nil, func(d *evidence.Device) { d.Algorithms.BaseAsym = "ECDSA_P256" }, []string{policy.CheckAlgorithms}},
		{"anchors", func(s string) string { return strings.Replace(s, "vf-root.pem", "other.pem", 1) }, nil, []string{policy.CheckAnchors}},
		{"leaf pin", func(s string) string {
			return strings.Replace(s, hex.EncodeToString(leafPin(a)), strings.Repeat("ab", 32), 1)
		}, nil, []string{policy.CheckPin}},
		{"chain pin", func(s string) string {
			d := sha256.Sum256(a.dev.CertChain)
			return strings.Replace(s, hex.EncodeToString(d[:]), strings.Repeat("cd", 32), 1)
		}, nil, []string{policy.CheckPin}},
		{"reference value", func(s string) string {
			return strings.Replace(s, a.dev.Measurements.Blocks[1].Value.String(), strings.Repeat("11", 48), 1)
		}, nil, []string{policy.CheckReference}},
		{"reference rolling update", func(s string) string {
			v := a.dev.Measurements.Blocks[1].Value.String()
			return strings.Replace(s, "["+v+"]", "["+strings.Repeat("11", 48)+", "+v+"]", 1)
		}, nil, nil},
		{"reference block missing", func(s string) string {
			return strings.Replace(s, "    require_session", "      - index: 99\n        digest: [00]\n    require_session", 1)
		}, nil, []string{policy.CheckReference}},
		{"session required", nil, func(d *evidence.Device) { d.Session = nil }, []string{policy.CheckSession}},
		{"session not ended", nil, func(d *evidence.Device) { d.Session.Ended = false }, []string{policy.CheckSession}},
		{"session not required", func(s string) string { return strings.Replace(s, "require_session: true", "require_session: false", 1) },
			func(d *evidence.Device) { d.Session = nil }, nil},
		{"ide required", nil, func(d *evidence.Device) { d.IDE = nil }, []string{policy.CheckIDE}},
		{"ide no key set", nil, func(d *evidence.Device) { d.IDE.KeySet = "" }, []string{policy.CheckIDE}},
		{"ide not required", func(s string) string { return strings.Replace(s, "require_ide: true", "require_ide: false", 1) },
			func(d *evidence.Device) { d.IDE = nil }, nil},
		// Finding 6: require_ide was met by the simulated root port.
		{"ide on the simulated root port", func(s string) string { return strings.Replace(s, "    allow_simulated_root_port: true\n", "", 1) },
			nil, []string{policy.CheckIDE}},
		{"ide root port unnamed", nil, func(d *evidence.Device) { d.IDE.RootPort = "" }, []string{policy.CheckIDE}},
		// Finding 6: device events were never judged.
		{"measurement changed event", nil, func(d *evidence.Device) {
			d.Events = []evidence.DeviceEvent{{Kind: "measurement changed", Message: "index 2 changed"}}
		}, []string{policy.CheckEvents}},
		{"session lost event", nil, func(d *evidence.Device) {
			d.Events = []evidence.DeviceEvent{{Kind: "attested"}, {Kind: "session lost", Message: "reset"}}
		}, []string{policy.CheckEvents}},
		{"events the rule allows", func(s string) string {
			return s + "    allow_events: [session lost, re-established]\n"
		}, func(d *evidence.Device) {
			d.Events = []evidence.DeviceEvent{{Kind: "attested"}, {Kind: "session lost"}, {Kind: "re-established"}}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := attestDevice(t)
			writeSelfSigned(t, filepath.Join(a.dir, "other.pem"))
			rule := full
			if tc.rule != nil {
				rule = tc.rule(full)
			}
			p := loadPolicy(t, a.dir, rule)
			if tc.dev != nil {
				tc.dev(&a.dev)
			}
			wantOnly(t, p.CheckDevice(a.dev, a.nonce), tc.fails...)
		})
	}
}

// TestCheckDeviceMutations flips a byte in each class of signed field.
func TestCheckDeviceMutations(t *testing.T) {
	flip := func(b []byte, i int) { b[i] ^= 0x01 }
	tests := []struct {
		name  string
		mut   func(d *evidence.Device, nonce *[]byte)
		fails []string
	}{
		{"block value", func(d *evidence.Device, _ *[]byte) {
			v := bytes.Clone(d.Measurements.Blocks[0].Value)
			v[0] ^= 1
			d.Measurements.Blocks[0].Value = v
		}, []string{policy.CheckBlocks, policy.CheckReference}},
		{"block value in the signed response", func(d *evidence.Device, _ *[]byte) {
			r := d.Measurements.Response
			flip(r, 20)
			flip(d.Measurements.Transcript, len(d.Measurements.Transcript)-(len(r)-96)+20)
		}, []string{policy.CheckSignature, policy.CheckBlocks}},
		{"transcript", func(d *evidence.Device, _ *[]byte) { flip(d.Measurements.Transcript, 10) }, []string{policy.CheckSignature}},
		{"transcript tail", func(d *evidence.Device, _ *[]byte) {
			flip(d.Measurements.Transcript, len(d.Measurements.Transcript)-1)
		}, []string{policy.CheckTranscript}},
		{"signature", func(d *evidence.Device, _ *[]byte) {
			flip(d.Measurements.Response, len(d.Measurements.Response)-5)
		}, []string{policy.CheckSignature}},
		{"response truncated", func(d *evidence.Device, _ *[]byte) {
			d.Measurements.Response = d.Measurements.Response[:len(d.Measurements.Response)-1]
		}, []string{policy.CheckTranscript, policy.CheckSignature, policy.CheckBlocks}},
		{"chain certificate", func(d *evidence.Device, _ *[]byte) {
			flip(d.CertChain, len(d.CertChain)-40)
		}, []string{policy.CheckAnchors, policy.CheckPin}},
		{"chain length", func(d *evidence.Device, _ *[]byte) { flip(d.CertChain, 0) },
			[]string{policy.CheckChain, policy.CheckAnchors, policy.CheckPin, policy.CheckSignature}},
		{"chain root hash", func(d *evidence.Device, _ *[]byte) { flip(d.CertChain, 6) },
			[]string{policy.CheckAnchors, policy.CheckPin}},
		{"request nonce", func(d *evidence.Device, _ *[]byte) {
			flip(d.Measurements.Request, 5)
			flip(d.Measurements.Transcript, len(d.Measurements.Transcript)-len(d.Measurements.Response)+96-len(d.Measurements.Request)+5)
		}, []string{policy.CheckNonce, policy.CheckSignature}},
		{"evidence nonce", func(d *evidence.Device, _ *[]byte) { flip(d.Measurements.Nonce, 0) }, []string{policy.CheckNonce}},
		{"owner nonce", func(_ *evidence.Device, n *[]byte) { *n = []byte("another owner nonce") }, []string{policy.CheckNonce}},
		{"label", func(d *evidence.Device, _ *[]byte) { d.Label = "0000:01:00.2" }, []string{policy.CheckNonce}},
		{"claimed capabilities", func(d *evidence.Device, _ *[]byte) { d.CapabilityFlags ^= 1 << 1 }, []string{policy.CheckNegotiation}},
		{"claimed measurement hash", func(d *evidence.Device, _ *[]byte) {
			d.Algorithms.MeasurementHash, d.Algorithms.MeasurementHashBits = "SHA_512", secchan.MeasHashSHA512
		}, []string{policy.CheckBlocks, policy.CheckNegotiation}},
		{"version", func(d *evidence.Device, _ *[]byte) { d.SPDMVersion = "1.2" }, []string{policy.CheckRequest, policy.CheckTranscript}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := attestDevice(t)
			rule := fullRule(a)
			if tc.name == "label" {
				rule = strings.Replace(rule, fmt.Sprintf("label: %q", testLabel), "default: true", 1)
			}
			p := loadPolicy(t, a.dir, rule)
			nonce := a.nonce
			tc.mut(&a.dev, &nonce)
			wantOnly(t, p.CheckDevice(a.dev, nonce), tc.fails...)
		})
	}
}

func TestSPDMNonceMatchesGuest(t *testing.T) {
	a := attestDevice(t)
	n := policy.SPDMNonce(a.dev.Label, a.nonce)
	if !bytes.Equal(n[:], a.dev.Measurements.Nonce) {
		t.Fatalf("SPDMNonce %x, the guest used %x", n, a.dev.Measurements.Nonce)
	}
}

func TestValidator(t *testing.T) {
	a := attestDevice(t)
	chain, err := secchan.ParseCertChain(a.dev.CertChain, 6)
	if err != nil {
		t.Fatal(err)
	}
	p := loadPolicy(t, a.dir, fullRule(a))
	if err := p.Validator(testLabel).ValidateChain(chain, 6); err != nil {
		t.Fatalf("ValidateChain: %v", err)
	}
	for name, v := range map[string]secchan.ChainValidator{
		"no rule": p.Validator("0000:09:00.0"),
	} {
		if err := v.ValidateChain(chain, 6); !errors.Is(err, secchan.ErrCertChain) {
			t.Errorf("%s: %v, want ErrCertChain", name, err)
		}
	}
	if err := p.Validator(testLabel).ValidateChain(chain, 5 /* SHA-256 */); err == nil {
		t.Error("a hash the rule does not allow was accepted")
	}
	pin := loadPolicy(t, a.dir, strings.Replace(fullRule(a), hex.EncodeToString(leafPin(a)), strings.Repeat("ab", 32), 1))
	if err := pin.Validator(testLabel).ValidateChain(chain, 6); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Errorf("pin mismatch: %v", err)
	}
	writeSelfSigned(t, filepath.Join(a.dir, "other.pem"))
	anch := loadPolicy(t, a.dir, strings.Replace(fullRule(a), "vf-root.pem", "other.pem", 1))
	if err := anch.Validator(testLabel).ValidateChain(chain, 6); !errors.Is(err, secchan.ErrCertChain) {
		t.Errorf("wrong anchors: %v", err)
	}
	var _ []*x509.Certificate = p.Devices[0].Anchors()
}

// TestCarriedRootMutations: finding 3 of issue 14. Every byte of the
// root certificate a device carries is checked: a mutation anywhere in it
// either stops the chain from parsing or leaves a certificate that is not
// on the path to the anchor. (Before, 193 of ~39k random single-byte
// mutations passed, all inside the carried root.) The rule has no chain
// pin, which would hide the gap.
func TestCarriedRootMutations(t *testing.T) {
	a := attestDevice(t)
	rule := fullRule(a)
	i := strings.Index(rule, "      chain_sha256:")
	j := strings.Index(rule[i:], "\n")
	rule = rule[:i] + rule[i+j+1:]
	p := loadPolicy(t, a.dir, rule)
	const start = 4 + 48 // header and a SHA-384 RootHash
	c := a.dev.CertChain
	if c[start] != 0x30 || c[start+1] != 0x82 {
		t.Fatalf("the chain does not start with a DER certificate: % x", c[start:start+4])
	}
	end := start + 4 + int(c[start+2])<<8 | int(c[start+3])
	if rs := p.CheckDevice(a.dev, a.nonce); len(failed(rs)) != 0 {
		t.Fatalf("the honest device fails: %v", failed(rs))
	}
	passed := 0
	for pos := start; pos < end; pos++ {
		d := a.dev
		d.CertChain = bytes.Clone(c)
		d.CertChain[pos] ^= 0x01
		if len(failed(p.CheckDevice(d, a.nonce))) == 0 {
			passed++
			t.Errorf("flipping byte %d of the carried root (offset %d in the certificate) passes", pos, pos-start)
		}
	}
	t.Logf("%d mutations of the carried root, %d passed", end-start, passed)
}
