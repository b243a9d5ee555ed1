package secchan

// Codec tests beyond the golden corpus: no strict prefix of a valid message
// decodes, every reserved field is checked, a wrong code is refused, and
// hand-built messages round-trip for the fields libspdm's traffic does not
// exercise. Layouts and sizes are from DSP0274 and libspdm's
// include/industry_standard/spdm.h.

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"
)

// codecSample is one valid message and the context its decoder needs.
type codecSample struct {
	name    string
	msg     codecMessage
	ctx     goldenDecodeCtx
	wantLen int                                  // size by DSP0274 / spdm.h
	check   func(t *testing.T, got codecMessage) // fields worth checking one by one
	// noLength: ERROR with a code whose extended data has no length field
	// (everything after the header is extended data), so every prefix of
	// 4 bytes or more is itself a valid, shorter ERROR.
	noLength bool
}

func codecFill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)*7
	}
	return b
}

func codecNonce(seed byte) (n [NonceSize]byte) {
	copy(n[:], codecFill(NonceSize, seed))
	return n
}

func codecContext(seed byte) (c [ContextSize]byte) {
	copy(c[:], codecFill(ContextSize, seed))
	return c
}

var (
	ctxSHA256P256 = goldenDecodeCtx{hashSize: 32, sigSize: 64}
	ctxSHA384P384 = goldenDecodeCtx{hashSize: 48, sigSize: 96}
)

func codecWithCtx(c goldenDecodeCtx, f func(*goldenDecodeCtx)) goldenDecodeCtx { f(&c); return c }

// handBuiltSamples covers every decoder, every version-dependent layout and
// the optional fields.
func handBuiltSamples() []codecSample {
	structs := []AlgStruct{
		{Type: AlgTypeDHE, Bits: DHESECP384R1},
		{Type: AlgTypeAEAD, Bits: AEADAES256GCM},
		{Type: AlgTypeReqBaseAsym, Bits: uint16(AsymRSAPSS3072)},
		{Type: AlgTypeKeySchedule, Bits: KeyScheduleSPDM},
	}
	structsExt := []AlgStruct{
		{Type: AlgTypeDHE, Bits: DHESECP256R1 | DHESECP384R1, External: []uint32{0x00020001}},
		{Type: AlgTypeKeySchedule, Bits: KeyScheduleSPDM},
	}
	blocks := []MeasurementBlock{
		{Index: 1, Spec: MeasurementSpecDMTF, ValueType: MeasTypeImmutableROM, Value: codecFill(64, 1)},
		{Index: 0xFD, Spec: MeasurementSpecDMTF, ValueType: MeasTypeManifest | MeasTypeRawBitStream, Value: codecFill(5, 2)},
	}
	return []codecSample{
		{name: "GET_VERSION", msg: &GetVersion{}, wantLen: 4},
		{name: "VERSION/1 entry", msg: &VersionResponse{Entries: []VersionEntry{0x1200}}, wantLen: 8},
		{name: "VERSION/4 entries", msg: &VersionResponse{Entries: []VersionEntry{0x1000, 0x1100, 0x1210, 0x1300}}, wantLen: 14,
			check: func(t *testing.T, m codecMessage) {
				v := m.(*VersionResponse)
				for _, c := range []struct {
					offered []Version
					want    Version
					ok      bool
				}{{[]Version{V10, V11, V12, V13}, V13, true}, {[]Version{V11, V12}, V12, true}, {[]Version{V10}, V10, true}, {nil, 0, false}} {
					if got, ok := v.Highest(c.offered); got != c.want || ok != c.ok {
						t.Errorf("Highest(%v) = %v, %v; want %v, %v", c.offered, got, ok, c.want, c.ok)
					}
				}
				if v.Entries[2].Version() != V12 {
					t.Errorf("entry 0x1210 (1.2, update 1) is version %v", v.Entries[2].Version())
				}
			}},
		{name: "GET_CAPABILITIES/1.0", msg: &GetCapabilities{Version: V10}, wantLen: 4},
		{name: "GET_CAPABILITIES/1.1", msg: &GetCapabilities{Version: V11, CTExponent: 20, Flags: CapCert | CapChal | CapEncrypt | CapMAC | CapKeyEx}, wantLen: 12},
		{name: "GET_CAPABILITIES/1.2", msg: &GetCapabilities{Version: V12, CTExponent: 12, Flags: CapCert | CapChunk, DataTransferSize: 4096, MaxSPDMmsgSize: 65536}, wantLen: 20},
		{name: "GET_CAPABILITIES/1.3", msg: &GetCapabilities{Version: V13, Flags: CapCert | CapMultiKeyNeg, DataTransferSize: MinDataTransferSize, MaxSPDMmsgSize: MinDataTransferSize}, wantLen: 20},
		{name: "GET_CAPABILITIES/1.3 supported algorithms", msg: &GetCapabilities{Version: V13, SupportedAlgs: true, Flags: CapCert | CapChunk, DataTransferSize: 4096, MaxSPDMmsgSize: 4096}, wantLen: 20,
			check: func(t *testing.T, m codecMessage) {
				if b := m.Marshal(); b[2] != 0x01 || !m.(*GetCapabilities).SupportedAlgs {
					t.Errorf("Param1 0x%02x, SupportedAlgs %v", b[2], m.(*GetCapabilities).SupportedAlgs)
				}
			}},
		{name: "CAPABILITIES/1.0", msg: &Capabilities{Version: V10, CTExponent: 9, Flags: CapCache | CapCert | CapChal | CapMeasSig | CapMeasFresh}, wantLen: 12,
			check: func(t *testing.T, m codecMessage) {
				if c := m.(*Capabilities); c.CTExponent != 9 || c.Flags != CapCache|CapCert|CapChal|CapMeasSig|CapMeasFresh || c.DataTransferSize != 0 {
					t.Errorf("1.0 CAPABILITIES decoded as %+v", c)
				}
			}},
		{name: "CAPABILITIES/1.1", msg: &Capabilities{Version: V11, CTExponent: 0xFF, Flags: CapCert | CapMeasNoSig | CapKeyEx | CapPSKWithContext | CapHandshakeInClr | CapPubKeyID}, wantLen: 12},
		{name: "CAPABILITIES/1.2", msg: &Capabilities{Version: V12, Flags: CapCert | CapChunk | CapAliasCert, DataTransferSize: 1024, MaxSPDMmsgSize: 1 << 20}, wantLen: 20},
		{name: "NEGOTIATE_ALGORITHMS/1.0", msg: &NegotiateAlgorithms{Version: V10, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: AsymECDSAP256, BaseHashAlgo: HashSHA256}, wantLen: 32},
		{name: "NEGOTIATE_ALGORITHMS/1.1", msg: &NegotiateAlgorithms{Version: V11, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: AsymECDSAP256 | AsymECDSAP384, BaseHashAlgo: HashSHA256 | HashSHA384, Structs: structs}, wantLen: 48},
		{name: "NEGOTIATE_ALGORITHMS/1.2 external", msg: &NegotiateAlgorithms{Version: V12, MeasurementSpec: MeasurementSpecDMTF, OtherParamsSupport: 2,
			BaseAsymAlgo: AsymEd25519, BaseHashAlgo: HashSHA512, ExtAsym: []uint32{0x00010002, 0x00030004}, ExtHash: []uint32{0x00050006}, Structs: structsExt}, wantLen: 32 + 8 + 4 + 8 + 4,
			check: func(t *testing.T, m codecMessage) {
				n := m.(*NegotiateAlgorithms)
				if len(n.ExtAsym) != 2 || n.ExtHash[0] != 0x00050006 || n.Structs[0].External[0] != 0x00020001 {
					t.Errorf("external algorithms decoded as %+v", n)
				}
			}},
		{name: "NEGOTIATE_ALGORITHMS/1.3", msg: &NegotiateAlgorithms{Version: V13, MeasurementSpec: MeasurementSpecDMTF, OtherParamsSupport: 0x12, MELSpec: 1,
			BaseAsymAlgo: AsymECDSAP384, BaseHashAlgo: HashSHA384, Structs: structs}, wantLen: 48},
		{name: "ALGORITHMS/1.0", msg: &Algorithms{Version: V10, MeasurementSpecSel: MeasurementSpecDMTF, MeasurementHashAlgo: MeasHashSHA384, BaseAsymSel: AsymECDSAP384, BaseHashSel: HashSHA384}, wantLen: 36},
		{name: "ALGORITHMS/1.1", msg: &Algorithms{Version: V11, MeasurementSpecSel: MeasurementSpecDMTF, MeasurementHashAlgo: MeasHashSHA512, BaseAsymSel: AsymECDSAP256, BaseHashSel: HashSHA256, Structs: structs}, wantLen: 52},
		{name: "ALGORITHMS/1.2 external", msg: &Algorithms{Version: V12, MeasurementSpecSel: MeasurementSpecDMTF, OtherParamsSelection: 2, MeasurementHashAlgo: MeasHashRaw,
			ExtAsymSel: []uint32{0x00010002}, ExtHashSel: []uint32{0x00030004}, Structs: structsExt}, wantLen: 36 + 8 + 8 + 4},
		{name: "ALGORITHMS/1.3", msg: &Algorithms{Version: V13, MeasurementSpecSel: MeasurementSpecDMTF, OtherParamsSelection: 2, MeasurementHashAlgo: MeasHashSHA512,
			BaseAsymSel: AsymECDSAP384, BaseHashSel: HashSHA384, MELSpecSel: 1, Structs: structs}, wantLen: 52},
		{name: "GET_DIGESTS", msg: &GetDigests{Version: V12}, wantLen: 4},
		{name: "DIGESTS/empty", msg: &Digests{Version: V12}, ctx: ctxSHA256P256, wantLen: 4},
		{name: "DIGESTS/1.2 two slots", msg: &Digests{Version: V12, SlotMask: 0x81, Digests: [][]byte{codecFill(32, 1), codecFill(32, 2)}}, ctx: ctxSHA256P256, wantLen: 4 + 64,
			check: func(t *testing.T, m codecMessage) {
				d := m.(*Digests)
				if !bytes.Equal(d.DigestFor(7), codecFill(32, 2)) || !bytes.Equal(d.DigestFor(0), codecFill(32, 1)) || d.DigestFor(1) != nil || d.DigestFor(8) != nil {
					t.Errorf("DigestFor picks the wrong digest")
				}
			}},
		{name: "DIGESTS/1.3 multi-key", msg: &Digests{Version: V13, SupportedMask: 0x13, SlotMask: 0x13,
			Digests: [][]byte{codecFill(48, 1), codecFill(48, 2), codecFill(48, 3)}, KeyPairIDs: []uint8{1, 2, 3}, CertInfos: []uint8{1, 1, 2},
			KeyUsageMasks: []uint16{0x0007, 0x0001, 0x8004}}, ctx: codecWithCtx(ctxSHA384P384, func(c *goldenDecodeCtx) { c.multiKey = true }), wantLen: 4 + 144 + 3 + 3 + 6,
			check: func(t *testing.T, m codecMessage) {
				d := m.(*Digests)
				if !bytes.Equal(d.DigestFor(4), codecFill(48, 3)) || d.KeyPairIDs[2] != 3 || d.CertInfos[2] != 2 || d.KeyUsageMasks[2] != 0x8004 {
					t.Errorf("multi-key DIGESTS decoded as %+v", d)
				}
			}},
		{name: "DIGESTS/1.3 single-key", msg: &Digests{Version: V13, SupportedMask: 0xFF, SlotMask: 0x01, Digests: [][]byte{codecFill(48, 9)}}, ctx: ctxSHA384P384, wantLen: 4 + 48},
		{name: "GET_CERTIFICATE", msg: &GetCertificate{Version: V12, Slot: 3, Offset: 0x100, Length: 0x400}, wantLen: 8},
		{name: "GET_CERTIFICATE/1.3 slot size", msg: &GetCertificate{Version: V13, Slot: 4, SlotSizeRequested: true}, wantLen: 8,
			check: func(t *testing.T, m codecMessage) {
				if g := m.(*GetCertificate); !g.SlotSizeRequested || g.Slot != 4 || m.Marshal()[3] != 0x01 {
					t.Errorf("decoded as %+v", g)
				}
			}},
		{name: "CERTIFICATE/1.2", msg: &Certificate{Version: V12, Slot: 3, Portion: codecFill(10, 3), Remainder: 5}, wantLen: 18},
		{name: "CERTIFICATE/1.3 alias", msg: &Certificate{Version: V13, Slot: 1, CertInfo: 2, Portion: codecFill(3, 4)}, wantLen: 11},
		{name: "CHALLENGE/1.1", msg: &Challenge{Version: V11, Slot: 7, SummaryType: SummaryNone, Nonce: codecNonce(1)}, wantLen: 36},
		{name: "CHALLENGE/1.2", msg: &Challenge{Version: V12, Slot: 0, SummaryType: SummaryAll, Nonce: codecNonce(2)}, wantLen: 36},
		{name: "CHALLENGE/1.3 provisioned key", msg: &Challenge{Version: V13, Slot: 0xFF, SummaryType: SummaryTCB, Nonce: codecNonce(3), Context: codecContext(4)}, wantLen: 44},
		{name: "CHALLENGE_AUTH/1.1 basic mut auth", msg: &ChallengeAuth{Version: V11, Slot: 1, BasicMutAuth: true, SlotMask: 0x03,
			CertChainHash: codecFill(32, 1), Nonce: codecNonce(2), Signature: codecFill(64, 3)}, ctx: ctxSHA256P256, wantLen: 4 + 32 + 32 + 2 + 64},
		{name: "CHALLENGE_AUTH/1.3 summary opaque", msg: &ChallengeAuth{Version: V13, Slot: 4, SlotMask: 0x13, CertChainHash: codecFill(48, 1), Nonce: codecNonce(2),
			SummaryHash: codecFill(48, 3), Opaque: codecFill(8, 4), Context: codecContext(5), Signature: codecFill(96, 6)},
			ctx: codecWithCtx(ctxSHA384P384, func(c *goldenDecodeCtx) { c.summarySize = 48 }), wantLen: 4 + 48 + 32 + 48 + 2 + 8 + 8 + 96},
		{name: "GET_MEASUREMENTS/1.0 unsigned", msg: &GetMeasurements{Version: V10, Operation: MeasOpCount}, wantLen: 4},
		{name: "GET_MEASUREMENTS/1.0 signed", msg: &GetMeasurements{Version: V10, Attributes: MeasAttrSignature, Operation: 1, Nonce: codecNonce(1)}, wantLen: 36},
		{name: "GET_MEASUREMENTS/1.1 unsigned", msg: &GetMeasurements{Version: V11, Operation: MeasOpAll}, wantLen: 4},
		{name: "GET_MEASUREMENTS/1.1 signed", msg: &GetMeasurements{Version: V11, Attributes: MeasAttrSignature, Operation: MeasOpAll, Nonce: codecNonce(2), Slot: 2}, wantLen: 37},
		{name: "GET_MEASUREMENTS/1.2 signed raw", msg: &GetMeasurements{Version: V12, Attributes: MeasAttrSignature | MeasAttrRawBitStream, Operation: 0xFD, Nonce: codecNonce(3), Slot: 7}, wantLen: 37},
		{name: "GET_MEASUREMENTS/1.3 unsigned", msg: &GetMeasurements{Version: V13, Attributes: MeasAttrNewMeasurement, Operation: MeasOpAll, Context: codecContext(4)}, wantLen: 12},
		{name: "GET_MEASUREMENTS/1.3 signed", msg: &GetMeasurements{Version: V13, Attributes: MeasAttrSignature, Operation: MeasOpAll, Nonce: codecNonce(5), Slot: 4, Context: codecContext(6)}, wantLen: 45},
		{name: "MEASUREMENTS/1.1 count", msg: &Measurements{Version: V11, Param1: 9, Nonce: codecNonce(1)}, ctx: ctxSHA256P256, wantLen: 4 + 4 + 32 + 2},
		{name: "MEASUREMENTS/1.2 signed", msg: &Measurements{Version: V12, Slot: 1, ContentChg: 2, NumBlocks: 2, Record: MarshalRecord(blocks), Nonce: codecNonce(2),
			Opaque: codecFill(6, 3), Signature: codecFill(96, 4)}, ctx: codecWithCtx(ctxSHA384P384, func(c *goldenDecodeCtx) { c.measSigned = true }), wantLen: 8 + 71 + 12 + 32 + 2 + 6 + 96,
			check: func(t *testing.T, m codecMessage) {
				got, err := m.(*Measurements).Blocks(64)
				if err != nil || len(got) != 2 || got[1].Index != 0xFD || !got[1].RawBitStream() || !bytes.Equal(got[0].Value, codecFill(64, 1)) {
					t.Errorf("Blocks = %+v, %v", got, err)
				}
			}},
		{name: "MEASUREMENTS/1.3 signed", msg: &Measurements{Version: V13, Slot: 4, ContentChg: 1, NumBlocks: 1, Record: MarshalRecord(blocks[:1]), Nonce: codecNonce(5),
			Context: codecContext(6), Signature: codecFill(64, 7)}, ctx: codecWithCtx(ctxSHA256P256, func(c *goldenDecodeCtx) { c.measSigned = true }), wantLen: 8 + 71 + 32 + 2 + 8 + 64},
		{name: "ERROR/ResponseNotReady", msg: &ErrorResponse{Version: V12, Code: ErrCodeResponseNotReady, Ext: []byte{20, CodeChallenge, 0x5A, 3}}, wantLen: 8,
			check: func(t *testing.T, m codecMessage) {
				e := m.(*ErrorResponse)
				nr, ok := e.NotReadyData()
				if !ok || nr != (NotReady{RDTExponent: 20, RequestCode: CodeChallenge, Token: 0x5A, RDTM: 3}) {
					t.Errorf("NotReadyData = %+v, %v", nr, ok)
				}
				if err := e.Err(); !errors.Is(err, ErrCodeResponseNotReady) || errors.Is(err, ErrCodeBusy) {
					t.Errorf("Err() = %v does not match its code alone", err)
				}
			}},
		{name: "ERROR/LargeResponse", msg: &ErrorResponse{Version: V12, Code: ErrCodeLargeResponse, Ext: []byte{7}}, wantLen: 5},
		{name: "ERROR/InvalidRequest", msg: &ErrorResponse{Version: V11, Code: ErrCodeInvalidRequest}, wantLen: 4, noLength: true,
			check: func(t *testing.T, m codecMessage) {
				if _, ok := m.(*ErrorResponse).NotReadyData(); ok {
					t.Errorf("NotReadyData of InvalidRequest reports ok")
				}
			}},
		// Vendor-defined: Len, VendorID (Len bytes), opaque data of no stated
		// length, so DOE padding after it reads as more opaque data.
		{name: "ERROR/VendorDefined", msg: &ErrorResponse{Version: V12, Code: ErrCodeVendorDefined, Data: 0, Ext: []byte{2, 0x34, 0x12, 0xAA, 0xBB}}, wantLen: 9, noLength: true},
		{name: "RESPOND_IF_READY", msg: &RespondIfReady{Version: V12, RequestCode: CodeGetMeasurements, Token: 0x5A}, wantLen: 4},
		{name: "CHUNK_GET/seq 0", msg: &ChunkGet{Version: V12, Handle: 3, Seq: 0}, wantLen: 6},
		{name: "CHUNK_GET/seq 1", msg: &ChunkGet{Version: V12, Handle: 3, Seq: 1}, wantLen: 6},
		{name: "CHUNK_RESPONSE/seq 0", msg: &ChunkResponse{Version: V12, Handle: 3, Seq: 0, LargeMessageSize: 5000, Chunk: codecFill(20, 1)}, wantLen: 12 + 4 + 20,
			check: func(t *testing.T, m codecMessage) {
				if c := m.(*ChunkResponse); c.LargeMessageSize != 5000 || c.Attributes&ChunkLast != 0 {
					t.Errorf("first chunk decoded as %+v", c)
				}
			}},
		{name: "CHUNK_RESPONSE/seq 1 last", msg: &ChunkResponse{Version: V12, Attributes: ChunkLast, Handle: 3, Seq: 1, Chunk: codecFill(7, 2)}, wantLen: 12 + 7,
			check: func(t *testing.T, m codecMessage) {
				if c := m.(*ChunkResponse); c.LargeMessageSize != 0 || c.Attributes != ChunkLast || len(c.Chunk) != 7 {
					t.Errorf("later chunk decoded as %+v", c)
				}
			}},
	}
}

// TestHandBuiltRoundTrips: Marshal has the size spdm.h gives, Decode
// consumes it exactly (also with DOE padding after it) and Marshal of the
// result is the same bytes.
func TestHandBuiltRoundTrips(t *testing.T) {
	for _, s := range handBuiltSamples() {
		t.Run(s.name, func(t *testing.T) {
			b := s.msg.Marshal()
			if len(b) != s.wantLen {
				t.Errorf("Marshal gives %d bytes, want %d: % x", len(b), s.wantLen, b)
			}
			got, n, ok, err := codecDecodeAny(b, s.ctx)
			if !ok || err != nil || n != len(b) {
				t.Fatalf("Decode = %d, %v (ok %v); want %d", n, err, ok, len(b))
			}
			if enc := got.Marshal(); !bytes.Equal(enc, b) {
				t.Errorf("round trip\n  in % x\n out % x", b, enc)
			}
			if s.check != nil {
				s.check(t, got)
			}
			padded := append(bytes.Clone(b), make([]byte, (4-len(b)%4)%4)...)
			_, n, _, err = codecDecodeAny(padded, s.ctx)
			switch {
			case s.noLength && len(padded) != len(b):
				// The padding is taken for extended data: ERROR carries no length.
				if err != nil || n != len(padded) {
					t.Errorf("padded ERROR: %d, %v", n, err)
				}
			case err != nil || n != len(b):
				t.Errorf("with %d bytes of DOE padding: Decode = %d, %v; want %d", len(padded)-len(b), n, err, len(b))
			}
		})
	}
}

// validCodecSamples is every valid message the tests know: every plain
// record of the golden corpus that has a decoder, and the hand-built ones.
func validCodecSamples(t *testing.T) []codecSample {
	var out []codecSample
	for _, c := range loadGoldenCases(t) {
		for _, r := range c.plainRecords(t) {
			if r.msg != nil {
				out = append(out, codecSample{name: fmt.Sprintf("%s#%d %s", c.Case, r.index, CodeName(r.code)), msg: goldenRaw(r.raw), ctx: r.ctx})
			}
		}
	}
	return append(out, handBuiltSamples()...)
}

// goldenRaw lets captured bytes stand where a message is expected.
type goldenRaw []byte

func (m goldenRaw) Marshal() []byte { return m }

// TestNoStrictPrefixDecodes: for every valid message b of n bytes and
// every k < n, the decoder of b's code refuses b[:k] with ErrMalformed.
// The exception is ERROR with a code whose extended data has no length
// (DSP0274 gives ERROR no length field), checked separately below.
func TestNoStrictPrefixDecodes(t *testing.T) {
	count := 0
	for _, s := range validCodecSamples(t) {
		b := s.msg.Marshal()
		if s.noLength {
			// Every prefix of 4 bytes or more is a shorter valid ERROR.
			for k := 0; k < 4; k++ {
				if _, _, _, err := codecDecodeAs(CodeError, b[:k], s.ctx); !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: %d-byte prefix: err = %v", s.name, k, err)
				}
			}
			continue
		}
		for k := 0; k < len(b); k++ {
			count++
			_, n, _, err := codecDecodeAs(b[1], b[:k], s.ctx)
			if err == nil {
				t.Errorf("%s: %d-byte prefix of %d decodes (consumed %d)", s.name, k, len(b), n)
				break
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %d-byte prefix: %v is not ErrMalformed", s.name, k, err)
				break
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Message == "" {
				t.Errorf("%s: %d-byte prefix: %v is not a *DecodeError naming the message", s.name, k, err)
				break
			}
		}
	}
	t.Logf("%d prefixes refused", count)
}

// codecWantDecodeError checks that err is ErrMalformed and a *DecodeError
// naming field.
func codecWantDecodeError(t *testing.T, what string, err error, field string) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("%s: err = %v, want ErrMalformed", what, err)
		return
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Errorf("%s: err %v is not a *DecodeError", what, err)
		return
	}
	if de.Field != field {
		t.Errorf("%s: DecodeError names field %q (%v), want %q", what, de.Field, err, field)
	}
}

// codecReservedField is a reserved byte of a message: every bit of mask is
// reserved and must be refused.
type codecReservedField struct {
	msg   codecMessage
	ctx   goldenDecodeCtx
	off   int
	mask  byte
	field string // as the decoder names it
	note  string // why a bit is reserved, when not obvious
}

func codecReservedFields() map[string]codecReservedField {
	sig12 := &GetMeasurements{Version: V12, Attributes: MeasAttrSignature, Operation: MeasOpAll, Nonce: codecNonce(1)}
	structs := []AlgStruct{{Type: AlgTypeDHE, Bits: DHESECP384R1}, {Type: AlgTypeKeySchedule, Bits: KeyScheduleSPDM}}
	neg := func(v Version) *NegotiateAlgorithms {
		return &NegotiateAlgorithms{Version: v, MeasurementSpec: 1, BaseAsymAlgo: AsymECDSAP384, BaseHashAlgo: HashSHA384, Structs: structs}
	}
	alg := func(v Version) *Algorithms {
		return &Algorithms{Version: v, MeasurementSpecSel: 1, MeasurementHashAlgo: MeasHashSHA512, BaseAsymSel: AsymECDSAP384, BaseHashSel: HashSHA384, Structs: structs}
	}
	meas := func(v Version) *Measurements { return &Measurements{Version: v, Nonce: codecNonce(2)} }
	getCaps := func(v Version) *GetCapabilities {
		return &GetCapabilities{Version: v, Flags: CapCert, DataTransferSize: 64, MaxSPDMmsgSize: 64}
	}
	caps := func(v Version) *Capabilities {
		return &Capabilities{Version: v, Flags: CapCert, DataTransferSize: 64, MaxSPDMmsgSize: 64}
	}
	f := map[string]codecReservedField{
		"GET_VERSION/Param1":                   {msg: &GetVersion{}, off: 2, mask: 0xFF, field: "Param1/Param2"},
		"GET_VERSION/Param2":                   {msg: &GetVersion{}, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"VERSION/Param1":                       {msg: &VersionResponse{Entries: []VersionEntry{0x1200}}, off: 2, mask: 0xFF, field: "Param1/Param2"},
		"VERSION/Param2":                       {msg: &VersionResponse{Entries: []VersionEntry{0x1200}}, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"VERSION/Reserved":                     {msg: &VersionResponse{Entries: []VersionEntry{0x1200}}, off: 4, mask: 0xFF, field: "Reserved"},
		"GET_DIGESTS/Param1":                   {msg: &GetDigests{Version: V12}, off: 2, mask: 0xFF, field: "Param1/Param2"},
		"GET_DIGESTS/Param2":                   {msg: &GetDigests{Version: V12}, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"DIGESTS/1.2 Param1":                   {msg: &Digests{Version: V12}, ctx: ctxSHA384P384, off: 2, mask: 0xFF, field: "Param1", note: "SupportedSlotMask only from 1.3"},
		"GET_CERTIFICATE/1.2 Param1":           {msg: &GetCertificate{Version: V12, Length: 100}, off: 2, mask: 0xF0, field: "Param1/Param2"},
		"GET_CERTIFICATE/1.2 Param2":           {msg: &GetCertificate{Version: V12, Length: 100}, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"GET_CERTIFICATE/1.3 Param2":           {msg: &GetCertificate{Version: V13, Length: 100}, off: 3, mask: 0xFE, field: "Param1/Param2", note: "bit 0 is SlotSizeRequested in 1.3"},
		"CERTIFICATE/1.2 Param1":               {msg: &Certificate{Version: V12, Portion: []byte{1}}, off: 2, mask: 0xF0, field: "Param1/Param2"},
		"CERTIFICATE/1.2 Param2 high":          {msg: &Certificate{Version: V12, Portion: []byte{1}}, off: 3, mask: 0xF8, field: "Param1/Param2"},
		"CERTIFICATE/1.2 Param2 CertInfo":      {msg: &Certificate{Version: V12, Portion: []byte{1}}, off: 3, mask: 0x07, field: "Param2", note: "CertificateInfo only from 1.3"},
		"CERTIFICATE/1.3 Param2":               {msg: &Certificate{Version: V13, Portion: []byte{1}}, off: 3, mask: 0xF8, field: "Param1/Param2"},
		"CHALLENGE_AUTH/Param1":                {msg: &ChallengeAuth{Version: V12, CertChainHash: codecFill(48, 1), Signature: codecFill(96, 2)}, ctx: ctxSHA384P384, off: 2, mask: 0x70, field: "Param1"},
		"GET_MEASUREMENTS/1.0 Param1":          {msg: &GetMeasurements{Version: V10}, off: 2, mask: 0xFE, field: "Param1"},
		"GET_MEASUREMENTS/1.1 Param1":          {msg: &GetMeasurements{Version: V11}, off: 2, mask: 0xFE, field: "Param1"},
		"GET_MEASUREMENTS/1.2 Param1":          {msg: sig12, off: 2, mask: 0xFC, field: "Param1"},
		"GET_MEASUREMENTS/1.3 Param1":          {msg: &GetMeasurements{Version: V13}, off: 2, mask: 0xF8, field: "Param1"},
		"GET_MEASUREMENTS/1.2 SlotIDParam":     {msg: sig12, off: 36, mask: 0xF0, field: "SlotIDParam"},
		"MEASUREMENTS/1.1 Param2":              {msg: meas(V11), ctx: ctxSHA384P384, off: 3, mask: 0xF0, field: "Param2", note: "content-changed bits only from 1.2"},
		"MEASUREMENTS/1.2 Param2":              {msg: meas(V12), ctx: ctxSHA384P384, off: 3, mask: 0xC0, field: "Param2"},
		"CHUNK_GET/Param1":                     {msg: &ChunkGet{Version: V12}, off: 2, mask: 0xFF, field: "Param1"},
		"CHUNK_RESPONSE/Param1":                {msg: &ChunkResponse{Version: V12, Seq: 1, Chunk: []byte{1}}, off: 2, mask: 0xFE, field: "Param1"},
		"CHUNK_RESPONSE/Reserved low":          {msg: &ChunkResponse{Version: V12, Seq: 1, Chunk: []byte{1}}, off: 6, mask: 0xFF, field: "Reserved"},
		"CHUNK_RESPONSE/Reserved high":         {msg: &ChunkResponse{Version: V12, Seq: 1, Chunk: []byte{1}}, off: 7, mask: 0xFF, field: "Reserved"},
		"NEGOTIATE_ALGORITHMS/1.2 Param2":      {msg: neg(V12), off: 3, mask: 0xFF, field: "Param2"},
		"NEGOTIATE_ALGORITHMS/1.2 Reserved3":   {msg: neg(V12), off: 30, mask: 0xFF, field: "Reserved"},
		"ALGORITHMS/1.2 Param2":                {msg: alg(V12), off: 3, mask: 0xFF, field: "Param2"},
		"ALGORITHMS/1.2 Reserved3 low":         {msg: alg(V12), off: 34, mask: 0xFF, field: "Reserved"},
		"ALGORITHMS/1.2 Reserved3 high":        {msg: alg(V12), off: 35, mask: 0xFF, field: "Reserved"},
		"NEGOTIATE_ALGORITHMS/1.1 OtherParams": {msg: neg(V11), off: 7, mask: 0xFF, field: "OtherParamsSupport", note: "OtherParamsSupport is reserved before 1.2"},
		"NEGOTIATE_ALGORITHMS/1.2 OtherParams": {msg: neg(V12), off: 7, mask: 0xF0, field: "OtherParamsSupport", note: "bit 4 (MultiKeyConn) from 1.3, bits 7:5 reserved"},
		"NEGOTIATE_ALGORITHMS/1.3 OtherParams": {msg: neg(V13), off: 7, mask: 0xE0, field: "OtherParamsSupport", note: "bits 7:5 reserved"},
		"NEGOTIATE_ALGORITHMS/1.2 MELspec":     {msg: neg(V12), off: 31, mask: 0xFF, field: "MELspecification", note: "MELspecification is reserved before 1.3"},
		"ALGORITHMS/1.1 OtherParams":           {msg: alg(V11), off: 7, mask: 0xFF, field: "OtherParamsSelection", note: "OtherParamsSelection is reserved before 1.2"},
		"ALGORITHMS/1.2 OtherParams":           {msg: alg(V12), off: 7, mask: 0xF0, field: "OtherParamsSelection", note: "bit 4 from 1.3, bits 7:5 reserved"},
		"ALGORITHMS/1.3 OtherParams":           {msg: alg(V13), off: 7, mask: 0xE0, field: "OtherParamsSelection", note: "bits 7:5 reserved"},
		"ALGORITHMS/1.2 MELspec":               {msg: alg(V12), off: 31, mask: 0xFF, field: "MELspecificationSel", note: "MELspecificationSel is reserved before 1.3"},
		"MEASUREMENTS/1.0 Param2":              {msg: meas(V10), ctx: ctxSHA384P384, off: 3, mask: 0x0F, field: "Param2", note: "Param2 (SlotID from 1.1) is reserved in 1.0"},
	}
	for _, v := range []Version{V10, V11, V12, V13} {
		p1 := byte(0xFF)
		if v >= V13 {
			p1 = 0xFE // bit 0: SupportedAlgorithms (1.3), which the codec does not implement
		}
		f["GET_CAPABILITIES/"+v.String()+" Param1"] = codecReservedField{msg: getCaps(v), off: 2, mask: p1, field: "Param1/Param2"}
		f["GET_CAPABILITIES/"+v.String()+" Param2"] = codecReservedField{msg: getCaps(v), off: 3, mask: 0xFF, field: "Param1/Param2"}
		f["CAPABILITIES/"+v.String()+" Param1"] = codecReservedField{msg: caps(v), off: 2, mask: p1, field: "Param1/Param2"}
		f["CAPABILITIES/"+v.String()+" Param2"] = codecReservedField{msg: caps(v), off: 3, mask: 0xFF, field: "Param1/Param2"}
		for _, off := range []int{4, 6, 7} {
			if v >= V11 { // GET_CAPABILITIES 1.0 is the header alone
				f[fmt.Sprintf("GET_CAPABILITIES/%v Reserved@%d", v, off)] = codecReservedField{msg: getCaps(v), off: off, mask: 0xFF, field: "Reserved"}
			}
			f[fmt.Sprintf("CAPABILITIES/%v Reserved@%d", v, off)] = codecReservedField{msg: caps(v), off: off, mask: 0xFF, field: "Reserved"}
		}
	}
	for off := 16; off < 28; off++ {
		f[fmt.Sprintf("NEGOTIATE_ALGORITHMS/1.2 Reserved2@%d", off)] = codecReservedField{msg: neg(V12), off: off, mask: 0xFF, field: "Reserved"}
	}
	for off := 20; off < 31; off++ {
		f[fmt.Sprintf("ALGORITHMS/1.2 Reserved2@%d", off)] = codecReservedField{msg: alg(V12), off: off, mask: 0xFF, field: "Reserved"}
	}
	return f
}

// TestReservedFieldsRefused sets each reserved bit of each message and
// expects ErrMalformed from a *DecodeError naming the field.
func TestReservedFieldsRefused(t *testing.T) {
	for name, r := range codecReservedFields() {
		t.Run(name, func(t *testing.T) {
			base := r.msg.Marshal()
			if _, n, _, err := codecDecodeAny(base, r.ctx); err != nil || n != len(base) {
				t.Fatalf("base message does not decode: %d, %v", n, err)
			}
			var accepted []int
			for bit := 0; bit < 8; bit++ {
				if r.mask&(1<<bit) == 0 {
					continue
				}
				b := bytes.Clone(base)
				if b[r.off]&(1<<bit) != 0 {
					t.Fatalf("bit %d of byte %d is already set in the base message", bit, r.off)
				}
				b[r.off] |= 1 << bit
				_, _, _, err := codecDecodeAny(b, r.ctx)
				if err == nil {
					accepted = append(accepted, bit)
					continue
				}
				codecWantDecodeError(t, fmt.Sprintf("byte %d bit %d", r.off, bit), err, r.field)
			}
			if accepted != nil {
				t.Errorf("decoder accepts reserved bits %v of byte %d (%s; %s): want ErrMalformed naming %s\n  base % x",
					accepted, r.off, r.field, r.note, r.field, base)
			}
		})
	}
}

// TestInvalidFieldValues: values that are not reserved bits but that
// DSP0274 does not allow.
func TestInvalidFieldValues(t *testing.T) {
	ca := &ChallengeAuth{Version: V12, CertChainHash: codecFill(48, 1), Signature: codecFill(96, 2)}
	twoStructs := []AlgStruct{{Type: AlgTypeDHE, Bits: DHESECP384R1}, {Type: AlgTypeAEAD, Bits: AEADAES256GCM}}
	neg := &NegotiateAlgorithms{Version: V12, MeasurementSpec: 1, BaseAsymAlgo: AsymECDSAP384, BaseHashAlgo: HashSHA384, Structs: twoStructs}
	alg := &Algorithms{Version: V12, MeasurementSpecSel: 1, BaseAsymSel: AsymECDSAP384, BaseHashSel: HashSHA384, Structs: twoStructs}
	caps12 := &Capabilities{Version: V12, Flags: CapCert, DataTransferSize: 64, MaxSPDMmsgSize: 64}
	set := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	setLE16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { b[off], b[off+1] = byte(v), byte(v>>8); return b }
	}
	cases := []struct {
		name   string
		msg    codecMessage
		ctx    goldenDecodeCtx
		mutate func([]byte) []byte
		field  string
	}{
		{"GET_VERSION not 1.0", &GetVersion{}, goldenDecodeCtx{}, set(0, 0x12), "SPDMVersion"},
		{"VERSION not 1.0", &VersionResponse{Entries: []VersionEntry{0x1200}}, goldenDecodeCtx{}, set(0, 0x11), "SPDMVersion"},
		{"VERSION no entries", &VersionResponse{Entries: []VersionEntry{0x1200}}, goldenDecodeCtx{}, set(5, 0), "VersionNumberEntryCount"},
		{"VERSION count beyond the message", &VersionResponse{Entries: []VersionEntry{0x1200}}, goldenDecodeCtx{}, set(5, 2), "VersionNumberEntry[1]"},
		{"CAPABILITIES MEAS_CAP 11b", caps12, goldenDecodeCtx{}, set(8, byte(CapCert|CapMeasSig|CapMeasNoSig)), "Flags"},
		{"CAPABILITIES DataTransferSize 41", caps12, goldenDecodeCtx{}, setLE16(12, MinDataTransferSize-1), "DataTransferSize"},
		{"CAPABILITIES MaxSPDMmsgSize below DataTransferSize", caps12, goldenDecodeCtx{}, setLE16(16, 63), "MaxSPDMmsgSize"},
		{"GET_CAPABILITIES DataTransferSize 41", &GetCapabilities{Version: V12, DataTransferSize: 64, MaxSPDMmsgSize: 64}, goldenDecodeCtx{}, setLE16(12, 41), "DataTransferSize"},
		{"NEGOTIATE_ALGORITHMS Length short", neg, goldenDecodeCtx{}, setLE16(4, 39), "Length"},
		{"NEGOTIATE_ALGORITHMS Length long", neg, goldenDecodeCtx{}, setLE16(4, 41), "Length"},
		{"NEGOTIATE_ALGORITHMS 1.0 with structures", &NegotiateAlgorithms{Version: V10}, goldenDecodeCtx{}, set(2, 1), "Param1"},
		{"NEGOTIATE_ALGORITHMS AlgCount fixed size 3", neg, goldenDecodeCtx{}, set(33, 0x30), "AlgStructure[0].AlgCount"},
		{"NEGOTIATE_ALGORITHMS AlgType 1", neg, goldenDecodeCtx{}, set(32, 1), "AlgStructure[0].AlgType"},
		{"NEGOTIATE_ALGORITHMS AlgType repeated", neg, goldenDecodeCtx{}, set(36, AlgTypeDHE), "AlgStructure[1].AlgType"},
		{"NEGOTIATE_ALGORITHMS too many external", neg, goldenDecodeCtx{}, set(28, 21), "ExtAsymCount/ExtHashCount"},
		{"ALGORITHMS two ExtAsymSel", alg, goldenDecodeCtx{}, set(32, 2), "ExtAsymSelCount/ExtHashSelCount"},
		{"ALGORITHMS Length", alg, goldenDecodeCtx{}, setLE16(4, 36), "Length"},
		{"DIGESTS 1.3 provisioned slot not supported", &Digests{Version: V13, SupportedMask: 0x01, SlotMask: 0x01, Digests: [][]byte{codecFill(48, 1)}}, ctxSHA384P384, set(3, 0x03), "Param2"},
		{"GET_CERTIFICATE slot 8", &GetCertificate{Version: V12}, goldenDecodeCtx{}, set(2, 8), "Param1"},
		{"CERTIFICATE portion beyond the message", &Certificate{Version: V12, Portion: codecFill(4, 1)}, goldenDecodeCtx{}, set(4, 5), "CertChain"},
		{"CHALLENGE slot 8", &Challenge{Version: V12}, goldenDecodeCtx{}, set(2, 8), "Param1"},
		{"CHALLENGE summary type 2", &Challenge{Version: V12}, goldenDecodeCtx{}, set(3, 2), "Param2"},
		{"CHALLENGE_AUTH opaque 1025", ca, ctxSHA384P384, setLE16(4+48+32, MaxOpaqueSize+1), "OpaqueData"},
		{"MEASUREMENTS opaque beyond the message", &Measurements{Version: V12}, ctxSHA384P384, setLE16(8+32, 1), "OpaqueData"},
		{"CHUNK_RESPONSE ChunkSize beyond the message", &ChunkResponse{Version: V12, Seq: 1, Chunk: []byte{1, 2}}, goldenDecodeCtx{}, set(8, 3), "ChunkSize"},
		{"ERROR extended data over 32 bytes", &ErrorResponse{Version: V12, Code: ErrCodeVendorDefined, Ext: codecFill(33, 0)}, goldenDecodeCtx{}, func(b []byte) []byte { return b }, "ExtendedErrorData"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mutate(c.msg.Marshal())
			_, _, _, err := codecDecodeAny(b, c.ctx)
			codecWantDecodeError(t, c.name, err, c.field)
		})
	}
	// Opaque data larger than 1024 bytes, present in full.
	big := &Measurements{Version: V12, Opaque: codecFill(MaxOpaqueSize+1, 0)}
	_, _, _, err := codecDecodeAny(big.Marshal(), ctxSHA384P384)
	codecWantDecodeError(t, "MEASUREMENTS opaque 1025", err, "OpaqueDataLength")
	bigCA := &ChallengeAuth{Version: V12, CertChainHash: codecFill(48, 1), Opaque: codecFill(MaxOpaqueSize+1, 0), Signature: codecFill(96, 2)}
	_, _, _, err = codecDecodeAny(bigCA.Marshal(), ctxSHA384P384)
	codecWantDecodeError(t, "CHALLENGE_AUTH opaque 1025", err, "OpaqueDataLength")
}

// TestWrongCode: every decoder refuses every other code, naming
// RequestResponseCode.
func TestWrongCode(t *testing.T) {
	seen := map[uint8]bool{}
	for _, s := range handBuiltSamples() {
		base := s.msg.Marshal()
		own := base[1]
		if seen[own] {
			continue
		}
		seen[own] = true
		for c := 0; c < 256; c++ {
			if uint8(c) == own {
				continue
			}
			b := bytes.Clone(base)
			b[1] = uint8(c)
			_, _, _, err := codecDecodeAs(own, b, s.ctx)
			codecWantDecodeError(t, fmt.Sprintf("%s decoder given %s", CodeName(own), CodeName(uint8(c))), err, "RequestResponseCode")
		}
	}
	if len(seen) != 18 {
		t.Errorf("checked %d decoders, want 18", len(seen))
	}
}

// TestMeasurementRecord covers ParseRecord's own checks.
func TestMeasurementRecord(t *testing.T) {
	good := []MeasurementBlock{
		{Index: 1, Spec: MeasurementSpecDMTF, ValueType: MeasTypeMutableFirmware, Value: codecFill(48, 1)},
		{Index: 2, Spec: MeasurementSpecDMTF, ValueType: MeasTypeVersion | MeasTypeRawBitStream, Value: []byte("1.0.3")},
	}
	rec := MarshalRecord(good)
	if got, err := ParseRecord(rec, 2, 48); err != nil || len(got) != 2 || !bytes.Equal(MarshalRecord(got), rec) {
		t.Fatalf("ParseRecord = %+v, %v", got, err)
	}
	// Raw measurement hash (size 0): digests of any size are accepted.
	if _, err := ParseRecord(rec, 2, 0); err != nil {
		t.Errorf("measurement hash RAW: %v", err)
	}
	for k := 0; k < len(rec); k++ {
		if _, err := ParseRecord(rec[:k], 2, 48); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d-byte prefix of the record: err = %v", k, err)
		}
	}
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		n      int
		field  string
	}{
		{"index 0", func(b []byte) []byte { b[0] = 0; return b }, 2, "MeasurementBlock[0].Index"},
		{"index 0xFF", func(b []byte) []byte { b[0] = 0xFF; return b }, 2, "MeasurementBlock[0].Index"},
		{"index repeated", func(b []byte) []byte { b[55] = 1; return b }, 2, "MeasurementBlock[1].Index"},
		{"not DMTF", func(b []byte) []byte { b[1] = 2; return b }, 2, "MeasurementBlock[0].MeasurementSpecification"},
		{"value size mismatch", func(b []byte) []byte { b[5] = 47; return b }, 2, "MeasurementBlock[0].DMTFSpecMeasurementValueSize"},
		{"MeasurementSize 2", func(b []byte) []byte { b[2], b[3] = 2, 0; return b }, 2, "MeasurementBlock[0].MeasurementSize"},
		{"fewer blocks than announced", func(b []byte) []byte { return b }, 3, "MeasurementBlock[2].Index"},
		{"more blocks than announced", func(b []byte) []byte { return b }, 1, "MeasurementRecord"},
	}
	for _, c := range cases {
		_, err := ParseRecord(c.mutate(bytes.Clone(rec)), c.n, 48)
		codecWantDecodeError(t, c.name, err, c.field)
	}
	if _, err := ParseRecord(rec, 2, 64); !errors.Is(err, ErrMalformed) {
		t.Errorf("48-byte digest accepted with a 64-byte measurement hash: %v", err)
	}
}

// TestCertChainFormat covers ParseCertChain and BuildCertChain on the
// corpus chains (DSP0274 Table 33: Length, Reserved, RootHash, DER).
func TestCertChainFormat(t *testing.T) {
	c := loadGoldenCases(t)[0]
	chains := c.goldenChains(t, c.plainRecords(t))
	raw := chains.raw[0]
	chain, err := ParseCertChain(raw, c.hash)
	if err != nil {
		t.Fatal(err)
	}
	var ders [][]byte
	for _, cert := range chain.Certs {
		ders = append(ders, cert.Raw)
	}
	rebuilt, err := BuildCertChain(c.hash, c.rootDER, ders...)
	if err != nil || !bytes.Equal(rebuilt, raw) {
		t.Errorf("BuildCertChain does not rebuild libspdm's chain: %v", err)
	}
	bad := map[string][]byte{
		"Length too large": append([]byte{byte(len(raw) + 1), byte((len(raw) + 1) >> 8)}, raw[2:]...),
		"Length too small": append([]byte{byte(len(raw) - 1), byte((len(raw) - 1) >> 8)}, raw[2:]...),
		"Reserved":         append(append(bytes.Clone(raw[:2]), 1, 0), raw[4:]...),
		"trailing byte":    append(append([]byte{byte(len(raw) + 1), byte((len(raw) + 1) >> 8)}, raw[2:]...), 0),
		"no certificates":  append([]byte{byte(4 + c.hashSize), 0, 0, 0}, raw[4:4+c.hashSize]...),
		"header only":      raw[:4+c.hashSize-1],
	}
	for name, b := range bad {
		if _, err := ParseCertChain(b, c.hash); !errors.Is(err, ErrCertChain) {
			t.Errorf("%s: err = %v, want ErrCertChain", name, err)
		}
	}
	for k := 0; k < len(raw); k += 7 {
		if _, err := ParseCertChain(raw[:k], c.hash); !errors.Is(err, ErrCertChain) {
			t.Errorf("%d-byte prefix of the chain: err = %v", k, err)
		}
	}
	// A RootHash that is not the digest of the anchor is refused, and so
	// is validation without anchors.
	root, err := x509.ParseCertificate(c.rootDER)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(raw)
	tampered[4] ^= 1
	tc, err := ParseCertChain(tampered, c.hash)
	if err != nil {
		t.Fatal(err)
	}
	v := &AnchorValidator{Roots: []*x509.Certificate{root}, Now: func() time.Time { return goldenValidationTime }}
	if err := v.ValidateChain(chain, c.hash); err != nil {
		t.Errorf("untampered chain: %v", err)
	}
	if err := v.ValidateChain(tc, c.hash); !errors.Is(err, ErrCertChain) {
		t.Errorf("RootHash tampered: err = %v, want ErrCertChain", err)
	}
	if err := (&AnchorValidator{}).ValidateChain(chain, c.hash); !errors.Is(err, ErrCertChain) {
		t.Errorf("no anchors: err = %v, want ErrCertChain", err)
	}
}
