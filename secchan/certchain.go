package secchan

// The SPDM certificate chain format (DSP0274 §10.7.1, Table 33): Length
// (2 bytes, the whole chain including this header), Reserved (2), RootHash
// (H bytes: the digest of the root certificate), then the DER certificates,
// root (or the one the root signed) first, leaf last.

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MaxCertChainSize is the largest chain the 16-bit Length can describe.
const MaxCertChainSize = 0xFFFF

// CertChain is a parsed SPDM certificate chain.
type CertChain struct {
	Raw      []byte // the whole chain as received; DIGESTS hashes this
	RootHash []byte
	Certs    []*x509.Certificate // in chain order, leaf last
}

// Leaf is the device's certificate.
func (c *CertChain) Leaf() *x509.Certificate { return c.Certs[len(c.Certs)-1] }

// ParseCertChain parses the SPDM chain format with hash h.
func ParseCertChain(raw []byte, h crypto.Hash) (*CertChain, error) {
	hs := h.Size()
	if len(raw) < 4+hs {
		return nil, fmt.Errorf("%w: chain of %d bytes is shorter than its %d-byte header", ErrCertChain, len(raw), 4+hs)
	}
	if n := int(binary.LittleEndian.Uint16(raw)); n != len(raw) {
		return nil, fmt.Errorf("%w: Length field says %d bytes, chain has %d", ErrCertChain, n, len(raw))
	}
	if raw[2] != 0 || raw[3] != 0 {
		return nil, fmt.Errorf("%w: reserved bytes are %02x%02x", ErrCertChain, raw[2], raw[3])
	}
	certs, err := x509.ParseCertificates(raw[4+hs:])
	if err != nil {
		return nil, fmt.Errorf("%w: certificates: %w", ErrCertChain, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no certificates", ErrCertChain)
	}
	return &CertChain{Raw: append([]byte(nil), raw...), RootHash: append([]byte(nil), raw[4:4+hs]...), Certs: certs}, nil
}

// BuildCertChain assembles the SPDM chain format from DER certificates
// (root or its first child first, leaf last) and the root's DER.
func BuildCertChain(h crypto.Hash, rootDER []byte, certsDER ...[]byte) ([]byte, error) {
	d := h.New()
	d.Write(rootDER)
	body := bytes.Join(certsDER, nil)
	n := 4 + h.Size() + len(body)
	if n > MaxCertChainSize {
		return nil, fmt.Errorf("secchan: certificate chain of %d bytes exceeds %d", n, MaxCertChainSize)
	}
	out := binary.LittleEndian.AppendUint16(nil, uint16(n))
	out = append(out, 0, 0)
	out = append(out, d.Sum(nil)...)
	return append(out, body...), nil
}

// ChainValidator decides whether a device's certificate chain is trusted.
// The default, AnchorValidator, checks it against fixed trust anchors; the
// policy package provides one with certificate rules and identity pinning.
type ChainValidator interface {
	ValidateChain(chain *CertChain, h crypto.Hash) error
}

// AnchorValidator validates a chain to one of Roots with crypto/x509,
// checks that the leaf may authenticate a responder (CheckResponderLeaf),
// and that the chain's RootHash is the digest of the root it reached.
type AnchorValidator struct {
	Roots []*x509.Certificate
	// Now is the validation time (time.Now when nil).
	Now func() time.Time
	// LeafCheck judges the leaf (CheckResponderLeaf when nil;
	// CheckRequesterLeaf for a requester's chain, NewRequesterValidator).
	LeafCheck func(*x509.Certificate) error
}

// ValidateChain implements ChainValidator.
func (v *AnchorValidator) ValidateChain(chain *CertChain, h crypto.Hash) error {
	if len(v.Roots) == 0 {
		return fmt.Errorf("%w: no trust anchors configured", ErrCertChain)
	}
	roots := x509.NewCertPool()
	for _, r := range v.Roots {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain.Certs[:len(chain.Certs)-1] {
		inter.AddCert(c)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	verified, err := chain.Leaf().Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		// SPDM device certificates carry SPDM-specific or no extended key
		// usages; the policy package applies the certificate profile.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCertChain, err)
	}
	check := v.LeafCheck
	if check == nil {
		check = CheckResponderLeaf
	}
	if err := check(chain.Leaf()); err != nil {
		return err
	}
	// Every carried certificate must stand on the path that verified,
	// and that path's root must be the one RootHash names: a carried
	// root that is not the anchor, or a certificate that verification
	// did not use, is refused rather than shown as if it were checked.
	for _, path := range verified {
		root := path[len(path)-1]
		d := h.New()
		d.Write(root.Raw)
		if !bytes.Equal(d.Sum(nil), chain.RootHash) {
			continue
		}
		if onPath(chain.Certs, path) {
			return nil
		}
	}
	if len(verified) > 0 && !onPath(chain.Certs, verified[0]) {
		return fmt.Errorf("%w: the chain carries a certificate (%q) that is not on the path to the trust anchor", ErrCertChain, strangerIn(chain.Certs, verified[0]).Subject)
	}
	return fmt.Errorf("%w: RootHash does not match the trust anchor the chain reaches", ErrCertChain)
}

// onPath reports whether every certificate of carried is on path.
func onPath(carried, path []*x509.Certificate) bool {
	return strangerIn(carried, path) == nil
}

// strangerIn returns the first carried certificate not on path.
func strangerIn(carried, path []*x509.Certificate) *x509.Certificate {
	for _, c := range carried {
		found := false
		for _, p := range path {
			if bytes.Equal(c.Raw, p.Raw) {
				found = true
				break
			}
		}
		if !found {
			return c
		}
	}
	return nil
}

// ErrNoAnchor is returned when a flow needs a ChainValidator and has none.
var ErrNoAnchor = errors.New("secchan: no chain validator: give trust anchors")
