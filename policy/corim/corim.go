// Package corim reads and writes the reference values of SPDM devices as a
// CoRIM (draft-ietf-rats-corim): one CoMID whose reference-value triples
// name each device model by its environment class-id and list the
// expected measurement blocks, keyed by SPDM measurement index. This is
// the shape Veraison's da-spdm scheme reads (profile
// "tag:linaro.org,2025:device-spdm#1.0.0", class-id bytes
// "spdm:<vendor>:<model>" as evidence/eatda.ClassID derives it, mkey = the
// SPDM index, a measurement name, and digests or a raw value).
//
// A CoRIM is trusted only when signed: a COSE_Sign1 (RFC 9052) whose
// protected header carries the x5chain (RFC 9360) of a signer that
// chains to an anchor the policy names. Unsigned CoRIMs are read only
// when the caller explicitly allows it.
package corim

import (
	"errors"
	"fmt"
)

// Constants of the format.
const (
	// Profile is the CoRIM profile Veraison's da-spdm scheme registers.
	Profile = "tag:linaro.org,2025:device-spdm#1.0.0"
	// ContentType is the COSE content type of a signed CoRIM's payload.
	ContentType = "application/rim+cbor"
	// MediaTypeSigned is what a signed CoRIM file is sent as.
	MediaTypeSigned = `application/rim+cose; profile="` + Profile + `"`

	tagUnsignedCorim = 501
	tagComid         = 506
	tagBytes         = 560
	tagURI           = 32
	headerCorimMeta  = 8

	// MaxSize bounds a CoRIM file.
	MaxSize = 4 << 20
)

// Errors; every error wraps one of them.
var (
	ErrDecode    = errors.New("corim: malformed CoRIM")
	ErrUntrusted = errors.New("corim: CoRIM not trusted")
)

// RIM is the reference values of a CoRIM.
type RIM struct {
	// ID is the corim-id.
	ID string
	// References are the reference-value triples, one per environment.
	References []Reference
}

// Reference is the expected measurements of one device model.
type Reference struct {
	ClassID      string
	Measurements []Measurement
}

// Measurement is one expected measurement block: the SPDM index, the
// name Veraison compares, and either digests (IANA named-information
// algorithm ids) or a raw value.
type Measurement struct {
	Index   uint8
	Name    string
	Digests []Digest
	Raw     []byte
}

// Digest is [alg, value] with alg an IANA named-information hash id.
type Digest struct {
	_     struct{} `cbor:",toarray"`
	Alg   uint64
	Value []byte
}

// Values are the accepted block values: every digest's value, or the raw
// value; what a YAML reference_measurements entry lists.
func (m *Measurement) Values() [][]byte {
	if m.Raw != nil {
		return [][]byte{m.Raw}
	}
	out := make([][]byte, len(m.Digests))
	for i, d := range m.Digests {
		out[i] = d.Value
	}
	return out
}

// Reference returns the reference of class id, or an error naming the
// classes the CoRIM has.
func (r *RIM) Reference(classID string) (*Reference, error) {
	var names []string
	for i := range r.References {
		if r.References[i].ClassID == classID {
			return &r.References[i], nil
		}
		names = append(names, fmt.Sprintf("%q", r.References[i].ClassID))
	}
	return nil, fmt.Errorf("the CoRIM has no reference values for class %q (it has %v)", classID, names)
}
