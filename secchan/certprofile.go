package secchan

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
)

// SPDM's purposes in a certificate's extended key usage (DSP0274, under
// DMTF's arc 1.3.6.1.4.1.412.274): the key authenticates a responder (a
// device) or a requester.
var (
	OIDResponderAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 3}
	OIDRequesterAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 4}
)

// CheckResponderLeaf refuses a responder's leaf certificate whose
// extended key usage names the requester purpose and not the responder
// purpose: a key certified to authenticate requesters does not
// authenticate a device. A leaf naming neither (most device certificates
// carry TLS purposes or none) or both passes. libspdm applies the same
// rule to every leaf it validates.
func CheckResponderLeaf(leaf *x509.Certificate) error {
	has := func(oid asn1.ObjectIdentifier) bool {
		return slices.ContainsFunc(leaf.UnknownExtKeyUsage, oid.Equal)
	}
	if has(OIDRequesterAuth) && !has(OIDResponderAuth) {
		return fmt.Errorf("%w: the leaf %q is certified for SPDM requester authentication (extended key usage %v) and not for responder authentication (%v)",
			ErrCertChain, leaf.Subject, OIDRequesterAuth, OIDResponderAuth)
	}
	return nil
}
