package secchan

// Signatures over transcripts (DSP0274 §15, "Signature generation").
//
// From 1.2 on the signed message is a 100-byte prefix — the combined SPDM
// prefix "dmtf-spdm-v1.N.*" four times, zero bytes, then a context string
// ending at byte 100 — followed by the transcript hash. In 1.0 and 1.1 the
// signature is over the transcript hash itself.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
)

// Signing contexts (DSP0274 Table 55).
const (
	ContextChallengeAuth  = "responder-challenge_auth signing"
	ContextMeasurements   = "responder-measurements signing"
	ContextKeyExchangeRsp = "responder-key_exchange_rsp signing"
	ContextMutChallenge   = "requester-challenge_auth signing"
	ContextFinish         = "requester-finish signing"
)

const signPrefixSize = 100

// signedMessage builds what is signed for a transcript hash under version v.
func signedMessage(v Version, context string, transcriptHash []byte) []byte {
	if v < V12 {
		return transcriptHash
	}
	prefix := fmt.Sprintf("dmtf-spdm-v%d.%d.*", v>>4, v&0xF)
	m := make([]byte, 0, signPrefixSize+len(transcriptHash))
	for range 4 {
		m = append(m, prefix...)
	}
	m = append(m, make([]byte, signPrefixSize-len(m)-len(context))...)
	m = append(m, context...)
	return append(m, transcriptHash...)
}

// digestToSign returns what the asymmetric primitive operates on: for
// 1.2+ the hash of the signed message; for 1.0/1.1 the transcript hash.
func digestToSign(v Version, h crypto.Hash, context string, transcriptHash []byte) []byte {
	if v < V12 {
		return transcriptHash
	}
	d := h.New()
	d.Write(signedMessage(v, context, transcriptHash))
	return d.Sum(nil)
}

// VerifySignature checks sig, made with BaseAsymAlgo asym by pub, over the
// transcript hash th.
func VerifySignature(v Version, asym uint32, h crypto.Hash, pub crypto.PublicKey, context string, th, sig []byte) error {
	want, err := sigSize(asym)
	if err != nil {
		return err
	}
	if len(sig) != want {
		return fmt.Errorf("%w: signature is %d bytes, %s needs %d", ErrSignature, len(sig), AsymName(asym), want)
	}
	switch asym {
	case AsymECDSAP256, AsymECDSAP384, AsymECDSAP521:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curveOf(asym) {
			return fmt.Errorf("%w: key %T does not match %s", ErrSignature, pub, AsymName(asym))
		}
		half := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:half]), new(big.Int).SetBytes(sig[half:])
		if !ecdsa.Verify(k, digestToSign(v, h, context, th), r, s) {
			return fmt.Errorf("%w: ECDSA signature does not verify", ErrSignature)
		}
		return nil
	case AsymRSASSA2048, AsymRSASSA3072, AsymRSASSA4096, AsymRSAPSS2048, AsymRSAPSS3072, AsymRSAPSS4096:
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k.Size() != want {
			return fmt.Errorf("%w: key %T does not match %s", ErrSignature, pub, AsymName(asym))
		}
		d := digestToSign(v, h, context, th)
		if asym == AsymRSAPSS2048 || asym == AsymRSAPSS3072 || asym == AsymRSAPSS4096 {
			err = rsa.VerifyPSS(k, h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(k, h, d, sig)
		}
		if err != nil {
			return fmt.Errorf("%w: RSA signature does not verify", ErrSignature)
		}
		return nil
	case AsymEd25519:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("%w: key %T does not match %s", ErrSignature, pub, AsymName(asym))
		}
		// EdDSA signs the message itself (pure Ed25519), not its hash.
		if !ed25519.Verify(k, signedMessage(v, context, th), sig) {
			return fmt.Errorf("%w: Ed25519 signature does not verify", ErrSignature)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnsupportedAlgorithm, AsymName(asym))
}

// Sign signs the transcript hash th with key under BaseAsymAlgo asym.
func Sign(v Version, asym uint32, h crypto.Hash, key crypto.Signer, context string, th []byte) ([]byte, error) {
	size, err := sigSize(asym)
	if err != nil {
		return nil, err
	}
	switch asym {
	case AsymECDSAP256, AsymECDSAP384, AsymECDSAP521:
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok || k.Curve != curveOf(asym) {
			return nil, fmt.Errorf("secchan: signing key %T does not match %s", key, AsymName(asym))
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digestToSign(v, h, context, th))
		if err != nil {
			return nil, err
		}
		sig := make([]byte, size)
		r.FillBytes(sig[:size/2])
		s.FillBytes(sig[size/2:])
		return sig, nil
	case AsymRSASSA2048, AsymRSASSA3072, AsymRSASSA4096, AsymRSAPSS2048, AsymRSAPSS3072, AsymRSAPSS4096:
		k, ok := key.Public().(*rsa.PublicKey)
		if !ok || k.Size() != size {
			return nil, fmt.Errorf("secchan: signing key %T does not match %s", key.Public(), AsymName(asym))
		}
		if asym == AsymRSAPSS2048 || asym == AsymRSAPSS3072 || asym == AsymRSAPSS4096 {
			return key.Sign(rand.Reader, digestToSign(v, h, context, th), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
		}
		return key.Sign(rand.Reader, digestToSign(v, h, context, th), h)
	case AsymEd25519:
		if _, ok := key.Public().(ed25519.PublicKey); !ok {
			return nil, fmt.Errorf("secchan: signing key %T does not match %s", key.Public(), AsymName(asym))
		}
		return key.Sign(rand.Reader, signedMessage(v, context, th), crypto.Hash(0))
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedAlgorithm, AsymName(asym))
}

func curveOf(asym uint32) elliptic.Curve {
	switch asym {
	case AsymECDSAP256:
		return elliptic.P256()
	case AsymECDSAP384:
		return elliptic.P384()
	case AsymECDSAP521:
		return elliptic.P521()
	}
	return nil
}

// AsymFor returns the BaseAsymAlgo bit matching a public key, or 0.
func AsymFor(pub crypto.PublicKey) uint32 {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return AsymECDSAP256
		case elliptic.P384():
			return AsymECDSAP384
		case elliptic.P521():
			return AsymECDSAP521
		}
	case ed25519.PublicKey:
		return AsymEd25519
	case *rsa.PublicKey:
		switch k.Size() {
		case 256:
			return AsymRSASSA2048
		case 384:
			return AsymRSASSA3072
		case 512:
			return AsymRSASSA4096
		}
	}
	return 0
}
