package secchan_test

// The test requester of the responder's session tests
// (responder_session_test.go): hand-built requests, its own transcripts
// from the exact bytes, and Session with RoleRequester as its record
// layer.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"

	. "github.com/devattest/devattest/secchan"
)

// stCaps are the session tests' responder capabilities.
const stCaps = CapCert | CapChal | CapMeasSig | CapChunk | CapKeyEx | CapPSKWithContext |
	CapEncrypt | CapMAC | CapHbeat | CapKeyUpd

// stReqCaps are the test requester's capabilities (CHUNK added from 1.2).
const stReqCaps = CapCert | CapChal | CapEncrypt | CapMAC | CapKeyEx | CapPSK | CapHbeat | CapKeyUpd

var (
	stPSKHint = []byte("TestPskHint\x00")
	stPSK     = []byte("TestPskData\x00")
)

func newSTResponder(t *testing.T, mod func(*ResponderConfig)) (*Responder, *rtMeas) {
	t.Helper()
	cfg := ResponderConfig{Caps: stCaps, PSKs: map[string][]byte{string(stPSKHint): stPSK}}
	if mod != nil {
		mod(&cfg)
	}
	return newRTResponder(t, cfg)
}

// stConn is the test requester of the session tests.
type stConn struct {
	*rtConn
	dhe         uint16
	aead        uint16
	otherParams uint8
	rspCaps     uint32
	chain       *CertChain
	// reqAsym, if set, is offered as ReqBaseAsymAlg and mutual is the
	// identity the test requester signs FINISH with when asked.
	reqAsym uint16
	mutual  *Identity
}

func stNewConn(t *testing.T, r *Responder, v Version, asym, hashAlg uint32, dhe, aead uint16) *stConn {
	c := &stConn{rtConn: rtNewConn(t, r, v, asym, hashAlg), dhe: dhe, aead: aead}
	c.caps |= stReqCaps
	return c
}

// vca negotiates the version, capabilities and algorithms.
func (c *stConn) vca() {
	t := c.t
	t.Helper()
	req := (&GetVersion{}).Marshal()
	resp := c.must(req, CodeVersion)
	c.rtConn.vca = append(req, resp...)

	req = (&GetCapabilities{Version: c.v, CTExponent: 10, Flags: c.caps, DataTransferSize: c.dts, MaxSPDMmsgSize: c.max}).Marshal()
	resp = c.must(req, CodeCapabilities)
	var caps Capabilities
	if _, err := caps.Decode(resp); err != nil {
		t.Fatal(err)
	}
	c.rspCaps = caps.Flags
	c.rtConn.vca = append(append(c.rtConn.vca, req...), resp...)

	na := NegotiateAlgorithms{Version: c.v, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: c.asym, BaseHashAlgo: c.hashAlg,
		Structs: []AlgStruct{
			{Type: AlgTypeDHE, Bits: c.dhe},
			{Type: AlgTypeAEAD, Bits: c.aead},
			{Type: AlgTypeKeySchedule, Bits: KeyScheduleSPDM},
		}}
	want := []AlgStruct{{Type: AlgTypeDHE, Bits: c.dhe}, {Type: AlgTypeAEAD, Bits: c.aead}, {Type: AlgTypeKeySchedule, Bits: KeyScheduleSPDM}}
	if c.reqAsym != 0 {
		na.Structs = slices.Insert(na.Structs, 2, AlgStruct{Type: AlgTypeReqBaseAsym, Bits: c.reqAsym})
		var sel uint16
		if c.mutual != nil && c.v >= V12 {
			sel = uint16(AsymFor(c.mutual.Key.Public()))
		}
		want = slices.Insert(want, 2, AlgStruct{Type: AlgTypeReqBaseAsym, Bits: sel})
	}
	if c.v >= V12 {
		na.OtherParamsSupport = OpaqueFmt1
	}
	req = na.Marshal()
	resp = c.must(req, CodeAlgorithms)
	var alg Algorithms
	if _, err := alg.Decode(resp); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(alg.Structs) != fmt.Sprint(want) || alg.BaseAsymSel != c.asym || alg.BaseHashSel != c.hashAlg {
		t.Fatalf("ALGORITHMS %+v, want structs %+v", alg, want)
	}
	c.otherParams = alg.OtherParamsSelection
	c.rtConn.vca = append(append(c.rtConn.vca, req...), resp...)
	c.measHash = crypto.SHA384
}

func (c *stConn) ks() KeySchedule { return KeySchedule{Version: c.v, Hash: c.hash, AEAD: c.aead} }

func (c *stConn) th(parts ...[]byte) []byte { return rtDigest(c.hash, parts...) }

// pad appends DOE padding.
func pad(b []byte) []byte { return append(slices.Clone(b), make([]byte, (4-len(b)%4)%4)...) }

// secTry seals req in s, sends it and opens the answer.
func (c *stConn) secTry(s *Session, req []byte) ([]byte, error) {
	rec, err := s.Seal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	out, err := c.r.RespondSecured(context.Background(), pad(rec))
	if err != nil {
		return nil, err
	}
	if len(out) < 4 || [4]byte(out[:4]) != [4]byte(rec[:4]) {
		c.t.Fatalf("secured response for session % x, want % x", out[:min(4, len(out))], rec[:4])
	}
	msg, err := s.Open(out)
	if err != nil {
		c.t.Fatalf("opening the responder's record: %v", err)
	}
	return msg, nil
}

func (c *stConn) sec(s *Session, req []byte) []byte {
	c.t.Helper()
	msg, err := c.secTry(s, req)
	if err != nil {
		c.t.Fatalf("%s in session 0x%08x: %v", CodeName(req[1]), s.ID, err)
	}
	return msg
}

func (c *stConn) secMust(s *Session, req []byte, code uint8) []byte {
	c.t.Helper()
	resp := c.sec(s, req)
	if e, ok := rtErr(resp); ok {
		c.t.Fatalf("%s in session: ERROR(%v, 0x%02x)", CodeName(req[1]), e.Code, e.Data)
	}
	if len(resp) < 4 || resp[1] != code || Version(resp[0]) != c.v {
		c.t.Fatalf("%s in session answered % x, want %s", CodeName(req[1]), resp, CodeName(code))
	}
	return resp
}

// stSession is an open session on the test side.
type stSession struct {
	s       *Session
	mutual  bool   // the responder asked for mutual authentication
	th      []byte // handshake transcript until established
	period  uint8
	opaque  []byte
	summary []byte
}

// keyExchangeRsp sends KEY_EXCHANGE and checks KEY_EXCHANGE_RSP: the
// signature over VCA, H(chain), KEY_EXCHANGE and the response to its opaque
// data, and ResponderVerifyData over TH1.
func (c *stConn) keyExchangeRsp(reqID uint16, summary uint8, versions []uint16, inClear bool) *stSession {
	t := c.t
	t.Helper()
	curve := map[uint16]ecdh.Curve{DHESECP256R1: ecdh.P256(), DHESECP384R1: ecdh.P384(), DHESECP521R1: ecdh.P521()}[c.dhe]
	priv, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ke := KeyExchange{Version: c.v, SummaryType: summary, ReqSessionID: reqID, ExchangeData: priv.PublicKey().Bytes()[1:],
		Opaque: EncodeSupportedVersions(c.v, c.otherParams, versions)}
	rand.Read(ke.RandomData[:])
	req := ke.Marshal()
	resp := c.must(req, CodeKeyExchangeRsp)
	d, _ := DHEExchangeSize(c.dhe)
	sumSize, verifySize := 0, c.hash.Size()
	if summary != SummaryNone {
		sumSize = c.hash.Size()
	}
	if inClear {
		verifySize = 0
	}
	var m KeyExchangeRsp
	if n, err := m.Decode(resp, d, sumSize, c.sigSize(), verifySize); err != nil || n != len(resp) {
		t.Fatalf("KEY_EXCHANGE_RSP: %v (%d of %d bytes)", err, n, len(resp))
	}
	wantMutual := uint8(0)
	if c.mutual != nil && c.v >= V12 {
		wantMutual = MutAuthRequested
	}
	if m.MutAuthRequested != wantMutual || m.ReqSlotID != 0 {
		t.Fatalf("KEY_EXCHANGE_RSP MutAuth 0x%x slot %d, want MutAuth 0x%x", m.MutAuthRequested, m.ReqSlotID, wantMutual)
	}
	th := slices.Concat(c.rtConn.vca, rtDigest(c.hash, c.chain.Raw), req, resp[:m.SignedLen()])
	if err := VerifySignature(c.v, c.asym, c.hash, c.chain.Leaf().PublicKey, ContextKeyExchangeRsp, c.th(th), m.Signature); err != nil {
		t.Fatalf("KEY_EXCHANGE_RSP signature: %v", err)
	}
	th = append(th, m.Signature...)
	peer, err := curve.NewPublicKey(append([]byte{4}, m.ExchangeData...))
	if err != nil {
		t.Fatal(err)
	}
	shared, err := priv.ECDH(peer)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := c.ks().NewHandshakeSecret(shared, false)
	if err != nil {
		t.Fatal(err)
	}
	th1 := c.th(th)
	s, err := NewSession(SessionID(reqID, m.RspSessionID), RoleRequester, c.ks(), hs, th1)
	if err != nil {
		t.Fatal(err)
	}
	if !inClear {
		want, _ := s.VerifyData(false, th1)
		if !bytes.Equal(want, m.VerifyData) {
			t.Fatal("ResponderVerifyData does not match TH1")
		}
		th = append(th, m.VerifyData...)
	}
	ss := &stSession{s: s, th: th, period: m.HeartbeatPeriod, opaque: m.Opaque, summary: m.SummaryHash}
	if m.MutAuthRequested != 0 {
		// The requester's chain hash joins the transcript before FINISH.
		root := c.mutual.Root
		chain, err := BuildCertChain(c.hash, root, c.mutual.Chain...)
		if err != nil {
			t.Fatal(err)
		}
		ss.th = append(ss.th, rtDigest(c.hash, chain)...)
		ss.mutual = true
	}
	return ss
}

// finishMsg is FINISH with RequesterVerifyData over the transcript (and
// the requester's signature first, with mutual authentication).
func (c *stConn) finishMsg(ss *stSession) []byte {
	f := (&Finish{Version: c.v, SignatureIncluded: ss.mutual}).Marshal()
	if ss.mutual {
		sig, err := Sign(c.v, AsymFor(c.mutual.Key.Public()), c.hash, c.mutual.Key, ContextFinish, c.th(ss.th, f))
		if err != nil {
			c.t.Fatal(err)
		}
		f = append(f, sig...)
	}
	mac, err := ss.s.VerifyData(true, c.th(ss.th, f))
	if err != nil {
		c.t.Fatal(err)
	}
	return append(f, mac...)
}

// finish sends FINISH under the handshake keys and moves to the data keys.
func (c *stConn) finish(ss *stSession) {
	t := c.t
	t.Helper()
	req := c.finishMsg(ss)
	resp := c.secMust(ss.s, req, CodeFinishRsp)
	var m FinishRsp
	if n, err := m.Decode(resp, 0); err != nil || n != len(resp) {
		t.Fatalf("FINISH_RSP: %v", err)
	}
	if err := ss.s.Establish(c.th(ss.th, req, resp)); err != nil {
		t.Fatal(err)
	}
	ss.th = nil
}

// open runs KEY_EXCHANGE and FINISH on slot 0.
func (c *stConn) open(reqID uint16) *stSession {
	c.t.Helper()
	ss := c.keyExchangeRsp(reqID, SummaryNone, []uint16{SecuredVersion10, SecuredVersion11, SecuredVersion12}, false)
	c.finish(ss)
	return ss
}

// pskOpen runs PSK_EXCHANGE and, if the responder has a context, PSK_FINISH.
func (c *stConn) pskOpen(reqID uint16, withContext bool) *stSession {
	t := c.t
	t.Helper()
	ctx := make([]byte, c.hash.Size())
	rand.Read(ctx)
	pe := PSKExchange{Version: c.v, ReqSessionID: reqID, PSKHint: stPSKHint, Context: ctx,
		Opaque: EncodeSupportedVersions(c.v, c.otherParams, []uint16{SecuredVersion11, SecuredVersion12})}
	req := pe.Marshal()
	resp := c.must(req, CodePSKExchangeRsp)
	var m PSKExchangeRsp
	if n, err := m.Decode(resp, 0, c.hash.Size()); err != nil || n != len(resp) {
		t.Fatalf("PSK_EXCHANGE_RSP: %v", err)
	}
	if withContext != (len(m.Context) == c.hash.Size()) || !withContext && len(m.Context) != 0 {
		t.Fatalf("ResponderContext of %d bytes, with context %v", len(m.Context), withContext)
	}
	if v, err := DecodeVersionSelection(c.v, c.otherParams, m.Opaque); err != nil || v != SecuredVersion12 {
		t.Fatalf("secured version 0x%04x, %v", v, err)
	}
	th := slices.Concat(c.rtConn.vca, req, resp[:m.TH1Len()])
	hs, err := c.ks().NewHandshakeSecret(stPSK, true)
	if err != nil {
		t.Fatal(err)
	}
	th1 := c.th(th)
	s, err := NewSession(SessionID(reqID, m.RspSessionID), RoleRequester, c.ks(), hs, th1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := s.VerifyData(false, th1)
	if !bytes.Equal(want, m.VerifyData) {
		t.Fatal("PSK_EXCHANGE_RSP ResponderVerifyData does not match TH1")
	}
	th = append(th, m.VerifyData...)
	ss := &stSession{s: s, th: th, period: m.HeartbeatPeriod}
	if !withContext {
		if err := s.Establish(c.th(th)); err != nil {
			t.Fatal(err)
		}
		return ss
	}
	header := (&PSKFinish{Version: c.v}).Marshal()
	mac, _ := s.VerifyData(true, c.th(th, header))
	req = append(header, mac...)
	resp = c.secMust(s, req, CodePSKFinishRsp)
	if err := s.Establish(c.th(th, req, resp)); err != nil {
		t.Fatal(err)
	}
	return ss
}

func (c *stConn) heartbeat(ss *stSession) {
	c.t.Helper()
	c.secMust(ss.s, (&Heartbeat{Version: c.v}).Marshal(), CodeHeartbeatAck)
}

// measure runs a signed GET_MEASUREMENTS (all blocks) in the session and
// checks the signature over the session's L1L2.
func (c *stConn) measureIn(ss *stSession, l *[]byte, signed bool) {
	t := c.t
	t.Helper()
	g := GetMeasurements{Version: c.v, Operation: MeasOpAll}
	if signed {
		g.Attributes = MeasAttrSignature
	}
	rand.Read(g.Nonce[:])
	req := g.Marshal()
	resp := c.secMust(ss.s, req, CodeMeasurements)
	sig := 0
	if signed {
		sig = c.sigSize()
	}
	var m Measurements
	if n, err := m.Decode(resp, sig); err != nil || n != len(resp) || m.NumBlocks != 5 {
		t.Fatalf("MEASUREMENTS: %v, %d blocks", err, m.NumBlocks)
	}
	if !signed {
		*l = append(append(*l, req...), resp...)
		return
	}
	var vca []byte
	if c.v >= V12 {
		vca = c.rtConn.vca
	}
	th := c.th(vca, *l, req, resp[:len(resp)-sig])
	if err := VerifySignature(c.v, c.asym, c.hash, c.chain.Leaf().PublicKey, ContextMeasurements, th, m.Signature); err != nil {
		t.Fatalf("MEASUREMENTS in session: signature over the session's L1L2: %v", err)
	}
	*l = nil
}

func (c *stConn) endSession(ss *stSession) {
	c.t.Helper()
	c.secMust(ss.s, (&EndSession{Version: c.v}).Marshal(), CodeEndSessionAck)
	ss.s.End()
}

// stSetup is a negotiated connection with slot 0's chain read.
func stSetup(t *testing.T, r *Responder, v Version, asym, hashAlg uint32, dhe, aead uint16) *stConn {
	t.Helper()
	c := stNewConn(t, r, v, asym, hashAlg, dhe, aead)
	c.vca()
	c.chain = c.certificate(4096)
	return c
}

// keyUpdate runs one KEY_UPDATE operation and VerifyNewKey, switching the
// test side's keys as the responder does.
func (c *stConn) keyUpdate(ss *stSession, op uint8) {
	t := c.t
	t.Helper()
	req := (&KeyUpdate{Version: c.v, Operation: op, Tag: 0x5A}).Marshal()
	rec, err := ss.s.Seal(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.r.RespondSecured(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if op == KeyUpdateOpUpdateAllKeys {
		// The ACK already uses the new response key.
		if err := ss.s.UpdateRecvKey(); err != nil {
			t.Fatal(err)
		}
	}
	ack, err := ss.s.Open(out)
	if err != nil {
		t.Fatalf("KEY_UPDATE_ACK op %d: %v", op, err)
	}
	var m KeyUpdateAck
	if _, err := m.Decode(ack); err != nil || m.Operation != op || m.Tag != 0x5A {
		t.Fatalf("KEY_UPDATE_ACK % x: %v", ack, err)
	}
	if err := ss.s.UpdateSendKey(); err != nil {
		t.Fatal(err)
	}
	req = (&KeyUpdate{Version: c.v, Operation: KeyUpdateOpVerifyNewKey, Tag: 0x5B}).Marshal()
	ack = c.secMust(ss.s, req, CodeKeyUpdateAck)
	if ack[2] != KeyUpdateOpVerifyNewKey || ack[3] != 0x5B {
		t.Fatalf("VerifyNewKey ACK % x", ack)
	}
}
