package policy_test

import (
	"crypto"
	"crypto/sha512"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	vplatform "github.com/devattest/devattest/policy/platform"
	"github.com/devattest/devattest/secchan"
)

// BenchmarkVerifyVsCryptoFloor verifies a two-device SEV-SNP report, bytes
// to verdict, against the sum of the cryptography the verdict cannot do
// without: the platform report's signature and certificate chain, the
// SHA-512 of the body, and per device its chain to the anchor, the hash of
// its transcript and its signature. The metric verify/floor is the cost of
// everything that is not cryptography (decoding, the checks, results).
func BenchmarkVerifyVsCryptoFloor(b *testing.B) {
	dir := b.TempDir()
	var devs []attested
	for _, label := range []string{"0000:01:00.1", "0000:02:00.1"} {
		a, err := runAttest(b.TempDir(), label)
		if err != nil {
			b.Fatal(err)
		}
		devs = append(devs, a)
	}
	// One nonce for both: attest the second device with the first's.
	for _, a := range devs[1:] {
		if string(a.nonce) != string(devs[0].nonce) {
			b.Fatal("the devices answer different nonces")
		}
	}
	pl := openPlatform(b, policy.KindSNP, dir)
	body := newBody(pl.kind, devs[0].nonce, devs[0].dev, devs[1].dev)
	pl.bind(b, body)
	report := pl.seal(b, body, nil)
	yml := "devices:\n"
	for i, a := range devs {
		a.dir = dir
		name := filepath.Join(dir, "vf-root.pem")
		if i > 0 {
			name = filepath.Join(dir, "vf1-root.pem")
		}
		if err := os.WriteFile(name, a.root, 0o600); err != nil {
			b.Fatal(err)
		}
		rule := fullRule(a)
		if i > 0 {
			rule = strings.Replace(rule, "vf-root.pem", "vf1-root.pem", 1)
		}
		yml += rule
	}
	p, err := policy.Parse([]byte(yml+pl.yaml), dir)
	if err != nil {
		b.Fatal(err)
	}
	if v := policy.VerifyReport(report, p, devs[0].nonce); !v.OK {
		b.Fatalf("the benchmark's report does not verify: %+v", v.Failed())
	}

	// What the floor works on.
	rep, err := evidence.Unmarshal(report)
	if err != nil {
		b.Fatal(err)
	}
	var pr vplatform.Report
	if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
		b.Fatal(err)
	}
	roots := p.Platform.Roots
	type devFloor struct {
		chain *secchan.CertChain
		pool  *x509.CertPool
		inter *x509.CertPool
		m     *evidence.Measurements
		sig   []byte
		v     secchan.Version
	}
	var floors []devFloor
	for _, d := range rep.ParsedBody().Devices {
		chain, err := secchan.ParseCertChain(d.CertChain, crypto.SHA384)
		if err != nil {
			b.Fatal(err)
		}
		r, _ := p.Rule(d.Label)
		pool, inter := x509.NewCertPool(), x509.NewCertPool()
		for _, c := range r.Anchors() {
			pool.AddCert(c)
		}
		for _, c := range chain.Certs[:len(chain.Certs)-1] {
			inter.AddCert(c)
		}
		sig := d.Measurements.Response[len(d.Measurements.Response)-96:]
		v, err := secchan.ParseVersion(d.SPDMVersion)
		if err != nil {
			b.Fatal(err)
		}
		floors = append(floors, devFloor{chain, pool, inter, d.Measurements, sig, v})
	}
	floor := func() {
		if err := vplatform.VerifySNP(pr.Raw, pr.Certs, &vplatform.SNPRoots{ARK: roots.SNPARKDER, ASK: roots.SNPASKDER}, rep.UserData()); err != nil {
			b.Fatal(err)
		}
		sha512.Sum512(rep.Body)
		for _, f := range floors {
			if _, err := f.chain.Leaf().Verify(x509.VerifyOptions{Roots: f.pool, Intermediates: f.inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				b.Fatal(err)
			}
			h := crypto.SHA384.New()
			h.Write(f.m.Transcript)
			if err := secchan.VerifySignature(f.v, secchan.AsymECDSAP384, crypto.SHA384, f.chain.Leaf().PublicKey,
				secchan.ContextMeasurements, h.Sum(nil), f.sig); err != nil {
				b.Fatal(err)
			}
		}
	}
	var verifyTime, floorTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		if v := policy.VerifyReport(report, p, devs[0].nonce); !v.OK {
			b.Fatal("verify failed")
		}
		t1 := time.Now()
		floor()
		floorTime += time.Since(t1)
		verifyTime += t1.Sub(t0)
	}
	b.ReportMetric(float64(verifyTime)/float64(floorTime), "verify/floor")
}
