package policy_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/secchan"
)

// certRules is the devsim chain's certificates block with each rule set
// to what the chain satisfies.
func certRules(t *testing.T, a attested) string {
	t.Helper()
	c, err := secchan.ParseCertChain(a.dev.CertChain, crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`    certificates:
      max_chain_length: %d
      validity_time: %s
      leaf_key_usage_digital_signature: true
      leaf_not_ca: true
      intermediates_ca: true
`, len(c.Certs), time.Now().UTC().Format(time.RFC3339))
}

// TestCheckDeviceCertRules runs each certificate rule on the devsim chain.
func TestCheckDeviceCertRules(t *testing.T) {
	tests := []struct {
		name   string
		rule   func(string) string
		fails  string
		reason string
	}{
		{"all pass", nil, "", ""},
		{"max_chain_length", func(s string) string {
			return strings.Replace(s, "max_chain_length: ", "max_chain_length: 1 #", 1)
		}, policy.CheckCertRules, "max_chain_length: the chain has"},
		{"validity_time before", func(s string) string {
			return strings.Replace(s, "validity_time: ", "validity_time: 1990-01-01T00:00:00Z #", 1)
		}, policy.CheckAnchors, "expired or is not yet valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := attestDevice(t)
			rule := fullRule(a) + certRules(t, a)
			if tc.rule != nil {
				rule = tc.rule(rule)
			}
			p := loadPolicy(t, a.dir, rule)
			rs := p.CheckDevice(a.dev, a.nonce)
			if tc.fails == "" {
				wantOnly(t, rs)
				for _, r := range rs {
					if r.Check == policy.CheckCertRules {
						return
					}
				}
				t.Fatalf("check %q not run: %+v", policy.CheckCertRules, rs)
			}
			wantOnly(t, rs, tc.fails)
			if got := failed(rs)[tc.fails]; !strings.Contains(got, tc.reason) {
				t.Fatalf("refused with %q, want %q", got, tc.reason)
			}
			chain, err := secchan.ParseCertChain(a.dev.CertChain, crypto.SHA384)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validator(testLabel).ValidateChain(chain, crypto.SHA384); !errors.Is(err, secchan.ErrCertChain) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Validator: %v, want ErrCertChain saying %q", err, tc.reason)
			}
		})
	}
	t.Run("absent means the default rules", func(t *testing.T) {
		a := attestDevice(t)
		p := loadPolicy(t, a.dir, fullRule(a))
		ran := false
		for _, r := range p.CheckDevice(a.dev, a.nonce) {
			if r.Check == policy.CheckCertRules {
				ran = r.OK
			}
		}
		if !ran {
			t.Fatal("the default certificate rules did not run, or refused devsim's leaf")
		}
	})
	t.Run("chain does not parse", func(t *testing.T) {
		a := attestDevice(t)
		p := loadPolicy(t, a.dir, fullRule(a)+certRules(t, a))
		a.dev.CertChain[0] ^= 1
		if got := failed(p.CheckDevice(a.dev, a.nonce))[policy.CheckCertRules]; !strings.HasPrefix(got, "not checked") {
			t.Fatalf("certificate rules on an unparsable chain: %q", got)
		}
	})
}

// certSpec describes one certificate of a synthetic chain.
type certSpec struct {
	ca, bcValid bool
	ku          x509.KeyUsage
}

// syntheticChain makes root → intermediate → leaf, writes the root to
// dir/synth-root.pem and returns the parsed SPDM chain (root carried).
func syntheticChain(t *testing.T, dir string, root, inter, leaf certSpec) *secchan.CertChain {
	t.Helper()
	var ders [][]byte
	var parent *x509.Certificate
	var parentKey *ecdsa.PrivateKey
	for i, s := range []certSpec{root, inter, leaf} {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: fmt.Sprintf("synthetic %d", i)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: s.ca, BasicConstraintsValid: s.bcValid, KeyUsage: s.ku}
		p, pk := parent, parentKey
		if p == nil {
			p, pk = tmpl, k
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, p, &k.PublicKey, pk)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		ders = append(ders, der)
		parent, parentKey = c, k
	}
	if err := os.WriteFile(filepath.Join(dir, "synth-root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ders[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := secchan.BuildCertChain(crypto.SHA384, ders[0], ders...)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := secchan.ParseCertChain(raw, crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// TestValidatorCertRules checks the leaf and CA rules on synthetic
// chains, through the guest's validator.
func TestValidatorCertRules(t *testing.T) {
	ca := certSpec{ca: true, bcValid: true, ku: x509.KeyUsageCertSign}
	leaf := certSpec{bcValid: true, ku: x509.KeyUsageDigitalSignature}
	const rules = `  - label: "x"
    trust_anchors: [synth-root.pem]
    certificates:
      max_chain_length: 4
      leaf_key_usage_digital_signature: true
      leaf_not_ca: true
      intermediates_ca: true
`
	tests := []struct {
		name              string
		root, inter, leaf certSpec
		rule              string // replaces "true" in the rule for this key
		reason            string
	}{
		{"all pass", ca, ca, leaf, "", ""},
		{"leaf without digitalSignature", ca, ca, certSpec{bcValid: true, ku: x509.KeyUsageKeyAgreement}, "leaf_key_usage_digital_signature",
			"leaf_key_usage_digital_signature: the leaf \"CN=synthetic 2\" has no digitalSignature"},
		{"leaf is a CA", ca, ca, certSpec{ca: true, bcValid: true, ku: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}, "leaf_not_ca",
			"leaf_not_ca: the leaf \"CN=synthetic 2\" is a CA"},
		{"leaf without basic constraints", ca, ca, certSpec{ku: x509.KeyUsageDigitalSignature}, "leaf_not_ca",
			"leaf_not_ca: the leaf \"CN=synthetic 2\" has no basic constraints"},
		// crypto/x509 already refuses a non-CA signer on the path; the
		// rule also covers every other certificate the chain carries.
		// A certificate that is not on the verified path is refused by
		// the anchor check itself, rule or no rule.
		{"stray non-CA certificate", ca, ca, leaf, "intermediates_ca",
			"(\"CN=stray\") that is not on the path to the trust anchor"},
	}
	// Finding 8 of issue 14: without a certificates block a CA leaf
	// with only keyCertSign passed.
	t.Run("CA leaf refused without a certificates block", func(t *testing.T) {
		dir := t.TempDir()
		chain := syntheticChain(t, dir, ca, ca, certSpec{ca: true, bcValid: true, ku: x509.KeyUsageCertSign})
		p := loadPolicy(t, dir, "  - label: \"x\"\n    trust_anchors: [synth-root.pem]\n")
		err := p.Validator("x").ValidateChain(chain, crypto.SHA384)
		if !errors.Is(err, secchan.ErrCertChain) || !strings.Contains(err.Error(), "leaf_not_ca") || !strings.Contains(err.Error(), "digitalSignature") {
			t.Fatalf("ValidateChain = %v, want the default rules to refuse a CA leaf without digitalSignature", err)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			chain := syntheticChain(t, dir, tc.root, tc.inter, tc.leaf)
			if tc.name == "stray non-CA certificate" {
				chain = withStray(t, chain)
			}
			p := loadPolicy(t, dir, rules)
			err := p.Validator("x").ValidateChain(chain, crypto.SHA384)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("ValidateChain: %v", err)
				}
				return
			}
			if !errors.Is(err, secchan.ErrCertChain) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("ValidateChain: %v, want ErrCertChain saying %q", err, tc.reason)
			}
			if tc.name == "stray non-CA certificate" {
				return
			}
			// The same chain passes when the rule is off.
			off := loadPolicy(t, dir, strings.Replace(rules, tc.rule+": true", tc.rule+": false", 1))
			if err := off.Validator("x").ValidateChain(chain, crypto.SHA384); err != nil {
				t.Fatalf("with %s off: %v", tc.rule, err)
			}
		})
	}
	t.Run("root not carried counts", func(t *testing.T) {
		dir := t.TempDir()
		chain := syntheticChain(t, dir, ca, ca, leaf)
		raw, err := secchan.BuildCertChain(crypto.SHA384, chain.Certs[0].Raw, chain.Certs[1].Raw, chain.Certs[2].Raw)
		if err != nil {
			t.Fatal(err)
		}
		short, err := secchan.ParseCertChain(raw, crypto.SHA384)
		if err != nil {
			t.Fatal(err)
		}
		p := loadPolicy(t, dir, strings.Replace(rules, "max_chain_length: 4", "max_chain_length: 2", 1))
		if err := p.Validator("x").ValidateChain(short, crypto.SHA384); err == nil || !strings.Contains(err.Error(), "the chain has 3 certificates (root included)") {
			t.Fatalf("ValidateChain: %v", err)
		}
	})
}

// withStray inserts a self-signed non-CA certificate before the leaf.
func withStray(t *testing.T, c *secchan.CertChain) *secchan.CertChain {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "stray"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true}
	stray, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := secchan.BuildCertChain(crypto.SHA384, c.Certs[0].Raw, c.Certs[0].Raw, c.Certs[1].Raw, stray, c.Certs[2].Raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := secchan.ParseCertChain(raw, crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
