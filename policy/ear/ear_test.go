package ear_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/ear"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-claims.json")

// verdict is a passing verdict of one device on SEV-SNP with a test-root
// warning, and one device whose reference measurements differ.
func verdict(refOK bool) policy.Verdict {
	rs := []policy.Result{
		{Device: policy.SubjectReport, Check: policy.CheckFormat, OK: true, Reason: "devattest-report/2"},
		{Device: policy.SubjectReport, Check: policy.CheckOwnerNonce, OK: true, Reason: "6e6f6e6365"},
		{Device: policy.SubjectPlatform, Check: policy.CheckKind, OK: true, Reason: policy.KindSNP},
		{Device: policy.SubjectPlatform, Check: policy.CheckPlatform, OK: true, Reason: "signed"},
		{Device: policy.SubjectPlatform, Check: policy.CheckTestRoots, OK: true, Reason: "WARNING: test roots"},
		{Device: policy.SubjectPlatform, Check: policy.CheckSNPMeasurement, OK: true, Reason: "00"},
		{Device: policy.SubjectPlatform, Check: policy.CheckBootBinding, OK: true, Reason: "no register"},
		{Device: policy.SubjectReport, Check: policy.CheckEATDA, OK: true, Reason: "the encoding"},
	}
	for _, d := range []string{"0000:01:00.1", "0000:02:00.1"} {
		for _, c := range []string{policy.CheckRule, policy.CheckStatus, policy.CheckVersion, policy.CheckAlgorithms, policy.CheckChain,
			policy.CheckAnchors, policy.CheckPin, policy.CheckRequest, policy.CheckNonce, policy.CheckTranscript,
			policy.CheckSignature, policy.CheckBlocks, policy.CheckNegotiation, policy.CheckReference, policy.CheckSession, policy.CheckIDE} {
			r := policy.Result{Device: d, Check: c, OK: true, Reason: "ok"}
			if c == policy.CheckReference && d == "0000:02:00.1" && !refOK {
				r = policy.Result{Device: d, Check: c, Reason: "block 2: expected aa, seen bb"}
			}
			if c == policy.CheckSession {
				r.Reason = "skipped: the policy does not require a secure session"
			}
			rs = append(rs, r)
		}
	}
	v := policy.Verdict{OK: refOK, Results: rs, Warnings: []string{"WARNING: test roots"}}
	return v
}

var nonce = []byte("owner nonce 0123")

func opts() ear.Options {
	return ear.Options{Build: "devattest test", PolicyID: "sha-256:00", Now: time.Unix(1764800000, 0)}
}

func TestGoldenClaims(t *testing.T) {
	r, err := ear.FromVerdict(verdict(false), nonce, opts())
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden-claims.json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Fatalf("claims differ from %s:\n%s", path, got)
	}
	// What the golden file says, spelled out.
	if s := r.Submods["0000:02:00.1"]; s.Status != ear.StatusContraindicated || s.TrustVector.Executables != 33 {
		t.Fatalf("the device with other measurements: %+v", s)
	}
	if s := r.Submods["0000:01:00.1"]; s.Status != ear.StatusAffirming || s.TrustVector.Executables != 2 ||
		s.TrustVector.Hardware != 2 || s.TrustVector.InstanceIdentity != 2 || s.TrustVector.Configuration != 2 {
		t.Fatalf("the good device: %+v", s)
	}
	if s := r.Submods[ear.PlatformSubmod]; s.Status != ear.StatusWarning || s.TrustVector.Hardware != 32 || s.TrustVector.RuntimeOpaque != 2 ||
		s.TrustVector.SourcedData != 2 {
		t.Fatalf("the platform: %+v", s)
	}
}

func TestStatusFollowsVerdict(t *testing.T) {
	r, err := ear.FromVerdict(verdict(true), nonce, opts())
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range r.Submods {
		want := ear.StatusAffirming
		if name == ear.PlatformSubmod {
			want = ear.StatusWarning
		}
		if a.Status != want {
			t.Errorf("%s: %s, want %s", name, a.Status, want)
		}
	}
	// A failed platform check contraindicates every submodule.
	v := verdict(true)
	v.OK = false
	v.Results[3].OK = false
	r, err = ear.FromVerdict(v, nonce, opts())
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range r.Submods {
		if a.Status != ear.StatusContraindicated {
			t.Errorf("%s: %s with the platform report refused", name, a.Status)
		}
	}
	if _, err := ear.FromVerdict(v, []byte("short"), opts()); err == nil {
		t.Fatal("a 5-byte nonce was accepted as eat_nonce")
	}
}

func TestSignVerify(t *testing.T) {
	r, err := ear.FromVerdict(verdict(true), nonce, opts())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := r.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		// With the public key from PEM.
		der, _ := x509.MarshalPKIXPublicKey(key.Public())
		block, _ := pem.Decode(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ear.Verify(tok, pub)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("%s PEM: %v", curve.Params().Name, err)
		}
		// With the public key as a JWK.
		jwkJSON, err := json.Marshal(jose.JSONWebKey{Key: key.Public()})
		if err != nil {
			t.Fatal(err)
		}
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(jwkJSON, &jwk); err != nil {
			t.Fatal(err)
		}
		if got, err := ear.Verify(tok, jwk); err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("%s JWK: %v", curve.Params().Name, err)
		}
		// With another key, and tampered.
		if _, err := ear.Verify(tok, &other.PublicKey); !errors.Is(err, ear.ErrToken) {
			t.Fatalf("another key: %v", err)
		}
		b := []byte(tok)
		b[len(b)/2] ^= 1
		if _, err := ear.Verify(string(b), pub); !errors.Is(err, ear.ErrToken) {
			t.Fatalf("tampered: %v", err)
		}
	}
	rsaLike, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if _, err := r.Sign(rsaLike); err == nil {
		t.Fatal("a P-521 key was accepted (EAR here is ES256 or ES384)")
	}
}

func FuzzVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, _ := ear.FromVerdict(verdict(true), nonce, opts())
	tok, _ := r.Sign(key)
	f.Add(tok)
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ear.Verify(s, &key.PublicKey)
	})
}
