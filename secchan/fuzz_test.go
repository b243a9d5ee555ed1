package secchan

// Fuzz targets, one per decoder. Each checks that the decoder never panics,
// fails only with ErrMalformed (ErrCertChain for ParseCertChain), and that
// whatever it accepts is canonical: Marshal of the result is exactly the
// bytes it consumed, and decoding just those bytes consumes them all.
// Every encoding in this codec is canonical (lengths are derived from the
// content, reserved fields must be zero, and fields with several encodings
// do not exist), so there are no exceptions; ParseCertChain has no
// Marshal and is checked against its input instead.
//
// Seed corpora live in testdata/fuzz/<FuzzName>/, written from the golden
// corpus and the hand-built samples by
//
//	SECCHAN_WRITE_FUZZ_SEEDS=1 go test ./secchan -run TestWriteFuzzSeeds

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Sizes the context-dependent decoders are fuzzed with; a uint8 selector
// picks one.
var (
	fuzzHashSizes     = []int{32, 48, 64}
	fuzzSigSizes      = []int{64, 96, 132, 256, 384, 512, 114}
	fuzzMeasHashSizes = []int{0, 32, 48, 64}
	fuzzHashes        = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
)

func fuzzPick[T any](list []T, sel uint8) T { return list[int(sel)%len(list)] }

// fuzzCanonical runs one decoder on data and checks the properties above.
func fuzzCanonical(t *testing.T, data []byte, code uint8, ctx goldenDecodeCtx) {
	m, n, _, err := codecDecodeAs(code, data, ctx)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: error %v is not ErrMalformed", CodeName(code), err)
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%s: error %v is not a *DecodeError", CodeName(code), err)
		}
		return
	}
	if n < 4 || n > len(data) {
		t.Fatalf("%s: consumed %d of %d bytes", CodeName(code), n, len(data))
	}
	if enc := m.Marshal(); !bytes.Equal(enc, data[:n]) {
		t.Fatalf("%s: Marshal(Decode(x)) != x[:%d]\n    x % x\n  got % x", CodeName(code), n, data[:n], enc)
	}
	if _, n2, _, err := codecDecodeAs(code, data[:n], ctx); err != nil || n2 != n {
		t.Fatalf("%s: decoding the %d consumed bytes alone: %d, %v", CodeName(code), n, n2, err)
	}
}

func FuzzDecodeGetVersion(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeGetVersion, goldenDecodeCtx{}) })
}

func FuzzDecodeVersion(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeVersion, goldenDecodeCtx{}) })
}

func FuzzDecodeGetCapabilities(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeGetCapabilities, goldenDecodeCtx{}) })
}

func FuzzDecodeCapabilities(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeCapabilities, goldenDecodeCtx{}) })
}

func FuzzDecodeNegotiateAlgorithms(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeNegotiateAlgorithms, goldenDecodeCtx{}) })
}

func FuzzDecodeAlgorithms(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeAlgorithms, goldenDecodeCtx{}) })
}

func FuzzDecodeGetDigests(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeGetDigests, goldenDecodeCtx{}) })
}

func FuzzDecodeDigests(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, hashSel uint8, multiKey bool) {
		fuzzCanonical(t, data, CodeDigests, goldenDecodeCtx{hashSize: fuzzPick(fuzzHashSizes, hashSel), multiKey: multiKey})
	})
}

func FuzzDecodeGetCertificate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeGetCertificate, goldenDecodeCtx{}) })
}

func FuzzDecodeCertificate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeCertificate, goldenDecodeCtx{}) })
}

func FuzzDecodeChallenge(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeChallenge, goldenDecodeCtx{}) })
}

func FuzzDecodeChallengeAuth(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, hashSel uint8, summary bool, sigSel uint8) {
		ctx := goldenDecodeCtx{hashSize: fuzzPick(fuzzHashSizes, hashSel), sigSize: fuzzPick(fuzzSigSizes, sigSel)}
		if summary {
			ctx.summarySize = ctx.hashSize
		}
		fuzzCanonical(t, data, CodeChallengeAuth, ctx)
	})
}

func FuzzDecodeGetMeasurements(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeGetMeasurements, goldenDecodeCtx{}) })
}

func FuzzDecodeMeasurements(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, signed bool, sigSel uint8, measHashSel uint8) {
		ctx := goldenDecodeCtx{sigSize: fuzzPick(fuzzSigSizes, sigSel), measSigned: signed}
		fuzzCanonical(t, data, CodeMeasurements, ctx)
		// The record inside a decoded MEASUREMENTS parses or fails cleanly.
		var m Measurements
		sig := 0
		if signed {
			sig = ctx.sigSize
		}
		if _, err := m.Decode(data, sig); err == nil {
			if blocks, err := m.Blocks(fuzzPick(fuzzMeasHashSizes, measHashSel)); err == nil {
				if !bytes.Equal(MarshalRecord(blocks), m.Record) {
					t.Fatalf("MarshalRecord(Blocks()) differs from the record")
				}
			} else if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Blocks: %v is not ErrMalformed", err)
			}
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCanonical(t, data, CodeError, goldenDecodeCtx{})
		var e ErrorResponse
		if _, err := e.Decode(data); err == nil {
			nr, ok := e.NotReadyData()
			if ok != (e.Code == ErrCodeResponseNotReady) {
				t.Fatalf("NotReadyData ok = %v for %v", ok, e.Code)
			}
			if ok && (nr.RDTExponent != e.Ext[0] || nr.RequestCode != e.Ext[1] || nr.Token != e.Ext[2] || nr.RDTM != e.Ext[3]) {
				t.Fatalf("NotReadyData %+v from % x", nr, e.Ext)
			}
			if !errors.Is(e.Err(), e.Code) {
				t.Fatalf("Err() does not match its code")
			}
		}
	})
}

func FuzzDecodeRespondIfReady(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeRespondIfReady, goldenDecodeCtx{}) })
}

func FuzzDecodeChunkGet(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeChunkGet, goldenDecodeCtx{}) })
}

func FuzzDecodeChunkResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzCanonical(t, data, CodeChunkResponse, goldenDecodeCtx{}) })
}

// FuzzParseRecord: a measurement record of n blocks parses to blocks that
// MarshalRecord turns back into exactly the record.
func FuzzParseRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, record []byte, n uint8, measHashSel uint8) {
		hs := fuzzPick(fuzzMeasHashSizes, measHashSel)
		blocks, err := ParseRecord(record, int(n), hs)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseRecord: %v is not ErrMalformed", err)
			}
			return
		}
		if len(blocks) != int(n) {
			t.Fatalf("%d blocks, asked for %d", len(blocks), n)
		}
		if enc := MarshalRecord(blocks); !bytes.Equal(enc, record) {
			t.Fatalf("MarshalRecord(ParseRecord(x)) != x\n    x % x\n  got % x", record, enc)
		}
		for _, b := range blocks {
			if b.Index == 0 || b.Index == 0xFF || b.Spec != MeasurementSpecDMTF || (!b.RawBitStream() && hs > 0 && len(b.Value) != hs) {
				t.Fatalf("accepted block %+v", b)
			}
		}
	})
}

// FuzzParseCertChain: the SPDM chain format never panics the parser; an
// accepted chain is exactly its input, header, root hash and certificates.
func FuzzParseCertChain(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte, hashSel uint8) {
		h := fuzzPick(fuzzHashes, hashSel)
		chain, err := ParseCertChain(raw, h)
		if err != nil {
			if !errors.Is(err, ErrCertChain) {
				t.Fatalf("ParseCertChain: %v is not ErrCertChain", err)
			}
			return
		}
		if !bytes.Equal(chain.Raw, raw) || int(raw[0])|int(raw[1])<<8 != len(raw) || raw[2] != 0 || raw[3] != 0 {
			t.Fatalf("accepted chain with header % x, %d bytes", raw[:4], len(raw))
		}
		if !bytes.Equal(chain.RootHash, raw[4:4+h.Size()]) {
			t.Fatalf("RootHash is not bytes 4..%d", 4+h.Size())
		}
		var ders []byte
		for _, c := range chain.Certs {
			ders = append(ders, c.Raw...)
		}
		if !bytes.Equal(ders, raw[4+h.Size():]) || chain.Leaf() != chain.Certs[len(chain.Certs)-1] {
			t.Fatalf("certificates do not make up the rest of the chain")
		}
	})
}

// fuzzSeedTargets maps each fuzz target taking one message to its code.
var fuzzSeedTargets = map[string]uint8{
	"FuzzDecodeGetVersion": CodeGetVersion, "FuzzDecodeVersion": CodeVersion,
	"FuzzDecodeGetCapabilities": CodeGetCapabilities, "FuzzDecodeCapabilities": CodeCapabilities,
	"FuzzDecodeNegotiateAlgorithms": CodeNegotiateAlgorithms, "FuzzDecodeAlgorithms": CodeAlgorithms,
	"FuzzDecodeGetDigests": CodeGetDigests, "FuzzDecodeDigests": CodeDigests,
	"FuzzDecodeGetCertificate": CodeGetCertificate, "FuzzDecodeCertificate": CodeCertificate,
	"FuzzDecodeChallenge": CodeChallenge, "FuzzDecodeChallengeAuth": CodeChallengeAuth,
	"FuzzDecodeGetMeasurements": CodeGetMeasurements, "FuzzDecodeMeasurements": CodeMeasurements,
	"FuzzDecodeError": CodeError, "FuzzDecodeRespondIfReady": CodeRespondIfReady,
	"FuzzDecodeChunkGet": CodeChunkGet, "FuzzDecodeChunkResponse": CodeChunkResponse,
}

// fuzzSeedArgs renders the extra arguments of a target for a sample's
// context, in Go's corpus file syntax.
func fuzzSeedArgs(target string, ctx goldenDecodeCtx) []string {
	index := func(list []int, v int) int {
		for i, x := range list {
			if x == v {
				return i
			}
		}
		return 0
	}
	switch target {
	case "FuzzDecodeDigests":
		return []string{fmt.Sprintf("byte(%d)", index(fuzzHashSizes, ctx.hashSize)), fmt.Sprintf("bool(%v)", ctx.multiKey)}
	case "FuzzDecodeChallengeAuth":
		return []string{fmt.Sprintf("byte(%d)", index(fuzzHashSizes, ctx.hashSize)), fmt.Sprintf("bool(%v)", ctx.summarySize > 0),
			fmt.Sprintf("byte(%d)", index(fuzzSigSizes, ctx.sigSize))}
	case "FuzzDecodeMeasurements":
		return []string{fmt.Sprintf("bool(%v)", ctx.measSigned), fmt.Sprintf("byte(%d)", index(fuzzSigSizes, ctx.sigSize)), "byte(3)"}
	}
	return nil
}

func fuzzSeedFile(data []byte, args ...string) string {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	fmt.Fprintf(&b, "[]byte(%q)\n", data)
	for _, a := range args {
		b.WriteString(a + "\n")
	}
	return b.String()
}

// TestWriteFuzzSeeds (re)writes testdata/fuzz from the golden corpus and
// the hand-built samples when SECCHAN_WRITE_FUZZ_SEEDS is set. Crashers
// that go test -fuzz adds there are kept: only golden-* and hand-* files
// are written.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SECCHAN_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set SECCHAN_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	files := map[string]string{} // path -> content
	add := func(target, name, content string) {
		files[filepath.Join("testdata", "fuzz", target, name)] = content
	}
	seen := map[string]bool{}
	byCode := map[uint8]string{}
	for target, code := range fuzzSeedTargets {
		byCode[code] = target
	}
	for _, c := range loadGoldenCases(t) {
		for _, r := range c.plainRecords(t) {
			target, ok := byCode[r.code]
			if !ok || r.msg == nil {
				continue
			}
			content := fuzzSeedFile(r.padded, fuzzSeedArgs(target, r.ctx)...)
			if seen[target+content] {
				continue
			}
			seen[target+content] = true
			add(target, fmt.Sprintf("golden-%s-%03d", c.Case, r.index), content)
			if m, ok := r.msg.(*Measurements); ok {
				add("FuzzParseRecord", fmt.Sprintf("golden-%s-%03d", c.Case, r.index),
					fuzzSeedFile(m.Record, fmt.Sprintf("byte(%d)", m.NumBlocks), "byte(3)"))
			}
		}
		chains := c.goldenChains(t, c.plainRecords(t))
		var slots []int
		for s := range chains.raw {
			slots = append(slots, int(s))
		}
		sort.Ints(slots)
		for _, s := range slots {
			hashSel := map[crypto.Hash]int{crypto.SHA256: 0, crypto.SHA384: 1, crypto.SHA512: 2}[c.hash]
			content := fuzzSeedFile(chains.raw[uint8(s)], fmt.Sprintf("byte(%d)", hashSel))
			if !seen["chain"+content] {
				seen["chain"+content] = true
				add("FuzzParseCertChain", fmt.Sprintf("golden-%s-slot%d", c.Case, s), content)
			}
		}
	}
	for _, s := range handBuiltSamples() {
		b := s.msg.Marshal()
		target := byCode[b[1]]
		name := "hand-" + strings.NewReplacer("/", "-", " ", "-", ".", "_").Replace(s.name)
		add(target, name, fuzzSeedFile(b, fuzzSeedArgs(target, s.ctx)...))
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d seed files", len(files))
}

// TestFuzzSeedsPresent: every target has seeds checked in, so plain
// go test runs each target over them.
func TestFuzzSeedsPresent(t *testing.T) {
	targets := []string{"FuzzParseRecord", "FuzzParseCertChain"}
	for target := range fuzzSeedTargets {
		targets = append(targets, target)
	}
	for _, target := range targets {
		entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", target))
		if err != nil || len(entries) == 0 {
			t.Errorf("%s: no seed corpus (%v)", target, err)
		}
	}
}
