package secchan

// Transcripts and signatures of the golden corpus: rebuild M1M2 and L1L2
// from the captured bytes, check them against the hashes libspdm printed,
// reassemble and validate every certificate chain, and verify every
// responder signature in the plain records with the leaf key of its slot.

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// goldenValidationTime lies inside the validity of every sample
// certificate, so the test does not depend on the clock: the CAs run from
// 2023 to 2033, but the leaf of the 1.3 case's slot 4 ("DMTF libspdm
// ecp384 responder cert slot4") is valid only from 2026-06-09 to
// 2036-06-06.
var goldenValidationTime = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// goldenSigned is one signed response with the transcript hash it covers.
type goldenSigned struct {
	index   int    // record of the signed response
	kind    string // "m1m2" or "l1l2", as in signature_transcript_hashes
	context string
	slot    uint8
	th      []byte // transcript hash, rebuilt from the captured bytes
	sig     []byte
}

func goldenHash(h crypto.Hash, parts ...[]byte) []byte {
	d := h.New()
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

// goldenSignedResponses replays libspdm's transcript bookkeeping over the
// plain records (libspdm_reset_message_buffer_via_request_code and the
// requester's append calls):
//
//   - A (VCA): GET_VERSION restarts it; VERSION .. ALGORITHMS are appended.
//   - B: GET_DIGESTS restarts it; GET_DIGESTS, DIGESTS, GET_CERTIFICATE and
//     CERTIFICATE are appended.
//   - C: CHALLENGE and CHALLENGE_AUTH without its signature.
//     M1M2 = hash(A, B, C); B and C then start over.
//   - M (L1L2): every request other than GET_MEASUREMENTS empties it;
//     GET_MEASUREMENTS/MEASUREMENTS pairs accumulate, so unsigned pairs
//     before a signed one are covered by its signature;
//     L1L2 = hash([A if 1.2+], M without the signature); M then starts over.
//   - Before the connection is authenticated, GET_MEASUREMENTS and the
//     session requests empty B and C.
func (c *goldenCase) goldenSignedResponses(t testing.TB, recs []goldenRecord) []goldenSigned {
	t.Helper()
	var a, b, cc, m []byte
	authenticated := false
	var out []goldenSigned
	for _, r := range recs {
		if r.dir == "req" {
			if r.code != CodeGetMeasurements {
				m = nil
			}
			switch r.code {
			case CodeGetMeasurements, CodeKeyExchange, CodeFinish, CodePSKExchange, CodePSKFinish,
				CodeKeyUpdate, CodeHeartbeat, CodeEndSession:
				if !authenticated {
					b, cc = nil, nil
				}
			case CodeGetDigests:
				b = nil
			}
		}
		switch x := r.msg.(type) {
		case *GetVersion:
			a, b, cc, m = append([]byte(nil), r.raw...), nil, nil, nil
			authenticated = false
		case *VersionResponse, *GetCapabilities, *Capabilities, *NegotiateAlgorithms, *Algorithms:
			a = append(a, r.raw...)
		case *GetDigests, *Digests, *GetCertificate, *Certificate:
			b = append(b, r.raw...)
		case *Challenge:
			cc = append(cc, r.raw...)
		case *ChallengeAuth:
			signed := r.raw[:len(r.raw)-len(x.Signature)]
			cc = append(cc, signed...)
			out = append(out, goldenSigned{index: r.index, kind: "m1m2", context: ContextChallengeAuth,
				slot: x.Slot, th: goldenHash(c.hash, a, b, cc), sig: x.Signature})
			b, cc = nil, nil
			authenticated = true
		case *GetMeasurements:
			m = append(m, r.raw...)
		case *Measurements:
			if !r.ctx.measSigned {
				m = append(m, r.raw...)
				continue
			}
			m = append(m, r.raw[:len(r.raw)-len(x.Signature)]...)
			var th []byte
			if c.version >= V12 {
				th = goldenHash(c.hash, a, m)
			} else {
				th = goldenHash(c.hash, m)
			}
			out = append(out, goldenSigned{index: r.index, kind: "l1l2", context: ContextMeasurements,
				slot: x.Slot, th: th, sig: x.Signature})
			m = nil
		}
	}
	return out
}

// goldenChainSet is every slot's certificate chain, reassembled from the
// CERTIFICATE portions, and the DIGESTS responses seen.
type goldenChainSet struct {
	raw     map[uint8][]byte
	digests []*Digests
}

func (c *goldenCase) goldenChains(t testing.TB, recs []goldenRecord) goldenChainSet {
	t.Helper()
	set := goldenChainSet{raw: map[uint8][]byte{}}
	var req *GetCertificate
	partial := map[uint8][]byte{}
	for _, r := range recs {
		switch x := r.msg.(type) {
		case *Digests:
			set.digests = append(set.digests, x)
		case *GetCertificate:
			req = x
		case *Certificate:
			if req == nil {
				t.Fatalf("record %d: CERTIFICATE without GET_CERTIFICATE", r.index)
			}
			if x.Slot != req.Slot || len(x.Portion) > int(req.Length) || len(x.Portion) == 0 {
				t.Fatalf("record %d: CERTIFICATE slot %d portion %d for GET_CERTIFICATE slot %d length %d",
					r.index, x.Slot, len(x.Portion), req.Slot, req.Length)
			}
			if req.Offset == 0 {
				partial[x.Slot] = nil
			} else if int(req.Offset) != len(partial[x.Slot]) {
				t.Fatalf("record %d: offset %d, have %d bytes of slot %d", r.index, req.Offset, len(partial[x.Slot]), x.Slot)
			}
			partial[x.Slot] = append(partial[x.Slot], x.Portion...)
			if x.Remainder == 0 {
				chain := partial[x.Slot]
				if prev, ok := set.raw[x.Slot]; ok && !bytes.Equal(prev, chain) {
					t.Errorf("record %d: slot %d chain differs from the one read before", r.index, x.Slot)
				}
				set.raw[x.Slot] = chain
				delete(partial, x.Slot)
			}
			req = nil
		}
	}
	return set
}

// goldenLeafKeys parses and validates every captured chain and returns the
// leaf public key of each slot.
func (c *goldenCase) goldenLeafKeys(t *testing.T, recs []goldenRecord) (map[uint8]crypto.PublicKey, map[uint8]*CertChain) {
	t.Helper()
	set := c.goldenChains(t, recs)
	if len(set.raw) != len(c.ResponderCertChainRoots) {
		t.Errorf("captured chains for %d slots, JSON names roots for %d", len(set.raw), len(c.ResponderCertChainRoots))
	}
	rootCA, err := x509.ParseCertificate(c.rootDER)
	if err != nil {
		t.Fatalf("root: %v", err)
	}
	roots := []*x509.Certificate{rootCA}
	rootDERByName := map[string][]byte{"ca.cert.der": c.rootDER}
	if c.root1DER != nil {
		root1, err := x509.ParseCertificate(c.root1DER)
		if err != nil {
			t.Fatalf("slot-1 root: %v", err)
		}
		roots = append(roots, root1)
		rootDERByName["ca1.cert.der"] = c.root1DER
	}
	keys := map[uint8]crypto.PublicKey{}
	chains := map[uint8]*CertChain{}
	for slot, raw := range set.raw {
		chain, err := ParseCertChain(raw, c.hash)
		if err != nil {
			t.Errorf("slot %d: ParseCertChain: %v", slot, err)
			continue
		}
		for i, d := range set.digests {
			if got := d.DigestFor(slot); !bytes.Equal(got, goldenHash(c.hash, raw)) {
				t.Errorf("slot %d: DIGESTS #%d entry %x, hash of the chain %x", slot, i, got, goldenHash(c.hash, raw))
			}
		}
		name := c.ResponderCertChainRoots[strconv.Itoa(int(slot))]
		rootDER, ok := rootDERByName[name]
		if !ok {
			t.Errorf("slot %d: JSON names root %q, which the case does not carry", slot, name)
		} else if !bytes.Equal(chain.RootHash, goldenHash(c.hash, rootDER)) {
			t.Errorf("slot %d: RootHash is not the hash of %s", slot, name)
		}
		v := &AnchorValidator{Roots: roots, Now: func() time.Time { return goldenValidationTime }}
		if err := v.ValidateChain(chain, c.hash); err != nil {
			t.Errorf("slot %d: AnchorValidator: %v", slot, err)
		}
		// Anchored by one root only: the other root alone must not do.
		for _, other := range roots {
			if bytes.Equal(other.Raw, rootDER) {
				continue
			}
			v := &AnchorValidator{Roots: []*x509.Certificate{other}, Now: func() time.Time { return goldenValidationTime }}
			if err := v.ValidateChain(chain, c.hash); !errors.Is(err, ErrCertChain) {
				t.Errorf("slot %d: validated against %s, which does not anchor it: %v", slot, other.Subject, err)
			}
		}
		// Today, for information only: the sample CAs expire in 2033, and
		// the 1.3 slot-4 leaf is valid only from 2026-06-09.
		if err := (&AnchorValidator{Roots: roots}).ValidateChain(chain, c.hash); err != nil {
			t.Logf("slot %d: AnchorValidator at time.Now: %v", slot, err)
		}
		leaf := chain.Leaf()
		t.Logf("slot %d: %d certificates, leaf %q valid %s..%s, root %s", slot, len(chain.Certs), leaf.Subject.String(),
			leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly), name)
		if AsymFor(leaf.PublicKey) != uint32(c.Algorithms.BaseAsymAlgo) {
			t.Errorf("slot %d: leaf key %T is not the negotiated %s", slot, leaf.PublicKey, AsymName(uint32(c.Algorithms.BaseAsymAlgo)))
		}
		keys[slot] = leaf.PublicKey
		chains[slot] = chain
	}
	return keys, chains
}

// TestGoldenSignatures verifies every CHALLENGE_AUTH and every signed
// MEASUREMENTS in the plain records over a transcript rebuilt from the
// captured bytes, which must hash to the value libspdm printed.
func TestGoldenSignatures(t *testing.T) {
	total := 0
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			recs := c.plainRecords(t)
			keys, chains := c.goldenLeafKeys(t, recs)
			want := map[int]goldenSigHash{}
			inSession := 0
			for _, s := range c.SignatureTranscriptHashes {
				if s.SessionID != "" {
					inSession++ // MEASUREMENTS inside a session: encrypted, not checked here
				} else if s.Kind == "m1m2" || s.Kind == "l1l2" {
					want[s.MessageIndex] = s
				}
			}
			defer func() { t.Logf("%d in-session signed MEASUREMENTS skipped (secured records)", inSession) }()
			signed := c.goldenSignedResponses(t, recs)
			if len(signed) != len(want) {
				t.Errorf("rebuilt %d signed responses, libspdm printed %d plain m1m2/l1l2 hashes", len(signed), len(want))
			}
			asym := uint32(c.Algorithms.BaseAsymAlgo)
			for _, s := range signed {
				total++
				w, ok := want[s.index]
				if !ok {
					t.Errorf("record %d (%s): libspdm printed no hash", s.index, s.kind)
					continue
				}
				if w.Kind != s.kind {
					t.Errorf("record %d: kind %s, JSON says %s", s.index, s.kind, w.Kind)
				}
				if exp := goldenHex(t, w.Hash); !bytes.Equal(s.th, exp) {
					t.Errorf("record %d (%s): transcript hash\n  rebuilt %x\n  libspdm %x", s.index, s.kind, s.th, exp)
				}
				key, ok := keys[s.slot]
				if !ok {
					t.Errorf("record %d: signed with slot %d, whose chain was not captured", s.index, s.slot)
					continue
				}
				if err := VerifySignature(c.version, asym, c.hash, key, s.context, s.th, s.sig); err != nil {
					t.Errorf("record %d (%s, slot %d): %v", s.index, s.kind, s.slot, err)
				}
				goldenTamperChecks(t, fmt.Sprintf("record %d (%s)", s.index, s.kind), c.version, asym, c.hash, key, s.context, s.th, s.sig)
				// A different key must not verify it. (libspdm's slot-1 chain
				// certifies the same responder key as slot 0 under another CA;
				// the 1.3 slot-4 key is distinct.)
				for other, k := range keys {
					if other == s.slot || k.(interface{ Equal(crypto.PublicKey) bool }).Equal(key) {
						continue
					}
					if VerifySignature(c.version, asym, c.hash, k, s.context, s.th, s.sig) == nil {
						t.Errorf("record %d: verifies with the key of slot %d too", s.index, other)
					}
				}
			}
			// CHALLENGE_AUTH carries the hash of the chain it was asked about.
			for _, r := range recs {
				if x, ok := r.msg.(*ChallengeAuth); ok {
					if ch := chains[x.Slot]; ch == nil || !bytes.Equal(x.CertChainHash, goldenHash(c.hash, ch.Raw)) {
						t.Errorf("record %d: CertChainHash is not the hash of slot %d's chain", r.index, x.Slot)
					}
				}
			}
		})
	}
	t.Logf("%d signatures verified", total)
}

// goldenTamperChecks: one flipped bit in the transcript hash or in the
// signature, or (1.2+) another signing context, makes verification fail
// with ErrSignature.
//
// Before 1.2, ECDSA signs the transcript hash itself, and ECDSA uses only
// as many leading bits of what it signs as the curve order has (FIPS 186-5
// §6.4.1): a SHA-384 or SHA-512 transcript hash signed with P-256 is
// authenticated in its first 32 bytes only. Bits are flipped there.
func goldenTamperChecks(t *testing.T, what string, v Version, asym uint32, h crypto.Hash, key crypto.PublicKey, context string, th, sig []byte) {
	t.Helper()
	covered := len(th)
	if v < V12 && (asym == AsymECDSAP256 || asym == AsymECDSAP384) {
		covered = min(covered, len(sig)/2)
	}
	for _, bit := range []int{0, 7, 8*covered - 1} {
		bad := bytes.Clone(th)
		bad[bit/8] ^= 1 << (bit % 8)
		if err := VerifySignature(v, asym, h, key, context, bad, sig); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: transcript hash bit %d flipped: err = %v, want ErrSignature", what, bit, err)
		}
	}
	for _, bit := range []int{0, 8*len(sig)/2 - 1, 8 * len(sig) / 2, 8*len(sig) - 1} {
		bad := bytes.Clone(sig)
		bad[bit/8] ^= 1 << (bit % 8)
		if err := VerifySignature(v, asym, h, key, context, th, bad); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: signature bit %d flipped: err = %v, want ErrSignature", what, bit, err)
		}
	}
	if err := VerifySignature(v, asym, h, key, context, th, sig[:len(sig)-1]); !errors.Is(err, ErrSignature) {
		t.Errorf("%s: truncated signature: err = %v, want ErrSignature", what, err)
	}
	other := ContextMeasurements
	if context == ContextMeasurements {
		other = ContextChallengeAuth
	}
	err := VerifySignature(v, asym, h, key, other, th, sig)
	if v >= V12 && !errors.Is(err, ErrSignature) {
		t.Errorf("%s: verified under context %q: err = %v, want ErrSignature", what, other, err)
	}
	if v < V12 && err != nil {
		// 1.1 signs the transcript hash itself: there is no context.
		t.Errorf("%s: 1.1 signature depends on the context: %v", what, err)
	}
}

// TestGoldenKeyExchangeRspSignatures verifies the plain KEY_EXCHANGE_RSP
// signatures too (README "Transcripts": hash(VCA, [D], Ct, KEY_EXCHANGE,
// KEY_EXCHANGE_RSP up to the end of its opaque data)). The codec has no
// KEY_EXCHANGE decoder yet, so the test walks the two messages by hand
// (DSP0274 KEY_EXCHANGE / KEY_EXCHANGE_RSP tables, spdm.h
// spdm_key_exchange_request_t / spdm_key_exchange_response_t).
func TestGoldenKeyExchangeRspSignatures(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			recs := c.plainRecords(t)
			keys, chains := c.goldenLeafKeys(t, recs)
			byIndex := map[int]goldenRecord{}
			var vca, firstDigests []byte
			for _, r := range recs {
				byIndex[r.index] = r
				if r.index >= 6 && r.index <= 11 {
					vca = append(vca, r.raw...)
				}
				if _, ok := r.msg.(*Digests); ok && firstDigests == nil {
					firstDigests = r.raw
				}
			}
			dheSize := map[int]int{0x08: 64, 0x10: 96}[c.Algorithms.DHENamedGroup]
			verified := 0
			for _, s := range c.Sessions {
				if s.Type != "key_exchange" {
					continue
				}
				ke, rsp := byIndex[s.ExchangeMessageIndex], byIndex[s.ExchangeMessageIndex+1]
				if ke.code != CodeKeyExchange || rsp.code != CodeKeyExchangeRsp {
					t.Fatalf("session at %d: records are %s, %s", s.ExchangeMessageIndex, CodeName(ke.code), CodeName(rsp.code))
				}
				// KEY_EXCHANGE: header, ReqSessionID(2), SessionPolicy(1),
				// Reserved(1), RandomData(32), ExchangeData(D),
				// OpaqueDataLength(2), OpaqueData.
				p := ke.padded
				off := 4 + 2 + 1 + 1 + 32 + dheSize
				keLen := off + 2 + int(binary.LittleEndian.Uint16(p[off:]))
				summary := 0
				if p[2] != SummaryNone {
					summary = c.hashSize
				}
				slot := p[3]
				if s.SlotID == nil || int(slot) != *s.SlotID {
					t.Errorf("session at %d: KEY_EXCHANGE slot %d, JSON %v", s.ExchangeMessageIndex, slot, s.SlotID)
				}
				// KEY_EXCHANGE_RSP: header, RspSessionID(2),
				// MutAuthRequested(1), ReqSlotIDParam(1), RandomData(32),
				// ExchangeData(D), MeasurementSummaryHash, OpaqueDataLength(2),
				// OpaqueData, Signature(S), ResponderVerifyData(H).
				q := rsp.padded
				off = 4 + 2 + 1 + 1 + 32 + dheSize + summary
				opaqueEnd := off + 2 + int(binary.LittleEndian.Uint16(q[off:]))
				sig := q[opaqueEnd : opaqueEnd+c.sigSize]
				rspLen := opaqueEnd + c.sigSize + c.hashSize
				for name, pad := range map[string][]byte{"KEY_EXCHANGE": p[keLen:], "KEY_EXCHANGE_RSP": q[rspLen:]} {
					if len(pad) >= 4 || !bytes.Equal(pad, make([]byte, len(pad))) {
						t.Errorf("session at %d: %s leaves % x after the message", s.ExchangeMessageIndex, name, pad)
					}
				}
				chain := chains[slot]
				if chain == nil {
					t.Fatalf("session at %d: slot %d chain not captured", s.ExchangeMessageIndex, slot)
				}
				parts := [][]byte{vca}
				if c.MultiKeyConnRsp {
					parts = append(parts, firstDigests)
				}
				parts = append(parts, goldenHash(c.hash, chain.Raw), p[:keLen], q[:opaqueEnd])
				th := goldenHash(c.hash, parts...)
				if exp := goldenHex(t, s.KeyExchangeRspSignatureTHHash); !bytes.Equal(th, exp) {
					t.Errorf("session at %d: transcript hash\n  rebuilt %x\n  libspdm %x", s.ExchangeMessageIndex, th, exp)
				}
				listed := false
				for _, h := range c.SignatureTranscriptHashes {
					if h.Kind == "key_exchange_rsp" && h.MessageIndex == rsp.index {
						listed = h.Hash == s.KeyExchangeRspSignatureTHHash
					}
				}
				if !listed {
					t.Errorf("session at %d: signature_transcript_hashes has no matching key_exchange_rsp entry", s.ExchangeMessageIndex)
				}
				asym := uint32(c.Algorithms.BaseAsymAlgo)
				if err := VerifySignature(c.version, asym, c.hash, keys[slot], ContextKeyExchangeRsp, th, sig); err != nil {
					t.Errorf("session at %d (slot %d): %v", s.ExchangeMessageIndex, slot, err)
				}
				goldenTamperChecks(t, fmt.Sprintf("KEY_EXCHANGE_RSP %d", s.ExchangeMessageIndex+1), c.version, asym, c.hash, keys[slot], ContextKeyExchangeRsp, th, sig)
				verified++
			}
			t.Logf("%d KEY_EXCHANGE_RSP signatures verified", verified)
		})
	}
}
