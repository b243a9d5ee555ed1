package secchan

// Judging a requester's certificate chain (mutual authentication): the
// same anchors-and-path check as for a device, with the leaf rule turned
// around.

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
)

// CheckRequesterLeaf refuses a leaf certified for SPDM responder
// authentication only (DSP0274 §10.7.1: a requester's leaf carries
// id-DMTF-eku-requester-auth, or neither SPDM usage).
func CheckRequesterLeaf(leaf *x509.Certificate) error {
	has := func(oid asn1.ObjectIdentifier) bool {
		return slices.ContainsFunc(leaf.UnknownExtKeyUsage, oid.Equal)
	}
	if has(OIDResponderAuth) && !has(OIDRequesterAuth) {
		return fmt.Errorf("%w: the requester's leaf %q is certified for SPDM responder authentication (extended key usage %v) and not for requester authentication (%v)",
			ErrCertChain, leaf.Subject, OIDResponderAuth, OIDRequesterAuth)
	}
	return nil
}

// NewRequesterValidator validates a requester's chain to one of roots.
func NewRequesterValidator(roots ...*x509.Certificate) *AnchorValidator {
	return &AnchorValidator{Roots: roots, LeafCheck: CheckRequesterLeaf}
}
