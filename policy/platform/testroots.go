package platform

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"slices"
)

// FakeTDXOrganization is the subject organization of every certificate of
// guest/platform's fake TDX signer. Its keys are fresh per signer, so
// nothing else identifies its root; TestRoot recognises the name.
const FakeTDXOrganization = "devattest fake TDX (test only)"

// snpTestKeys are the SHA-256 digests of the SubjectPublicKeyInfo of
// go-sev-guest's fake AMD keys (package testing/data): the fake AMD-SP that
// guest/platform's fake-snp uses signs with them, and their private halves
// are published with the library, so anyone can sign a report that
// chains to them.
var snpTestKeys = map[string]string{
	"686a27cee8debf56a4cf2ae07b2835b5440f7761ea14d05d3326155c0392a892": "go-sev-guest's fake ARK (its private key is published in go-sev-guest/testing/data)",
	"1fffee37a1b2d138e0f88d222b7c98272ef37fac6974b4434798a24215ad811c": "go-sev-guest's fake ASK (its private key is published in go-sev-guest/testing/data)",
	"4f8607e1c7ec17b73541450d3caacaf057575f6ef734edda85a97c10cae0d1ba": "go-sev-guest's fake ASVK (its private key is published in go-sev-guest/testing/data)",
}

// TestRoot reports whether cert is a known test root or test CA of the
// fake platforms and, if so, names it: go-sev-guest's fake ARK, ASK and
// ASVK (recognised by their public keys) and the root of guest/platform's
// fake TDX signer (recognised by FakeTDXOrganization in its subject). A
// vTPM quote has no root; the fake vTPM's attestation key is a fresh
// random key of a TPM simulator, trusted only by being listed in a
// policy, so it is not recognised here.
func TestRoot(cert *x509.Certificate) (string, bool) {
	if cert == nil {
		return "", false
	}
	d := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	if name, ok := snpTestKeys[hex.EncodeToString(d[:])]; ok {
		return name, true
	}
	if slices.Contains(cert.Subject.Organization, FakeTDXOrganization) {
		return "devattest's fake TDX root " + cert.Subject.CommonName + " (" + FakeTDXOrganization + ")", true
	}
	return "", false
}

// TestRoot reports whether one of r's certificates is a test root
// (see the function TestRoot) and names it. Certificates that do not parse
// are not test roots (VerifySNP refuses them).
func (r *SNPRoots) TestRoot() (string, bool) {
	if r == nil {
		return "", false
	}
	for _, der := range [][]byte{r.ARK, r.ASK, r.ASVK} {
		if c, err := x509.ParseCertificate(der); err == nil {
			if name, ok := TestRoot(c); ok {
				return name, true
			}
		}
	}
	return "", false
}
