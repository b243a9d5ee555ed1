package secchan

// Signing (DSP0274 §15): Sign and VerifySignature agree for every
// supported algorithm and version, and the 1.2+ signed message has the
// 100-byte prefix the golden corpus README describes.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

type codecSigningKey struct {
	name string
	asym uint32
	key  crypto.Signer
}

var (
	codecSigningKeysOnce sync.Once
	codecSigningKeysList []codecSigningKey
	codecSigningKeysErr  error
)

// codecSigningKeys generates one key per algorithm, once per test binary
// (an RSA-2048 key takes a moment, more so under -race).
func codecSigningKeys(t *testing.T) []codecSigningKey {
	t.Helper()
	codecSigningKeysOnce.Do(func() {
		var keys []codecSigningKey
		for _, c := range []struct {
			name  string
			asym  uint32
			curve elliptic.Curve
		}{{"ECDSA_P256", AsymECDSAP256, elliptic.P256()}, {"ECDSA_P384", AsymECDSAP384, elliptic.P384()}, {"ECDSA_P521", AsymECDSAP521, elliptic.P521()}} {
			k, err := ecdsa.GenerateKey(c.curve, rand.Reader)
			if err != nil {
				codecSigningKeysErr = err
				return
			}
			keys = append(keys, codecSigningKey{c.name, c.asym, k})
		}
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			codecSigningKeysErr = err
			return
		}
		keys = append(keys, codecSigningKey{"RSASSA_2048", AsymRSASSA2048, rk}, codecSigningKey{"RSAPSS_2048", AsymRSAPSS2048, rk})
		_, ek, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			codecSigningKeysErr = err
			return
		}
		codecSigningKeysList = append(keys, codecSigningKey{"EDDSA_ED25519", AsymEd25519, ek})
	})
	if codecSigningKeysErr != nil {
		t.Fatal(codecSigningKeysErr)
	}
	return codecSigningKeysList
}

func TestSignVerifyRoundTrip(t *testing.T) {
	keys := codecSigningKeys(t)
	for _, k := range keys {
		for _, v := range []Version{V11, V12, V13} {
			for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				t.Run(fmt.Sprintf("%s/%v/%v", k.name, v, h), func(t *testing.T) {
					th := make([]byte, h.Size())
					rand.Read(th)
					for _, context := range []string{ContextChallengeAuth, ContextMeasurements, ContextKeyExchangeRsp} {
						sig, err := Sign(v, k.asym, h, k.key, context, th)
						if err != nil {
							t.Fatalf("Sign: %v", err)
						}
						if want, _ := sigSize(k.asym); len(sig) != want {
							t.Errorf("signature of %d bytes, %s has %d", len(sig), k.name, want)
						}
						if err := VerifySignature(v, k.asym, h, k.key.Public(), context, th, sig); err != nil {
							t.Fatalf("VerifySignature: %v", err)
						}
						goldenTamperChecks(t, context, v, k.asym, h, k.key.Public(), context, th, sig)
						// Another key of the same kind does not verify it.
						if other := otherKeyLike(t, k.key); other != nil {
							if err := VerifySignature(v, k.asym, h, other, context, th, sig); !errors.Is(err, ErrSignature) {
								t.Errorf("verified with another %s key: %v", k.name, err)
							}
						}
					}
				})
			}
		}
	}
}

func TestSignVerifyMismatches(t *testing.T) {
	keys := codecSigningKeys(t)
	th := make([]byte, 48)
	for _, k := range keys {
		sig, err := Sign(V12, k.asym, crypto.SHA384, k.key, ContextMeasurements, th)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range keys {
			if AsymFor(other.key.Public()) == AsymFor(k.key.Public()) {
				continue
			}
			// A key of another algorithm is refused, whatever the signature.
			if err := VerifySignature(V12, k.asym, crypto.SHA384, other.key.Public(), ContextMeasurements, th, sig); !errors.Is(err, ErrSignature) {
				t.Errorf("%s signature checked with a %s key: err = %v", k.name, other.name, err)
			}
			if sig, err := Sign(V12, k.asym, crypto.SHA384, other.key, ContextMeasurements, th); err == nil {
				t.Errorf("Sign(%s) with a %s key succeeded: %d-byte signature", k.name, other.name, len(sig))
			}
		}
		// The signature of another size is refused before any crypto.
		if err := VerifySignature(V12, k.asym, crypto.SHA384, k.key.Public(), ContextMeasurements, th, append(sig, 0)); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: signature one byte long: err = %v", k.name, err)
		}
	}
	// An RSA-2048 key is not an RSA-3072 key.
	rk := keys[3]
	if sig, err := Sign(V12, AsymRSASSA3072, crypto.SHA384, rk.key, ContextMeasurements, th); err == nil {
		t.Errorf("Sign(RSASSA_3072) with an RSA-2048 key succeeded: %d-byte signature", len(sig))
	}
	if err := VerifySignature(V12, AsymRSASSA3072, crypto.SHA384, rk.key.Public(), ContextMeasurements, th, make([]byte, 384)); !errors.Is(err, ErrSignature) {
		t.Errorf("RSA-2048 key for RSASSA_3072: err = %v", err)
	}
	for _, asym := range []uint32{AsymSM2P256, AsymEd448, 0, 1 << 20} {
		size, _ := sigSize(asym)
		if err := VerifySignature(V12, asym, crypto.SHA384, keys[0].key.Public(), ContextMeasurements, th, make([]byte, max(size, 64))); !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("asym 0x%x: VerifySignature err = %v, want ErrUnsupportedAlgorithm", asym, err)
		}
		if _, err := Sign(V12, asym, crypto.SHA384, keys[0].key, ContextMeasurements, th); !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("asym 0x%x: Sign err = %v, want ErrUnsupportedAlgorithm", asym, err)
		}
	}
	for _, k := range keys[:4] {
		if got := AsymFor(k.key.Public()); got != k.asym {
			t.Errorf("AsymFor(%s key) = %s", k.name, AsymName(got))
		}
	}
	if got := AsymFor(keys[5].key.Public()); got != AsymEd25519 {
		t.Errorf("AsymFor(Ed25519 key) = %s", AsymName(got))
	}
}

// otherKeyLike returns the public half of a fresh key of the same kind as
// k, or nil for RSA (slow to generate; tampering covers RSA).
func otherKeyLike(t *testing.T, k crypto.Signer) crypto.PublicKey {
	t.Helper()
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		o, err := ecdsa.GenerateKey(k.Curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return o.Public()
	case ed25519.PrivateKey:
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	return nil
}

// TestSignedMessagePrefix: from 1.2 on the signed message is
// "dmtf-spdm-v1.N.*" four times (64 bytes), zero bytes, then the context
// string ending at byte 100, then the transcript hash (DSP0274 §15; the
// corpus README "Transcripts"; spdm.h SPDM_VERSION_1_2_SIGNING_CONTEXT_SIZE
// is 100).
func TestSignedMessagePrefix(t *testing.T) {
	th := codecFill(48, 0x40)
	// The whole 1.2 CHALLENGE_AUTH prefix, written out.
	want12 := strings.Repeat("dmtf-spdm-v1.2.*", 4) + "\x00\x00\x00\x00" + "responder-challenge_auth signing"
	if len(want12) != 100 {
		t.Fatalf("the written-out prefix has %d bytes", len(want12))
	}
	if got := signedMessage(V12, ContextChallengeAuth, th); string(got[:100]) != want12 || !bytes.Equal(got[100:], th) {
		t.Errorf("1.2 CHALLENGE_AUTH signed message\n got %q\nwant %q + hash", got[:min(len(got), 100)], want12)
	}
	for _, v := range []Version{V12, V13} {
		for _, context := range []string{ContextChallengeAuth, ContextMeasurements, ContextKeyExchangeRsp, ContextMutChallenge, ContextFinish} {
			m := signedMessage(v, context, th)
			if len(m) != 100+len(th) {
				t.Errorf("%v %q: %d bytes", v, context, len(m))
				continue
			}
			prefix := fmt.Sprintf("dmtf-spdm-v%d.%d.*", v>>4, v&0xF)
			if string(m[:64]) != strings.Repeat(prefix, 4) {
				t.Errorf("%v: starts %q", v, m[:64])
			}
			if !bytes.Equal(m[64:100-len(context)], make([]byte, 36-len(context))) {
				t.Errorf("%v %q: padding % x", v, context, m[64:100-len(context)])
			}
			if string(m[100-len(context):100]) != context {
				t.Errorf("%v %q: context does not end at byte 100: %q", v, context, m[64:100])
			}
			if !bytes.Equal(m[100:], th) {
				t.Errorf("%v: the transcript hash does not follow the prefix", v)
			}
			// What ECDSA and RSA sign is the hash of that message.
			if d := digestToSign(v, crypto.SHA384, context, th); !bytes.Equal(d, goldenHash(crypto.SHA384, m)) {
				t.Errorf("%v: digestToSign is not the hash of the signed message", v)
			}
		}
	}
	// 1.0 and 1.1 sign the transcript hash itself.
	for _, v := range []Version{V10, V11} {
		if m := signedMessage(v, ContextChallengeAuth, th); !bytes.Equal(m, th) {
			t.Errorf("%v signed message is not the transcript hash", v)
		}
		if d := digestToSign(v, crypto.SHA384, ContextChallengeAuth, th); !bytes.Equal(d, th) {
			t.Errorf("%v digest to sign is not the transcript hash", v)
		}
	}
}
