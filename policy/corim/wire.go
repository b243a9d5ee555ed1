package corim

import (
	"github.com/fxamacker/cbor/v2"
)

// The CBOR shapes of the parts of a CoRIM this package reads and writes.

type corimMap struct {
	ID      any           `cbor:"0,keyasint"`
	Tags    []cbor.RawTag `cbor:"1,keyasint"`
	Profile *cbor.RawTag  `cbor:"3,keyasint,omitempty"`
}

type comidMap struct {
	TagIdentity tagIdentity `cbor:"1,keyasint"`
	Triples     triplesMap  `cbor:"4,keyasint"`
}

type tagIdentity struct {
	ID any `cbor:"0,keyasint"`
}

type triplesMap struct {
	ReferenceValues []referenceTriple `cbor:"0,keyasint,omitempty"`
}

type referenceTriple struct {
	_            struct{} `cbor:",toarray"`
	Environment  environmentMap
	Measurements []measurementMap
}

type environmentMap struct {
	Class    *classMap `cbor:"0,keyasint,omitempty"`
	Instance any       `cbor:"1,keyasint,omitempty"`
	Group    any       `cbor:"2,keyasint,omitempty"`
}

type classMap struct {
	ClassID *cbor.RawTag `cbor:"0,keyasint,omitempty"`
}

type measurementMap struct {
	Key any       `cbor:"0,keyasint,omitempty"`
	Val valuesMap `cbor:"1,keyasint"`
}

type valuesMap struct {
	Digests []Digest     `cbor:"2,keyasint,omitempty"`
	Raw     *cbor.RawTag `cbor:"4,keyasint,omitempty"`
	Name    *string      `cbor:"11,keyasint,omitempty"`
}

type metaMap struct {
	Signer signerMap `cbor:"0,keyasint"`
}

type signerMap struct {
	Name string `cbor:"0,keyasint"`
}

var (
	encMode = func() cbor.EncMode {
		em, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err) // static options
		}
		return em
	}()
	decMode = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			IndefLength:      cbor.IndefLengthForbidden,
			MaxNestedLevels:  16,
			MaxArrayElements: 4096,
			MaxMapPairs:      4096,
			UTF8:             cbor.UTF8RejectInvalid,
		}.DecMode()
		if err != nil {
			panic(err) // static options
		}
		return dm
	}()
)
