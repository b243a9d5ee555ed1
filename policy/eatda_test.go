package policy_test

import (
	"testing"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/evidence/eatda"
	"github.com/devattest/devattest/policy"
)

// TestVerifyEATDA: a report's EAT-DA claims set must be exactly the
// encoding of its signed body; one that says something else (even signed
// by the platform, as a lying guest would) fails CheckEATDA alone.
func TestVerifyEATDA(t *testing.T) {
	withEATDA := func(change func(b *evidence.Body)) func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
		return func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			body := newBody(pl.kind, a.nonce, a.dev)
			pl.bind(t, body)
			tok, err := eatda.EncodeBody(body)
			if err != nil {
				t.Fatal(err)
			}
			body.EATDA = tok
			if change != nil {
				change(body)
			}
			return pl.seal(t, body, nil), a.nonce
		}
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, pl *plat, a attested) ([]byte, []byte)
		fails []string
	}{
		{"the body's encoding passes", withEATDA(nil), nil},
		{"a claims set of another body", withEATDA(func(b *evidence.Body) {
			other := *b
			other.PolicyDigest = []byte("another policy digest")
			tok, err := eatda.EncodeBody(&other)
			if err != nil {
				panic(err)
			}
			b.EATDA = tok
		}), []string{policy.CheckEATDA}},
		{"a claims set that is not CBOR", withEATDA(func(b *evidence.Body) { b.EATDA = []byte{0xff} }), []string{policy.CheckEATDA}},
		{"a claims set for a body that cannot have one", func(t *testing.T, pl *plat, a attested) ([]byte, []byte) {
			// A 4-byte owner nonce cannot be eat_nonce; the devices'
			// SPDM nonces were derived from another one.
			rep, n := withEATDA(func(b *evidence.Body) { b.Nonce = b.Nonce[:4] })(t, pl, a)
			return rep, n[:4]
		}, []string{policy.CheckEATDA, policy.CheckNonce}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := attestDevice(t)
			pl := openPlatform(t, "snp", a.dir)
			report, nonce := tc.build(t, pl, a)
			v := policy.VerifyReport(report, platformPolicy(t, a, pl.yaml), nonce)
			wantVerdict(t, v, tc.fails...)
		})
	}
}
