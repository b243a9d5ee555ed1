package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/policy/corim"
	"github.com/devattest/devattest/secchan"
)

// signerFiles writes a self-signed P-384 signer's key and certificate.
func signerFiles(t *testing.T, dir, name string) (keyPath, certPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath = writeFile(t, filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}))
	certPath = writeFile(t, filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return keyPath, certPath
}

// TestPolicyInitCoRIM: policy init writes a signed CoRIM of the report's
// devices; a policy whose rules take their references from it passes, and
// one with a reference digest changed fails the reference check.
func TestPolicyInitCoRIM(t *testing.T) {
	e := snpReport(t)
	key, cert := signerFiles(t, e.dir, "refs")
	refs := filepath.Join(filepath.Dir(e.policy), "refs.cbor")
	pol := filepath.Join(filepath.Dir(e.policy), "p2.yaml")
	code, out, errOut := runCmd("policy", "init", "--from", e.report, "--out", pol, "--corim", refs, "--corim-key", key, "--corim-cert", cert,
		"--snp-ark", filepath.Join(e.dir, "ark.der"), "--snp-ask", filepath.Join(e.dir, "ask.der"))
	if code != 0 || !strings.Contains(out, "signed CoRIM, 2 device class(es)") {
		t.Fatalf("policy init --corim: %d\n%s%s", code, out, errOut)
	}
	b, err := os.ReadFile(refs)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := secchan.LoadCertificates(cert)
	if err != nil {
		t.Fatal(err)
	}
	rim, err := corim.Read(b, corim.Options{Anchors: certs})
	if err != nil {
		t.Fatal(err)
	}
	if len(rim.References) != 2 {
		t.Fatalf("%d references", len(rim.References))
	}
	// The written policy with each rule's references taken from the CoRIM.
	yml := string(mustRead(t, pol))
	yml = useCoRIM(t, yml, rim, "refs.cbor", filepath.Base(cert))
	if err := os.Rename(cert, filepath.Join(filepath.Dir(pol), filepath.Base(cert))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, pol, []byte(yml))
	if code, out, errOut := runCmd("verify", e.report, "--policy", pol, "--nonce", e.nonceHex); code != 0 {
		t.Fatalf("verify with CoRIM references: %d\n%s%s", code, out, errOut)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"--corim", refs},
		{"--corim-key", key},
		{"--corim", refs, "--corim-unsigned", "--corim-key", key},
	} {
		args = append([]string{"policy", "init", "--from", e.report, "--out", filepath.Join(e.dir, "x.yaml")}, args...)
		if code, _, errOut := runCmd(args...); code == 0 || !strings.Contains(errOut, "corim") {
			t.Errorf("%v: %d %s", args, code, errOut)
		}
	}
}

// useCoRIM replaces every rule's reference_measurements block with the
// CoRIM and the class of that rule's device.
func useCoRIM(t *testing.T, yml string, rim *corim.RIM, file, anchor string) string {
	t.Helper()
	lines := strings.Split(yml, "\n")
	var out []string
	skipping := false
	class := 0
	for _, l := range lines {
		if skipping {
			if strings.HasPrefix(l, "      ") {
				continue
			}
			skipping = false
		}
		if strings.TrimSpace(l) == "reference_measurements:" {
			skipping = true
			out = append(out, "    reference_values: "+file, "    reference_values_anchor: "+anchor,
				"    reference_values_class: \""+rim.References[class].ClassID+"\"")
			class++
			continue
		}
		out = append(out, l)
	}
	if class != len(rim.References) {
		t.Fatalf("%d reference blocks in the policy, %d classes", class, len(rim.References))
	}
	return strings.Join(out, "\n")
}
