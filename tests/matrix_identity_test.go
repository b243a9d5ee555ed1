package tests

// Identities for the interop matrix when no libspdm sample is at hand: a
// root CA and a leaf of each signature algorithm, and a long chain, all
// made with crypto/rand once per test binary.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/secchan"
)

// oidResponderAuth is DSP0274's id-DMTF-eku-responder-auth.
var oidResponderAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 3}

// oidFiller is a private, non-critical extension that pads certificates
// of the long chain (a private-enterprise arc under the emulator's OID).
var oidFiller = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 99, 1}

type matrixID struct {
	root *x509.Certificate
	id   secchan.Identity
}

var (
	matrixIDMu    sync.Mutex
	matrixIDCache = map[string]matrixID{}
)

// matrixKey makes a key for a signature-algorithm name.
func matrixKey(asym string) (crypto.Signer, error) {
	switch asym {
	case "ECDSA_P256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ECDSA_P384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ECDSA_P521":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RSASSA_2048", "RSAPSS_2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "RSASSA_3072", "RSAPSS_3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "RSASSA_4096", "RSAPSS_4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	case "EDDSA_25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("no key type for %s", asym)
}

// rsaKeyName shares one RSA key between RSASSA and RSAPSS of a size.
func rsaKeyName(asym string) string {
	if len(asym) > 6 && asym[:6] == "RSAPSS" {
		return "RSASSA" + asym[6:]
	}
	return asym
}

// matrixIdentity returns a root and an identity whose leaf signs with
// asym; depth is the number of certificates in the chain (root and leaf
// included), filler bytes pad each certificate.
func matrixIdentity(t *testing.T, asym string, depth, filler int) matrixID {
	t.Helper()
	key := fmt.Sprintf("%s/%d/%d", rsaKeyName(asym), depth, filler)
	matrixIDMu.Lock()
	defer matrixIDMu.Unlock()
	if m, ok := matrixIDCache[key]; ok {
		return m
	}
	m, err := makeMatrixIdentity(rsaKeyName(asym), depth, filler)
	if err != nil {
		t.Fatalf("identity %s: %v", key, err)
	}
	matrixIDCache[key] = m
	return m
}

func makeMatrixIdentity(asym string, depth, filler int) (matrixID, error) {
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	end := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	var extra []pkix.Extension
	if filler > 0 {
		v, _ := asn1.Marshal(make([]byte, filler))
		extra = []pkix.Extension{{Id: oidFiller, Value: v}}
	}
	make1 := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
		sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		if err != nil {
			return nil, err
		}
		tmpl.SerialNumber = sn.Add(sn, big.NewInt(1))
		tmpl.NotBefore, tmpl.NotAfter = now, end
		tmpl.ExtraExtensions = extra
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return matrixID{}, err
	}
	ca := func(n int) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{Organization: []string{"devattest matrix"}, CommonName: fmt.Sprintf("matrix CA %d", n)},
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLen: -1}
	}
	root, err := make1(ca(0), ca(0), caKey.Public(), caKey)
	if err != nil {
		return matrixID{}, err
	}
	chain := [][]byte{root.Raw}
	parent, parentKey := root, crypto.Signer(caKey)
	for i := 1; i < depth-1; i++ {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return matrixID{}, err
		}
		c, err := make1(ca(i), parent, k.Public(), parentKey)
		if err != nil {
			return matrixID{}, err
		}
		chain = append(chain, c.Raw)
		parent, parentKey = c, k
	}
	leafKey, err := matrixKey(asym)
	if err != nil {
		return matrixID{}, err
	}
	leaf, err := make1(&x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"devattest matrix"}, CommonName: "matrix device " + asym, SerialNumber: "1"},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidResponderAuth},
		BasicConstraintsValid: true,
	}, parent, leafKey.Public(), parentKey)
	if err != nil {
		return matrixID{}, err
	}
	chain = append(chain, leaf.Raw)
	return matrixID{root: root, id: secchan.Identity{Chain: chain, Root: root.Raw, Key: leafKey}}, nil
}
