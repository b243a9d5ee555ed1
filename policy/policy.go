// Package policy holds the workload owner's rules for devices and the
// platform, and judges a combined report (package evidence) against them.
//
// A policy is a YAML file (see example-policy.yaml). The same device rules
// serve two callers: the guest at attestation time, through Validator (a
// secchan.ChainValidator), and the verifier, through CheckDevice and Verify.
// Platform reports are checked by CheckPlatform against the platform rule,
// with the verification of package policy/platform, which the guest's
// attesters share; this package never imports the guest.
package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/devattest/devattest/doe/yamlerr"
	"github.com/devattest/devattest/policy/platform"
	"github.com/devattest/devattest/secchan"
)

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// ErrPolicy wraps every error about a policy file.
var ErrPolicy = errors.New("policy: bad policy")

// Platform kinds a policy can name.
const (
	KindSNP = "snp"
	KindTDX = "tdx"
	KindTPM = "tpm"
)

// Policy is a parsed and checked policy file.
type Policy struct {
	// Devices are the device rules, matched by label; at most one is the
	// default rule for labels no other rule names.
	Devices []DeviceRule `yaml:"devices"`
	// Platform is what the platform report must show.
	Platform PlatformRule `yaml:"platform"`
	// GuestPolicyDigest, when set, is the only policy digest (hex) the
	// report may carry: the digest of the guest's own configuration
	// (its devices and trust anchors), so a verifier knows which anchors
	// the guest enforced.
	GuestPolicyDigest HexBytes `yaml:"guest_policy_digest"`
	// ReferenceValuesAnchor is the certificate file (PEM) a signed CoRIM's
	// signer must chain to, for rules that name none (policy/corimrefs.go).
	ReferenceValuesAnchor string `yaml:"reference_values_anchor"`

	digest [32]byte // SHA-256 of the policy file's bytes (Digest)
}

// DeviceRule is what one device (or, for the default rule, any device
// without its own rule) must show.
type DeviceRule struct {
	// Label is the guest's name for the device (e.g. its BDF).
	Label string `yaml:"label"`
	// Default marks the rule for devices that no labelled rule names.
	Default bool `yaml:"default"`
	// TrustAnchors are PEM files of the roots the device's certificate
	// chain must reach, relative to the policy file.
	TrustAnchors []string `yaml:"trust_anchors"`
	// MinSPDMVersion is the lowest acceptable negotiated version ("1.2").
	MinSPDMVersion string `yaml:"min_spdm_version"`
	// AllowedAsym and AllowedHash list the acceptable negotiated base
	// algorithms by secchan's names (ECDSA_P384, SHA_384, ...); empty
	// allows every algorithm secchan supports.
	AllowedAsym []string `yaml:"allowed_asym"`
	AllowedHash []string `yaml:"allowed_hash"`
	// Pin optionally pins the device's identity.
	Pin *Pin `yaml:"pin"`
	// ReferenceMeasurements are the accepted values of measurement blocks.
	ReferenceMeasurements []ReferenceMeasurement `yaml:"reference_measurements"`
	// ReferenceValues is a signed CoRIM file whose reference values become
	// ReferenceMeasurements (policy/corimrefs.go); the other three fields
	// name its signer's anchor, the class to take, and allow an unsigned one.
	ReferenceValues              string `yaml:"reference_values"`
	ReferenceValuesAnchor        string `yaml:"reference_values_anchor"`
	ReferenceValuesClass         string `yaml:"reference_values_class"`
	AllowUnsignedReferenceValues bool   `yaml:"allow_unsigned_reference_values"`
	// RequireSession requires a secure session that was ended cleanly.
	RequireSession bool `yaml:"require_session"`
	// RequireIDE requires IDE keys programmed and a key set in use, with
	// the root port's half programmed by something other than the
	// simulated link unless AllowSimulatedRootPort.
	RequireIDE             bool `yaml:"require_ide"`
	AllowSimulatedRootPort bool `yaml:"allow_simulated_root_port"`
	// RequireTDISP requires the device's TEE device interface locked,
	// reported and started over the session (tdisp.go), bound to the
	// keyed IDE stream, in TDISPState (RUN unless given), with exactly
	// the TDISPInterfaceInfo flags and the TDISPMMIORanges layout when
	// those are given.
	RequireTDISP       bool            `yaml:"require_tdisp"`
	TDISPState         string          `yaml:"tdisp_state"`
	TDISPInterfaceInfo []string        `yaml:"tdisp_interface_info"`
	TDISPMMIORanges    []MMIORangeRule `yaml:"tdisp_mmio_ranges"`
	// AllowEvents lists the device event kinds ("measurement changed",
	// "session lost", "re-established", "failed") a report may carry for
	// this device; "attested" is always allowed, any other fails.
	AllowEvents []string `yaml:"allow_events"`
	// Certificates are rules on the certificate chain beyond reaching a
	// trust anchor; absent, only the anchors (at the current time) and
	// the pin are checked.
	Certificates *CertRules `yaml:"certificates"`

	anchors    []*x509.Certificate
	tdispInfo  uint16
	minVersion secchan.Version
	asym, hash uint32
}

// CertRules are rules on a device's certificate chain. Zero values leave
// a property unchecked.
type CertRules struct {
	// MaxChainLength is the most certificates the chain may have, its root
	// included (counted even when the device does not carry it).
	MaxChainLength int `yaml:"max_chain_length"`
	// ValidityTime (RFC 3339) is the time at which the chain must be
	// valid, instead of the current time: for devices whose certificates
	// expire, or a clock the verifier does not trust.
	ValidityTime string `yaml:"validity_time"`
	// LeafKeyUsageDigitalSignature requires the leaf's KeyUsage extension
	// to include digitalSignature.
	LeafKeyUsageDigitalSignature bool `yaml:"leaf_key_usage_digital_signature"`
	// LeafNotCA requires the leaf to carry BasicConstraints with CA false.
	LeafNotCA bool `yaml:"leaf_not_ca"`
	// IntermediatesCA requires every certificate of the chain except the
	// leaf to carry valid BasicConstraints with CA true.
	IntermediatesCA bool `yaml:"intermediates_ca"`

	validAt time.Time
}

// Pin pins a device identity: the SHA-256 of the leaf certificate's
// SubjectPublicKeyInfo, or the SHA-256 of the whole SPDM certificate chain
// (the cert_chain bytes of the report). Either or both may be given.
type Pin struct {
	LeafPublicKeySHA256 HexBytes `yaml:"leaf_public_key_sha256"`
	ChainSHA256         HexBytes `yaml:"chain_sha256"`
}

// ReferenceMeasurement is one measurement block index and the values it
// may have (more than one during a rolling update).
type ReferenceMeasurement struct {
	Index  uint8   `yaml:"index"`
	Digest HexList `yaml:"digest"`
}

// PlatformRule is what the platform report must show. Every rule that is
// absent means its secure default (see CheckPlatform), never "anything
// goes".
type PlatformRule struct {
	// Kind is snp, tdx or tpm.
	Kind string `yaml:"kind"`
	// AllowNoRuntimeRegister accepts a report whose boot binding is "no
	// runtime register" (default true for snp, false otherwise).
	AllowNoRuntimeRegister *bool `yaml:"allow_no_runtime_register"`
	// AllowTestRoots accepts a report that chains to a known test root of
	// the fake platforms (policy/platform.TestRoot), with a warning line.
	// Without it such a report is refused.
	AllowTestRoots bool     `yaml:"allow_test_roots"`
	SNP            *SNPRule `yaml:"snp"`
	TDX            *TDXRule `yaml:"tdx"`
	TPM            *TPMRule `yaml:"tpm"`
	// Roots replace the vendors' production roots: for test platforms
	// (the fake SEV-SNP and TDX signers) or a private root of trust.
	Roots Roots `yaml:"roots"`

	// anchors are the loaded Roots; testRoot names a test root among the
	// roots of Kind ("" when none).
	anchors  platform.TrustAnchors
	testRoot string
}

// NoRuntimeRegisterAllowed applies the default of AllowNoRuntimeRegister.
func (p *PlatformRule) NoRuntimeRegisterAllowed() bool {
	if p.AllowNoRuntimeRegister != nil {
		return *p.AllowNoRuntimeRegister
	}
	return p.Kind == KindSNP
}

// SNPRule is what a SEV-SNP attestation report must show.
type SNPRule struct {
	// Measurement lists the accepted launch measurements. Required.
	Measurement HexList `yaml:"measurement"`
	// PolicyDebugAllowed accepts a guest policy that allows debugging.
	PolicyDebugAllowed bool `yaml:"policy_debug_allowed"`
	// AllowMigrateMA accepts a guest policy that allows a migration
	// agent (MIGRATE_MA), which can export the guest's memory.
	AllowMigrateMA bool `yaml:"allow_migrate_ma"`
	// MinTCB is the lowest acceptable TCB: both the reported TCB (what
	// the VCEK certifies, chosen by the host) and the current TCB (the
	// firmware running) must meet it. Absent: an all-zero TCB is refused.
	MinTCB *SNPTCB `yaml:"min_tcb"`
	// VMPL lists the VMPLs (0 to 3) the report may come from. Absent:
	// [0], the most privileged level, where the guest's kernel runs
	// without an SVSM.
	VMPL []uint8 `yaml:"vmpl"`
	// MinReportVersion is the lowest acceptable report format version
	// (absent: DefaultSNPMinReportVersion).
	MinReportVersion uint32 `yaml:"min_report_version"`
}

// DefaultSNPMinReportVersion is the lowest SEV-SNP report version accepted
// when the policy names none: version 2 added the current and committed
// TCB that min_tcb judges.
const DefaultSNPMinReportVersion = 2

// SNPTCB are the security patch levels (SVNs) of a SEV-SNP TCB version.
type SNPTCB struct {
	Bootloader uint8 `yaml:"bootloader"`
	TEE        uint8 `yaml:"tee"`
	SNP        uint8 `yaml:"snp"`
	Microcode  uint8 `yaml:"microcode"`
}

// TDXRule is what a TDX quote must show.
type TDXRule struct {
	// MRTD lists the accepted TD measurements. Required.
	MRTD HexList `yaml:"mrtd"`
	// AllowDebug accepts a debug TD (TD_ATTRIBUTES bit 0), whose memory
	// and state the host can read and change.
	AllowDebug bool `yaml:"allow_debug"`
	// MRSEAM lists the accepted TDX module measurements. Absent: any
	// module that passes mrsigner_seam and min_tee_tcb_svn, but never an
	// all-zero MRSEAM.
	MRSEAM HexList `yaml:"mrseam"`
	// MRSignerSEAM lists the accepted signers of the TDX module. Absent:
	// all zero, which is what a module signed by Intel shows.
	MRSignerSEAM HexList `yaml:"mrsigner_seam"`
	// MinTEETCBSVN (16 bytes) is the lowest acceptable TEE_TCB_SVN, each
	// byte compared with the quote's byte at the same position. Absent:
	// an all-zero TEE_TCB_SVN is refused.
	MinTEETCBSVN HexBytes `yaml:"min_tee_tcb_svn"`
	// RTMRs maps an RTMR index (0 to 2) to its accepted values (48 bytes
	// each). RTMR[3] carries devattest's boot binding (replayed from the
	// event log) and may not be pinned. Absent: not judged (the line says
	// so).
	RTMRs map[uint8]HexList `yaml:"rtmrs"`
	// TDAttributes and XFAM (8 bytes each, as in the quote) must be
	// exactly these values when set. Absent: no bit outside those the
	// architecture allows (TDAttributesAllowed, XFAMFixed0/XFAMFixed1).
	TDAttributes HexBytes `yaml:"td_attributes"`
	XFAM         HexBytes `yaml:"xfam"`
}

// TPMRule is what a vTPM quote must show.
type TPMRule struct {
	// AKPublic lists the trusted attestation keys (TPMT_PUBLIC, hex).
	// Required: a quote proves nothing about a key nobody vouched for.
	AKPublic HexList `yaml:"ak_public"`
	// QuotedPCRs are PCRs the quote must cover besides the boot-binding
	// PCR (DefaultTPMPCR), which it must always cover.
	QuotedPCRs []uint8 `yaml:"quoted_pcrs"`
	// PCRs maps a PCR index (0 to 23) to its accepted SHA-256 bank values.
	// The boot-binding PCR is checked by replaying the event log and may
	// not be pinned. Absent: not judged (the line says so).
	PCRs map[uint8]HexList `yaml:"pcrs"`
}

// deviceEventKinds are the device event kinds a guest reports (the
// guest's Event constants, written again here because policy never
// imports the guest).
var deviceEventKinds = []string{"attested", "measurement changed", "failed", "session lost", "re-established", EventTDISP}

// DefaultTPMPCR is the vTPM PCR that carries the boot binding.
const DefaultTPMPCR = platform.DefaultTPMPCR

// DefaultTDXRTMR is the TDX RTMR that carries the boot binding.
const DefaultTDXRTMR = platform.DefaultTDXRTMR

// Roots are files (relative to the policy file) with platform roots.
type Roots struct {
	// SNPARK and SNPASK are the AMD ARK and ASK (PEM or DER).
	SNPARK string `yaml:"snp_ark"`
	SNPASK string `yaml:"snp_ask"`
	// TDXRoot is the root CA of the TDX PCK chain (PEM or DER).
	TDXRoot string `yaml:"tdx_root"`

	// Loaded DER certificates (empty when the file is not named).
	SNPARKDER, SNPASKDER, TDXRootDER []byte `yaml:"-"`
}

// HexBytes is a byte string written in hex.
type HexBytes []byte

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *HexBytes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a hex string", n.Line)
	}
	b, err := decodeHex(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*h = b
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (h HexBytes) MarshalYAML() (any, error) { return hex.EncodeToString(h), nil }

// HexList is one hex string or a list of them.
type HexList [][]byte

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *HexList) UnmarshalYAML(n *yaml.Node) error {
	var nodes []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		nodes = []*yaml.Node{n}
	case yaml.SequenceNode:
		nodes = n.Content
	default:
		return fmt.Errorf("line %d: want a hex string or a list of them", n.Line)
	}
	out := make([][]byte, 0, len(nodes))
	for _, c := range nodes {
		var h HexBytes
		if err := h.UnmarshalYAML(c); err != nil {
			return err
		}
		out = append(out, h)
	}
	*l = out
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (l HexList) MarshalYAML() (any, error) {
	out := make([]string, len(l))
	for i, b := range l {
		out[i] = hex.EncodeToString(b)
	}
	return out, nil
}

// Contains reports whether v is one of the list's values.
func (l HexList) Contains(v []byte) bool {
	for _, b := range l {
		if bytes.Equal(b, v) {
			return true
		}
	}
	return false
}

func decodeHex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty hex string")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad hex %q: %w", s, err)
	}
	return b, nil
}

// Load reads, parses and checks the policy file at path and loads every
// file it names.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	p, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse parses and checks a policy; files it names are relative to dir.
func Parse(b []byte, dir string) (*Policy, error) {
	return parse(b, dir, false)
}

// ParseDevices parses and checks a policy of device rules only, as a
// guest enforces on its own devices: it has no platform block (a policy
// inside the measured image cannot name that image's own measurement) and
// no guest_policy_digest (which would have to cover itself).
func ParseDevices(b []byte, dir string) (*Policy, error) {
	return parse(b, dir, true)
}

func parse(b []byte, dir string, devicesOnly bool) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrPolicy, MaxPolicySize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrPolicy, yamlerr.Explain(b, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrPolicy)
	}
	if devicesOnly {
		var top map[string]any
		_ = yaml.Unmarshal(b, &top) // it decoded above
		if _, ok := top["platform"]; ok {
			return nil, fmt.Errorf("%w: platform: a policy of device rules has no platform block", ErrPolicy)
		}
		if p.GuestPolicyDigest != nil {
			return nil, fmt.Errorf("%w: guest_policy_digest: a policy of device rules has none (it would have to cover itself)", ErrPolicy)
		}
	}
	if err := p.check(dir, devicesOnly); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	p.digest = sha256.Sum256(b)
	return &p, nil
}

func (p *Policy) check(dir string, devicesOnly bool) error {
	if len(p.Devices) == 0 {
		return errors.New("devices: no device rules")
	}
	seen := map[string]bool{}
	defaults := 0
	for i := range p.Devices {
		r := &p.Devices[i]
		key := fmt.Sprintf("devices[%d]", i)
		switch {
		case r.Default && r.Label != "":
			return fmt.Errorf("%s: a rule has either a label or default: true, not both", key)
		case r.Default:
			defaults++
			if defaults > 1 {
				return fmt.Errorf("%s: more than one default rule", key)
			}
		case r.Label == "":
			return fmt.Errorf("%s.label: missing (or set default: true)", key)
		case seen[r.Label]:
			return fmt.Errorf("%s.label: %q repeated", key, r.Label)
		default:
			seen[r.Label] = true
		}
		if err := r.loadReferenceValues(key, dir, p.ReferenceValuesAnchor); err != nil {
			return err
		}
		if err := r.check(key, dir); err != nil {
			return err
		}
	}
	if devicesOnly {
		return nil
	}
	return p.Platform.check(dir)
}

func (r *DeviceRule) check(key, dir string) error {
	if len(r.TrustAnchors) == 0 {
		return fmt.Errorf("%s.trust_anchors: missing", key)
	}
	for j, f := range r.TrustAnchors {
		certs, err := secchan.LoadCertificates(resolve(dir, f))
		if err != nil {
			return fmt.Errorf("%s.trust_anchors[%d]: %w", key, j, err)
		}
		r.anchors = append(r.anchors, certs...)
	}
	if r.MinSPDMVersion != "" {
		v, err := secchan.ParseVersion(r.MinSPDMVersion)
		if err != nil {
			return fmt.Errorf("%s.min_spdm_version: %w", key, err)
		}
		r.minVersion = v
	}
	var err error
	if r.asym, err = parseAlgs(r.AllowedAsym, secchan.ParseAsymList); err != nil {
		return fmt.Errorf("%s.allowed_asym: %w", key, err)
	}
	if r.hash, err = parseAlgs(r.AllowedHash, secchan.ParseHashList); err != nil {
		return fmt.Errorf("%s.allowed_hash: %w", key, err)
	}
	if pin := r.Pin; pin != nil {
		if pin.LeafPublicKeySHA256 == nil && pin.ChainSHA256 == nil {
			return fmt.Errorf("%s.pin: give leaf_public_key_sha256 or chain_sha256", key)
		}
		if pin.LeafPublicKeySHA256 != nil && len(pin.LeafPublicKeySHA256) != 32 {
			return fmt.Errorf("%s.pin.leaf_public_key_sha256: %d bytes, want 32", key, len(pin.LeafPublicKeySHA256))
		}
		if pin.ChainSHA256 != nil && len(pin.ChainSHA256) != 32 {
			return fmt.Errorf("%s.pin.chain_sha256: %d bytes, want 32", key, len(pin.ChainSHA256))
		}
	}
	if err := r.checkTDISPRule(key); err != nil {
		return err
	}
	for j, e := range r.AllowEvents {
		if !slices.Contains(deviceEventKinds, e) {
			return fmt.Errorf("%s.allow_events[%d]: %q (want one of %s)", key, j, e, strings.Join(deviceEventKinds, ", "))
		}
	}
	idx := map[uint8]bool{}
	for j, m := range r.ReferenceMeasurements {
		k := fmt.Sprintf("%s.reference_measurements[%d]", key, j)
		if m.Index == 0 || m.Index == 0xFF {
			return fmt.Errorf("%s.index: %d is reserved (want 1 to 254)", k, m.Index)
		}
		if idx[m.Index] {
			return fmt.Errorf("%s.index: %d repeated", k, m.Index)
		}
		idx[m.Index] = true
		if len(m.Digest) == 0 {
			return fmt.Errorf("%s.digest: missing", k)
		}
	}
	if c := r.Certificates; c != nil {
		if c.MaxChainLength < 0 {
			return fmt.Errorf("%s.certificates.max_chain_length: %d (want 1 or more)", key, c.MaxChainLength)
		}
		if c.ValidityTime != "" {
			t, err := time.Parse(time.RFC3339, c.ValidityTime)
			if err != nil {
				return fmt.Errorf("%s.certificates.validity_time: want RFC 3339 (2025-01-02T15:04:05Z): %w", key, err)
			}
			c.validAt = t
		}
	}
	return nil
}

func parseAlgs(names []string, parse func(string) (uint32, error)) (uint32, error) {
	var v uint32
	for _, n := range names {
		b, err := parse(n)
		if err != nil {
			return 0, err
		}
		v |= b
	}
	return v, nil
}

func (p *PlatformRule) check(dir string) error {
	switch p.Kind {
	case KindSNP, KindTDX, KindTPM:
	case "":
		return errors.New("platform.kind: missing (snp, tdx or tpm)")
	default:
		return fmt.Errorf("platform.kind: %q (want snp, tdx or tpm)", p.Kind)
	}
	if p.SNP != nil && p.Kind != KindSNP || p.TDX != nil && p.Kind != KindTDX || p.TPM != nil && p.Kind != KindTPM {
		return fmt.Errorf("platform: a section for another kind than %q", p.Kind)
	}
	switch {
	case p.Kind == KindSNP && (p.SNP == nil || len(p.SNP.Measurement) == 0):
		return errors.New("platform.snp.measurement: missing")
	case p.Kind == KindTDX && (p.TDX == nil || len(p.TDX.MRTD) == 0):
		return errors.New("platform.tdx.mrtd: missing")
	case p.Kind == KindTPM && (p.TPM == nil || len(p.TPM.AKPublic) == 0):
		return errors.New("platform.tpm.ak_public: missing")
	}
	if s := p.SNP; s != nil {
		for i, m := range s.Measurement {
			if len(m) != 48 {
				return fmt.Errorf("platform.snp.measurement[%d]: %d bytes, want 48", i, len(m))
			}
		}
		for i, v := range s.VMPL {
			if v > 3 {
				return fmt.Errorf("platform.snp.vmpl[%d]: %d (want 0 to 3)", i, v)
			}
			if slices.Index(s.VMPL, v) != i {
				return fmt.Errorf("platform.snp.vmpl[%d]: %d repeated", i, v)
			}
		}
	}
	if t := p.TDX; t != nil {
		for _, l := range []struct {
			key  string
			list HexList
		}{{"mrtd", t.MRTD}, {"mrseam", t.MRSEAM}, {"mrsigner_seam", t.MRSignerSEAM}} {
			for i, m := range l.list {
				if len(m) != 48 {
					return fmt.Errorf("platform.tdx.%s[%d]: %d bytes, want 48", l.key, i, len(m))
				}
			}
		}
		if _, ok := t.RTMRs[DefaultTDXRTMR]; ok {
			return fmt.Errorf("platform.tdx.rtmrs: RTMR %d carries the boot binding, which is checked by replaying the event log; do not pin it", DefaultTDXRTMR)
		}
		if err := checkRegisters("platform.tdx.rtmrs", "RTMR", t.RTMRs, 3, 48); err != nil {
			return err
		}
		if t.MinTEETCBSVN != nil && len(t.MinTEETCBSVN) != 16 {
			return fmt.Errorf("platform.tdx.min_tee_tcb_svn: %d bytes, want 16", len(t.MinTEETCBSVN))
		}
		if t.TDAttributes != nil && len(t.TDAttributes) != 8 {
			return fmt.Errorf("platform.tdx.td_attributes: %d bytes, want 8", len(t.TDAttributes))
		}
		if t.XFAM != nil && len(t.XFAM) != 8 {
			return fmt.Errorf("platform.tdx.xfam: %d bytes, want 8", len(t.XFAM))
		}
	}
	if t := p.TPM; t != nil {
		if _, ok := t.PCRs[DefaultTPMPCR]; ok {
			return fmt.Errorf("platform.tpm.pcrs: PCR %d carries the boot binding, which is checked by replaying the event log; do not pin it", DefaultTPMPCR)
		}
		if err := checkRegisters("platform.tpm.pcrs", "PCR", t.PCRs, 23, 32); err != nil {
			return err
		}
		for i, v := range t.QuotedPCRs {
			if v > 23 {
				return fmt.Errorf("platform.tpm.quoted_pcrs[%d]: %d (want 0 to 23)", i, v)
			}
			if slices.Index(t.QuotedPCRs, v) != i {
				return fmt.Errorf("platform.tpm.quoted_pcrs[%d]: %d repeated", i, v)
			}
		}
	}
	return p.loadRoots(dir)
}

// loadRoots loads the roots files into anchors and notes a test root
// among those of the policy's kind.
func (p *PlatformRule) loadRoots(dir string) error {
	r := &p.Roots
	if (r.SNPARK == "") != (r.SNPASK == "") {
		return errors.New("platform.roots: snp_ark and snp_ask go together")
	}
	for _, f := range []struct {
		key, path string
		dst       *[]byte
	}{{"snp_ark", r.SNPARK, &r.SNPARKDER}, {"snp_ask", r.SNPASK, &r.SNPASKDER}, {"tdx_root", r.TDXRoot, &r.TDXRootDER}} {
		if f.path == "" {
			continue
		}
		certs, err := secchan.LoadCertificates(resolve(dir, f.path))
		if err != nil {
			return fmt.Errorf("platform.roots.%s: %w", f.key, err)
		}
		if len(certs) != 1 {
			return fmt.Errorf("platform.roots.%s: %d certificates, want 1", f.key, len(certs))
		}
		*f.dst = certs[0].Raw
		if name, ok := platform.TestRoot(certs[0]); ok && p.testRoot == "" && (p.Kind == KindTDX) == (f.key == "tdx_root") && p.Kind != KindTPM {
			p.testRoot = name
		}
	}
	if r.SNPARKDER != nil {
		p.anchors.SNP = &platform.SNPRoots{ARK: r.SNPARKDER, ASK: r.SNPASKDER}
	}
	if r.TDXRootDER != nil {
		c, _ := x509.ParseCertificate(r.TDXRootDER) // parsed above
		p.anchors.TDX = x509.NewCertPool()
		p.anchors.TDX.AddCert(c)
	}
	return nil
}

// checkRegisters checks a map of register index to accepted values.
func checkRegisters(key, name string, m map[uint8]HexList, maxIndex uint8, size int) error {
	for _, i := range slices.Sorted(maps.Keys(m)) {
		if i > maxIndex {
			return fmt.Errorf("%s: %s %d out of range (0 to %d)", key, name, i, maxIndex)
		}
		if len(m[i]) == 0 {
			return fmt.Errorf("%s[%d]: no accepted value", key, i)
		}
		for j, v := range m[i] {
			if len(v) != size {
				return fmt.Errorf("%s[%d][%d]: %d bytes, want %d", key, i, j, len(v), size)
			}
		}
	}
	return nil
}

func resolve(dir, path string) string {
	if filepath.IsAbs(path) || dir == "" {
		return path
	}
	return filepath.Join(dir, path)
}

// Rule returns the rule for label: its own, else the default rule.
func (p *Policy) Rule(label string) (*DeviceRule, bool) {
	var def *DeviceRule
	for i := range p.Devices {
		r := &p.Devices[i]
		if r.Label == label && !r.Default {
			return r, true
		}
		if r.Default {
			def = r
		}
	}
	return def, def != nil
}

// Anchors returns the rule's loaded trust anchors.
func (r *DeviceRule) Anchors() []*x509.Certificate { return r.anchors }
