package policy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/policy"
)

func TestExamplePolicyLoads(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("example-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	writeSelfSigned(t, filepath.Join(dir, "vf0-root.pem"))
	writeSelfSigned(t, filepath.Join(dir, "vf1-root.pem"))
	p, err := policy.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := p.Rule("0000:01:00.1")
	if !ok || len(r.Anchors()) != 1 || len(r.ReferenceMeasurements) != 2 || len(r.ReferenceMeasurements[0].Digest) != 1 || !r.RequireIDE {
		t.Fatalf("rule %+v", r)
	}
	if c := r.Certificates; c == nil || c.MaxChainLength != 4 || !c.LeafKeyUsageDigitalSignature || !c.LeafNotCA || !c.IntermediatesCA {
		t.Fatalf("certificates %+v", r.Certificates)
	}
	if d, ok := p.Rule("0000:07:00.0"); !ok || !d.Default {
		t.Fatalf("default rule not found")
	}
	if p.Platform.Kind != policy.KindSNP || !p.Platform.NoRuntimeRegisterAllowed() || len(p.Platform.SNP.Measurement) != 1 {
		t.Fatalf("platform %+v", p.Platform)
	}
}

const goodPolicy = `devices:
  - label: a
    trust_anchors: [root.pem]
platform:
  kind: tdx
  tdx:
    mrtd: [` + "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" + `]
`

// TestParseRefused checks that each bad key or value is refused with the
// key and the reason.
func TestParseRefused(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, filepath.Join(dir, "root.pem"))
	if _, err := policy.Parse([]byte(goodPolicy), dir); err != nil {
		t.Fatalf("good policy: %v", err)
	}
	rep := func(old, new string) string { return strings.Replace(goodPolicy, old, new, 1) }
	tests := []struct{ name, yml, want string }{
		{"unknown top-level key", goodPolicy + "extra: 1\n", "unknown key \"extra\""},
		{"unknown device key", rep("    trust_anchors:", "    trust_anchor: [x]\n    trust_anchors:"), "unknown key \"trust_anchor\""},
		{"unknown platform key", rep("  kind: tdx", "  kind: tdx\n  knid: snp"), "unknown key \"knid\""},
		{"no devices", "platform:\n  kind: snp\n", "devices: no device rules"},
		{"no label", rep("  - label: a", "  - require_ide: true"), "devices[0].label: missing"},
		{"label and default", rep("  - label: a", "  - label: a\n    default: true"), "devices[0]: a rule has either"},
		{"repeated label", rep("platform:", "  - label: a\n    trust_anchors: [root.pem]\nplatform:"), "devices[1].label: \"a\" repeated"},
		{"two defaults", rep("  - label: a", "  - default: true\n    trust_anchors: [root.pem]\n  - default: true"), "devices[1]: more than one default"},
		{"no anchors", rep("    trust_anchors: [root.pem]", "    require_ide: true"), "devices[0].trust_anchors: missing"},
		{"anchor file missing", rep("[root.pem]", "[nope.pem]"), "devices[0].trust_anchors[0]"},
		{"bad version", rep("    trust_anchors", "    min_spdm_version: \"1.4\"\n    trust_anchors"), "devices[0].min_spdm_version"},
		{"bad asym", rep("    trust_anchors", "    allowed_asym: [ECDSA_P999]\n    trust_anchors"), "devices[0].allowed_asym: secchan: unknown asymmetric algorithm"},
		{"bad hash", rep("    trust_anchors", "    allowed_hash: [MD5]\n    trust_anchors"), "devices[0].allowed_hash"},
		{"empty pin", rep("    trust_anchors", "    pin: {}\n    trust_anchors"), "devices[0].pin"},
		{"short pin", rep("    trust_anchors", "    pin:\n      chain_sha256: abcd\n    trust_anchors"), "devices[0].pin.chain_sha256: 2 bytes"},
		{"bad hex", rep("    trust_anchors", "    pin:\n      chain_sha256: xyz\n    trust_anchors"), "bad hex"},
		{"index 0", rep("    trust_anchors", "    reference_measurements:\n      - index: 0\n        digest: aa\n    trust_anchors"), "devices[0].reference_measurements[0].index: 0 is reserved"},
		{"unknown event kind", rep("    trust_anchors", "    allow_events: [reset]\n    trust_anchors"), "devices[0].allow_events[0]: \"reset\""},
		{"index too large", rep("    trust_anchors", "    reference_measurements:\n      - index: 300\n        digest: aa\n    trust_anchors"), "cannot unmarshal"},
		{"no digest", rep("    trust_anchors", "    reference_measurements:\n      - index: 1\n    trust_anchors"), "reference_measurements[0].digest: missing"},
		{"repeated index", rep("    trust_anchors", "    reference_measurements:\n      - index: 1\n        digest: aa\n      - index: 1\n        digest: bb\n    trust_anchors"), "reference_measurements[1].index: 1 repeated"},
		{"digest a map", rep("    trust_anchors", "    reference_measurements:\n      - index: 1\n        digest: {a: b}\n    trust_anchors"), "want a hex string or a list"},
		{"bool wrong", rep("    trust_anchors", "    require_ide: maybe\n    trust_anchors"), "cannot unmarshal"},
		{"no kind", rep("  kind: tdx\n", ""), "platform.kind: missing"},
		{"bad kind", rep("kind: tdx", "kind: sgx"), "platform.kind: \"sgx\""},
		{"section of another kind", rep("kind: tdx", "kind: snp"), "platform: a section for another kind"},
		{"no mrtd", rep("    mrtd: [", "    mrtd: []\n    #"), "platform.tdx.mrtd: missing"},
		{"short mrtd", rep("mrtd: [00", "mrtd: ["), "platform.tdx.mrtd[0]: 47 bytes"},
		{"roots pair", rep("  tdx:", "  roots:\n    snp_ark: root.pem\n  tdx:"), "platform.roots: snp_ark and snp_ask"},
		{"root missing", rep("  tdx:", "  roots:\n    tdx_root: none.pem\n  tdx:"), "platform.roots.tdx_root"},
		{"two documents", goodPolicy + "---\ndevices: []\n", "more than one YAML document"},
		{"unknown certificates key", rep("    trust_anchors", "    certificates:\n      max_chain: 3\n    trust_anchors"), "unknown key \"max_chain\""},
		{"negative chain length", rep("    trust_anchors", "    certificates:\n      max_chain_length: -1\n    trust_anchors"), "devices[0].certificates.max_chain_length: -1"},
		{"bad validity_time", rep("    trust_anchors", "    certificates:\n      validity_time: 2025-13-01\n    trust_anchors"), "devices[0].certificates.validity_time: want RFC 3339"},
		{"leaf rule not a bool", rep("    trust_anchors", "    certificates:\n      leaf_not_ca: yes please\n    trust_anchors"), "cannot unmarshal"},
		{"unknown tdx key", rep("    mrtd:", "    rtmr: {}\n    mrtd:"), "unknown key \"rtmr\""},
		{"rtmr out of range", rep("    mrtd:", "    rtmrs:\n      4: ["+strings.Repeat("00", 48)+"]\n    mrtd:"), "platform.tdx.rtmrs: RTMR 4 out of range"},
		{"rtmr short", rep("    mrtd:", "    rtmrs:\n      0: [abcd]\n    mrtd:"), "platform.tdx.rtmrs[0][0]: 2 bytes, want 48"},
		{"rtmr no value", rep("    mrtd:", "    rtmrs:\n      1: []\n    mrtd:"), "platform.tdx.rtmrs[1]: no accepted value"},
		{"rtmr bad hex", rep("    mrtd:", "    rtmrs:\n      1: [zz]\n    mrtd:"), "bad hex"},
		{"td_attributes length", rep("    mrtd:", "    td_attributes: 0000\n    mrtd:"), "platform.tdx.td_attributes: 2 bytes, want 8"},
		{"xfam length", rep("    mrtd:", "    xfam: 00\n    mrtd:"), "platform.tdx.xfam: 1 bytes, want 8"},
		{"xfam bad hex", rep("    mrtd:", "    xfam: 0g00000000000000\n    mrtd:"), "bad hex"},
		{"vmpl out of range", snpPolicy("    vmpl: [0, 4]\n"), "platform.snp.vmpl[1]: 4 (want 0 to 3)"},
		{"vmpl repeated", snpPolicy("    vmpl: [1, 1]\n"), "platform.snp.vmpl[1]: 1 repeated"},
		{"min_tcb unknown key", snpPolicy("    min_tcb: {ucode: 1}\n"), "unknown key \"ucode\""},
		{"min_tcb too large", snpPolicy("    min_tcb: {snp: 256}\n"), "cannot unmarshal"},
		{"pcr boot binding", tpmPolicy("    pcrs:\n      15: [" + strings.Repeat("00", 32) + "]\n"), "platform.tpm.pcrs: PCR 15 carries the boot binding"},
		{"pcr out of range", tpmPolicy("    pcrs:\n      24: [" + strings.Repeat("00", 32) + "]\n"), "platform.tpm.pcrs: PCR 24 out of range"},
		{"pcr sha-384", tpmPolicy("    pcrs:\n      0: [" + strings.Repeat("00", 48) + "]\n"), "platform.tpm.pcrs[0][0]: 48 bytes, want 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse([]byte(tc.yml), dir)
			if !errors.Is(err, policy.ErrPolicy) {
				t.Fatalf("Parse: %v, want ErrPolicy\n%s", err, tc.yml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// snpPolicy and tpmPolicy are goodPolicy for the other kinds with extra
// lines in the platform section.
func snpPolicy(extra string) string {
	return strings.Replace(goodPolicy, "  kind: tdx\n  tdx:\n    mrtd: [", "  kind: snp\n  snp:\n"+extra+"    measurement: [", 1)
}

func tpmPolicy(extra string) string {
	i := strings.Index(goodPolicy, "  kind: tdx")
	return goodPolicy[:i] + "  kind: tpm\n  tpm:\n    ak_public: [00]\n" + extra
}

// TestParsePlatformRules loads the new platform rules.
func TestParsePlatformRules(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, filepath.Join(dir, "root.pem"))
	p, err := policy.Parse([]byte(snpPolicy("    min_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}\n    vmpl: [0, 2]\n")), dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Platform.SNP; *s.MinTCB != (policy.SNPTCB{Bootloader: 3, SNP: 8, Microcode: 115}) || len(s.VMPL) != 2 {
		t.Fatalf("snp %+v", s)
	}
	p, err = policy.Parse([]byte(strings.Replace(goodPolicy, "    mrtd:", "    rtmrs:\n      0: ["+strings.Repeat("aa", 48)+"]\n      2: ["+strings.Repeat("bb", 48)+", "+strings.Repeat("cc", 48)+"]\n    td_attributes: 0000001000000000\n    xfam: e702060000000000\n    mrtd:", 1)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if x := p.Platform.TDX; len(x.RTMRs) != 2 || len(x.RTMRs[2]) != 2 || len(x.TDAttributes) != 8 || len(x.XFAM) != 8 {
		t.Fatalf("tdx %+v", x)
	}
	p, err = policy.Parse([]byte(tpmPolicy("    pcrs:\n      0: ["+strings.Repeat("00", 32)+"]\n      7: ["+strings.Repeat("11", 32)+"]\n")), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Platform.TPM.PCRs) != 2 {
		t.Fatalf("tpm %+v", p.Platform.TPM)
	}
}

func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	writeSelfSigned(f, filepath.Join(dir, "root.pem"))
	f.Add([]byte(goodPolicy))
	if b, err := os.ReadFile("example-policy.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("devices: [{default: true, trust_anchors: [root.pem]}]\nplatform: {kind: tpm, tpm: {ak_public: [00]}}\n"))
	f.Add([]byte("devices:\n  - label: x\n    trust_anchors: [root.pem]\n    reference_measurements: [{index: 1, digest: [aa, bb]}]\nplatform: {kind: snp, snp: {measurement: ab}}\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := policy.Parse(b, dir)
		if err != nil {
			if !errors.Is(err, policy.ErrPolicy) {
				t.Fatalf("error %v does not wrap ErrPolicy", err)
			}
			return
		}
		if len(p.Devices) == 0 || p.Platform.Kind == "" {
			t.Fatalf("accepted an incomplete policy: %+v", p)
		}
	})
}

// FuzzParseDevices: a policy of device rules parses only without a
// platform block and a guest policy digest, and never panics.
func FuzzParseDevices(f *testing.F) {
	dir := f.TempDir()
	writeSelfSigned(f, filepath.Join(dir, "root.pem"))
	f.Add([]byte("devices: [{default: true, trust_anchors: [root.pem]}]\n"))
	f.Add([]byte("devices:\n  - label: x\n    trust_anchors: [root.pem]\n    reference_measurements: [{index: 1, digest: [aa]}]\n"))
	f.Add([]byte(goodPolicy))
	f.Add([]byte("devices: [{default: true, trust_anchors: [root.pem]}]\nplatform: {}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := policy.ParseDevices(b, dir)
		if err != nil {
			if !errors.Is(err, policy.ErrPolicy) {
				t.Fatalf("error %v does not wrap ErrPolicy", err)
			}
			return
		}
		if len(p.Devices) == 0 || p.Platform.Kind != "" || p.GuestPolicyDigest != nil {
			t.Fatalf("accepted a device policy with a platform or digest: %+v", p)
		}
	})
}

func TestParseDevices(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, filepath.Join(dir, "root.pem"))
	p, err := policy.ParseDevices([]byte("devices:\n  - label: a\n    trust_anchors: [root.pem]\n    min_spdm_version: \"1.2\"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := p.Rule("a"); !ok || len(r.Anchors()) != 1 {
		t.Fatalf("rule for a: %+v, %v", r, ok)
	}
	for name, c := range map[string]struct{ yml, want string }{
		"platform":       {"devices: [{default: true, trust_anchors: [root.pem]}]\nplatform: {kind: tpm}\n", "no platform block"},
		"empty platform": {"devices: [{default: true, trust_anchors: [root.pem]}]\nplatform: {}\n", "no platform block"},
		"digest":         {"guest_policy_digest: aabb\ndevices: [{default: true, trust_anchors: [root.pem]}]\n", "cover itself"},
		"device rule":    {"devices: [{label: a}]\n", "trust_anchors"},
		"no devices":     {"{}\n", "no device rules"},
	} {
		if _, err := policy.ParseDevices([]byte(c.yml), dir); !errors.Is(err, policy.ErrPolicy) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseDevices = %v, want ErrPolicy mentioning %q", name, err, c.want)
		}
	}
	// A whole policy still needs its platform.
	if _, err := policy.Parse([]byte("devices: [{default: true, trust_anchors: [root.pem]}]\n"), dir); err == nil {
		t.Error("Parse accepted a policy without a platform block")
	}
}
