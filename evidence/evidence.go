// Package evidence is the combined-report format that the guest service
// produces and a verifier (package policy, devattest verify) consumes.
//
// A report (format devattest-report/2) is a small JSON container around
// one signed body:
//
//	{
//	  "version":   "devattest-report/2",
//	  "body_type": "devattest-body/1+json",
//	  "body":      "<the body's exact bytes, as a JSON string>",
//	  "platform":  { "report": "<hex>", "error": "..." }
//	}
//
// The body (Body) holds everything a verdict judges or inspect shows: the
// owner's nonce, the guest's policy digest, the boot-binding outcome, the
// boot section, each device's evidence with its events, and the times.
// The platform report's 64-byte user data is UserData(body type, body),
// so a verifier hashes the bytes it received and only then parses them.
// The platform block stays outside the body (the platform report signs
// the body's digest, so it cannot be inside it); its error text is
// unsigned and shown as such. Every byte string in the body is hex.
//
// Boot binding (DESIGN.md, "Evidence and binding"): at boot the guest
// extends a runtime register with EvidenceDigest(policy digest) and then
// EvidenceDigest(device bytes) for each device, where the device bytes
// are that device's exact JSON inside the body (Body.DeviceBytes). A
// report taken later carries those boot-time bytes in Body.Boot.
//
// The body type names the body's encoding, and is hashed with it, so the
// body can later become a standard claims set (EAT) without changing what
// is bound. This package neither produces nor judges evidence: it
// defines the format, the binding digests and a strict, bounded decoder.
package evidence

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// FormatVersion is the value of Report.Version this package reads and
// writes; BodyTypeJSON the one body type it knows.
const (
	FormatVersion = "devattest-report/2"
	BodyTypeJSON  = "devattest-body/1+json"
)

// Device status values.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"
)

// Boot binding outcomes (Body.BootBinding).
const (
	BootBindingExtended   = "extended"
	BootBindingNoRegister = "no runtime register"
	BootBindingFailed     = "failed"
	BootBindingNone       = "none" // no device evidence to extend
)

// Report is the container as carried on the wire.
type Report struct {
	// Version is FormatVersion.
	Version string `json:"version"`
	// BodyType is BodyTypeJSON.
	BodyType string `json:"body_type"`
	// Body is the signed body's exact bytes.
	Body BodyBytes `json:"body"`
	// Platform is outside the signed body.
	Platform Platform `json:"platform"`

	body *Body // parsed by Unmarshal
}

// BodyBytes are a body's exact bytes, carried as a JSON string (the body
// is UTF-8 JSON), so that JSON tools keep the bytes the digest covers.
type BodyBytes []byte

// MarshalJSON implements json.Marshaler.
func (b BodyBytes) MarshalJSON() ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("evidence: body is not UTF-8")
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *BodyBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	*b = []byte(s)
	return nil
}

// Platform is the platform report that signs the body's digest. None of
// it is inside the body: Report is verified by its own signature, and
// Error is the guest's unsigned word for why there is no report.
type Platform struct {
	// Report is the platform report as policy/platform's
	// Report.MarshalBinary encodes it (raw report or quote,
	// certificates, PCR values, event log).
	Report Hex `json:"report,omitempty"`
	// Error is why the guest could not take the platform report.
	Error string `json:"error,omitempty"`
}

// Body is the signed body, parsed.
type Body struct {
	// Nonce is the workload owner's nonce.
	Nonce Hex `json:"nonce"`
	// Created is when the guest assembled the body (UTC).
	Created time.Time `json:"created"`
	// Platform is the platform kind: "snp", "tdx" or "tpm".
	Platform string `json:"platform"`
	// PolicyDigest is the digest of the guest's own policy (trust anchors,
	// reference values).
	PolicyDigest Hex `json:"policy_digest,omitempty"`
	// BootBinding is one of the BootBinding constants: what the guest
	// did to the runtime register at boot.
	BootBinding string `json:"boot_binding"`
	// BootError says why the boot binding failed.
	BootError string `json:"boot_error,omitempty"`
	// Boot, in a report taken after boot (the guest daemon's on demand),
	// is what the guest bound into the runtime register at boot. Absent
	// when the report's own devices are what was bound.
	Boot *Boot `json:"boot,omitempty"`
	// Devices are the device evidence, one per configured device, in
	// configuration order, failed devices included.
	Devices []Device `json:"devices"`
	// EATDA is the devices as an EAT-DA claims set (CBOR, package
	// evidence/eatda): the guest encodes it from this body's fields
	// before sealing, and a verifier requires exactly that encoding.
	// Absent when the body cannot be one (a nonce outside 8..64 bytes,
	// no device that passed, a chain from a slot other than 0).
	EATDA Hex `json:"eat_da,omitempty"`

	// deviceBytes[i] is the exact JSON of Devices[i] inside the body.
	deviceBytes [][]byte
}

// DeviceBytes returns the exact JSON of each device as it stands in the
// body: what the boot binding hashes. Set by Marshal and by parsing.
func (b *Body) DeviceBytes() [][]byte { return b.deviceBytes }

// Boot is the boot-time policy digest and device evidence, exactly as
// they were extended into the runtime register.
type Boot struct {
	PolicyDigest Hex `json:"policy_digest,omitempty"`
	// Devices are the boot-time devices' exact JSON.
	Devices []json.RawMessage `json:"devices"`
}

// DeviceBytes returns the boot-time devices' exact JSON, as the boot
// binding hashes them (nil for a nil section).
func (b *Boot) DeviceBytes() [][]byte {
	if b == nil {
		return nil
	}
	out := make([][]byte, len(b.Devices))
	for i, d := range b.Devices {
		out[i] = d
	}
	return out
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
	// host can change this list, and no verifier may rely on it.
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
	CertChain Hex `json:"cert_chain,omitempty"`
	// Measurements is the signed GET_MEASUREMENTS exchange.
	Measurements *Measurements `json:"measurements,omitempty"`
	// Session is the SPDM secure session the measurements and IDE_KM ran in.
	Session *Session `json:"session,omitempty"`
	// IDE is the IDE_KM state after keying (never keys).
	IDE *IDE `json:"ide,omitempty"`
	// TDISP is the TEE device interface the guest locked, read and
	// started over the session (TDISP 1.0), absent when it ran no TDISP.
	TDISP *TDISP `json:"tdisp,omitempty"`
	// Events are what the guest saw happen to the device since its
	// previous report: measurement changes, lost and re-established
	// sessions.
	Events []DeviceEvent `json:"events,omitempty"`
	// Started and Finished bound the device's attestation (UTC).
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
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
	Nonce Hex `json:"nonce"`
	// Request is the GET_MEASUREMENTS message.
	Request Hex `json:"request"`
	// Response is the MEASUREMENTS message, signature included.
	Response Hex `json:"response"`
	// Transcript is what the signature covers, before hashing.
	Transcript Hex `json:"transcript"`
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
	Raw   bool `json:"raw"`
	Value Hex  `json:"value"`
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
	// RootPort names who programmed the host side (RootPortSimulated in
	// tests and demos).
	RootPort string    `json:"root_port"`
	Steps    []IDEStep `json:"steps"`
}

// RootPortSimulated is IDE.RootPort when the root-port half of the
// stream is the simulated link, which protects nothing.
const RootPortSimulated = "simulated root port"

// IDEStep is one step of the IDE_KM check.
type IDEStep struct {
	Name   string `json:"name"`
	Result string `json:"result"` // "ok", "skipped: ...", "failed: ..."
}

// TDISP is a TEE device interface (TDI) as the guest left it: which
// interface, the LOCK_INTERFACE parameters it asked for, the device
// interface report exactly as the device sent it (the whole
// DEVICE_INTERFACE_REPORT structure, put together from its portions; a
// verifier decodes it with tdisp.ParseReport) and the TDI state the guest
// last read ("CONFIG_UNLOCKED", "CONFIG_LOCKED", "RUN", "ERROR"). The
// report came inside the authenticated secure session; the START nonce
// never appears.
type TDISP struct {
	FunctionID          uint32 `json:"function_id"`
	LockFlags           uint16 `json:"lock_flags"`
	DefaultStream       uint8  `json:"default_stream"`
	MMIOReportingOffset uint64 `json:"mmio_reporting_offset"`
	InterfaceReport     Hex    `json:"interface_report"`
	State               string `json:"state"`
}

// DeviceEvent is one thing that happened to a device between reports.
type DeviceEvent struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Hex is a byte string written in lower-case hex in JSON.
type Hex []byte

// MarshalJSON implements json.Marshaler.
func (h Hex) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+2*len(h))
	out = append(out, '"')
	out = hex.AppendEncode(out, h)
	return append(out, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler: lower-case hex only, so
// that one byte string has one spelling.
func (h *Hex) UnmarshalJSON(data []byte) error {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return fmt.Errorf("%w: want a hex string", ErrEncoding)
	}
	s := data[1 : len(data)-1]
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: %q is not lower-case hex", ErrEncoding, c)
		}
	}
	out := make([]byte, len(s)/2)
	if _, err := hex.Decode(out, s); err != nil {
		return fmt.Errorf("%w: %v", ErrEncoding, err)
	}
	*h = out
	return nil
}

// String is the lower-case hex spelling.
func (h Hex) String() string { return hex.EncodeToString(h) }

// Domain-separation labels, each ending in a zero byte.
const (
	userDataLabel = "devattest-report/2 user data\x00"
	digestLabel   = "devattest-report/1 device evidence\x00"
)

// UserData is the 64-byte user data of the platform report:
//
//	SHA-512( "devattest-report/2 user data" 0x00
//	       ‖ u16be(len(bodyType)) ‖ bodyType
//	       ‖ u64be(len(body)) ‖ body )
//
// Both parts are length-prefixed, so no two different inputs hash the
// same bytes; the body carries the owner's nonce.
func UserData(bodyType string, body []byte) [64]byte {
	h := sha512.New()
	h.Write([]byte(userDataLabel))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(bodyType))))
	h.Write([]byte(bodyType))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(body))))
	h.Write(body)
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// UserData is UserData(r.BodyType, r.Body).
func (r *Report) UserData() [64]byte { return UserData(r.BodyType, r.Body) }

// EvidenceDigest is the digest the boot binding extends into a runtime
// register for one item (the policy digest, or one device's bytes):
//
//	SHA-256( "devattest-report/1 device evidence" 0x00 ‖ item )
func EvidenceDigest(item []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(digestLabel))
	h.Write(item)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// BootLog is the list of digests a boot binding extends, in order: the
// policy digest, then each device's bytes.
func BootLog(policyDigest []byte, devices [][]byte) [][]byte {
	pd := EvidenceDigest(policyDigest)
	out := [][]byte{pd[:]}
	for _, b := range devices {
		d := EvidenceDigest(b)
		out = append(out, d[:])
	}
	return out
}
