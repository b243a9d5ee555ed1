package ear_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/devattest/devattest/policy/ear"
)

// TestInteropArc has Veraison's EAR tool (arc, from github.com/veraison/ear
// built locally; its path in DEVATTEST_ARC) verify our EAR with the
// public key as a JWK, and refuse it with another key.
func TestInteropArc(t *testing.T) {
	arc := os.Getenv("DEVATTEST_ARC")
	if arc == "" {
		t.Skip("DEVATTEST_ARC is not set: set it to a locally built arc (github.com/veraison/ear/arc) to run this interop test")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		alg   string
		curve elliptic.Curve
	}{{"ES256", elliptic.P256()}, {"ES384", elliptic.P384()}} {
		key, err := ecdsa.GenerateKey(tc.curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ear.FromVerdict(verdict(false), nonce, opts())
		if err != nil {
			t.Fatal(err)
		}
		tok, err := r.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		jwt := filepath.Join(dir, tc.alg+".jwt")
		writeTestFile(t, jwt, []byte(tok))
		pkey := filepath.Join(dir, tc.alg+"-pkey.json")
		j, _ := json.Marshal(jose.JSONWebKey{Key: key.Public()})
		writeTestFile(t, pkey, j)
		out, err := runArc(arc, "verify", "-v", "-a", tc.alg, "-p", pkey, jwt)
		if err != nil {
			t.Fatalf("arc verify %s: %v\n%s", tc.alg, err, out)
		}
		for _, want := range []string{"0000:01:00.1", "0000:02:00.1", "platform", "contraindicated", "affirming"} {
			if !strings.Contains(out, want) {
				t.Errorf("arc's report lacks %q:\n%s", want, out)
			}
		}
		other, _ := ecdsa.GenerateKey(tc.curve, rand.Reader)
		j, _ = json.Marshal(jose.JSONWebKey{Key: other.Public()})
		writeTestFile(t, pkey, j)
		if out, err := runArc(arc, "verify", "-a", tc.alg, "-p", pkey, jwt); err == nil {
			t.Fatalf("arc verified %s with another key:\n%s", tc.alg, out)
		}
	}
}

func runArc(arc string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, arc, args...)
	cmd.Env = append(os.Environ(), "HOME="+os.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
