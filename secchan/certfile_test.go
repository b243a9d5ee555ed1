package secchan

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
)

func testCertDER(t testing.TB, cn string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestLoadCertificates: one DER certificate or PEM certificates load; a key
// block, an empty file, garbage and a missing file are refused with the
// file's name and what was expected.
func TestLoadCertificates(t *testing.T) {
	dir := t.TempDir()
	a, b := testCertDER(t, "a"), testCertDER(t, "b")
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		data []byte
		n    int
		want string
	}{
		{"der", a, 1, ""},
		{"pem", append(append([]byte("Certificate:\n  text\n"), pemOf("CERTIFICATE", a)...), pemOf("CERTIFICATE", b)...), 2, ""},
		{"key", append(pemOf("CERTIFICATE", a), pemOf("PRIVATE KEY", []byte{1})...), 0, `PEM block 2 is "PRIVATE KEY", want CERTIFICATE`},
		{"bad pem", pemOf("CERTIFICATE", []byte{1, 2}), 0, "PEM block 1:"},
		{"empty", nil, 0, "empty (want PEM CERTIFICATE blocks or one DER certificate)"},
		{"garbage", []byte("hello"), 0, "neither PEM CERTIFICATE blocks nor one DER certificate"},
		{"der and trailing", append(a, 0), 0, "neither PEM"},
	} {
		p := write(tc.name, tc.data)
		certs, err := LoadCertificates(p)
		switch {
		case tc.want == "" && (err != nil || len(certs) != tc.n):
			t.Errorf("%s: %d certificates, %v; want %d", tc.name, len(certs), err, tc.n)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("%s: %v, want an error naming %s and saying %q", tc.name, err, p, tc.want)
		}
	}
	if _, err := LoadCertificates(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	big := write("big", make([]byte, MaxCertificateFileSize+1))
	if _, err := LoadCertificates(big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized file: %v", err)
	}
}

func FuzzParseCertificates(f *testing.F) {
	der := testCertDER(f, "seed")
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertificates(b)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}
