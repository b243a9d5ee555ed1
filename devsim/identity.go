package devsim

// Device identity of the emulated VF: a certificate chain in the shape of
// the SPDM/PCIe device certificate profile (DSP0274 §10.7.1 "Leaf
// certificate", PCIe CMA), made fresh with crypto/rand or loaded from
// files such as libspdm's sample identities.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/devattest/devattest/secchan"
)

// oidDMTFResponderAuth is id-DMTF-eku-responder-auth (1.3.6.1.4.1.412.274.3),
// the extended key usage DSP0274 names for a responder's leaf.
var oidDMTFResponderAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 3}

// noExpiry is RFC 5280 §4.1.2.5's "no well-defined expiration date"
// (99991231235959Z), as device identity certificates use.
var noExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

const certOrg = "devattest"

// NewIdentity makes a device identity: a self-signed ECDSA P-384 root CA,
// an ECDSA P-384 intermediate CA and two leaves, one ECDSA P-256 and one
// ECDSA P-384, sharing a device serial number. It returns the root's DER
// (the trust anchor a verifier needs) and one secchan.Identity per leaf,
// P-384 first, each chain root first as in libspdm's sample chains.
func NewIdentity() (rootDER []byte, ids []secchan.Identity, err error) {
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	serial := make([]byte, 8)
	if _, err := rand.Read(serial); err != nil {
		return nil, nil, err
	}
	deviceSerial := hex.EncodeToString(serial)

	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	rootTmpl := caTemplate(pkix.Name{Organization: []string{certOrg}, CommonName: "devsim root CA"}, now, -1)
	rootDER, root, err := makeCert(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("devsim: root CA: %w", err)
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	interTmpl := caTemplate(pkix.Name{Organization: []string{certOrg}, CommonName: "devsim intermediate CA"}, now, 0)
	interDER, inter, err := makeCert(interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("devsim: intermediate CA: %w", err)
	}
	for _, curve := range []elliptic.Curve{elliptic.P384(), elliptic.P256()} {
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		leafTmpl := &x509.Certificate{
			Subject: pkix.Name{
				Organization: []string{certOrg},
				CommonName:   fmt.Sprintf("devsim device %s %s", deviceSerial, curve.Params().Name),
				SerialNumber: deviceSerial,
			},
			NotBefore:             now,
			NotAfter:              noExpiry,
			KeyUsage:              x509.KeyUsageDigitalSignature,
			UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidDMTFResponderAuth},
			BasicConstraintsValid: true,
			IsCA:                  false,
		}
		leafDER, _, err := makeCert(leafTmpl, inter, key.Public(), interKey)
		if err != nil {
			return nil, nil, fmt.Errorf("devsim: %s leaf: %w", curve.Params().Name, err)
		}
		ids = append(ids, secchan.Identity{Chain: [][]byte{rootDER, interDER, leafDER}, Root: rootDER, Key: key})
	}
	return rootDER, ids, nil
}

// caTemplate is a CA certificate; maxPathLen -1 leaves the path unbounded.
func caTemplate(name pkix.Name, notBefore time.Time, maxPathLen int) *x509.Certificate {
	return &x509.Certificate{
		Subject:               name,
		NotBefore:             notBefore,
		NotAfter:              noExpiry,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
}

// makeCert signs tmpl with a random positive 128-bit serial number.
func makeCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, *x509.Certificate, error) {
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = sn.Add(sn, big.NewInt(1))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return der, c, err
}

// LoadIdentity reads an identity such as libspdm's sample
// bundle_responder.certchain.der (concatenated DER certificates, root
// first, leaf last) and end_responder.key (PEM: "EC PRIVATE KEY" (SEC1),
// "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1); other PEM blocks
// such as "EC PARAMETERS" are skipped). The first certificate is taken as
// the root; it returns the root's DER and the identity.
func LoadIdentity(chainDER, keyPEM []byte) (rootDER []byte, id secchan.Identity, err error) {
	certs, err := x509.ParseCertificates(chainDER)
	if err != nil {
		return nil, secchan.Identity{}, fmt.Errorf("devsim: certificate chain: %w", err)
	}
	if len(certs) == 0 {
		return nil, secchan.Identity{}, errors.New("devsim: certificate chain holds no certificate")
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, secchan.Identity{}, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[len(certs)-1].PublicKey) {
		return nil, secchan.Identity{}, errors.New("devsim: private key does not match the chain's last (leaf) certificate")
	}
	for _, c := range certs {
		id.Chain = append(id.Chain, c.Raw)
	}
	id.Root = certs[0].Raw
	id.Key = key
	return id.Root, id, nil
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("devsim: no private key PEM block (want EC PRIVATE KEY, PRIVATE KEY or RSA PRIVATE KEY)")
		}
		var key any
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			// The parse error names no key material.
			return nil, fmt.Errorf("devsim: %s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("devsim: %s holds a %T, which cannot sign", block.Type, key)
		}
		return s, nil
	}
}
