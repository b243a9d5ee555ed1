package policy_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/corim"
)

// refsSigner is a self-signed reference-values signer.
func refsSigner(t *testing.T, dir, name string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	writeFile(t, filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return c, key
}

func writeCoRIM(t *testing.T, dir, name string, devs []evidence.Device, signer *x509.Certificate, key crypto.Signer, change func(*corim.RIM)) {
	t.Helper()
	r, err := corim.FromDevices("policy test", devs)
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(r)
	}
	b, err := r.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	if signer != nil {
		if b, err = corim.Sign(b, key, []*x509.Certificate{signer}); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, name), b)
}

func corimRule(label, extra string) string {
	return fmt.Sprintf("  - label: %q\n    trust_anchors: [vf-root.pem]\n%s", label, extra)
}

func reason(rs []policy.Result, check string) (bool, string) {
	for _, r := range rs {
		if r.Check == check {
			return r.OK, r.Reason
		}
	}
	return false, "not run"
}

// TestReferenceValuesCoRIM: a signed CoRIM's reference values are checked
// exactly as the same YAML references are (the same check and line).
func TestReferenceValuesCoRIM(t *testing.T) {
	a := attestDevice(t)
	signer, key := refsSigner(t, a.dir, "refs-signer")
	writeCoRIM(t, a.dir, "refs.cbor", []evidence.Device{a.dev}, signer, key, nil)

	yamlOK, yamlWhy := reason(loadPolicy(t, a.dir, fullRule(a)).CheckDevice(a.dev, a.nonce), policy.CheckReference)
	p := loadPolicy(t, a.dir, corimRule(testLabel, "    reference_values: refs.cbor\n    reference_values_anchor: refs-signer.pem\n"))
	ok, why := reason(p.CheckDevice(a.dev, a.nonce), policy.CheckReference)
	if !ok || !yamlOK || why != yamlWhy {
		t.Fatalf("CoRIM: %t %q; YAML: %t %q", ok, why, yamlOK, yamlWhy)
	}
	// The anchor at the policy level does as well.
	yml := "reference_values_anchor: refs-signer.pem\ndevices:\n" + corimRule(testLabel, "    reference_values: refs.cbor\n") +
		"platform:\n  kind: snp\n  snp:\n    measurement: [" + strings.Repeat("00", 48) + "]\n"
	if _, err := policy.Parse([]byte(yml), a.dir); err != nil {
		t.Fatal(err)
	}

	// One reference digest changed (and signed): the reference check fails.
	writeCoRIM(t, a.dir, "changed.cbor", []evidence.Device{a.dev}, signer, key, func(r *corim.RIM) {
		r.References[0].Measurements[1].Digests[0].Value = bytes.Repeat([]byte{0xee}, 48)
	})
	p = loadPolicy(t, a.dir, corimRule(testLabel, "    reference_values: changed.cbor\n    reference_values_anchor: refs-signer.pem\n"))
	wantOnly(t, p.CheckDevice(a.dev, a.nonce), policy.CheckReference)
}

func TestReferenceValuesCoRIMRefused(t *testing.T) {
	a := attestDevice(t)
	signer, key := refsSigner(t, a.dir, "refs-signer")
	otherSigner, otherKey := refsSigner(t, a.dir, "other-signer")
	writeCoRIM(t, a.dir, "refs.cbor", []evidence.Device{a.dev}, signer, key, nil)
	writeCoRIM(t, a.dir, "other.cbor", []evidence.Device{a.dev}, otherSigner, otherKey, nil)
	writeCoRIM(t, a.dir, "unsigned.cbor", []evidence.Device{a.dev}, nil, nil, nil)
	good, err := os.ReadFile(filepath.Join(a.dir, "refs.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 1
	writeFile(t, filepath.Join(a.dir, "tampered.cbor"), tampered)
	for name, c := range map[string]struct{ extra, want string }{
		"signed by another key": {"    reference_values: other.cbor\n    reference_values_anchor: refs-signer.pem\n", "does not chain"},
		"tampered":              {"    reference_values: tampered.cbor\n    reference_values_anchor: refs-signer.pem\n", "corim:"},
		"no anchor":             {"    reference_values: refs.cbor\n", "needs a trust anchor"},
		"unsigned":              {"    reference_values: unsigned.cbor\n    reference_values_anchor: refs-signer.pem\n", "unsigned"},
		"wrong class":           {"    reference_values: refs.cbor\n    reference_values_anchor: refs-signer.pem\n    reference_values_class: spdm:x:y\n", "no reference values for class"},
		"both kinds":            {"    reference_values: refs.cbor\n    reference_values_anchor: refs-signer.pem\n    reference_measurements:\n      - index: 1\n        digest: [00]\n", "not both"},
		"missing file":          {"    reference_values: nope.cbor\n    reference_values_anchor: refs-signer.pem\n", "nope.cbor"},
		"flag without file":     {"    allow_unsigned_reference_values: true\n", "need reference_values"},
	} {
		t.Run(name, func(t *testing.T) {
			yml := "devices:\n" + corimRule(testLabel, c.extra) + "platform:\n  kind: snp\n  snp:\n    measurement: [" + strings.Repeat("00", 48) + "]\n"
			_, err := policy.Parse([]byte(yml), a.dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse: %v, want an error with %q", err, c.want)
			}
		})
	}
	// An unsigned CoRIM with the explicit flag is read.
	p := loadPolicy(t, a.dir, corimRule(testLabel, "    reference_values: unsigned.cbor\n    allow_unsigned_reference_values: true\n"))
	if ok, why := reason(p.CheckDevice(a.dev, a.nonce), policy.CheckReference); !ok {
		t.Fatal(why)
	}
}
