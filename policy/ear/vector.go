package ear

import (
	"strings"

	"github.com/devattest/devattest/policy"
)

// Vector is the AR4SI trustworthiness vector (draft-ietf-rats-ar4si);
// 0 is "no claim". Values used (AR4SI's): 2 affirming (trustworthy
// instance, approved configuration, approved executables, genuine
// hardware, encrypted memory, trusted sources); 32 warning (unsafe
// configuration or hardware, untrusted sources); 33 unrecognized
// executables; 96 contraindicated; 97 unrecognized instance or hardware;
// 99 cryptographic validation failed.
//
// Mapping of checks to claims (a passing check gives 2 unless it says it
// was skipped, which gives no claim, or carries a warning, which gives 32;
// several checks on one claim keep the worst):
//
//   - instance-identity: certificate chain, trust anchors (fail 97), pin,
//     certificate rules (fail 96); the TPM attestation key (fail 97).
//   - configuration: rule, spdm version, algorithms, signed negotiation,
//     session, ide, events, present, and the platform's debug, TCB,
//     attribute and guest policy checks (fail 96).
//   - executables: reference measurements (fail 33, as Veraison's
//     da-spdm); the platform's launch measurement, mrtd, mrseam,
//     mrsigner_seam, rtmrs, pcrs, boot binding and event log (fail 33).
//   - hardware: status, measurement request, nonce and blocks (fail 96),
//     transcript and measurement signature (fail 99); the platform
//     report, kind and test roots (fail 99 for the report, else 96).
//   - runtime-opaque: the platform kind is SEV-SNP or TDX (2).
//   - sourced-data: the report's format, nonce and EAT-DA claims set
//     (fail 96).
type Vector struct {
	InstanceIdentity int8 `json:"instance-identity,omitempty"`
	Configuration    int8 `json:"configuration,omitempty"`
	Executables      int8 `json:"executables,omitempty"`
	FileSystem       int8 `json:"file-system,omitempty"`
	Hardware         int8 `json:"hardware,omitempty"`
	RuntimeOpaque    int8 `json:"runtime-opaque,omitempty"`
	StorageOpaque    int8 `json:"storage-opaque,omitempty"`
	SourcedData      int8 `json:"sourced-data,omitempty"`
}

type claim int

const (
	instance claim = iota
	configuration
	executables
	hardware
	runtimeOpaque
	sourcedData
)

// checkClaims maps a check to its claim and the value of its failure.
var checkClaims = map[string]struct {
	c    claim
	fail int8
}{
	policy.CheckChain: {instance, 97}, policy.CheckAnchors: {instance, 97}, policy.CheckPin: {instance, 96},
	policy.CheckCertRules: {instance, 96}, policy.CheckTPMAK: {instance, 97},

	policy.CheckReference: {executables, 33}, policy.CheckSNPMeasurement: {executables, 33}, policy.CheckTDXMRTD: {executables, 33},
	policy.CheckTDXMRSEAM: {executables, 33}, policy.CheckTDXMRSignerSEAM: {executables, 33}, policy.CheckTDXRTMRs: {executables, 33},
	policy.CheckTPMPCRs: {executables, 33}, policy.CheckTPMQuotedPCRs: {executables, 33}, policy.CheckBootBinding: {executables, 33},
	policy.CheckEventLog: {executables, 33},

	policy.CheckStatus: {hardware, 96}, policy.CheckRequest: {hardware, 96}, policy.CheckNonce: {hardware, 96},
	policy.CheckBlocks: {hardware, 96}, policy.CheckTranscript: {hardware, 99}, policy.CheckSignature: {hardware, 99},
	policy.CheckPlatform: {hardware, 99}, policy.CheckKind: {hardware, 96}, policy.CheckTestRoots: {hardware, 96},

	policy.CheckFormat: {sourcedData, 96}, policy.CheckOwnerNonce: {sourcedData, 96}, policy.CheckEATDA: {sourcedData, 96},
}

// add folds one check's result into v.
func (v *Vector) add(r policy.Result) {
	m, ok := checkClaims[r.Check]
	if !ok {
		m.c, m.fail = configuration, 96
	}
	var val int8
	switch {
	case !r.OK:
		val = m.fail
	case strings.HasPrefix(r.Reason, "skipped"):
		return
	case strings.HasPrefix(r.Reason, "WARNING"):
		val = 32
	default:
		val = 2
	}
	v.set(m.c, val)
	if r.Check == policy.CheckKind && r.OK && (r.Reason == policy.KindSNP || r.Reason == policy.KindTDX) {
		v.set(runtimeOpaque, 2)
	}
}

func (v *Vector) set(c claim, val int8) {
	p := map[claim]*int8{instance: &v.InstanceIdentity, configuration: &v.Configuration, executables: &v.Executables,
		hardware: &v.Hardware, runtimeOpaque: &v.RuntimeOpaque, sourcedData: &v.SourcedData}[c]
	if worse(val, *p) {
		*p = val
	}
}

// tier ranks a claim value: none, affirming, warning, contraindicated.
func tier(v int8) int {
	switch {
	case v >= -1 && v <= 1:
		return 0
	case v >= -31 && v <= 31:
		return 1
	case v >= -95 && v <= 95:
		return 2
	}
	return 3
}

func worse(a, b int8) bool {
	if tier(a) != tier(b) {
		return tier(a) > tier(b)
	}
	return a > b
}

func (v *Vector) worstTier() string {
	w := 0
	for _, x := range []int8{v.InstanceIdentity, v.Configuration, v.Executables, v.FileSystem, v.Hardware, v.RuntimeOpaque, v.StorageOpaque, v.SourcedData} {
		w = max(w, tier(x))
	}
	return [...]string{"none", StatusAffirming, StatusWarning, StatusContraindicated}[w]
}
