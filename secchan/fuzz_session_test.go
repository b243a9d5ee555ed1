package secchan

// Fuzz targets for the session message codec, one per decoder, with the
// properties of fuzz_test.go: no panics, only *DecodeError (ErrMalformed)
// failures, and canonical acceptance: Marshal of the result is exactly the
// bytes consumed, and decoding those bytes alone consumes them all. The
// transcript offsets are checked against the decoded fields.
//
// Seeds live in testdata/fuzz/<FuzzName>/, written from the golden corpus
// (plain exchanges and the messages decrypted from its sessions) and the
// hand-built samples by
//
//	SECCHAN_WRITE_FUZZ_SEEDS=1 go test ./secchan -run TestWriteSessionFuzzSeeds

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzExchangeSizes are the DHE exchange sizes (D) a selector picks from.
var fuzzExchangeSizes = []int{64, 96, 132, 256, 384, 512}

func smsgFuzzCanonical(t *testing.T, data []byte, code uint8, ctx smsgCtx) (codecMessage, int) {
	m, n, _, err := smsgDecodeAs(code, data, ctx)
	if err != nil {
		var de *DecodeError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &de) {
			t.Fatalf("%s: error %v is not a *DecodeError", CodeName(code), err)
		}
		return nil, 0
	}
	if n < 4 || n > len(data) {
		t.Fatalf("%s: consumed %d of %d bytes", CodeName(code), n, len(data))
	}
	if enc := m.Marshal(); !bytes.Equal(enc, data[:n]) {
		t.Fatalf("%s: Marshal(Decode(x)) != x[:%d]\n    x % x\n  got % x", CodeName(code), n, data[:n], enc)
	}
	if _, n2, _, err := smsgDecodeAs(code, data[:n], ctx); err != nil || n2 != n {
		t.Fatalf("%s: decoding the %d consumed bytes alone: %d, %v", CodeName(code), n, n2, err)
	}
	return m, n
}

func smsgFuzzSummary(summary bool, hash int) int {
	if summary {
		return hash
	}
	return 0
}

func FuzzDecodeKeyExchange(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, exSel uint8) {
		smsgFuzzCanonical(t, data, CodeKeyExchange, smsgCtx{exchange: fuzzPick(fuzzExchangeSizes, exSel)})
	})
}

func FuzzDecodeKeyExchangeRsp(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, exSel, hashSel uint8, summary bool, sigSel uint8, inClear bool) {
		h := fuzzPick(fuzzHashSizes, hashSel)
		ctx := smsgCtx{exchange: fuzzPick(fuzzExchangeSizes, exSel), summary: smsgFuzzSummary(summary, h),
			sig: fuzzPick(fuzzSigSizes, sigSel), hash: h, inClear: inClear}
		m, n := smsgFuzzCanonical(t, data, CodeKeyExchangeRsp, ctx)
		if k, ok := m.(*KeyExchangeRsp); ok {
			if k.TH1Len()+len(k.VerifyData) != n || k.SignedLen()+len(k.Signature) != k.TH1Len() || len(k.VerifyData) != map[bool]int{false: h}[inClear] {
				t.Fatalf("SignedLen %d, TH1Len %d, verify data %d of %d bytes", k.SignedLen(), k.TH1Len(), len(k.VerifyData), n)
			}
		}
	})
}

func FuzzDecodeFinish(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, sigSel, hashSel uint8) {
		ctx := smsgCtx{sig: fuzzPick(fuzzSigSizes, sigSel), hash: fuzzPick(fuzzHashSizes, hashSel)}
		m, n := smsgFuzzCanonical(t, data, CodeFinish, ctx)
		if x, ok := m.(*Finish); ok && x.MACedLen()+len(x.VerifyData) != n {
			t.Fatalf("MACedLen %d, verify data %d of %d bytes", x.MACedLen(), len(x.VerifyData), n)
		}
	})
}

func FuzzDecodeFinishRsp(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, hashSel uint8, inClear bool) {
		smsgFuzzCanonical(t, data, CodeFinishRsp, smsgCtx{hash: fuzzPick(fuzzHashSizes, hashSel), inClear: inClear})
	})
}

func FuzzDecodePSKExchange(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodePSKExchange, smsgCtx{}) })
}

func FuzzDecodePSKExchangeRsp(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, hashSel uint8, summary bool) {
		h := fuzzPick(fuzzHashSizes, hashSel)
		m, n := smsgFuzzCanonical(t, data, CodePSKExchangeRsp, smsgCtx{hash: h, summary: smsgFuzzSummary(summary, h)})
		if x, ok := m.(*PSKExchangeRsp); ok && x.TH1Len()+h != n {
			t.Fatalf("TH1Len %d of %d bytes", x.TH1Len(), n)
		}
	})
}

func FuzzDecodePSKFinish(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, hashSel uint8) {
		smsgFuzzCanonical(t, data, CodePSKFinish, smsgCtx{hash: fuzzPick(fuzzHashSizes, hashSel)})
	})
}

func FuzzDecodePSKFinishRsp(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodePSKFinishRsp, smsgCtx{}) })
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodeHeartbeat, smsgCtx{}) })
}

func FuzzDecodeHeartbeatAck(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodeHeartbeatAck, smsgCtx{}) })
}

func FuzzDecodeKeyUpdate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodeKeyUpdate, smsgCtx{}) })
}

func FuzzDecodeKeyUpdateAck(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodeKeyUpdateAck, smsgCtx{}) })
}

func FuzzDecodeEndSession(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodeEndSession, smsgCtx{}) })
}

func FuzzDecodeEndSessionAck(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { smsgFuzzCanonical(t, data, CodeEndSessionAck, smsgCtx{}) })
}

// fuzzPCIPayload checks PCI() on a decoded vendor-defined message: it fails
// cleanly or returns a payload that rebuilds the message.
func fuzzPCIPayload(t *testing.T, p PCIPayload, err error, rebuild func(PCIPayload) []byte, orig []byte) {
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("PCI(): %v is not ErrMalformed", err)
		}
		return
	}
	if enc := rebuild(p); !bytes.Equal(enc, orig) {
		t.Fatalf("PCI payload %v does not rebuild the message\n    x % x\n  got % x", p, orig, enc)
	}
}

func FuzzDecodeVendorDefinedRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, n := smsgFuzzCanonical(t, data, CodeVendorDefinedReq, smsgCtx{})
		if x, ok := m.(*VendorDefinedRequest); ok {
			p, err := x.PCI()
			fuzzPCIPayload(t, p, err, func(p PCIPayload) []byte { return p.Request(x.Version).Marshal() }, data[:n])
		}
	})
}

func FuzzDecodeVendorDefinedResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, n := smsgFuzzCanonical(t, data, CodeVendorDefinedRsp, smsgCtx{})
		if x, ok := m.(*VendorDefinedResponse); ok {
			p, err := x.PCI()
			fuzzPCIPayload(t, p, err, func(p PCIPayload) []byte { return p.Response(x.Version).Marshal() }, data[:n])
		}
	})
}

// fuzzOpaqueVersions are the SPDM versions FuzzParseOpaqueData picks from.
var fuzzOpaqueVersions = []Version{V11, V12, V13}

// FuzzParseOpaqueData: opaque data parses exactly and re-encodes to the
// same bytes; the DSP0277 element finders fail cleanly, and what they find
// re-encodes to the input when it is the only element.
func FuzzParseOpaqueData(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, verSel, format uint8) {
		v := fuzzPick(fuzzOpaqueVersions, verSel)
		wantErr := func(what string, err error) {
			var de *DecodeError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &de) {
				t.Fatalf("%s: %v is not a *DecodeError", what, err)
			}
		}
		elems, err := ParseOpaqueData(v, format, data)
		if err != nil {
			wantErr("ParseOpaqueData", err)
		} else if enc := MarshalOpaqueData(v, format, elems); !bytes.Equal(enc, data) {
			t.Fatalf("MarshalOpaqueData(ParseOpaqueData(x)) != x\n    x % x\n  got % x", data, enc)
		}
		if vs, err := DecodeSupportedVersions(v, format, data); err != nil {
			wantErr("DecodeSupportedVersions", err)
		} else if len(vs) == 0 || len(elems) == 1 && !bytes.Equal(EncodeSupportedVersions(v, format, vs), data) {
			t.Fatalf("supported versions %04x do not re-encode to % x", vs, data)
		}
		if sel, err := DecodeVersionSelection(v, format, data); err != nil {
			wantErr("DecodeVersionSelection", err)
		} else if len(elems) == 1 && !bytes.Equal(EncodeVersionSelection(v, format, sel), data) {
			t.Fatalf("selection 0x%04x does not re-encode to % x", sel, data)
		}
	})
}

// smsgFuzzTargets maps each message target to its code.
var smsgFuzzTargets = map[string]uint8{
	"FuzzDecodeKeyExchange": CodeKeyExchange, "FuzzDecodeKeyExchangeRsp": CodeKeyExchangeRsp,
	"FuzzDecodeFinish": CodeFinish, "FuzzDecodeFinishRsp": CodeFinishRsp,
	"FuzzDecodePSKExchange": CodePSKExchange, "FuzzDecodePSKExchangeRsp": CodePSKExchangeRsp,
	"FuzzDecodePSKFinish": CodePSKFinish, "FuzzDecodePSKFinishRsp": CodePSKFinishRsp,
	"FuzzDecodeHeartbeat": CodeHeartbeat, "FuzzDecodeHeartbeatAck": CodeHeartbeatAck,
	"FuzzDecodeKeyUpdate": CodeKeyUpdate, "FuzzDecodeKeyUpdateAck": CodeKeyUpdateAck,
	"FuzzDecodeEndSession": CodeEndSession, "FuzzDecodeEndSessionAck": CodeEndSessionAck,
	"FuzzDecodeVendorDefinedRequest": CodeVendorDefinedReq, "FuzzDecodeVendorDefinedResponse": CodeVendorDefinedRsp,
}

// smsgFuzzArgs renders a target's extra arguments for a context, in Go's
// corpus file syntax.
func smsgFuzzArgs(target string, ctx smsgCtx) []string {
	index := func(list []int, v int) string {
		for i, x := range list {
			if x == v {
				return fmt.Sprintf("byte(%d)", i)
			}
		}
		return "byte(0)"
	}
	b := func(v bool) string { return fmt.Sprintf("bool(%v)", v) }
	switch target {
	case "FuzzDecodeKeyExchange":
		return []string{index(fuzzExchangeSizes, ctx.exchange)}
	case "FuzzDecodeKeyExchangeRsp":
		return []string{index(fuzzExchangeSizes, ctx.exchange), index(fuzzHashSizes, ctx.hash), b(ctx.summary > 0),
			index(fuzzSigSizes, ctx.sig), b(ctx.inClear)}
	case "FuzzDecodeFinish":
		return []string{index(fuzzSigSizes, ctx.sig), index(fuzzHashSizes, ctx.hash)}
	case "FuzzDecodeFinishRsp":
		return []string{index(fuzzHashSizes, ctx.hash), b(ctx.inClear)}
	case "FuzzDecodePSKExchangeRsp":
		return []string{index(fuzzHashSizes, ctx.hash), b(ctx.summary > 0)}
	case "FuzzDecodePSKFinish":
		return []string{index(fuzzHashSizes, ctx.hash)}
	}
	return nil
}

// TestWriteSessionFuzzSeeds (re)writes the session targets' seeds when
// SECCHAN_WRITE_FUZZ_SEEDS is set; only golden-* and hand-* files are
// written, so crashers found by go test -fuzz stay.
func TestWriteSessionFuzzSeeds(t *testing.T) {
	if os.Getenv("SECCHAN_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set SECCHAN_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	byCode := map[uint8]string{}
	for target, code := range smsgFuzzTargets {
		byCode[code] = target
	}
	files := map[string]string{}
	seen := map[string]bool{}
	add := func(target, name, content string) {
		if seen[target+content] {
			return
		}
		seen[target+content] = true
		files[filepath.Join("testdata", "fuzz", target, name)] = content
	}
	opaque := func(name string, v Version, format uint8, b []byte) {
		sel := map[Version]int{V11: 0, V12: 1, V13: 2}[v]
		add("FuzzParseOpaqueData", name, fuzzSeedFile(b, fmt.Sprintf("byte(%d)", sel), fmt.Sprintf("byte(%d)", format)))
	}
	for _, c := range loadGoldenCases(t) {
		format := uint8(c.Algorithms.OtherParamsSelection)
		for _, ex := range smsgGoldenExchanges(t, c) {
			reqCtx := ex.rspCtx
			reqCtx.summary = 0
			for i, m := range []struct {
				raw []byte
				ctx smsgCtx
			}{{ex.reqRaw, reqCtx}, {ex.rspRaw, ex.rspCtx}} {
				target := byCode[m.raw[1]]
				add(target, fmt.Sprintf("golden-%s-%03d", c.Case, ex.index+i), fuzzSeedFile(m.raw, smsgFuzzArgs(target, m.ctx)...))
			}
			var reqOpaque, rspOpaque []byte
			switch x := ex.req.(type) {
			case *KeyExchange:
				reqOpaque, rspOpaque = x.Opaque, ex.rsp.(*KeyExchangeRsp).Opaque
			case *PSKExchange:
				reqOpaque, rspOpaque = x.Opaque, ex.rsp.(*PSKExchangeRsp).Opaque
			}
			opaque(fmt.Sprintf("golden-%s-%03d", c.Case, ex.index), c.version, format, reqOpaque)
			opaque(fmt.Sprintf("golden-%s-%03d", c.Case, ex.index+1), c.version, format, rspOpaque)
		}
		ctx := smsgGoldenCtx(t, c)
		for k := range c.Sessions {
			msgs, index := smsgSessionMessages(t, c, k)
			for j, b := range msgs {
				if target, ok := byCode[b[1]]; ok {
					add(target, fmt.Sprintf("golden-%s-%03d", c.Case, index[j]), fuzzSeedFile(b, smsgFuzzArgs(target, ctx)...))
				}
			}
		}
	}
	for _, s := range smsgHandBuilt() {
		b := s.msg.Marshal()
		target := byCode[b[1]]
		name := "hand-" + strings.NewReplacer("/", "-", " ", "-", ".", "_", ",", "").Replace(s.name)
		add(target, name, fuzzSeedFile(b, smsgFuzzArgs(target, s.ctx)...))
	}
	opaque("hand-general-mixed", V12, OpaqueFmt1, MarshalOpaqueData(V12, OpaqueFmt1, []OpaqueElement{
		{ID: RegistryPCISIG, VendorID: []byte{1, 0}, Data: []byte{7}}, {ID: RegistryDMTF, Data: []byte{1, 0, 0, 0x12}}}))
	opaque("hand-dsp0277-supported", V11, OpaqueFmtNone, EncodeSupportedVersions(V11, 0, []uint16{0x1100, 0x1200}))
	opaque("hand-fmt0-selection", V13, OpaqueFmt0, EncodeVersionSelection(V13, OpaqueFmt0, 0x1100))
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

// TestSessionFuzzSeedsPresent: every session target has seeds checked in.
func TestSessionFuzzSeedsPresent(t *testing.T) {
	targets := []string{"FuzzParseOpaqueData"}
	for target := range smsgFuzzTargets {
		targets = append(targets, target)
	}
	for _, target := range targets {
		entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", target))
		if err != nil || len(entries) == 0 {
			t.Errorf("%s: no seed corpus (%v)", target, err)
		}
	}
}
