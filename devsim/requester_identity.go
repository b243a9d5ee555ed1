package devsim

// A requester's identity for mutual authentication: what a guest, or a
// test, presents when a device asks who is talking to it.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"

	"github.com/devattest/devattest/secchan"
)

// NewRequesterIdentity makes a requester identity: a self-signed ECDSA
// P-384 root CA and a leaf certified for SPDM requester authentication
// (id-DMTF-eku-requester-auth) with key, or a fresh P-256 key when key is
// nil. It returns the root's DER (the anchor a responder needs) and the
// identity, its chain root first.
func NewRequesterIdentity(key crypto.Signer) (rootDER []byte, id secchan.Identity, err error) {
	if key == nil {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, id, err
		}
	}
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, id, err
	}
	rootTmpl := caTemplate(pkix.Name{Organization: []string{certOrg}, CommonName: "devattest requester root CA"}, now, 0)
	rootDER, root, err := makeCert(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, id, fmt.Errorf("devsim: requester root CA: %w", err)
	}
	leafTmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{certOrg}, CommonName: "devattest requester"},
		NotBefore:             now,
		NotAfter:              noExpiry,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{secchan.OIDRequesterAuth},
		BasicConstraintsValid: true,
	}
	leafDER, _, err := makeCert(leafTmpl, root, key.Public(), rootKey)
	if err != nil {
		return nil, id, fmt.Errorf("devsim: requester leaf: %w", err)
	}
	return rootDER, secchan.Identity{Chain: [][]byte{rootDER, leafDER}, Root: rootDER, Key: key}, nil
}
