package secchan_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/secchan"
)

// BenchmarkAuthFlow is one whole authentication flow (VCA, DIGESTS, the
// certificate chain, CHALLENGE, signed MEASUREMENTS) between our requester
// and responder in process, SPDM 1.2 with ECDSA P-384 and SHA-384.
func BenchmarkAuthFlow(b *testing.B) {
	f := newFixture(b, secchan.ResponderConfig{})
	f.cfg.Versions = []secchan.Version{secchan.V12}
	f.cfg.BaseAsym, f.cfg.BaseHash = secchan.AsymECDSAP384, secchan.HashSHA384
	ctx := context.Background()
	for b.Loop() {
		if err := flow(ctx, secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthFlowVsCryptoFloor measures, in one run, the flow and the
// cryptography it cannot avoid: two signatures by the device (CHALLENGE_AUTH
// and MEASUREMENTS), their two verifications, the chain's validation
// (two certificate signatures) and hashing the transcripts. It reports
// flow/floor, the cost of everything that is not cryptography.
func BenchmarkAuthFlowVsCryptoFloor(b *testing.B) {
	f := newFixture(b, secchan.ResponderConfig{})
	f.cfg.Versions = []secchan.Version{secchan.V12}
	f.cfg.BaseAsym, f.cfg.BaseHash = secchan.AsymECDSAP384, secchan.HashSHA384
	ctx := context.Background()

	// What the floor works on, taken from one real flow.
	q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
	if err := flow(ctx, q); err != nil {
		b.Fatal(err)
	}
	chain := q.Chain(0)
	var key crypto.Signer
	for _, id := range identityIDs {
		if secchan.AsymFor(id.Key.Public()) == secchan.AsymECDSAP384 {
			key = id.Key
		}
	}
	transcript := append(q.VCA(), chain.Raw...) // M1M2 is about this long
	roots := x509.NewCertPool()
	roots.AddCert(f.root)
	inter := x509.NewCertPool()
	for _, c := range chain.Certs[:len(chain.Certs)-1] {
		inter.AddCert(c)
	}
	floor := func() {
		for range 2 {
			h := crypto.SHA384.New()
			h.Write(transcript)
			th := h.Sum(nil)
			sig, err := secchan.Sign(secchan.V12, secchan.AsymECDSAP384, crypto.SHA384, key, secchan.ContextChallengeAuth, th)
			if err != nil {
				b.Fatal(err)
			}
			if err := secchan.VerifySignature(secchan.V12, secchan.AsymECDSAP384, crypto.SHA384, key.Public(), secchan.ContextChallengeAuth, th, sig); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := chain.Leaf().Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			b.Fatal(err)
		}
	}

	var flowTime, floorTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := flow(ctx, secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		floor()
		floorTime += time.Since(t1)
		flowTime += t1.Sub(t0)
	}
	b.ReportMetric(float64(flowTime)/float64(floorTime), "flow/floor")
}

// BenchmarkSessionEstablishment opens and ends one session per iteration
// on an authenticated connection (SPDM 1.2, P-384, AES-256-GCM):
// KEY_EXCHANGE and FINISH, then END_SESSION; and the same with a PSK.
func BenchmarkSessionEstablishment(b *testing.B) {
	for _, psk := range []bool{false, true} {
		name := "KEY_EXCHANGE"
		if psk {
			name = "PSK"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, secchan.ResponderConfig{Caps: devsim.SPDMVFCaps, PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)}})
			f.cfg.Versions = []secchan.Version{secchan.V12}
			f.cfg.AEAD = secchan.AEADAES256GCM
			ctx := context.Background()
			q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
			if err := flow(ctx, q); err != nil {
				b.Fatal(err)
			}
			opts := secchan.SessionOptions{PSK: []byte(devsim.SamplePSK), PSKHint: []byte(devsim.SamplePSKHint)}
			for b.Loop() {
				var ss *secchan.SecureSession
				var err error
				if psk {
					ss, err = q.PSKExchange(ctx, opts)
				} else {
					ss, err = q.KeyExchange(ctx, secchan.SessionOptions{})
				}
				if err != nil {
					b.Fatal(err)
				}
				if err := ss.End(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
