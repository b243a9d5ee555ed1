package main

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/policy/ear"
)

func TestVerifyWritesEAR(t *testing.T) {
	e := snpReport(t)
	keyPath, certPath := signerFiles(t, e.dir, "ear")
	out := filepath.Join(e.dir, "ear.jwt")
	code, stdout, stderr := runCmd("verify", e.report, "--policy", e.policy, "--nonce", e.nonceHex, "--ear", out, "--ear-key", keyPath)
	if code != 0 || !strings.Contains(stderr, "application/eat+jwt") {
		t.Fatalf("verify --ear: %d\n%s%s", code, stdout, stderr)
	}
	tok, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(mustRead(t, certPath))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ear.Verify(string(tok), cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	nonce, _ := hex.DecodeString(e.nonceHex)
	if want, _ := ear.EncodeNonce(nonce); r.Nonce != want {
		t.Fatalf("eat_nonce %q, want %q", r.Nonce, want)
	}
	for _, s := range []string{"0000:01:00.1", "0000:02:00.1"} {
		if a, ok := r.Submods[s]; !ok || a.Status != ear.StatusAffirming || !strings.HasPrefix(a.PolicyID, "sha-256:") {
			t.Fatalf("submodule %s: %+v", s, a)
		}
	}
	// The fake platform's test roots are accepted with a warning.
	if a := r.Submods[ear.PlatformSubmod]; a.Status != ear.StatusWarning {
		t.Fatalf("platform: %+v", a)
	}
	// A wrong nonce: the verdict fails and the EAR contraindicates all.
	code, _, _ = runCmd("verify", e.report, "--policy", e.policy, "--nonce", "00112233445566", "--ear", out, "--ear-key", keyPath)
	if code != 1 {
		t.Fatalf("wrong nonce: exit %d", code)
	}
	tok, _ = os.ReadFile(out)
	if r, err = ear.Verify(string(tok), cert.PublicKey); err != nil {
		t.Fatal(err)
	}
	for s, a := range r.Submods {
		if a.Status != ear.StatusContraindicated {
			t.Errorf("%s: %s with a wrong nonce", s, a.Status)
		}
	}
	if code, _, stderr := runCmd("verify", e.report, "--policy", e.policy, "--nonce", e.nonceHex, "--ear", out); code != 1 || !strings.Contains(stderr, "--ear-key") {
		t.Fatalf("--ear without a key: %d %s", code, stderr)
	}
}
