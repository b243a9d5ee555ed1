// Package evidence is the combined-report format that the guest service
// produces and a verifier (package policy, devattest verify) consumes: one
// JSON document, versioned by Report.Version, with every signed or hashed
// object carried as the exact bytes that were signed or hashed (base64 in
// JSON), next to a parsed view for people and tools.
//
// This package neither produces nor judges evidence (DESIGN.md,
// "Packages"): it defines the format, the canonical device evidence bytes,
// the freshness binding (UserData) and a strict decoder.
//
// Binding (DESIGN.md, "Evidence and binding"):
//
//  1. Each device's evidence is DeviceEvidenceBytes(device): the compact
//     encoding/json encoding of the Device object. The report carries those
//     exact bytes in Report.Evidence (in the order of Report.Devices), so a
//     verifier hashes the bytes it received before it parses them.
//  2. Freshness: the platform report's 64-byte user data is
//     UserData(Report.Nonce, Report.Evidence), see UserData.
//  3. Boot binding: the guest extends a runtime register with
//     EvidenceDigest(evidence bytes) of each device and records the outcome
//     in Platform.BootBinding. A later report carries those boot-time
//     bytes in Report.Boot.
package evidence

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"time"
)

// FormatVersion is the value of Report.Version this package reads and writes.
const FormatVersion = "devattest-report/1"

// Device status values.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"
)

// Boot binding outcomes (Platform.BootBinding).
const (
	BootBindingExtended   = "extended"
	BootBindingNoRegister = "no runtime register"
	BootBindingFailed     = "failed"
	BootBindingNone       = "none" // no device evidence to extend
)

// Report is the combined report: device evidence, the platform report that
// binds it, and what the guest enforced.
type Report struct {
	// Version is FormatVersion.
	Version string `json:"version"`
	// Nonce is the workload owner's nonce.
	Nonce []byte `json:"nonce"`
	// Devices are the parsed device evidence, one per configured device, in
	// configuration order, failed devices included (Status "failed").
	Devices []Device `json:"devices"`
	// Evidence[i] is DeviceEvidenceBytes(Devices[i]): the exact bytes that
	// UserData and the boot binding hash. CheckEvidence (run by Unmarshal)
	// requires each to decode strictly to Devices[i].
	Evidence [][]byte `json:"evidence"`
	// Platform is the platform report that binds the evidence.
	Platform Platform `json:"platform"`
	// PolicyDigest is the digest of the guest's own policy (trust anchors,
	// reference values), when the guest enforced one.
	PolicyDigest []byte `json:"policy_digest,omitempty"`
	// Boot, in a report taken after boot (the guest daemon's on demand),
	// is what the guest bound into the runtime register at boot: the
	// event log's digests are of Boot's bytes, not of this report's
	// fresh evidence. Absent when the report's own evidence is what was
	// bound.
	Boot *Boot `json:"boot,omitempty"`
	// Created is when the report was assembled (UTC).
	Created time.Time `json:"created"`
}

// Device is one device's evidence. A device that failed any step has Status
// StatusFailed, FailedStep and Error set, and carries whatever was
// collected before the failure; it is never recorded as passed.
type Device struct {
	// Label is what the guest calls the device (e.g. its BDF).
	Label string `json:"label"`
	// Status is StatusOK or StatusFailed.
	Status string `json:"status"`
	// FailedStep names the step that failed ("connect", "GET_CERTIFICATE",
	// ...), empty when Status is StatusOK.
	FailedStep string `json:"failed_step,omitempty"`
	// Error is the failure as text.
	Error string `json:"error,omitempty"`
	// Protocols are the DOE protocols the device listed in discovery, as
	// the host delivered them: DOE discovery is not authenticated, so a
	// host can change this list (the tamper matrix shows it), and no
	// verifier may rely on it. It is here for people debugging.
	Protocols []string `json:"protocols,omitempty"`
	// SPDMVersion is the negotiated SPDM version ("1.2").
	SPDMVersion string `json:"spdm_version,omitempty"`
	// Algorithms are the negotiated algorithms.
	Algorithms *Algorithms `json:"algorithms,omitempty"`
	// Capabilities are the responder's capability flags, by name and as bits.
	Capabilities    []string `json:"capabilities,omitempty"`
	CapabilityFlags uint32   `json:"capability_flags,omitempty"`
	// CertSlot is the certificate slot used.
	CertSlot uint8 `json:"cert_slot"`
	// CertChain is the validated chain in SPDM format (DSP0274 §10.6.1:
	// length, reserved, root hash, DER certificates), as received.
	CertChain []byte `json:"cert_chain,omitempty"`
	// Measurements is the signed GET_MEASUREMENTS exchange.
	Measurements *Measurements `json:"measurements,omitempty"`
	// Session is the SPDM secure session the measurements and IDE_KM ran in.
	Session *Session `json:"session,omitempty"`
	// IDE is the IDE_KM state after keying (never keys).
	IDE *IDE `json:"ide,omitempty"`
	// Started and Finished bound the device's attestation (UTC).
	// Events are what the guest saw happen to the device since its
	// previous report: measurement changes, lost and re-established
	// sessions. They are part of the evidence bytes, so they are bound.
	Events   []DeviceEvent `json:"events,omitempty"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
}

// OK reports whether the device passed every step.
func (d *Device) OK() bool { return d.Status == StatusOK && d.FailedStep == "" && d.Error == "" }

// Algorithms are the negotiated algorithms, by name and as the SPDM bit
// values (DSP0274 §10.4 ALGORITHMS).
type Algorithms struct {
	BaseAsym            string `json:"base_asym"`
	BaseAsymBits        uint32 `json:"base_asym_bits"`
	BaseHash            string `json:"base_hash"`
	BaseHashBits        uint32 `json:"base_hash_bits"`
	MeasurementHash     string `json:"measurement_hash,omitempty"`
	MeasurementHashBits uint32 `json:"measurement_hash_bits,omitempty"`
	DHE                 string `json:"dhe,omitempty"`
	DHEBits             uint16 `json:"dhe_bits,omitempty"`
	AEAD                string `json:"aead,omitempty"`
	AEADBits            uint16 `json:"aead_bits,omitempty"`
}

// Measurements is one signed GET_MEASUREMENTS exchange. The signature is
// the tail of Response and covers hash(Transcript) (L1/L2, DSP0274
// §10.11): a verifier recomputes it with the leaf key of CertChain.
type Measurements struct {
	// InSession: the exchange ran inside Device.Session.
	InSession bool `json:"in_session"`
	// Nonce is the requester nonce in Request, derived from the owner's
	// nonce (see package guest).
	Nonce []byte `json:"nonce"`
	// Request is the GET_MEASUREMENTS message.
	Request []byte `json:"request"`
	// Response is the MEASUREMENTS message, signature included.
	Response []byte `json:"response"`
	// Transcript is what the signature covers, before hashing.
	Transcript []byte `json:"transcript"`
	// Blocks are the parsed measurement blocks.
	Blocks []Block `json:"blocks"`
}

// Block is one measurement block (DSP0274 Table 54).
type Block struct {
	Index uint8 `json:"index"`
	// Type is the DMTF value type by name; TypeCode the byte, with bit 7
	// (raw bit stream) cleared.
	Type     string `json:"type"`
	TypeCode uint8  `json:"type_code"`
	// Raw: Value is a raw bit stream rather than a digest.
	Raw bool `json:"raw"`
	// Value in hex.
	Value string `json:"value"`
}

// Session is an SPDM secure session's public state.
type Session struct {
	ID   uint32 `json:"id"`
	AEAD string `json:"aead"`
	// Ended: END_SESSION was acknowledged.
	Ended bool `json:"ended"`
}

// IDE is the IDE_KM outcome (PCIe Base 6.x §6.33.3): stream, key sets and
// sub-streams programmed, and each step of the check. Keys never appear.
type IDE struct {
	Port       uint8    `json:"port"`
	Stream     uint8    `json:"stream"`
	KeySet     string   `json:"key_set"`
	SubStreams []string `json:"sub_streams"`
	// RootPort names who programmed the host side ("simulated root port").
	RootPort string    `json:"root_port"`
	Steps    []IDEStep `json:"steps"`
}

// IDEStep is one step of the IDE_KM check.
type IDEStep struct {
	Name   string `json:"name"`
	Result string `json:"result"` // "ok", "skipped: ...", "failed: ..."
}

// Platform is the platform report binding the evidence.
type Platform struct {
	// Kind is "snp", "tdx" or "tpm".
	Kind string `json:"kind"`
	// Report is the platform report as guest/platform.Report.MarshalBinary
	// encodes it (raw report or quote, certificates, event log).
	Report []byte `json:"report,omitempty"`
	// EventLog is the boot event log, a readable copy of the one inside
	// Report (which is what a verifier replays).
	EventLog []Event `json:"event_log,omitempty"`
	// BootBinding is one of the BootBinding constants.
	BootBinding string `json:"boot_binding"`
	// Error is why the platform report or the boot binding failed.
	Error string `json:"error,omitempty"`
}

// Boot is the boot-time policy digest and device evidence bytes, exactly
// as they were extended into the runtime register (see Report.Boot).
type Boot struct {
	PolicyDigest []byte   `json:"policy_digest,omitempty"`
	Evidence     [][]byte `json:"evidence"`
}

// DeviceEvent is one thing that happened to a device between reports.
type DeviceEvent struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Event is one boot measurement.
type Event struct {
	Register    uint32 `json:"register"`
	Digest      []byte `json:"digest"`
	Description string `json:"description"`
}

// DeviceEvidenceBytes returns the canonical bytes of d: its compact
// encoding/json encoding (fields in declaration order, byte strings in
// standard base64, times in RFC 3339 with nanoseconds). These bytes, not a
// re-encoding, are what UserData and EvidenceDigest hash.
func DeviceEvidenceBytes(d Device) ([]byte, error) {
	return json.Marshal(d)
}

// Domain-separation labels, each ending in a zero byte.
const (
	userDataLabel = "devattest-report/1 user data\x00"
	digestLabel   = "devattest-report/1 device evidence\x00"
)

// UserData is the 64-byte user data of the platform report:
//
//	SHA-512( "devattest-report/1 user data" 0x00
//	       ‖ u32be(len(nonce)) ‖ nonce
//	       ‖ u32be(len(evidence))
//	       ‖ for each blob: u64be(len(blob)) ‖ blob )
//
// where nonce is the owner's nonce and evidence the device evidence bytes
// in report order. Every variable part is length-prefixed, so no two
// different inputs hash the same bytes.
func UserData(nonce []byte, evidence [][]byte) [64]byte {
	h := sha512.New()
	h.Write([]byte(userDataLabel))
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(nonce))))
	h.Write(nonce)
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(evidence))))
	for _, b := range evidence {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// EvidenceDigest is the digest the boot binding extends into a runtime
// register for one device:
//
//	SHA-256( "devattest-report/1 device evidence" 0x00 ‖ evidence )
func EvidenceDigest(evidence []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(digestLabel))
	h.Write(evidence)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
