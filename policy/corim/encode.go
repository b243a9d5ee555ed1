package corim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/evidence/eatda"
)

// veraisonNames are the measurement names Veraison's da-spdm scheme gives
// an EAT-DA component type: it numbers SPDM's component types from 1
// (its 0 is "unknown"), so the name it derives for the draft's type t is
// its name for t, not SPDM's; type 0 (immutable ROM) it refuses. A CoRIM
// for Veraison must carry the name Veraison derives, or nothing matches.
var veraisonNames = []string{
	0: "immutable-rom", // Veraison refuses component type 0; this is the draft's name
	1: "immutable-rom", 2: "mutable-firmware", 3: "hardware-config", 4: "firmware-config",
	5: "freeform-manifest", 6: "device-mode", 7: "mutable-firmware-version", 8: "mutable-firmware-svn",
	9: "hash-extended-measurement", 10: "informational",
}

// ianaHash is the IANA named-information id of an SPDM hash name.
var ianaHash = map[string]uint64{
	"SHA_256": 1, "SHA_384": 7, "SHA_512": 8, "SHA3_256": 10, "SHA3_384": 11, "SHA3_512": 12,
}

// FromDevices builds the reference values of the devices that passed:
// one reference per device, its class-id derived from the submodule name
// its EAT-DA token gives it, and every measurement block that token
// carries (indices 1..239), digests under the measurement hash.
func FromDevices(id string, devices []evidence.Device) (*RIM, error) {
	r := &RIM{ID: id}
	seen := map[string]string{}
	for i := range devices {
		d := &devices[i]
		if !d.OK() {
			continue
		}
		body := &evidence.Body{Nonce: make([]byte, eatda.MinNonceSize), Devices: []evidence.Device{*d}}
		tok, err := eatda.FromBody(body)
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", d.Label, err)
		}
		for name, c := range tok.Submods {
			class, err := eatda.ClassID(name)
			if err != nil {
				return nil, fmt.Errorf("device %q: %w", d.Label, err)
			}
			if prev, dup := seen[class]; dup {
				return nil, fmt.Errorf("devices %q and %q have the same class %q", prev, d.Label, class)
			}
			seen[class] = d.Label
			ref := Reference{ClassID: class}
			if c.Measurements == nil {
				return nil, fmt.Errorf("device %q: no measurement blocks the token can carry", d.Label)
			}
			alg, ok := ianaHash[d.Algorithms.MeasurementHash]
			for _, b := range d.Measurements.Blocks {
				mb, ok2 := c.Measurements.Blocks[b.Index]
				if !ok2 {
					continue // outside the draft's index range
				}
				m := Measurement{Index: b.Index, Name: veraisonNames[mb.ComponentType]}
				if mb.Raw != nil {
					m.Raw = bytes.Clone(mb.Raw)
				} else {
					if !ok {
						return nil, fmt.Errorf("device %q: measurement hash %q has no IANA id", d.Label, d.Algorithms.MeasurementHash)
					}
					m.Digests = []Digest{{Alg: alg, Value: bytes.Clone(mb.Digest.Val)}}
				}
				ref.Measurements = append(ref.Measurements, m)
			}
			r.References = append(r.References, ref)
		}
	}
	if len(r.References) == 0 {
		return nil, fmt.Errorf("no device passed: nothing to write")
	}
	return r, nil
}

// SetContentID sets r.ID (the CoRIM's and its CoMID's identity) to prefix,
// a space and the first 8 bytes of SHA-256 over r encoded with prefix as
// its ID: CoRIMs with other references never share an ID (a store such
// as Veraison's refuses a second CoRIM under an ID it holds), and the
// same references under the same prefix always get the same one.
func (r *RIM) SetContentID(prefix string) error {
	r.ID = prefix
	b, err := r.MarshalUnsigned()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	r.ID = fmt.Sprintf("%s %x", prefix, sum[:8])
	return nil
}

// MarshalUnsigned encodes r as a tagged unsigned CoRIM (#6.501) with one
// CoMID.
func (r *RIM) MarshalUnsigned() ([]byte, error) {
	if len(r.References) == 0 {
		return nil, fmt.Errorf("corim: no references")
	}
	var triples []referenceTriple
	for _, ref := range r.References {
		if len(ref.Measurements) == 0 {
			return nil, fmt.Errorf("corim: class %q has no measurements", ref.ClassID)
		}
		t := referenceTriple{Environment: environmentMap{Class: &classMap{ClassID: &cbor.RawTag{Number: tagBytes, Content: mustEnc([]byte(ref.ClassID))}}}}
		for _, m := range ref.Measurements {
			name := m.Name
			mm := measurementMap{Key: uint64(m.Index), Val: valuesMap{Name: &name}}
			if m.Raw != nil {
				mm.Val.Raw = &cbor.RawTag{Number: tagBytes, Content: mustEnc(m.Raw)}
			} else {
				mm.Val.Digests = m.Digests
			}
			t.Measurements = append(t.Measurements, mm)
		}
		triples = append(triples, t)
	}
	comid, err := encMode.Marshal(comidMap{TagIdentity: tagIdentity{ID: r.ID}, Triples: triplesMap{ReferenceValues: triples}})
	if err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	cm := corimMap{
		ID:      r.ID,
		Tags:    []cbor.RawTag{{Number: tagComid, Content: mustEnc(comid)}},
		Profile: &cbor.RawTag{Number: tagURI, Content: mustEnc(Profile)},
	}
	inner, err := encMode.Marshal(cm)
	if err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	return encMode.Marshal(cbor.RawTag{Number: tagUnsignedCorim, Content: inner})
}

func mustEnc(v any) []byte {
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(err) // byte and text strings always encode
	}
	return b
}

// Sign wraps an unsigned CoRIM in a tagged COSE_Sign1 signed by key, with
// chain (signer first) as the protected x5chain and the signer's subject
// as the CoRIM meta's signer name.
func Sign(unsigned []byte, key crypto.Signer, chain []*x509.Certificate) ([]byte, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("corim: no signing certificate")
	}
	alg, err := algorithmFor(key.Public())
	if err != nil {
		return nil, err
	}
	if !publicKeyEqual(chain[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("corim: the key is not the signing certificate's")
	}
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	meta, err := encMode.Marshal(metaMap{Signer: signerMap{Name: chain[0].Subject.String()}})
	if err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	var x5 any = chain[0].Raw
	if len(chain) > 1 {
		ders := make([]any, len(chain))
		for i, c := range chain {
			ders[i] = c.Raw
		}
		x5 = ders
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(alg)
	msg.Headers.Protected[cose.HeaderLabelContentType] = ContentType
	msg.Headers.Protected[int64(headerCorimMeta)] = meta
	msg.Headers.Protected[cose.HeaderLabelX5Chain] = x5
	msg.Payload = unsigned
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	return msg.MarshalCBOR()
}

// algorithmFor is the COSE algorithm for a signer's public key.
func algorithmFor(pub crypto.PublicKey) (cose.Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return cose.AlgorithmES256, nil
		case elliptic.P384():
			return cose.AlgorithmES384, nil
		case elliptic.P521():
			return cose.AlgorithmES512, nil
		}
	case ed25519.PublicKey:
		return cose.AlgorithmEdDSA, nil
	}
	return 0, fmt.Errorf("corim: signing key %T is not supported (ECDSA P-256/384/521 or Ed25519)", pub)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}
