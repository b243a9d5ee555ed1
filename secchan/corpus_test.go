package secchan

// The golden corpus: real libspdm traffic over PCI DOE (testdata/libspdm,
// see its README.md). This file loads it and checks the codec against every
// plain SPDM record: each decodes, consumes exactly the SPDM message (the
// rest of the DOE object is zero padding to a DW boundary) and encodes back
// to the same bytes. corpus_sig_test.go rebuilds the transcripts and
// verifies the responder's signatures.

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

const goldenDir = "testdata/libspdm"

// goldenCaseNames are the cases of the corpus, in the README's order.
var goldenCaseNames = []string{"v12-p384-aes256", "v11-p256-aes128", "v13-p384-chacha", "v12-psk", "v12-ide-km"}

type goldenMessage struct {
	Dir     string `json:"dir"`      // "req" or "rsp"
	DOEType int    `json:"doe_type"` // 0 discovery, 1 SPDM, 2 secured SPDM
	Hex     string `json:"hex"`      // whole DOE object, header and padding included
}

type goldenAlgorithms struct {
	MeasurementSpecification int `json:"measurement_specification"`
	OtherParamsSelection     int `json:"other_params_selection"`
	MeasurementHashAlgo      int `json:"measurement_hash_algo"`
	BaseAsymAlgo             int `json:"base_asym_algo"`
	BaseHashAlgo             int `json:"base_hash_algo"`
	MELSpecification         int `json:"mel_specification"`
	DHENamedGroup            int `json:"dhe_named_group"`
	AEADCipherSuite          int `json:"aead_cipher_suite"`
	ReqBaseAsymAlg           int `json:"req_base_asym_alg"`
	KeySchedule              int `json:"key_schedule"`

	Names map[string]string `json:"names"` // the same values in words
}

type goldenKeyUpdate struct {
	Direction     string `json:"direction"`
	NewDataSecret string `json:"new_data_secret"`
	Key           string `json:"key"`
	IV            string `json:"iv"`
}

type goldenSession struct {
	SessionID                     string            `json:"session_id"`
	Type                          string            `json:"type"` // "key_exchange" or "psk"
	ExchangeMessageIndex          int               `json:"exchange_message_index"`
	SlotID                        *int              `json:"slot_id"`
	KeyExchangeRspSignatureTHHash string            `json:"key_exchange_rsp_signature_th_hash"`
	PSKHint                       string            `json:"psk_hint"`
	SecuredMessageVersion         string            `json:"secured_message_version"`
	DHESecret                     string            `json:"dhe_secret"`
	PSK                           string            `json:"psk"`
	TH1                           string            `json:"th1"`
	HandshakeSecret               string            `json:"handshake_secret"`
	RequestHandshakeSecret        string            `json:"request_handshake_secret"`
	ResponseHandshakeSecret       string            `json:"response_handshake_secret"`
	RequestFinishedKey            string            `json:"request_finished_key"`
	ResponseFinishedKey           string            `json:"response_finished_key"`
	RequestHandshakeKey           string            `json:"request_handshake_key"`
	RequestHandshakeIV            string            `json:"request_handshake_iv"`
	ResponseHandshakeKey          string            `json:"response_handshake_key"`
	ResponseHandshakeIV           string            `json:"response_handshake_iv"`
	TH2                           string            `json:"th2"`
	MasterSecret                  string            `json:"master_secret"`
	RequestDataSecret             string            `json:"request_data_secret"`
	ResponseDataSecret            string            `json:"response_data_secret"`
	ExportMasterSecret            string            `json:"export_master_secret"`
	RequestDataKey                string            `json:"request_data_key"`
	RequestDataIV                 string            `json:"request_data_iv"`
	ResponseDataKey               string            `json:"response_data_key"`
	ResponseDataIV                string            `json:"response_data_iv"`
	KeyUpdates                    []goldenKeyUpdate `json:"key_updates"`
	NotPrintedByLibspdm           []string          `json:"not_printed_by_libspdm"`
	LogLines                      []string          `json:"log_lines"`
}

type goldenSigHash struct {
	Kind         string `json:"kind"` // "m1m2", "l1l2" or "key_exchange_rsp"
	MessageIndex int    `json:"message_index"`
	Hash         string `json:"hash"`
	SessionID    string `json:"session_id"` // set for MEASUREMENTS inside a session
	LogLine      string `json:"log_line"`
}

// goldenCase is one <case>.json.
type goldenCase struct {
	Case                         string            `json:"case"`
	SPDMVersion                  string            `json:"spdm_version"`
	Algorithms                   goldenAlgorithms  `json:"algorithms"`
	MultiKeyConnRsp              bool              `json:"multi_key_conn_rsp"`
	Messages                     []goldenMessage   `json:"messages"`
	Sessions                     []goldenSession   `json:"sessions"`
	SignatureTranscriptHashes    []goldenSigHash   `json:"signature_transcript_hashes"`
	ResponderRootCertDERHex      string            `json:"responder_root_cert_der_hex"`
	ResponderCertChainRoots      map[string]string `json:"responder_cert_chain_roots"`
	ResponderSlot1RootCertDERHex string            `json:"responder_slot1_root_cert_der_hex"`

	// Filled in by the loader.
	version  Version
	hash     crypto.Hash // negotiated base hash
	hashSize int
	sigSize  int // of the negotiated base asym
	measHash int // measurement hash size (SHA-512 in every case)
	objects  [][]byte
	rootDER  []byte // <case>-root.der
	root1DER []byte // slot-1 root, when captured
}

var (
	goldenOnce  sync.Once
	goldenCases []*goldenCase
	goldenErr   error
)

// loadGoldenCases reads every case once per test binary.
func loadGoldenCases(t testing.TB) []*goldenCase {
	t.Helper()
	goldenOnce.Do(func() { goldenCases, goldenErr = readGoldenCases() })
	if goldenErr != nil {
		t.Fatalf("golden corpus: %v", goldenErr)
	}
	return goldenCases
}

func readGoldenCases() ([]*goldenCase, error) {
	var out []*goldenCase
	for _, name := range goldenCaseNames {
		c, err := readGoldenCase(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func readGoldenCase(name string) (*goldenCase, error) {
	raw, err := os.ReadFile(filepath.Join(goldenDir, name+".json"))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	c := &goldenCase{}
	if err := dec.Decode(c); err != nil {
		return nil, err
	}
	if c.Case != name {
		return nil, fmt.Errorf("case field is %q", c.Case)
	}
	if c.version, err = ParseVersion(c.SPDMVersion); err != nil {
		return nil, err
	}
	// Sizes from the JSON's algorithm values, independently of the codec's
	// own tables (DSP0274 Table 15/16).
	switch c.Algorithms.BaseHashAlgo {
	case 1:
		c.hash = crypto.SHA256
	case 2:
		c.hash = crypto.SHA384
	case 4:
		c.hash = crypto.SHA512
	default:
		return nil, fmt.Errorf("base hash 0x%x not in the corpus", c.Algorithms.BaseHashAlgo)
	}
	c.hashSize = c.hash.Size()
	switch c.Algorithms.BaseAsymAlgo {
	case 0x10:
		c.sigSize = 64 // ECDSA P-256
	case 0x80:
		c.sigSize = 96 // ECDSA P-384
	default:
		return nil, fmt.Errorf("base asym 0x%x not in the corpus", c.Algorithms.BaseAsymAlgo)
	}
	if c.Algorithms.MeasurementHashAlgo != 8 {
		return nil, fmt.Errorf("measurement hash 0x%x, the README says SHA-512 everywhere", c.Algorithms.MeasurementHashAlgo)
	}
	c.measHash = 64
	for i, m := range c.Messages {
		b, err := hex.DecodeString(m.Hex)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		c.objects = append(c.objects, b)
	}
	if c.rootDER, err = os.ReadFile(filepath.Join(goldenDir, name+"-root.der")); err != nil {
		return nil, err
	}
	if j, err := hex.DecodeString(c.ResponderRootCertDERHex); err != nil || !bytes.Equal(j, c.rootDER) {
		return nil, fmt.Errorf("responder_root_cert_der_hex differs from %s-root.der (%v)", name, err)
	}
	if c.ResponderSlot1RootCertDERHex != "" {
		if c.root1DER, err = hex.DecodeString(c.ResponderSlot1RootCertDERHex); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// goldenHex decodes a hex string from the corpus.
func goldenHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// doePayload checks the DOE header of object i (README "DOE": vendor
// 0x0001, type, reserved 0, length in DW including the header) and returns
// the payload, padding included.
func (c *goldenCase) doePayload(t testing.TB, i int) []byte {
	t.Helper()
	o := c.objects[i]
	if len(o) < 8 || len(o)%4 != 0 {
		t.Fatalf("%s record %d: DOE object of %d bytes", c.Case, i, len(o))
	}
	vendor, typ, rsvd := binary.LittleEndian.Uint16(o), o[2], o[3]
	dw := binary.LittleEndian.Uint32(o[4:])
	if vendor != 0x0001 || int(typ) != c.Messages[i].DOEType || rsvd != 0 || int(dw)*4 != len(o) {
		t.Fatalf("%s record %d: DOE header vendor 0x%04x type %d reserved %d length %d DW, object %d bytes, JSON doe_type %d",
			c.Case, i, vendor, typ, rsvd, dw, len(o), c.Messages[i].DOEType)
	}
	return o[8:]
}

// codecMessage is what every SPDM message type of the codec implements.
type codecMessage interface{ Marshal() []byte }

// goldenDecodeCtx carries what the context-dependent decoders need.
type goldenDecodeCtx struct {
	hashSize    int  // negotiated base hash
	sigSize     int  // negotiated base asym
	summarySize int  // CHALLENGE asked for a measurement summary hash
	measSigned  bool // GET_MEASUREMENTS asked for a signature
	multiKey    bool // MULTI_KEY_CONN_RSP
}

// codecDecodeAny decodes one SPDM message by its own code. ok is false when the
// codec has no decoder for the code.
func codecDecodeAny(b []byte, ctx goldenDecodeCtx) (m codecMessage, n int, ok bool, err error) {
	if len(b) < 2 {
		return nil, 0, true, fmt.Errorf("%d bytes, no code", len(b))
	}
	return codecDecodeAs(b[1], b, ctx)
}

// codecDecodeAs runs the decoder of code on b, whatever b holds.
func codecDecodeAs(code uint8, b []byte, ctx goldenDecodeCtx) (m codecMessage, n int, ok bool, err error) {
	switch code {
	case CodeGetVersion:
		x := &GetVersion{}
		n, err = x.Decode(b)
		m = x
	case CodeVersion:
		x := &VersionResponse{}
		n, err = x.Decode(b)
		m = x
	case CodeGetCapabilities:
		x := &GetCapabilities{}
		n, err = x.Decode(b)
		m = x
	case CodeCapabilities:
		x := &Capabilities{}
		n, err = x.Decode(b)
		m = x
	case CodeNegotiateAlgorithms:
		x := &NegotiateAlgorithms{}
		n, err = x.Decode(b)
		m = x
	case CodeAlgorithms:
		x := &Algorithms{}
		n, err = x.Decode(b)
		m = x
	case CodeGetDigests:
		x := &GetDigests{}
		n, err = x.Decode(b)
		m = x
	case CodeDigests:
		x := &Digests{}
		n, err = x.Decode(b, ctx.hashSize, ctx.multiKey)
		m = x
	case CodeGetCertificate:
		x := &GetCertificate{}
		n, err = x.Decode(b)
		m = x
	case CodeCertificate:
		x := &Certificate{}
		n, err = x.Decode(b)
		m = x
	case CodeChallenge:
		x := &Challenge{}
		n, err = x.Decode(b)
		m = x
	case CodeChallengeAuth:
		x := &ChallengeAuth{}
		n, err = x.Decode(b, ctx.hashSize, ctx.summarySize, ctx.sigSize)
		m = x
	case CodeGetMeasurements:
		x := &GetMeasurements{}
		n, err = x.Decode(b)
		m = x
	case CodeMeasurements:
		x := &Measurements{}
		sig := 0
		if ctx.measSigned {
			sig = ctx.sigSize
		}
		n, err = x.Decode(b, sig)
		m = x
	case CodeError:
		x := &ErrorResponse{}
		n, err = x.Decode(b)
		m = x
	case CodeRespondIfReady:
		x := &RespondIfReady{}
		n, err = x.Decode(b)
		m = x
	case CodeChunkGet:
		x := &ChunkGet{}
		n, err = x.Decode(b)
		m = x
	case CodeChunkResponse:
		x := &ChunkResponse{}
		n, err = x.Decode(b)
		m = x
	default:
		return nil, 0, false, nil
	}
	return m, n, true, err
}

// goldenRecord is one plain SPDM record of a case, decoded.
type goldenRecord struct {
	index  int
	dir    string
	code   uint8
	padded []byte          // DOE payload, padding included
	raw    []byte          // the SPDM message, padding stripped (nil if no decoder)
	msg    codecMessage    // nil if no decoder
	ctx    goldenDecodeCtx // what it was decoded with
}

// plainRecords decodes every plain SPDM record (DOE type 1) of c in order,
// keeping the decoding context up to date as a requester would. It fails
// the test on any decode error; records whose code has no decoder come back
// with msg == nil.
func (c *goldenCase) plainRecords(t testing.TB) []goldenRecord {
	t.Helper()
	ctx := goldenDecodeCtx{hashSize: c.hashSize, sigSize: c.sigSize, multiKey: c.MultiKeyConnRsp}
	var out []goldenRecord
	for i, m := range c.Messages {
		if m.DOEType != 1 {
			continue
		}
		p := c.doePayload(t, i)
		if len(p) < 4 {
			t.Fatalf("%s record %d: SPDM payload of %d bytes", c.Case, i, len(p))
		}
		rec := goldenRecord{index: i, dir: m.Dir, code: p[1], padded: p, ctx: ctx}
		if (m.Dir == "req") != (p[1]&0x80 != 0) {
			t.Errorf("%s record %d: dir %q but code %s", c.Case, i, m.Dir, CodeName(p[1]))
		}
		msg, n, ok, err := codecDecodeAny(p, ctx)
		if !ok {
			out = append(out, rec)
			continue
		}
		if err != nil {
			t.Errorf("%s record %d (%s): decode: %v\n  bytes % x", c.Case, i, CodeName(p[1]), err, p)
			continue
		}
		rec.msg, rec.raw = msg, p[:n]
		switch x := msg.(type) {
		case *Challenge:
			ctx.summarySize = 0
			if x.SummaryType != SummaryNone {
				ctx.summarySize = c.hashSize
			}
		case *GetMeasurements:
			ctx.measSigned = x.SignatureRequested()
		}
		out = append(out, rec)
	}
	return out
}

func TestGoldenCorpusShape(t *testing.T) {
	cases := loadGoldenCases(t)
	// README table: records (discovery / plain / secured).
	want := map[string][3]int{
		"v12-p384-aes256": {6, 26, 24}, "v11-p256-aes128": {6, 26, 24}, "v13-p384-chacha": {6, 26, 24},
		"v12-psk": {6, 24, 12}, "v12-ide-km": {6, 28, 216},
	}
	for _, c := range cases {
		var got [3]int
		for i, m := range c.Messages {
			if m.DOEType < 0 || m.DOEType > 2 {
				t.Fatalf("%s record %d: doe_type %d", c.Case, i, m.DOEType)
			}
			got[m.DOEType]++
			c.doePayload(t, i)
			// Records strictly alternate, starting with a request.
			if wantDir := [2]string{"req", "rsp"}[i%2]; m.Dir != wantDir {
				t.Errorf("%s record %d: dir %q, want %q", c.Case, i, m.Dir, wantDir)
			}
		}
		if got != want[c.Case] {
			t.Errorf("%s: %v records by type, README says %v", c.Case, got, want[c.Case])
		}
		// GET_VERSION is record 6.
		if p := c.doePayload(t, 6); p[1] != CodeGetVersion {
			t.Errorf("%s: record 6 is %s", c.Case, CodeName(p[1]))
		}
	}
}

// TestGoldenPlainRecordsDecode: every plain SPDM record decodes, consumes
// the whole SPDM message, leaves only minimal zero DOE padding, and
// encodes back to exactly the bytes on the wire.
func TestGoldenPlainRecordsDecode(t *testing.T) {
	decoded := map[string]int{}
	skipped := map[string][]string{}
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			for _, r := range c.plainRecords(t) {
				name := CodeName(r.code)
				if r.msg == nil {
					skipped[name] = append(skipped[name], fmt.Sprintf("%s#%d", c.Case, r.index))
					continue
				}
				decoded[name]++
				n := len(r.raw)
				pad := r.padded[n:]
				if len(pad) >= 4 || (n+len(pad))%4 != 0 || len(pad) != (4-n%4)%4 {
					t.Errorf("record %d (%s): message %d bytes, %d bytes of padding", r.index, name, n, len(pad))
				}
				if !bytes.Equal(pad, make([]byte, len(pad))) {
					t.Errorf("record %d (%s): padding % x is not zero", r.index, name, pad)
				}
				if enc := r.msg.Marshal(); !bytes.Equal(enc, r.raw) {
					t.Errorf("record %d (%s): Marshal differs from the wire\n wire % x\n  got % x", r.index, name, r.raw, enc)
				}
				if h, err := PeekHeader(r.raw); err != nil || Version(r.raw[0]) != h.Version || h.Code != r.code {
					t.Errorf("record %d: PeekHeader = %+v, %v", r.index, h, err)
				}
				// Everything after VERSION speaks the negotiated version.
				if r.index > 7 && Version(r.raw[0]) != c.version {
					t.Errorf("record %d (%s): version %v, negotiated %v", r.index, name, Version(r.raw[0]), c.version)
				}
			}
		})
	}
	var names []string
	for n := range decoded {
		names = append(names, fmt.Sprintf("%s x%d", n, decoded[n]))
	}
	sort.Strings(names)
	t.Logf("decoded: %s", strings.Join(names, ", "))
	names = names[:0]
	for n, recs := range skipped {
		names = append(names, fmt.Sprintf("%s x%d (%s)", n, len(recs), strings.Join(recs, " ")))
	}
	sort.Strings(names)
	t.Logf("skipped, no decoder yet: %s", strings.Join(names, "; "))
}

// TestGoldenNegotiation checks the decoded VCA against the JSON's
// algorithm values and libspdm's MULTI_KEY_CONN_RSP rule.
func TestGoldenNegotiation(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			recs := c.plainRecords(t)
			byIndex := map[int]goldenRecord{}
			for _, r := range recs {
				byIndex[r.index] = r
			}
			ver, ok := byIndex[7].msg.(*VersionResponse)
			if !ok {
				t.Fatalf("record 7 is not VERSION")
			}
			if got, ok := ver.Highest([]Version{V10, V11, V12, V13}); !ok || got != c.version {
				t.Errorf("highest common version %v, JSON says %v", got, c.version)
			}
			getCaps := byIndex[8].msg.(*GetCapabilities)
			caps := byIndex[9].msg.(*Capabilities)
			neg := byIndex[10].msg.(*NegotiateAlgorithms)
			alg := byIndex[11].msg.(*Algorithms)
			if getCaps.Version != c.version || caps.Version != c.version || neg.Version != c.version || alg.Version != c.version {
				t.Errorf("VCA versions %v %v %v %v", getCaps.Version, caps.Version, neg.Version, alg.Version)
			}
			a := c.Algorithms
			got := goldenAlgorithms{
				MeasurementSpecification: int(alg.MeasurementSpecSel),
				OtherParamsSelection:     int(alg.OtherParamsSelection),
				MeasurementHashAlgo:      int(alg.MeasurementHashAlgo),
				BaseAsymAlgo:             int(alg.BaseAsymSel),
				BaseHashAlgo:             int(alg.BaseHashSel),
				MELSpecification:         int(alg.MELSpecSel),
				DHENamedGroup:            int(structBits(alg.Structs, AlgTypeDHE)),
				AEADCipherSuite:          int(structBits(alg.Structs, AlgTypeAEAD)),
				ReqBaseAsymAlg:           int(structBits(alg.Structs, AlgTypeReqBaseAsym)),
				KeySchedule:              int(structBits(alg.Structs, AlgTypeKeySchedule)),
			}
			got.Names = a.Names
			if !reflect.DeepEqual(got, a) {
				t.Errorf("ALGORITHMS decodes to %+v, JSON says %+v", got, a)
			}
			// The codec's own tables agree with the corpus.
			if h, err := hashOf(alg.BaseHashSel); err != nil || h != c.hash {
				t.Errorf("hashOf(0x%x) = %v, %v; want %v", alg.BaseHashSel, h, err, c.hash)
			}
			if s, err := sigSize(alg.BaseAsymSel); err != nil || s != c.sigSize {
				t.Errorf("sigSize(0x%x) = %d, %v; want %d", alg.BaseAsymSel, s, err, c.sigSize)
			}
			if s, err := measHashSize(alg.MeasurementHashAlgo); err != nil || s != c.measHash {
				t.Errorf("measHashSize(0x%x) = %d, %v; want %d", alg.MeasurementHashAlgo, s, err, c.measHash)
			}
			// libspdm: MULTI_KEY_CONN_RSP when the responder's MULTI_KEY_CAP
			// is "only", or "negotiate" and the requester set MULTI_KEY_CONN
			// (0x10) in OtherParamsSupport (README "Transcripts").
			multi := c.version >= V13 && (caps.Flags&CapMultiKeyOnly != 0 ||
				caps.Flags&CapMultiKeyNeg != 0 && neg.OtherParamsSupport&0x10 != 0)
			if multi != c.MultiKeyConnRsp {
				t.Errorf("MULTI_KEY_CONN_RSP by libspdm's rule = %v, JSON says %v (caps 0x%08x, OtherParamsSupport 0x%02x)",
					multi, c.MultiKeyConnRsp, caps.Flags, neg.OtherParamsSupport)
			}
			t.Logf("responder caps %s", strings.Join(CapabilityNames(caps.Flags), ","))
		})
	}
}

// TestGoldenMeasurementBlocks parses every plain MEASUREMENTS record's
// blocks with the negotiated measurement hash (SHA-512).
func TestGoldenMeasurementBlocks(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			seen := 0
			for _, r := range c.plainRecords(t) {
				m, ok := r.msg.(*Measurements)
				if !ok {
					continue
				}
				seen++
				blocks, err := m.Blocks(c.measHash)
				if err != nil {
					t.Fatalf("record %d: blocks: %v", r.index, err)
				}
				if len(blocks) != int(m.NumBlocks) || len(blocks) == 0 {
					t.Fatalf("record %d: %d blocks, NumberOfBlocks %d", r.index, len(blocks), m.NumBlocks)
				}
				if enc := MarshalRecord(blocks); !bytes.Equal(enc, m.Record) {
					t.Errorf("record %d: MarshalRecord differs from the record", r.index)
				}
				var desc []string
				digests := 0
				for _, b := range blocks {
					if !b.RawBitStream() {
						digests++
						if len(b.Value) != c.measHash {
							t.Errorf("record %d block %d: digest of %d bytes", r.index, b.Index, len(b.Value))
						}
					}
					desc = append(desc, fmt.Sprintf("%d:%s/%dB", b.Index, MeasurementTypeName(b.ValueType), len(b.Value)))
				}
				if digests == 0 {
					t.Errorf("record %d: no digest blocks, so the SHA-512 size check never ran", r.index)
				}
				t.Logf("record %d: %d blocks: %s", r.index, len(blocks), strings.Join(desc, " "))
				// With a wrong measurement hash size the digests are rejected.
				if _, err := m.Blocks(48); err == nil {
					t.Errorf("record %d: blocks parse with a 48-byte measurement hash", r.index)
				}
			}
			if seen == 0 {
				t.Fatal("no plain MEASUREMENTS")
			}
		})
	}
}
