package secchan_test

// Tests of the responder, driven with hand-built requests. The test side
// keeps its own transcripts from the exact bytes and checks every signature
// with VerifySignature, so the responder's transcript rules are checked
// independently of its own code.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
	. "github.com/devattest/devattest/secchan"
)

// rtIdentities: one P-384 root CA and two leaves under it (P-256 and
// P-384), made once per test binary.
var rtIdentities = sync.OnceValues(func() (*x509.Certificate, map[uint32]Identity) {
	now := time.Now().Add(-time.Hour)
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "responder test root"},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		panic(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	ids := map[uint32]Identity{}
	for i, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(2 + i)), Subject: pkix.Name{CommonName: "responder test leaf " + curve.Params().Name},
			NotBefore: now, NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
		if err != nil {
			panic(err)
		}
		ids[AsymFor(key.Public())] = Identity{Chain: [][]byte{rootDER, der}, Root: rootDER, Key: key}
	}
	return root, ids
})

// rtMeas is a mutable measurement provider.
type rtMeas struct {
	mu sync.Mutex
	ms []RawMeasurement
}

func newRTMeas() *rtMeas {
	return &rtMeas{ms: []RawMeasurement{
		{Index: 1, Type: MeasTypeImmutableROM, Value: []byte("rom")},
		{Index: 2, Type: MeasTypeMutableFirmware, Value: []byte("firmware 1")},
		{Index: 3, Type: MeasTypeHardwareConfig, Value: []byte("hw config")},
		{Index: 4, Type: MeasTypeFirmwareConfig, Value: []byte("fw config")},
		{Index: 5, Type: MeasTypeVersion, Value: []byte("version 1.0")},
	}}
}

func (m *rtMeas) Measurements() []RawMeasurement {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RawMeasurement(nil), m.ms...)
}

func (m *rtMeas) set(index uint8, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.ms {
		if m.ms[i].Index == index {
			m.ms[i].Value = []byte(v)
		}
	}
}

func newRTResponder(t *testing.T, cfg ResponderConfig) (*Responder, *rtMeas) {
	t.Helper()
	_, ids := rtIdentities()
	meas := newRTMeas()
	if cfg.Identities == nil {
		cfg.Identities = []Identity{ids[AsymECDSAP384], ids[AsymECDSAP256]}
	}
	if cfg.Measurements == nil {
		cfg.Measurements = meas
	}
	r, err := NewResponder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, meas
}

// rtConn is the test's requester: it sends hand-built requests and keeps
// the transcripts.
type rtConn struct {
	t        *testing.T
	r        *Responder
	v        Version
	asym     uint32
	hashAlg  uint32
	hash     crypto.Hash
	measHash crypto.Hash
	caps     uint32
	dts      uint32 // requester DataTransferSize (1.2+)
	max      uint32
	vca, b   []byte
	l        []byte
	chunks   int // CHUNK_GET round trips so far
}

// send pads req to a DW boundary, as DOE does, and returns the response.
// An ERROR(LargeResponse) is followed by CHUNK_GETs and the reassembled
// response returned.
func (c *rtConn) send(req []byte) []byte {
	c.t.Helper()
	padded := append(append([]byte(nil), req...), make([]byte, (4-len(req)%4)%4)...)
	resp := c.r.Respond(context.Background(), padded)
	if e, ok := rtErr(resp); ok && e.Code == ErrCodeLargeResponse {
		return c.chunkGet(e.Ext[0])
	}
	return resp
}

func (c *rtConn) chunkGet(handle uint8) []byte {
	c.t.Helper()
	var out []byte
	var total uint32
	for seq := uint16(0); ; seq++ {
		resp := c.r.Respond(context.Background(), (&ChunkGet{Version: c.v, Handle: handle, Seq: seq}).Marshal())
		c.chunks++
		if c.dts != 0 && len(resp) > int(c.dts) {
			c.t.Fatalf("CHUNK_RESPONSE of %d bytes exceeds DataTransferSize %d", len(resp), c.dts)
		}
		var m ChunkResponse
		if _, err := m.Decode(resp); err != nil {
			c.t.Fatalf("CHUNK_GET %d: %v (% x)", seq, err, resp)
		}
		if m.Handle != handle || m.Seq != seq {
			c.t.Fatalf("CHUNK_RESPONSE handle %d seq %d, want %d/%d", m.Handle, m.Seq, handle, seq)
		}
		if seq == 0 {
			total = m.LargeMessageSize
		}
		out = append(out, m.Chunk...)
		if m.Attributes&ChunkLast != 0 {
			if uint32(len(out)) != total {
				c.t.Fatalf("chunks total %d bytes, LargeMessageSize %d", len(out), total)
			}
			return out
		}
	}
}

func rtErr(resp []byte) (*ErrorResponse, bool) {
	if len(resp) < 2 || resp[1] != CodeError {
		return nil, false
	}
	var e ErrorResponse
	if _, err := e.Decode(resp); err != nil {
		return nil, false
	}
	return &e, true
}

func rtWantError(t *testing.T, resp []byte, code ErrorCode, data uint8) {
	t.Helper()
	e, ok := rtErr(resp)
	if !ok {
		t.Fatalf("response % x, want ERROR(%v)", resp, code)
	}
	if e.Code != code || e.Data != data {
		t.Fatalf("ERROR(%v, data 0x%02x), want ERROR(%v, data 0x%02x)", e.Code, e.Data, code, data)
	}
}

func (c *rtConn) must(req []byte, code uint8) []byte {
	c.t.Helper()
	resp := c.send(req)
	if e, ok := rtErr(resp); ok {
		c.t.Fatalf("%s: ERROR(%v, 0x%02x)", CodeName(req[1]), e.Code, e.Data)
	}
	if len(resp) < 4 || resp[1] != code || Version(resp[0]) != c.v && code != CodeVersion {
		c.t.Fatalf("%s answered % x, want %s version %v", CodeName(req[1]), resp, CodeName(code), c.v)
	}
	return resp
}

func rtDigest(h crypto.Hash, parts ...[]byte) []byte {
	d := h.New()
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

// connect runs VCA and checks the selection.
func (c *rtConn) connect() {
	t := c.t
	t.Helper()
	req := (&GetVersion{}).Marshal()
	resp := c.must(req, CodeVersion)
	var vr VersionResponse
	if _, err := vr.Decode(resp); err != nil {
		t.Fatal(err)
	}
	if hi, ok := vr.Highest([]Version{V10, V11, V12, V13}); !ok || hi != V13 || len(vr.Entries) != 4 {
		t.Fatalf("VERSION entries %v", vr.Entries)
	}
	c.vca = append(req, resp...)

	gc := GetCapabilities{Version: c.v, CTExponent: 10, Flags: c.caps, DataTransferSize: c.dts, MaxSPDMmsgSize: c.max}
	req = gc.Marshal()
	resp = c.must(req, CodeCapabilities)
	var caps Capabilities
	if _, err := caps.Decode(resp); err != nil {
		t.Fatal(err)
	}
	wantCaps := CapCert | CapChal | CapMeasSig
	if c.v >= V12 {
		wantCaps |= CapChunk
	}
	if caps.Flags != wantCaps || caps.CTExponent == 0 {
		t.Fatalf("CAPABILITIES flags %v CT %d, want %v", CapabilityNames(caps.Flags), caps.CTExponent, CapabilityNames(wantCaps))
	}
	c.vca = append(append(c.vca, req...), resp...)

	na := NegotiateAlgorithms{Version: c.v, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: c.asym, BaseHashAlgo: c.hashAlg}
	if c.v >= V11 {
		na.Structs = []AlgStruct{
			{Type: AlgTypeDHE, Bits: DHESECP256R1 | DHESECP384R1 | DHESECP521R1},
			{Type: AlgTypeAEAD, Bits: AEADAES128GCM | AEADAES256GCM | AEADChaCha20Poly1305},
			{Type: AlgTypeReqBaseAsym, Bits: uint16(AsymECDSAP256 | AsymECDSAP384)},
			{Type: AlgTypeKeySchedule, Bits: KeyScheduleSPDM},
		}
	}
	if c.v >= V12 {
		na.OtherParamsSupport = 1 << 1
	}
	req = na.Marshal()
	resp = c.must(req, CodeAlgorithms)
	var alg Algorithms
	if _, err := alg.Decode(resp); err != nil {
		t.Fatal(err)
	}
	if alg.BaseAsymSel != c.asym || alg.BaseHashSel != c.hashAlg || alg.MeasurementSpecSel != MeasurementSpecDMTF || alg.MeasurementHashAlgo != MeasHashSHA384 {
		t.Fatalf("ALGORITHMS %+v", alg)
	}
	if c.v >= V11 {
		// Every structure is answered; without KEY_EX, PSK or MUT_AUTH
		// nothing is selected in them (DSP0274 §10.5).
		want := []AlgStruct{{Type: AlgTypeDHE}, {Type: AlgTypeAEAD}, {Type: AlgTypeReqBaseAsym}, {Type: AlgTypeKeySchedule}}
		if fmt.Sprint(alg.Structs) != fmt.Sprint(want) {
			t.Fatalf("ALGORITHMS structs %+v, want %+v", alg.Structs, want)
		}
	}
	if want := map[bool]uint8{true: 1 << 1, false: 0}[c.v >= V12]; alg.OtherParamsSelection != want {
		t.Fatalf("OtherParamsSelection 0x%x, want 0x%x", alg.OtherParamsSelection, want)
	}
	c.vca = append(append(c.vca, req...), resp...)
	c.measHash = crypto.SHA384
	if got := c.r.State(); got != ResponderNegotiated {
		t.Fatalf("state %v after ALGORITHMS", got)
	}
}

// certificate runs GET_DIGESTS and reads slot 0's chain in portions of
// portion bytes; it returns the parsed chain.
func (c *rtConn) certificate(portion uint16) *CertChain {
	t := c.t
	t.Helper()
	req := (&GetDigests{Version: c.v}).Marshal()
	resp := c.must(req, CodeDigests)
	var d Digests
	if _, err := d.Decode(resp, c.hash.Size(), false); err != nil {
		t.Fatal(err)
	}
	if d.SlotMask != 1 {
		t.Fatalf("DIGESTS slot mask 0x%02x, want one slot for %s", d.SlotMask, AsymName(c.asym))
	}
	c.b = append(req, resp...)
	var chain []byte
	for {
		req := (&GetCertificate{Version: c.v, Slot: 0, Offset: uint16(len(chain)), Length: portion}).Marshal()
		resp := c.must(req, CodeCertificate)
		var m Certificate
		if _, err := m.Decode(resp); err != nil {
			t.Fatal(err)
		}
		if len(m.Portion) > int(portion) || len(m.Portion) == 0 {
			t.Fatalf("portion of %d bytes, asked for %d", len(m.Portion), portion)
		}
		chain = append(chain, m.Portion...)
		c.b = append(append(c.b, req...), resp...)
		if m.Remainder == 0 {
			break
		}
	}
	if !bytes.Equal(rtDigest(c.hash, chain), d.DigestFor(0)) {
		t.Fatal("chain digest differs from DIGESTS")
	}
	cc, err := ParseCertChain(chain, c.hash)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := rtIdentities()
	if err := (&AnchorValidator{Roots: []*x509.Certificate{root}}).ValidateChain(cc, c.hash); err != nil {
		t.Fatal(err)
	}
	if AsymFor(cc.Leaf().PublicKey) != c.asym {
		t.Fatalf("slot 0 leaf is %s, want %s", AsymName(AsymFor(cc.Leaf().PublicKey)), AsymName(c.asym))
	}
	return cc
}

func (c *rtConn) sigSize() int {
	if c.asym == AsymECDSAP256 {
		return 64
	}
	return 96
}

// challenge runs CHALLENGE and verifies CHALLENGE_AUTH over M1M2.
func (c *rtConn) challenge(leaf crypto.PublicKey, summary uint8, wantSummary []byte) {
	t := c.t
	t.Helper()
	ch := Challenge{Version: c.v, Slot: 0, SummaryType: summary}
	rand.Read(ch.Nonce[:])
	rand.Read(ch.Context[:])
	req := ch.Marshal()
	resp := c.must(req, CodeChallengeAuth)
	summarySize := 0
	if summary != SummaryNone {
		summarySize = c.hash.Size()
	}
	var m ChallengeAuth
	n, err := m.Decode(resp, c.hash.Size(), summarySize, c.sigSize())
	if err != nil || n != len(resp) {
		t.Fatalf("CHALLENGE_AUTH: %v (%d of %d bytes)", err, n, len(resp))
	}
	if m.Slot != 0 || m.SlotMask != 1 || !bytes.Equal(m.SummaryHash, wantSummary) {
		t.Fatalf("CHALLENGE_AUTH slot %d mask 0x%x summary %x (want %x)", m.Slot, m.SlotMask, m.SummaryHash, wantSummary)
	}
	if c.v >= V13 && m.Context != ch.Context {
		t.Fatal("RequesterContext not echoed")
	}
	unsigned := resp[:len(resp)-len(m.Signature)]
	th := rtDigest(c.hash, c.vca, c.b, req, unsigned)
	if err := VerifySignature(c.v, c.asym, c.hash, leaf, ContextChallengeAuth, th, m.Signature); err != nil {
		t.Fatalf("CHALLENGE_AUTH signature over M1M2: %v", err)
	}
	c.b = nil
}

// measure sends GET_MEASUREMENTS and, when signed, verifies the signature
// over L1L2. It returns the parsed response.
func (c *rtConn) measure(leaf crypto.PublicKey, attrs, op uint8) *Measurements {
	t := c.t
	t.Helper()
	g := GetMeasurements{Version: c.v, Attributes: attrs, Operation: op}
	rand.Read(g.Nonce[:])
	rand.Read(g.Context[:])
	req := g.Marshal()
	resp := c.must(req, CodeMeasurements)
	sig := 0
	if g.SignatureRequested() {
		sig = c.sigSize()
	}
	var m Measurements
	n, err := m.Decode(resp, sig)
	if err != nil || n != len(resp) {
		t.Fatalf("MEASUREMENTS: %v (%d of %d bytes)", err, n, len(resp))
	}
	if c.v >= V13 && m.Context != g.Context {
		t.Fatal("RequesterContext not echoed")
	}
	if !g.SignatureRequested() {
		c.l = append(append(c.l, req...), resp...)
		return &m
	}
	var vca []byte
	if c.v >= V12 {
		vca = c.vca
	}
	th := rtDigest(c.hash, vca, c.l, req, resp[:len(resp)-sig])
	if err := VerifySignature(c.v, c.asym, c.hash, leaf, ContextMeasurements, th, m.Signature); err != nil {
		t.Fatalf("MEASUREMENTS signature over L1L2: %v", err)
	}
	c.l = nil
	return &m
}

func rtNewConn(t *testing.T, r *Responder, v Version, asym, hashAlg uint32) *rtConn {
	c := &rtConn{t: t, r: r, v: v, asym: asym, hashAlg: hashAlg, caps: CapCert | CapChal}
	c.hash = map[uint32]crypto.Hash{HashSHA256: crypto.SHA256, HashSHA384: crypto.SHA384, HashSHA512: crypto.SHA512}[hashAlg]
	if v >= V12 {
		c.caps |= CapChunk
		c.dts, c.max = 4096, 1<<16
	}
	return c
}

// rtBlocks is what the measurement record should hold for ms.
func rtBlocks(ms []RawMeasurement, h crypto.Hash, raw bool) []MeasurementBlock {
	var out []MeasurementBlock
	for _, m := range ms {
		b := MeasurementBlock{Index: m.Index, Spec: MeasurementSpecDMTF, ValueType: m.Type, Value: m.Value}
		if raw {
			b.ValueType |= MeasTypeRawBitStream
		} else {
			b.Value = rtDigest(h, m.Value)
		}
		out = append(out, b)
	}
	return out
}

func TestResponderFullFlow(t *testing.T) {
	for _, v := range []Version{V10, V11, V12, V13} {
		for _, alg := range []struct {
			asym, hash uint32
		}{{AsymECDSAP256, HashSHA256}, {AsymECDSAP384, HashSHA384}, {AsymECDSAP256, HashSHA384}} {
			t.Run(fmt.Sprintf("%v/%s/%s", v, AsymName(alg.asym), HashName(alg.hash)), func(t *testing.T) {
				r, meas := newRTResponder(t, ResponderConfig{})
				c := rtNewConn(t, r, v, alg.asym, alg.hash)
				c.connect()
				chain := c.certificate(0x80)
				leaf := chain.Leaf().PublicKey

				all := rtBlocks(meas.Measurements(), c.measHash, false)
				tcb := all[:4] // ROM, firmware, hardware and firmware configuration
				c.challenge(leaf, SummaryAll, rtDigest(c.hash, MarshalRecord(all)))
				c.certificate(0xFFFF) // B again, then a second CHALLENGE
				c.challenge(leaf, SummaryTCB, rtDigest(c.hash, MarshalRecord(tcb)))
				c.challenge(leaf, SummaryNone, nil)

				// Count, one block, then all signed: L1L2 spans the three.
				if m := c.measure(leaf, 0, MeasOpCount); m.Param1 != 5 || m.NumBlocks != 0 || len(m.Record) != 0 {
					t.Fatalf("count: %+v", m)
				}
				m := c.measure(leaf, 0, 2)
				if got, _ := m.Blocks(c.measHash.Size()); len(got) != 1 || fmt.Sprint(got) != fmt.Sprint(all[1:2]) {
					t.Fatalf("index 2: %+v", got)
				}
				m = c.measure(leaf, MeasAttrSignature, MeasOpAll)
				if got, _ := m.Blocks(c.measHash.Size()); fmt.Sprint(got) != fmt.Sprint(all) {
					t.Fatalf("all blocks: %+v\nwant %+v", got, all)
				}
				if v >= V11 && m.Slot != 0 {
					t.Fatalf("MEASUREMENTS slot %d", m.Slot)
				}
				// A changed value shows in the next signed response, and
				// L1L2 starts afresh after a signed one.
				meas.set(2, "firmware 2")
				m = c.measure(leaf, MeasAttrSignature, 2)
				if got, _ := m.Blocks(c.measHash.Size()); !bytes.Equal(got[0].Value, rtDigest(c.measHash, []byte("firmware 2"))) {
					t.Fatalf("changed measurement not reported: %+v", got)
				}
				if v >= V12 {
					m = c.measure(leaf, MeasAttrSignature|MeasAttrRawBitStream, MeasOpAll)
					want := rtBlocks(meas.Measurements(), c.measHash, true)
					if got, _ := m.Blocks(c.measHash.Size()); fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("raw blocks: %+v", got)
					}
				}
				// Another request ends L1L2: the unsigned pair before it is
				// not part of the next signature.
				c.measure(leaf, 0, 1)
				c.send((&GetDigests{Version: v}).Marshal())
				c.l = nil
				c.measure(leaf, MeasAttrSignature, 1)
			})
		}
	}
}

// GET_MEASUREMENTS before a completed CHALLENGE drops B (DSP0274 and
// libspdm): M1M2 is then VCA + CHALLENGE + CHALLENGE_AUTH.
func TestResponderMeasurementsResetB(t *testing.T) {
	r, _ := newRTResponder(t, ResponderConfig{})
	c := rtNewConn(t, r, V12, AsymECDSAP384, HashSHA384)
	c.connect()
	leaf := c.certificate(0x400).Leaf().PublicKey
	c.measure(leaf, 0, 1)
	c.b = nil
	c.challenge(leaf, SummaryNone, nil)
}

// rtNegotiated returns a 1.2 connection after VCA.
func rtNegotiated(t *testing.T) *rtConn {
	r, _ := newRTResponder(t, ResponderConfig{})
	c := rtNewConn(t, r, V12, AsymECDSAP384, HashSHA384)
	c.connect()
	return c
}

func TestResponderWrongState(t *testing.T) {
	v := V12
	getCaps := (&GetCapabilities{Version: v, Flags: CapCert | CapChal, DataTransferSize: 4096, MaxSPDMmsgSize: 4096}).Marshal()
	negAlg := (&NegotiateAlgorithms{Version: v, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: AsymECDSAP384, BaseHashAlgo: HashSHA384}).Marshal()
	later := map[string][]byte{
		"GET_DIGESTS":      (&GetDigests{Version: v}).Marshal(),
		"GET_CERTIFICATE":  (&GetCertificate{Version: v, Length: 100}).Marshal(),
		"CHALLENGE":        (&Challenge{Version: v}).Marshal(),
		"GET_MEASUREMENTS": (&GetMeasurements{Version: v}).Marshal(),
		"CHUNK_GET":        (&ChunkGet{Version: v, Handle: 1}).Marshal(),
		"RESPOND_IF_READY": (&RespondIfReady{Version: v, RequestCode: CodeGetDigests}).Marshal(),
	}
	type step struct {
		name string
		req  []byte
	}
	check := func(t *testing.T, r *Responder, want ResponderState, reqs []step) {
		t.Helper()
		for _, s := range reqs {
			rtWantError(t, r.Respond(context.Background(), s.req), ErrCodeUnexpectedRequest, 0)
			if got := r.State(); got != want {
				t.Fatalf("%s moved the state to %v", s.name, got)
			}
		}
	}
	var laterSteps []step
	for n, req := range later {
		laterSteps = append(laterSteps, step{n, req})
	}
	r, _ := newRTResponder(t, ResponderConfig{})
	check(t, r, ResponderNotStarted, append([]step{{"GET_CAPABILITIES", getCaps}, {"NEGOTIATE_ALGORITHMS", negAlg}}, laterSteps...))
	r.Respond(context.Background(), (&GetVersion{}).Marshal())
	check(t, r, ResponderAfterVersion, append([]step{{"NEGOTIATE_ALGORITHMS", negAlg}}, laterSteps...))
	if resp := r.Respond(context.Background(), getCaps); resp[1] != CodeCapabilities {
		t.Fatalf("GET_CAPABILITIES: % x", resp)
	}
	check(t, r, ResponderAfterCapabilities, append([]step{{"GET_CAPABILITIES", getCaps}}, laterSteps[:0]...))
	for n, req := range later {
		if n == "CHUNK_GET" || n == "RESPOND_IF_READY" {
			continue
		}
		check(t, r, ResponderAfterCapabilities, []step{{n, req}})
	}
	if resp := r.Respond(context.Background(), negAlg); resp[1] != CodeAlgorithms {
		t.Fatalf("NEGOTIATE_ALGORITHMS: % x", resp)
	}
	check(t, r, ResponderNegotiated, []step{{"GET_CAPABILITIES", getCaps}, {"NEGOTIATE_ALGORITHMS", negAlg},
		{"CHUNK_GET", later["CHUNK_GET"]}, {"RESPOND_IF_READY", later["RESPOND_IF_READY"]}})
	// Reset (a device reset) drops the connection.
	r.Reset()
	check(t, r, ResponderNotStarted, laterSteps)
}

func TestResponderInvalidRequests(t *testing.T) {
	c := rtNegotiated(t)
	challenge := (&Challenge{Version: V12}).Marshal()
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"short header", []byte{0x12, CodeGetDigests}},
		{"GET_DIGESTS reserved Param1", []byte{0x12, CodeGetDigests, 1, 0}},
		{"GET_DIGESTS trailing bytes", []byte{0x12, CodeGetDigests, 0, 0, 0, 0, 0, 0}},
		{"GET_DIGESTS non-zero padding", []byte{0x12, CodeGetDigests, 0, 0, 1}},
		{"GET_CERTIFICATE truncated", (&GetCertificate{Version: V12, Length: 10}).Marshal()[:6]},
		{"GET_CERTIFICATE empty slot", (&GetCertificate{Version: V12, Slot: 3, Length: 10}).Marshal()},
		{"GET_CERTIFICATE offset beyond chain", (&GetCertificate{Version: V12, Offset: 0xFFF0, Length: 10}).Marshal()},
		{"CHALLENGE short nonce", challenge[:20]},
		{"CHALLENGE empty slot", (&Challenge{Version: V12, Slot: 2}).Marshal()},
		{"CHALLENGE public-key slot", (&Challenge{Version: V12, Slot: 0xFF}).Marshal()},
		{"CHALLENGE bad summary type", append([]byte{0x12, CodeChallenge, 0, 7}, make([]byte, 32)...)},
		{"GET_MEASUREMENTS signed without nonce", []byte{0x12, CodeGetMeasurements, MeasAttrSignature, MeasOpAll}},
		{"GET_MEASUREMENTS unknown index", (&GetMeasurements{Version: V12, Operation: 9}).Marshal()},
		{"GET_MEASUREMENTS empty slot", (&GetMeasurements{Version: V12, Attributes: MeasAttrSignature, Operation: 1, Slot: 5}).Marshal()},
		{"GET_MEASUREMENTS reserved attribute", []byte{0x12, CodeGetMeasurements, 0x40, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rtWantError(t, c.r.Respond(context.Background(), tc.req), ErrCodeInvalidRequest, 0)
			if c.r.State() != ResponderNegotiated {
				t.Fatalf("state %v after an invalid request", c.r.State())
			}
		})
	}
	// The connection still works afterwards.
	c.certificate(0x400)

	// Malformed VCA requests.
	r, _ := newRTResponder(t, ResponderConfig{})
	rtWantError(t, r.Respond(context.Background(), []byte{0x10, CodeGetVersion, 1, 0}), ErrCodeInvalidRequest, 0)
	r.Respond(context.Background(), (&GetVersion{}).Marshal())
	for _, gc := range []GetCapabilities{
		{Version: V12, Flags: CapCert | CapChal | CapChunk, DataTransferSize: 41, MaxSPDMmsgSize: 4096},  // below 42
		{Version: V12, Flags: CapCert | CapChal | CapChunk, DataTransferSize: 4096, MaxSPDMmsgSize: 100}, // max < DTS
		{Version: V12, Flags: CapCert | CapChal, DataTransferSize: 100, MaxSPDMmsgSize: 4096},            // no CHUNK: must be equal
		{Version: V11, Flags: CapChal},                               // CHAL without CERT
		{Version: V11, Flags: CapCert | CapChal | CapMAC},            // MAC without KEY_EX or PSK
		{Version: V11, Flags: CapCert | CapChal | CapPSKWithContext}, // reserved requester PSK_CAP
	} {
		rtWantError(t, r.Respond(context.Background(), gc.Marshal()), ErrCodeInvalidRequest, 0)
	}
	if r.State() != ResponderAfterVersion {
		t.Fatalf("state %v", r.State())
	}
	r.Respond(context.Background(), (&GetCapabilities{Version: V11, Flags: CapCert | CapChal}).Marshal())
	na := NegotiateAlgorithms{Version: V11, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: AsymECDSAP384, BaseHashAlgo: HashSHA384}
	bad := na.Marshal()
	bad[4]++ // Length
	rtWantError(t, r.Respond(context.Background(), bad), ErrCodeInvalidRequest, 0)
	noCommon := na
	noCommon.BaseAsymAlgo = AsymRSASSA2048
	rtWantError(t, r.Respond(context.Background(), noCommon.Marshal()), ErrCodeInvalidRequest, 0)
	zeroTable := na
	zeroTable.Structs = []AlgStruct{{Type: AlgTypeDHE}}
	rtWantError(t, r.Respond(context.Background(), zeroTable.Marshal()), ErrCodeInvalidRequest, 0)
	if resp := r.Respond(context.Background(), na.Marshal()); resp[1] != CodeAlgorithms {
		t.Fatalf("NEGOTIATE_ALGORITHMS after failures: % x", resp)
	}
}

func TestResponderVersionMismatch(t *testing.T) {
	c := rtNegotiated(t)
	for _, req := range [][]byte{
		(&GetDigests{Version: V11}).Marshal(),
		(&GetCertificate{Version: V13, Length: 10}).Marshal(),
		(&GetMeasurements{Version: V10}).Marshal(),
	} {
		resp := c.r.Respond(context.Background(), req)
		rtWantError(t, resp, ErrCodeVersionMismatch, 0)
		if Version(resp[0]) != V12 {
			t.Fatalf("ERROR version %v, want the connection's 1.2", Version(resp[0]))
		}
	}
	// GET_VERSION must be 1.0; the ERROR about it is 1.0 too, and the
	// connection survives.
	resp := c.r.Respond(context.Background(), []byte{0x12, CodeGetVersion, 0, 0})
	rtWantError(t, resp, ErrCodeVersionMismatch, 0)
	if Version(resp[0]) != V10 || c.r.State() != ResponderNegotiated {
		t.Fatalf("ERROR version %v, state %v", Version(resp[0]), c.r.State())
	}
	// GET_CAPABILITIES in a version VERSION did not offer.
	r, _ := newRTResponder(t, ResponderConfig{Versions: []Version{V11, V12}})
	r.Respond(context.Background(), (&GetVersion{}).Marshal())
	rtWantError(t, r.Respond(context.Background(), (&GetCapabilities{Version: V13, Flags: CapCert | CapChal, DataTransferSize: 4096, MaxSPDMmsgSize: 4096}).Marshal()), ErrCodeVersionMismatch, 0)
	rtWantError(t, r.Respond(context.Background(), []byte{0x14, CodeGetCapabilities, 0, 0}), ErrCodeVersionMismatch, 0)
}

func TestResponderUnsupported(t *testing.T) {
	c := rtNegotiated(t)
	for _, code := range []uint8{CodeKeyExchange, CodeFinish, CodePSKExchange, CodeHeartbeat, CodeEndSession, CodeVendorDefinedReq, 0x85 /* CHUNK_SEND */, 0xAA, CodeDigests} {
		rtWantError(t, c.r.Respond(context.Background(), []byte{0x12, code, 0, 0}), ErrCodeUnsupportedRequest, code)
	}
	// Without MEAS caps, GET_MEASUREMENTS is unsupported, in any state.
	r, _ := newRTResponder(t, ResponderConfig{Caps: CapCert | CapChal})
	rtWantError(t, r.Respond(context.Background(), (&GetMeasurements{Version: V12}).Marshal()), ErrCodeUnsupportedRequest, CodeGetMeasurements)
	c = rtNewConn(t, r, V12, AsymECDSAP384, HashSHA384)
	c.r.Respond(context.Background(), (&GetVersion{}).Marshal())
	c.r.Respond(context.Background(), (&GetCapabilities{Version: V12, Flags: CapCert | CapChal, DataTransferSize: 4096, MaxSPDMmsgSize: 4096}).Marshal())
	resp := c.r.Respond(context.Background(), (&NegotiateAlgorithms{Version: V12, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: AsymECDSAP384, BaseHashAlgo: HashSHA384}).Marshal())
	var alg Algorithms
	if _, err := alg.Decode(resp); err != nil || alg.MeasurementSpecSel != 0 || alg.MeasurementHashAlgo != 0 {
		t.Fatalf("ALGORITHMS without MEAS caps: %+v %v", alg, err)
	}
	rtWantError(t, c.r.Respond(context.Background(), (&GetMeasurements{Version: V12}).Marshal()), ErrCodeUnsupportedRequest, CodeGetMeasurements)
	// A summary hash needs measurements.
	rtWantError(t, c.r.Respond(context.Background(), (&Challenge{Version: V12, SummaryType: SummaryAll}).Marshal()), ErrCodeInvalidRequest, 0)
}

func TestResponderCertificatePortions(t *testing.T) {
	// 1.2: a portion never exceeds what fits in the requester's
	// DataTransferSize, whatever Length asks.
	r, _ := newRTResponder(t, ResponderConfig{})
	c := rtNewConn(t, r, V12, AsymECDSAP256, HashSHA256)
	c.dts, c.max = 200, 200
	c.caps &^= CapChunk
	c.connect()
	c.certificate(0xFFFF)
	resp := c.send((&GetCertificate{Version: V12, Offset: 0, Length: 0xFFFF}).Marshal())
	var m Certificate
	if _, err := m.Decode(resp); err != nil || len(resp) > 200 || len(m.Portion) != 200-8 {
		t.Fatalf("CERTIFICATE of %d bytes, portion %d: %v", len(resp), len(m.Portion), err)
	}
	// The last byte of the chain is the last valid offset.
	total := len(m.Portion) + int(m.Remainder)
	resp = c.send((&GetCertificate{Version: V12, Offset: uint16(total - 1), Length: 10}).Marshal())
	if _, err := m.Decode(resp); err != nil || len(m.Portion) != 1 || m.Remainder != 0 {
		t.Fatalf("last byte: %+v %v", m, err)
	}
	rtWantError(t, c.send((&GetCertificate{Version: V12, Offset: uint16(total), Length: 10}).Marshal()), ErrCodeInvalidRequest, 0)
}

func TestResponderChunking(t *testing.T) {
	for _, v := range []Version{V12, V13} {
		t.Run(v.String(), func(t *testing.T) {
			r, meas := newRTResponder(t, ResponderConfig{})
			c := rtNewConn(t, r, v, AsymECDSAP384, HashSHA384)
			c.dts, c.max = MinDataTransferSize, 1<<16
			c.connect() // ALGORITHMS (52 bytes) already comes in chunks
			if c.chunks == 0 {
				t.Fatal("ALGORITHMS did not come in chunks")
			}
			leaf := c.certificate(0xFFFF).Leaf().PublicKey
			all := rtBlocks(meas.Measurements(), c.measHash, false)
			c.challenge(leaf, SummaryAll, rtDigest(c.hash, MarshalRecord(all)))
			c.measure(leaf, 0, MeasOpAll)
			c.measure(leaf, MeasAttrSignature|MeasAttrRawBitStream, MeasOpAll)
		})
	}
}

func TestResponderChunkErrors(t *testing.T) {
	r, _ := newRTResponder(t, ResponderConfig{})
	c := rtNewConn(t, r, V12, AsymECDSAP384, HashSHA384)
	c.dts, c.max = MinDataTransferSize, 1<<16
	c.connect()
	req := (&GetMeasurements{Version: V12, Operation: MeasOpAll}).Marshal()
	e, ok := rtErr(c.r.Respond(context.Background(), req))
	if !ok || e.Code != ErrCodeLargeResponse || len(e.Ext) != 1 {
		t.Fatalf("want ERROR(LargeResponse) with a handle, got %+v", e)
	}
	handle := e.Ext[0]
	ctx := context.Background()
	// Other requests do not interrupt the transfer.
	rtWantError(t, r.Respond(ctx, (&GetDigests{Version: V12}).Marshal()), ErrCodeUnexpectedRequest, 0)
	rtWantError(t, r.Respond(ctx, (&ChunkGet{Version: V12, Handle: handle + 1}).Marshal()), ErrCodeInvalidRequest, 0)
	rtWantError(t, r.Respond(ctx, (&ChunkGet{Version: V12, Handle: handle, Seq: 1}).Marshal()), ErrCodeInvalidRequest, 0)
	rtWantError(t, r.Respond(ctx, (&ChunkGet{Version: V11, Handle: handle}).Marshal()), ErrCodeVersionMismatch, 0)
	full := c.chunkGet(handle)
	var m Measurements
	if _, err := m.Decode(full, 0); err != nil || m.NumBlocks != 5 {
		t.Fatalf("reassembled MEASUREMENTS: %+v %v", m, err)
	}
	rtWantError(t, r.Respond(ctx, (&ChunkGet{Version: V12, Handle: handle}).Marshal()), ErrCodeUnexpectedRequest, 0)
	// GET_VERSION abandons a transfer.
	if e, ok := rtErr(r.Respond(ctx, req)); !ok || e.Code != ErrCodeLargeResponse || e.Ext[0] == handle {
		t.Fatalf("second large response: %+v", e)
	}
	if resp := r.Respond(ctx, (&GetVersion{}).Marshal()); resp[1] != CodeVersion {
		t.Fatalf("GET_VERSION during a transfer: % x", resp)
	}
	rtWantError(t, r.Respond(ctx, (&ChunkGet{Version: V12, Handle: handle + 1}).Marshal()), ErrCodeUnexpectedRequest, 0)

	// A requester without CHUNK_CAP gets ResponseTooLarge, with the size,
	// and nothing is committed.
	r2, _ := newRTResponder(t, ResponderConfig{})
	r2.Respond(ctx, (&GetVersion{}).Marshal())
	r2.Respond(ctx, (&GetCapabilities{Version: V12, Flags: CapCert | CapChal, DataTransferSize: 42, MaxSPDMmsgSize: 42}).Marshal())
	na := NegotiateAlgorithms{Version: V12, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: AsymECDSAP384, BaseHashAlgo: HashSHA384,
		Structs: []AlgStruct{{Type: AlgTypeDHE, Bits: DHESECP384R1}, {Type: AlgTypeAEAD, Bits: AEADAES256GCM}, {Type: AlgTypeReqBaseAsym, Bits: uint16(AsymECDSAP384)}, {Type: AlgTypeKeySchedule, Bits: KeyScheduleSPDM}}}
	e, ok = rtErr(r2.Respond(ctx, na.Marshal()))
	if !ok || e.Code != ErrCodeResponseTooLarge || len(e.Ext) != 4 || binary.LittleEndian.Uint32(e.Ext) != 52 {
		t.Fatalf("want ERROR(ResponseTooLarge, 52), got %+v", e)
	}
	if r2.State() != ResponderAfterCapabilities {
		t.Fatalf("state %v after ResponseTooLarge", r2.State())
	}
	na.Structs = nil
	if resp := r2.Respond(ctx, na.Marshal()); resp[1] != CodeAlgorithms {
		t.Fatalf("small ALGORITHMS: % x", resp)
	}
}

func TestResponderHandleDOE(t *testing.T) {
	r, _ := newRTResponder(t, ResponderConfig{})
	resp, err := r.HandleDOE(context.Background(), doe.NewObject(doe.ProtocolCMA, (&GetVersion{}).Marshal()))
	if err != nil || resp.Protocol() != doe.ProtocolCMA || len(resp.Payload)%4 != 0 || resp.Payload[1] != CodeVersion {
		t.Fatalf("HandleDOE: %+v %v", resp, err)
	}
	if _, err := r.HandleDOE(context.Background(), doe.NewObject(doe.ProtocolSecuredCMA, []byte{1, 2, 3, 4})); err == nil {
		t.Fatal("HandleDOE took a secured message")
	}
}

func TestResponderIdentitySlots(t *testing.T) {
	_, ids := rtIdentities()
	// Two identities with the same algorithm fill slots 0 and 1.
	r, _ := newRTResponder(t, ResponderConfig{Identities: []Identity{ids[AsymECDSAP256], ids[AsymECDSAP384], ids[AsymECDSAP256]}})
	c := rtNewConn(t, r, V11, AsymECDSAP256, HashSHA256)
	c.connect()
	resp := c.must((&GetDigests{Version: V11}).Marshal(), CodeDigests)
	var d Digests
	if _, err := d.Decode(resp, 32, false); err != nil || d.SlotMask != 3 {
		t.Fatalf("DIGESTS slot mask 0x%x: %v", d.SlotMask, err)
	}
	// The requester's choice is honoured: P-256 although P-384 is stronger.
	if c.asym != AsymECDSAP256 {
		t.Fatal("test bug")
	}
}

func TestNewResponderRejects(t *testing.T) {
	_, ids := rtIdentities()
	mismatched := Identity{Chain: ids[AsymECDSAP256].Chain, Key: ids[AsymECDSAP384].Key}
	for name, cfg := range map[string]ResponderConfig{
		"no identity":          {Measurements: newRTMeas()},
		"key not the leaf's":   {Identities: []Identity{mismatched}},
		"MEAS without store":   {Identities: []Identity{ids[AsymECDSAP256]}, Caps: CapCert | CapMeasSig, Measurements: nil},
		"unknown version":      {Identities: []Identity{ids[AsymECDSAP256]}, Versions: []Version{0x14}},
		"small transfer size":  {Identities: []Identity{ids[AsymECDSAP256]}, DataTransferSize: 41},
		"unimplemented hash":   {Identities: []Identity{ids[AsymECDSAP256]}, BaseHash: HashSHA3_256},
		"empty chain":          {Identities: []Identity{{Key: ids[AsymECDSAP256].Key}}},
		"garbage certificate":  {Identities: []Identity{{Chain: [][]byte{{1, 2, 3}}, Key: ids[AsymECDSAP256].Key}}},
		"both MEAS caps":       {Identities: []Identity{ids[AsymECDSAP256]}, Caps: CapCert | CapMeasSig | CapMeasNoSig, Measurements: newRTMeas()},
		"CHAL without CERT":    {Identities: []Identity{ids[AsymECDSAP256]}, Caps: CapChal},
		"max below transfer":   {Identities: []Identity{ids[AsymECDSAP256]}, DataTransferSize: 4096, MaxSPDMmsgSize: 1024},
		"repeated version":     {Identities: []Identity{ids[AsymECDSAP256]}, Versions: []Version{V12, V12}},
		"MEAS_FRESH alone":     {Identities: []Identity{ids[AsymECDSAP256]}, Caps: CapCert | CapMeasFresh},
		"no chunk, max != dts": {Identities: []Identity{ids[AsymECDSAP256]}, Caps: CapCert, DataTransferSize: 1024, MaxSPDMmsgSize: 4096},
		"sessions not yet":     {Identities: []Identity{ids[AsymECDSAP256]}, Caps: CapCert | CapChal | CapKeyEx | CapMAC},
	} {
		if _, err := NewResponder(cfg); err == nil {
			t.Errorf("%s: NewResponder accepted it", name)
		}
	}
}

// Respond never panics and always answers, whatever the bytes.
func TestResponderNeverPanics(t *testing.T) {
	c := rtNegotiated(t)
	seeds := [][]byte{nil, {0}, {0x12}, {0x12, 0xE0}, {0x12, 0x86, 0, 0, 0xFF}, {0x12, 0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}}
	buf := make([]byte, 64)
	for i := range 2000 {
		var req []byte
		if i < len(seeds) {
			req = seeds[i]
		} else {
			rand.Read(buf)
			buf[0] = []byte{0x10, 0x11, 0x12, 0x13}[buf[0]%4]
			req = buf[:int(buf[1])%len(buf)]
		}
		resp := c.r.Respond(context.Background(), req)
		if len(resp) < 4 {
			t.Fatalf("request % x: response % x", req, resp)
		}
	}
}

// TestResponderCertificateWholeWhenChunking is issue 16's finding 1: with
// CHUNK on both sides, GET_CERTIFICATE Offset 0 Length 0xFFFF gets the
// whole chain in one CERTIFICATE (sent with CHUNK_GET), not a portion cut
// to the requester's DataTransferSize, as libspdm's requester demands and
// libspdm's responder does. The requester's MaxSPDMmsgSize still bounds it.
func TestResponderCertificateWholeWhenChunking(t *testing.T) {
	for _, v := range []Version{V12, V13} {
		t.Run(v.String(), func(t *testing.T) {
			r, _ := newRTResponder(t, ResponderConfig{})
			c := rtNewConn(t, r, v, AsymECDSAP384, HashSHA384)
			c.dts, c.max = 256, 1<<16
			c.connect()
			c.must((&GetDigests{Version: v}).Marshal(), CodeDigests)
			before := c.chunks
			resp := c.must((&GetCertificate{Version: v, Offset: 0, Length: 0xFFFF}).Marshal(), CodeCertificate)
			var m Certificate
			if _, err := m.Decode(resp); err != nil {
				t.Fatal(err)
			}
			if m.Remainder != 0 || len(m.Portion) <= 256 {
				t.Fatalf("PortionLength 0x%x RemainderLength 0x%x: want the whole chain in one response", len(m.Portion), m.Remainder)
			}
			if c.chunks == before {
				t.Fatal("a CERTIFICATE larger than DataTransferSize came without CHUNK_GET")
			}

			// A requester whose MaxSPDMmsgSize is smaller gets the most
			// that reaches it, and the rest at the next offset.
			r2, _ := newRTResponder(t, ResponderConfig{})
			c2 := rtNewConn(t, r2, v, AsymECDSAP384, HashSHA384)
			c2.dts, c2.max = 256, 400
			c2.connect()
			c2.must((&GetDigests{Version: v}).Marshal(), CodeDigests)
			resp = c2.must((&GetCertificate{Version: v, Offset: 0, Length: 0xFFFF}).Marshal(), CodeCertificate)
			if _, err := m.Decode(resp); err != nil || len(resp) != 400 || m.Remainder == 0 {
				t.Fatalf("CERTIFICATE of %d bytes (remainder %d) for MaxSPDMmsgSize 400: %v", len(resp), m.Remainder, err)
			}
			c2.certificate(0xFFFF)
		})
	}
}
