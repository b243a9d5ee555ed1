// Package eatda is the EAT-DA claims set: the Device Assignment Token of
// draft-poirier-rats-eat-da (the revision followed is named by
// DraftRevision), a CBOR claims set with one "spdm" submodule per device
// that an EAT verifier such as Veraison's da-spdm scheme reads.
//
// The guest encodes the devices of every report's body with EncodeBody
// and carries the result in evidence.Body.EATDA, so the platform report's
// user data covers it; a verifier re-encodes the body's devices and
// requires the same bytes, so the token says nothing the verdict did not
// judge. The encoding is deterministic (RFC 8949 §4.2.1 core
// deterministic encoding): one body has one claims set.
//
// What the draft has no claim for (devattest's policy digest, platform,
// boot binding, failed devices; per device the label, session, IDE state,
// events and blocks outside the draft's index range) is carried in private
// claims (key PrivateKey, below -65536 as RFC 8392 reserves for private
// use), at the top level and inside each device's submodule. Not in a
// devattest submodule: Veraison's scheme refuses any submodule whose
// profile is not the SPDM one.
//
// This package imports evidence and secchan's message decoders; it
// neither produces evidence nor judges it.
package eatda

import "errors"

// DraftRevision is the draft and commit whose CDDL this package follows.
const DraftRevision = "draft-poirier-rats-eat-da-10 (CDDL at rats-device-attestation/draft-poirier-rats-eat-da 9684efa, 2026-07-16)"

// Profiles and the media type of an unsigned claims set.
const (
	ProfileDevice       = "tag:linaro.org,2025:device#1.0.0"
	ProfileDeviceSPDM   = "tag:linaro.org,2025:device-spdm#1.0.0"
	ProfilePCIeLegacy   = "tag:linaro.org,2025:device-pcie-legacy#1.0.0"
	MediaTypeUCCS       = `application/eat-ucs+cbor; eat_profile="` + ProfileDevice + `"`
	MediaTypeVeraisonDA = `application/eat-ucs+json; eat_profile="` + ProfileDevice + `"`
)

// Claim keys (draft §4 and its IANA section; EAT for 10, 265 and 266).
const (
	KeyNonce           = 10
	KeyProfile         = 265
	KeySubmods         = 266
	KeyMeasurements    = 3802
	KeyCertificates    = 3803
	KeyVCA             = 3804
	KeyChallenge       = 3807
	KeyInterfaceReport = 3808
	// PrivateKey holds devattest's own claims.
	PrivateKey = -65537
)

// Limits the decoder enforces.
const (
	MaxTokenSize  = 8 << 20
	MinNonceSize  = 8
	MaxNonceSize  = 64
	maxDepth      = 12
	maxPairs      = 4096
	maxArrayElems = 4096
	// Measurement block indices the draft allows (1..239).
	minBlockID = 1
	maxBlockID = 239
	// maxComponentType is structured-measurement-manifest (10).
	maxComponentType = 10
	// CombinedPrefixSize is the combined SPDM prefix (DSP0274 1.2+).
	CombinedPrefixSize = 100
)

// Errors; every error wraps one of them.
var (
	ErrEncode  = errors.New("eatda: cannot encode")
	ErrDecode  = errors.New("eatda: malformed claims set")
	ErrInvalid = errors.New("eatda: claims set violates the profile")
)

// Token is the DAT claims set (the draft's `dat`).
type Token struct {
	Profile string                 `cbor:"265,keyasint"`
	Nonce   []byte                 `cbor:"10,keyasint"`
	Submods map[string]*SPDMClaims `cbor:"266,keyasint"`
	// Devattest are devattest's private claims.
	Devattest *Private `cbor:"-65537,keyasint,omitempty"`
	// Other names the submodules of another known profile (PCIe
	// legacy), which this package does not read.
	Other []string `cbor:"-"`
}

// SPDMClaims is one device's `spdm-claims`.
type SPDMClaims struct {
	Profile         string           `cbor:"265,keyasint"`
	Measurements    *Measurements    `cbor:"3802,keyasint,omitempty"`
	Certificates    map[uint8][]byte `cbor:"3803,keyasint,omitempty"`
	VCA             []byte           `cbor:"3804,keyasint,omitempty"`
	Challenge       *Signature       `cbor:"3807,keyasint,omitempty"`
	InterfaceReport *InterfaceReport `cbor:"3808,keyasint,omitempty"`
	Devattest       *DevicePrivate   `cbor:"-65537,keyasint,omitempty"`
}

// Measurements is `spdm-measurements`: blocks by index, and the draft's
// optional "signature" entry (devattest writes the signature in the
// challenge claim, 3807, which is where Veraison expects it).
type Measurements struct {
	Blocks    map[uint8]Measurement
	Signature *Signature
}

// Measurement is `spdm-measurement`: a component type and either a
// digest or a raw value.
type Measurement struct {
	ComponentType uint8   `cbor:"1,keyasint"`
	Digest        *Digest `cbor:"2,keyasint,omitempty"`
	Raw           []byte  `cbor:"3,keyasint,omitzero"`
}

// Digest is `digest = [alg, val]`; Alg is a uint (the draft's
// hash-algorithm-type) or, on input, text.
type Digest struct {
	_   struct{} `cbor:",toarray"`
	Alg any
	Val []byte
}

// Signature is `spdm-signature`: what a third party needs to check the
// device's signature over L1 (or M1) itself.
type Signature struct {
	Slot           uint8  `cbor:"1,keyasint"`
	RequesterNonce []byte `cbor:"2,keyasint"`
	ResponderNonce []byte `cbor:"3,keyasint"`
	CombinedPrefix []byte `cbor:"4,keyasint"`
	IL1            []byte `cbor:"5,keyasint"`
	BaseHashAlgo   uint64 `cbor:"6,keyasint"`
	Signature      []byte `cbor:"7,keyasint"`
}

// InterfaceReport is `tdisp-device-interface-report`. The draft's
// mmio-ranges map repeats key 1 for every range, which CBOR maps cannot
// hold; one range is all it can carry.
type InterfaceReport struct {
	InterfaceInfo  []byte              `cbor:"1,keyasint,omitempty"`
	MSIXControl    []byte              `cbor:"2,keyasint,omitempty"`
	LNRControl     []byte              `cbor:"3,keyasint,omitempty"`
	TPHControl     []byte              `cbor:"4,keyasint,omitempty"`
	MMIORanges     map[uint8]MMIORange `cbor:"5,keyasint,omitempty"`
	DeviceSpecific []byte              `cbor:"6,keyasint,omitempty"`
}

// MMIORange is `mmio-range`.
type MMIORange struct {
	First4KPage    []byte          `cbor:"1,keyasint"`
	NumberOf4KPage []byte          `cbor:"2,keyasint"`
	Attributes     RangeAttributes `cbor:"3,keyasint"`
}

// RangeAttributes is `range-attributes`.
type RangeAttributes struct {
	Bits    []byte `cbor:"1,keyasint"`
	RangeID []byte `cbor:"2,keyasint"`
}

// Private are devattest's top-level claims: what the body says beyond
// the devices' SPDM artefacts.
type Private struct {
	PolicyDigest []byte         `cbor:"1,keyasint,omitempty"`
	Platform     string         `cbor:"2,keyasint"`
	BootBinding  string         `cbor:"3,keyasint"`
	BootError    string         `cbor:"4,keyasint,omitempty"`
	Failed       []FailedDevice `cbor:"5,keyasint,omitempty"`
	Created      string         `cbor:"6,keyasint"`
	BootDigests  [][]byte       `cbor:"7,keyasint,omitempty"`
}

// FailedDevice is a device that failed a step: it has no submodule (its
// artefacts were not accepted), only this record.
type FailedDevice struct {
	Label      string `cbor:"1,keyasint"`
	FailedStep string `cbor:"2,keyasint"`
	Error      string `cbor:"3,keyasint,omitempty"`
}

// DevicePrivate are devattest's claims about one device.
type DevicePrivate struct {
	Label       string       `cbor:"1,keyasint"`
	SPDMVersion string       `cbor:"2,keyasint"`
	InSession   bool         `cbor:"3,keyasint"`
	Session     *Session     `cbor:"4,keyasint,omitempty"`
	IDE         *IDE         `cbor:"5,keyasint,omitempty"`
	Events      []Event      `cbor:"6,keyasint,omitempty"`
	OtherBlocks []OtherBlock `cbor:"7,keyasint,omitempty"`
	Started     string       `cbor:"8,keyasint"`
	Finished    string       `cbor:"9,keyasint"`
}

// Session is the secure session's public state.
type Session struct {
	ID    uint32 `cbor:"1,keyasint"`
	AEAD  string `cbor:"2,keyasint"`
	Ended bool   `cbor:"3,keyasint"`
}

// IDE is the IDE_KM outcome (never keys).
type IDE struct {
	Port       uint8       `cbor:"1,keyasint"`
	Stream     uint8       `cbor:"2,keyasint"`
	KeySet     string      `cbor:"3,keyasint"`
	SubStreams []string    `cbor:"4,keyasint"`
	RootPort   string      `cbor:"5,keyasint"`
	Steps      [][2]string `cbor:"6,keyasint"`
}

// Event is one device event: [time, kind, message].
type Event struct {
	_       struct{} `cbor:",toarray"`
	Time    string
	Kind    string
	Message string
}

// OtherBlock is a measurement block the draft's claim cannot hold (index
// outside 1..239 or an unknown component type): [index, type, raw, value].
type OtherBlock struct {
	_     struct{} `cbor:",toarray"`
	Index uint8
	Type  uint8
	Raw   bool
	Value []byte
}
