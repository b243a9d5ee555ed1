package corim

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// Options say what Read trusts.
type Options struct {
	// Anchors are the certificates a signer must chain to (or be).
	Anchors []*x509.Certificate
	// AllowUnsigned reads an unsigned CoRIM (#6.501) without any check
	// of who wrote it.
	AllowUnsigned bool
	// Now is the time certificates must be valid at (zero: time.Now()).
	Now time.Time
}

// Read parses a CoRIM file: a signed CoRIM (tagged COSE_Sign1) is
// verified against o.Anchors; an unsigned one is refused unless
// o.AllowUnsigned.
func Read(b []byte, o Options) (*RIM, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrDecode, len(b), MaxSize)
	}
	switch {
	case bytes.HasPrefix(b, []byte{0xd2}): // #6.18, COSE_Sign1
		payload, err := verifySigned(b, o)
		if err != nil {
			return nil, err
		}
		return ParseUnsigned(payload)
	case bytes.HasPrefix(b, []byte{0xd9, 0x01, 0xf5}): // #6.501
		if !o.AllowUnsigned {
			return nil, fmt.Errorf("%w: the CoRIM is unsigned (allow_unsigned_reference_values: true reads it anyway)", ErrUntrusted)
		}
		return ParseUnsigned(b)
	}
	return nil, fmt.Errorf("%w: neither a signed CoRIM (COSE_Sign1, tag 18) nor an unsigned one (tag 501)", ErrDecode)
}

// verifySigned checks the COSE_Sign1 and its x5chain and returns the
// payload.
func verifySigned(b []byte, o Options) ([]byte, error) {
	if len(o.Anchors) == 0 {
		return nil, fmt.Errorf("%w: a signed CoRIM needs a trust anchor (reference_values_anchor)", ErrUntrusted)
	}
	if err := decMode.Wellformed(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(b); err != nil {
		return nil, fmt.Errorf("%w: COSE_Sign1: %w", ErrDecode, err)
	}
	p := msg.Headers.Protected
	if ct, ok := p[cose.HeaderLabelContentType]; !ok || ct != ContentType {
		return nil, fmt.Errorf("%w: content type %v (want %q)", ErrDecode, ct, ContentType)
	}
	chain, err := x5chain(p[cose.HeaderLabelX5Chain])
	if err != nil {
		return nil, err
	}
	if _, ok := msg.Headers.Unprotected[cose.HeaderLabelX5Chain]; ok {
		return nil, fmt.Errorf("%w: an unprotected x5chain", ErrDecode)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := chainsTo(chain, o.Anchors, now); err != nil {
		return nil, err
	}
	alg, err := p.Algorithm()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	want, err := algorithmFor(chain[0].PublicKey)
	if err != nil || want != alg {
		return nil, fmt.Errorf("%w: algorithm %v does not fit the signer's key", ErrUntrusted, alg)
	}
	v, err := cose.NewVerifier(alg, chain[0].PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	if err := msg.Verify(nil, v); err != nil {
		return nil, fmt.Errorf("%w: the signature does not verify with the x5chain's signer: %w", ErrUntrusted, err)
	}
	if len(msg.Payload) == 0 {
		return nil, fmt.Errorf("%w: a detached or empty payload", ErrDecode)
	}
	return msg.Payload, nil
}

// x5chain parses the x5chain header: one certificate, or an array with
// the signer first (RFC 9360).
func x5chain(v any) ([]*x509.Certificate, error) {
	var ders [][]byte
	switch v := v.(type) {
	case []byte:
		ders = [][]byte{v}
	case []any:
		for _, e := range v {
			der, ok := e.([]byte)
			if !ok {
				return nil, fmt.Errorf("%w: an x5chain element is %T, not a byte string", ErrDecode, e)
			}
			ders = append(ders, der)
		}
	case nil:
		return nil, fmt.Errorf("%w: no x5chain in the protected header", ErrUntrusted)
	default:
		return nil, fmt.Errorf("%w: x5chain is %T", ErrDecode, v)
	}
	if len(ders) == 0 || len(ders) > 8 {
		return nil, fmt.Errorf("%w: x5chain of %d certificates", ErrDecode, len(ders))
	}
	out := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: x5chain[%d]: %w", ErrDecode, i, err)
		}
		out[i] = c
	}
	return out, nil
}

// chainsTo accepts a signer that is an anchor itself or chains to one
// through the rest of chain.
func chainsTo(chain []*x509.Certificate, anchors []*x509.Certificate, now time.Time) error {
	signer := chain[0]
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, a := range anchors {
		if a.Equal(signer) {
			if now.Before(signer.NotBefore) || now.After(signer.NotAfter) {
				return fmt.Errorf("%w: the signing certificate is not valid at %s", ErrUntrusted, now.UTC().Format(time.RFC3339))
			}
			return nil
		}
		roots.AddCert(a)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("%w: the signer %q does not chain to a reference-values anchor: %w", ErrUntrusted, signer.Subject, err)
	}
	return nil
}

// ParseUnsigned parses a tagged unsigned CoRIM and the reference-value
// triples of its CoMIDs, strictly.
func ParseUnsigned(b []byte) (*RIM, error) {
	var top cbor.RawTag
	if err := decMode.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if top.Number != tagUnsignedCorim {
		return nil, fmt.Errorf("%w: tag %d (want %d, unsigned CoRIM)", ErrDecode, top.Number, tagUnsignedCorim)
	}
	var cm corimMap
	if err := decMode.Unmarshal(top.Content, &cm); err != nil {
		return nil, fmt.Errorf("%w: corim-map: %w", ErrDecode, err)
	}
	id, err := tagID(cm.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: corim-id: %v", ErrDecode, err)
	}
	if cm.Profile != nil {
		var prof string
		if cm.Profile.Number != tagURI || decMode.Unmarshal(cm.Profile.Content, &prof) != nil || prof != Profile {
			return nil, fmt.Errorf("%w: profile is not %q", ErrDecode, Profile)
		}
	}
	r := &RIM{ID: id}
	seen := map[string]bool{}
	for i, t := range cm.Tags {
		if t.Number != tagComid {
			continue // CoSWID, CoTS: not reference values of devices
		}
		var content []byte
		if err := decMode.Unmarshal(t.Content, &content); err != nil {
			return nil, fmt.Errorf("%w: tags[%d]: a CoMID is a byte string: %w", ErrDecode, i, err)
		}
		var c comidMap
		if err := decMode.Unmarshal(content, &c); err != nil {
			return nil, fmt.Errorf("%w: tags[%d]: %w", ErrDecode, i, err)
		}
		for j, rt := range c.Triples.ReferenceValues {
			ref, err := reference(rt)
			if err != nil {
				return nil, fmt.Errorf("%w: tags[%d] reference-values[%d]: %v", ErrDecode, i, j, err)
			}
			if seen[ref.ClassID] {
				return nil, fmt.Errorf("%w: class %q has more than one reference triple", ErrDecode, ref.ClassID)
			}
			seen[ref.ClassID] = true
			r.References = append(r.References, ref)
		}
	}
	if len(r.References) == 0 {
		return nil, fmt.Errorf("%w: no reference values", ErrDecode)
	}
	return r, nil
}

func tagID(v any) (string, error) {
	switch v := v.(type) {
	case string:
		if v != "" {
			return v, nil
		}
	case []byte:
		if len(v) == 16 {
			return fmt.Sprintf("%x", v), nil
		}
	}
	return "", fmt.Errorf("want text or a 16-byte UUID, got %T", v)
}

func reference(rt referenceTriple) (Reference, error) {
	env := rt.Environment
	if env.Instance != nil || env.Group != nil {
		return Reference{}, fmt.Errorf("the environment has an instance or group (only a class is allowed)")
	}
	if env.Class == nil || env.Class.ClassID == nil || env.Class.ClassID.Number != tagBytes {
		return Reference{}, fmt.Errorf("the environment has no class-id of tagged bytes (#6.560)")
	}
	var class []byte
	if err := decMode.Unmarshal(env.Class.ClassID.Content, &class); err != nil || !utf8.Valid(class) || len(class) == 0 {
		return Reference{}, fmt.Errorf("the class-id is not non-empty UTF-8 bytes")
	}
	ref := Reference{ClassID: string(class)}
	if len(rt.Measurements) == 0 {
		return Reference{}, fmt.Errorf("class %q has no measurements", class)
	}
	seen := map[uint8]bool{}
	for k, mm := range rt.Measurements {
		idx, ok := mm.Key.(uint64)
		if !ok || idx < 1 || idx > 254 {
			return Reference{}, fmt.Errorf("measurement %d: mkey %v is not an SPDM index 1..254", k, mm.Key)
		}
		if seen[uint8(idx)] {
			return Reference{}, fmt.Errorf("measurement %d: index %d repeated", k, idx)
		}
		seen[uint8(idx)] = true
		m := Measurement{Index: uint8(idx)}
		if mm.Val.Name != nil {
			m.Name = *mm.Val.Name
		}
		switch {
		case mm.Val.Raw != nil && mm.Val.Digests != nil:
			return Reference{}, fmt.Errorf("measurement %d: both digests and a raw value", k)
		case mm.Val.Raw != nil:
			if mm.Val.Raw.Number != tagBytes || decMode.Unmarshal(mm.Val.Raw.Content, &m.Raw) != nil || m.Raw == nil {
				return Reference{}, fmt.Errorf("measurement %d: raw-value is not tagged bytes (#6.560)", k)
			}
		case len(mm.Val.Digests) > 0:
			for _, d := range mm.Val.Digests {
				if len(d.Value) == 0 {
					return Reference{}, fmt.Errorf("measurement %d: an empty digest", k)
				}
			}
			m.Digests = mm.Val.Digests
		default:
			return Reference{}, fmt.Errorf("measurement %d: neither digests nor a raw value", k)
		}
		ref.Measurements = append(ref.Measurements, m)
	}
	return ref, nil
}
