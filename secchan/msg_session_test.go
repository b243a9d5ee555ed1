package secchan

// Tests of the session message codec (msg_session.go, msg_opaque.go,
// msg_vendor.go): the golden corpus's plain KEY_EXCHANGE/PSK_EXCHANGE
// records and their opaque data, the messages inside its secured records
// (decrypted here with the keys libspdm printed), hand-built round trips,
// reserved fields, invalid values, prefixes and wrong codes.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// smsgCtx is what the session decoders need from the negotiation.
type smsgCtx struct {
	exchange int  // D: DHE exchange data
	summary  int  // measurement summary hash: 0 or H
	sig      int  // S: responder's (KEY_EXCHANGE_RSP) or requester's (FINISH) signature
	hash     int  // H
	inClear  bool // HANDSHAKE_IN_THE_CLEAR: no ResponderVerifyData in KEY_EXCHANGE_RSP, one in FINISH_RSP
}

// smsgDecodeAs runs the session decoder of code on b; ok is false when code
// is not a session message.
func smsgDecodeAs(code uint8, b []byte, ctx smsgCtx) (m codecMessage, n int, ok bool, err error) {
	switch code {
	case CodeKeyExchange:
		x := &KeyExchange{}
		n, err = x.Decode(b, ctx.exchange)
		m = x
	case CodeKeyExchangeRsp:
		x := &KeyExchangeRsp{}
		verify := ctx.hash
		if ctx.inClear {
			verify = 0
		}
		n, err = x.Decode(b, ctx.exchange, ctx.summary, ctx.sig, verify)
		m = x
	case CodeFinish:
		x := &Finish{}
		n, err = x.Decode(b, ctx.sig, ctx.hash)
		m = x
	case CodeFinishRsp:
		x := &FinishRsp{}
		verify := 0
		if ctx.inClear {
			verify = ctx.hash
		}
		n, err = x.Decode(b, verify)
		m = x
	case CodePSKExchange:
		x := &PSKExchange{}
		n, err = x.Decode(b)
		m = x
	case CodePSKExchangeRsp:
		x := &PSKExchangeRsp{}
		n, err = x.Decode(b, ctx.summary, ctx.hash)
		m = x
	case CodePSKFinish:
		x := &PSKFinish{}
		n, err = x.Decode(b, ctx.hash)
		m = x
	case CodePSKFinishRsp:
		x := &PSKFinishRsp{}
		n, err = x.Decode(b)
		m = x
	case CodeHeartbeat:
		x := &Heartbeat{}
		n, err = x.Decode(b)
		m = x
	case CodeHeartbeatAck:
		x := &HeartbeatAck{}
		n, err = x.Decode(b)
		m = x
	case CodeKeyUpdate:
		x := &KeyUpdate{}
		n, err = x.Decode(b)
		m = x
	case CodeKeyUpdateAck:
		x := &KeyUpdateAck{}
		n, err = x.Decode(b)
		m = x
	case CodeEndSession:
		x := &EndSession{}
		n, err = x.Decode(b)
		m = x
	case CodeEndSessionAck:
		x := &EndSessionAck{}
		n, err = x.Decode(b)
		m = x
	case CodeVendorDefinedReq:
		x := &VendorDefinedRequest{}
		n, err = x.Decode(b)
		m = x
	case CodeVendorDefinedRsp:
		x := &VendorDefinedResponse{}
		n, err = x.Decode(b)
		m = x
	default:
		return nil, 0, false, nil
	}
	return m, n, true, err
}

// smsgCodes are the codes smsgDecodeAs knows.
var smsgCodes = []uint8{CodeKeyExchange, CodeKeyExchangeRsp, CodeFinish, CodeFinishRsp, CodePSKExchange, CodePSKExchangeRsp,
	CodePSKFinish, CodePSKFinishRsp, CodeHeartbeat, CodeHeartbeatAck, CodeKeyUpdate, CodeKeyUpdateAck,
	CodeEndSession, CodeEndSessionAck, CodeVendorDefinedReq, CodeVendorDefinedRsp}

// smsgGoldenCtx is the decoding context of a corpus case.
func smsgGoldenCtx(t testing.TB, c *goldenCase) smsgCtx {
	t.Helper()
	d, err := DHEExchangeSize(uint16(c.Algorithms.DHENamedGroup))
	if err != nil {
		t.Fatalf("%s: %v", c.Case, err)
	}
	return smsgCtx{exchange: d, sig: c.sigSize, hash: c.hashSize}
}

// smsgExchange is one decoded exchange of the corpus: request and
// response, their bytes without padding.
type smsgExchange struct {
	index    int // of the request
	req, rsp codecMessage
	reqRaw   []byte
	rspRaw   []byte
	rspCtx   smsgCtx
}

// smsgGoldenExchanges decodes every plain KEY_EXCHANGE, KEY_EXCHANGE_RSP,
// PSK_EXCHANGE and PSK_EXCHANGE_RSP of c, checking exact consumption,
// DOE padding and that Marshal gives the wire bytes back.
func smsgGoldenExchanges(t *testing.T, c *goldenCase) []smsgExchange {
	t.Helper()
	base := smsgGoldenCtx(t, c)
	var out []smsgExchange
	var cur *smsgExchange
	for i, m := range c.Messages {
		if m.DOEType != 1 {
			continue
		}
		p := c.doePayload(t, i)
		code := p[1]
		if code != CodeKeyExchange && code != CodeKeyExchangeRsp && code != CodePSKExchange && code != CodePSKExchangeRsp {
			continue
		}
		ctx := base
		req := code == CodeKeyExchange || code == CodePSKExchange
		if !req {
			if cur == nil || cur.index != i-1 {
				t.Fatalf("record %d: %s without its request", i, CodeName(code))
			}
			if cur.reqRaw[2] != SummaryNone {
				ctx.summary = c.hashSize
			}
		}
		msg, n, _, err := smsgDecodeAs(code, p, ctx)
		if err != nil {
			t.Fatalf("record %d (%s): %v\n  bytes % x", i, CodeName(code), err, p)
		}
		if pad := p[n:]; len(pad) != (4-n%4)%4 || !bytes.Equal(pad, make([]byte, len(pad))) {
			t.Errorf("record %d (%s): message %d bytes, then % x", i, CodeName(code), n, pad)
		}
		if enc := msg.Marshal(); !bytes.Equal(enc, p[:n]) {
			t.Errorf("record %d (%s): Marshal differs from the wire\n wire % x\n  got % x", i, CodeName(code), p[:n], enc)
		}
		if Version(p[0]) != c.version {
			t.Errorf("record %d: version %v, negotiated %v", i, Version(p[0]), c.version)
		}
		if req {
			out = append(out, smsgExchange{index: i, req: msg, reqRaw: p[:n]})
			cur = &out[len(out)-1]
		} else {
			cur.rsp, cur.rspRaw, cur.rspCtx = msg, p[:n], ctx
			cur = nil
		}
	}
	return out
}

// TestSessionMsgGoldenExchanges: every plain exchange of the corpus
// decodes exactly, matches the session JSON, and its opaque data carries
// the DSP0277 version negotiation.
func TestSessionMsgGoldenExchanges(t *testing.T) {
	want := map[string][]int{
		"v12-p384-aes256": {28, 42}, "v11-p256-aes128": {28, 42}, "v13-p384-chacha": {28, 42},
		"v12-ide-km": {28, 122, 156}, "v12-psk": {28},
	}
	total := 0
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			exs := smsgGoldenExchanges(t, c)
			var got []int
			for _, ex := range exs {
				got = append(got, ex.index)
				if ex.rsp == nil {
					t.Fatalf("exchange at %d has no response", ex.index)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want[c.Case]) {
				t.Fatalf("exchanges at %v, want %v", got, want[c.Case])
			}
			if len(exs) != len(c.Sessions) {
				t.Fatalf("%d exchanges, %d sessions in the JSON", len(exs), len(c.Sessions))
			}
			format := uint8(c.Algorithms.OtherParamsSelection)
			for k, ex := range exs {
				s := &c.Sessions[k]
				if s.ExchangeMessageIndex != ex.index {
					t.Errorf("session %d: exchange_message_index %d, decoded at %d", k, s.ExchangeMessageIndex, ex.index)
				}
				var reqID, rspID uint16
				var reqOpaque, rspOpaque []byte
				switch req := ex.req.(type) {
				case *KeyExchange:
					rsp := ex.rsp.(*KeyExchangeRsp)
					if s.Type != "key_exchange" || s.SlotID == nil || int(req.Slot) != *s.SlotID {
						t.Errorf("session %d: KEY_EXCHANGE slot %d, JSON %s slot %v", k, req.Slot, s.Type, s.SlotID)
					}
					reqID, rspID, reqOpaque, rspOpaque = req.ReqSessionID, rsp.RspSessionID, req.Opaque, rsp.Opaque
					wantPolicy := uint8(0)
					if c.version >= V12 {
						wantPolicy = SessionPolicyTermination // spdm-emu's m_session_policy
					}
					if req.SessionPolicy != wantPolicy || req.SummaryType != SummaryAll || len(req.ExchangeData) != ex.rspCtx.exchange {
						t.Errorf("session %d: KEY_EXCHANGE %+v", k, req)
					}
					if rsp.MutAuthRequested != 0 || rsp.ReqSlotID != 0 || len(rsp.VerifyData) != c.hashSize ||
						len(rsp.SummaryHash) != c.hashSize || len(rsp.Signature) != c.sigSize {
						t.Errorf("session %d: KEY_EXCHANGE_RSP mut auth %d, req slot %d, verify %d, summary %d, signature %d bytes",
							k, rsp.MutAuthRequested, rsp.ReqSlotID, len(rsp.VerifyData), len(rsp.SummaryHash), len(rsp.Signature))
					}
					if rsp.TH1Len() != len(ex.rspRaw)-c.hashSize || rsp.SignedLen() != rsp.TH1Len()-c.sigSize {
						t.Errorf("session %d: SignedLen %d, TH1Len %d of %d bytes", k, rsp.SignedLen(), rsp.TH1Len(), len(ex.rspRaw))
					}
				case *PSKExchange:
					rsp := ex.rsp.(*PSKExchangeRsp)
					if s.Type != "psk" || !bytes.Equal(req.PSKHint, goldenHex(t, s.PSKHint)) {
						t.Errorf("session %d: PSK hint %q, JSON %s %s", k, req.PSKHint, s.Type, s.PSKHint)
					}
					reqID, rspID, reqOpaque, rspOpaque = req.ReqSessionID, rsp.RspSessionID, req.Opaque, rsp.Opaque
					if req.SessionPolicy != SessionPolicyTermination || req.SummaryType != SummaryAll || len(req.Context) == 0 {
						t.Errorf("session %d: PSK_EXCHANGE policy %d, summary 0x%02x, context %d bytes", k, req.SessionPolicy, req.SummaryType, len(req.Context))
					}
					if len(rsp.VerifyData) != c.hashSize || len(rsp.SummaryHash) != c.hashSize || rsp.TH1Len() != len(ex.rspRaw)-c.hashSize {
						t.Errorf("session %d: PSK_EXCHANGE_RSP verify %d, summary %d, TH1Len %d of %d", k,
							len(rsp.VerifyData), len(rsp.SummaryHash), rsp.TH1Len(), len(ex.rspRaw))
					}
					t.Logf("session %d: PSK contexts %d and %d bytes, hint %q", k, len(req.Context), len(rsp.Context), req.PSKHint)
				default:
					t.Fatalf("exchange %d is %T", ex.index, ex.req)
				}
				if id := fmt.Sprintf("%08x", SessionID(reqID, rspID)); id != s.SessionID {
					t.Errorf("session %d: SessionID(0x%04x, 0x%04x) = %s, JSON %s", k, reqID, rspID, id, s.SessionID)
				}
				// Opaque data: supported versions 1.0-1.2 offered, 1.2 selected.
				vs, err := DecodeSupportedVersions(c.version, format, reqOpaque)
				if err != nil || fmt.Sprint(vs) != fmt.Sprint([]uint16{SecuredVersion10, SecuredVersion11, SecuredVersion12}) {
					t.Errorf("session %d: supported versions %04x, %v", k, vs, err)
				}
				if enc := EncodeSupportedVersions(c.version, format, vs); !bytes.Equal(enc, reqOpaque) {
					t.Errorf("session %d: EncodeSupportedVersions\n wire % x\n  got % x", k, reqOpaque, enc)
				}
				sel, err := DecodeVersionSelection(c.version, format, rspOpaque)
				if err != nil || VersionEntry(sel).Version().String() != s.SecuredMessageVersion {
					t.Errorf("session %d: selected version 0x%04x (%v), JSON %s", k, sel, err, s.SecuredMessageVersion)
				}
				if enc := EncodeVersionSelection(c.version, format, sel); !bytes.Equal(enc, rspOpaque) {
					t.Errorf("session %d: EncodeVersionSelection\n wire % x\n  got % x", k, rspOpaque, enc)
				}
				for _, o := range [][]byte{reqOpaque, rspOpaque} {
					elems, err := ParseOpaqueData(c.version, format, o)
					if err != nil || len(elems) != 1 || !bytes.Equal(MarshalOpaqueData(c.version, format, elems), o) {
						t.Errorf("session %d: ParseOpaqueData = %+v, %v", k, elems, err)
					}
					// The table is the one the version calls for: DSP0277's
					// "DMTF" header in 1.1, the general format from 1.2.
					if dmtf := bytes.HasPrefix(o, []byte("FTMD")); dmtf != (c.version == V11) {
						t.Errorf("session %d: opaque data % x at version %v", k, o, c.version)
					}
				}
				// The other side's decoder refuses the other message.
				if _, err := DecodeVersionSelection(c.version, format, reqOpaque); !errors.Is(err, ErrMalformed) {
					t.Errorf("session %d: version selection found in the request: %v", k, err)
				}
				if _, err := DecodeSupportedVersions(c.version, format, rspOpaque); !errors.Is(err, ErrMalformed) {
					t.Errorf("session %d: supported versions found in the response: %v", k, err)
				}
				total += 2
			}
		})
	}
	t.Logf("%d exchange messages decoded", total)
}

// TestSessionMsgGoldenTranscripts: the offsets the codec reports rebuild
// the transcripts libspdm printed: the KEY_EXCHANGE_RSP signature's
// (SignedLen), TH1 (TH1Len) and ResponderVerifyData = HMAC(response
// finished key, TH1).
func TestSessionMsgGoldenTranscripts(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			prefixes := smsgSessionPrefixes(t, c)
			for k, ex := range smsgGoldenExchanges(t, c) {
				s := &c.Sessions[k]
				prefix := prefixes[k]
				var th1Len int
				var verify []byte
				switch rsp := ex.rsp.(type) {
				case *KeyExchangeRsp:
					sigTH := goldenHash(c.hash, prefix, ex.reqRaw, ex.rspRaw[:rsp.SignedLen()])
					if !bytes.Equal(sigTH, goldenHex(t, s.KeyExchangeRspSignatureTHHash)) {
						t.Errorf("session %d: signature transcript hash %x, libspdm %s", k, sigTH, s.KeyExchangeRspSignatureTHHash)
					}
					th1Len, verify = rsp.TH1Len(), rsp.VerifyData
				case *PSKExchangeRsp:
					th1Len, verify = rsp.TH1Len(), rsp.VerifyData
				}
				th1 := goldenHash(c.hash, prefix, ex.reqRaw, ex.rspRaw[:th1Len])
				if !bytes.Equal(th1, goldenHex(t, s.TH1)) {
					t.Errorf("session %d: TH1 %x, libspdm %s", k, th1, s.TH1)
				}
				mac := hmac.New(c.hash.New, goldenHex(t, s.ResponseFinishedKey))
				mac.Write(th1)
				if !hmac.Equal(mac.Sum(nil), verify) {
					t.Errorf("session %d: ResponderVerifyData is not HMAC(response finished key, TH1)", k)
				}
			}
		})
	}
}

// smsgSessionPrefixes returns, per session, what its transcript starts
// with: VCA, then for KEY_EXCHANGE the first DIGESTS (multi-key only) and
// the hash of the slot's chain (README "Transcripts").
func smsgSessionPrefixes(t *testing.T, c *goldenCase) [][]byte {
	recs := c.plainRecords(t)
	var vca, firstDigests []byte
	for _, r := range recs {
		if r.index >= 6 && r.index <= 11 {
			vca = append(vca, r.raw...)
		}
		if _, ok := r.msg.(*Digests); ok && firstDigests == nil {
			firstDigests = r.raw
		}
	}
	chains := c.goldenChains(t, recs)
	var out [][]byte
	for _, s := range c.Sessions {
		p := bytes.Clone(vca)
		if s.Type == "key_exchange" {
			if c.MultiKeyConnRsp {
				p = append(p, firstDigests...)
			}
			chain := chains.raw[uint8(*s.SlotID)]
			if chain == nil {
				t.Fatalf("slot %d chain not captured", *s.SlotID)
			}
			p = append(p, goldenHash(c.hash, chain)...)
		}
		out = append(out, p)
	}
	return out
}

// smsgOpener opens one direction of a captured session with the keys
// libspdm printed: the handshake key, the data key, then each key update,
// moving to the next key (sequence 0) when the current one fails.
type smsgOpener struct {
	keys [][2][]byte // key, IV
	cur  int
	seq  uint64
}

func (o *smsgOpener) open(t *testing.T, aeadSel int, rec []byte) ([]byte, bool) {
	for ; o.cur < len(o.keys); o.cur, o.seq = o.cur+1, 0 {
		k := o.keys[o.cur]
		var aead cipher.AEAD
		var err error
		if aeadSel == int(AEADChaCha20Poly1305) {
			aead, err = chacha20poly1305.New(k[0])
		} else {
			var b cipher.Block
			if b, err = aes.NewCipher(k[0]); err == nil {
				aead, err = cipher.NewGCM(b)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		nonce := bytes.Clone(k[1])
		var s [8]byte
		binary.LittleEndian.PutUint64(s[:], o.seq)
		for i := range s {
			nonce[i] ^= s[i]
		}
		n := int(binary.LittleEndian.Uint16(rec[4:]))
		if 6+n > len(rec) || n < aead.Overhead() {
			t.Fatalf("secured record of %d bytes says %d", len(rec), n)
		}
		if plain, err := aead.Open(nil, nonce, rec[6:6+n], rec[:6]); err == nil {
			o.seq++
			return plain, true
		}
	}
	return nil, false
}

// smsgSessionMessages decrypts the secured records of session k of c and
// returns the SPDM messages in order, with the record index of each.
func smsgSessionMessages(t *testing.T, c *goldenCase, k int) (msgs [][]byte, index []int) {
	s := &c.Sessions[k]
	hx := func(s string) []byte { return goldenHex(t, s) }
	req := &smsgOpener{keys: [][2][]byte{{hx(s.RequestHandshakeKey), hx(s.RequestHandshakeIV)}, {hx(s.RequestDataKey), hx(s.RequestDataIV)}}}
	rsp := &smsgOpener{keys: [][2][]byte{{hx(s.ResponseHandshakeKey), hx(s.ResponseHandshakeIV)}, {hx(s.ResponseDataKey), hx(s.ResponseDataIV)}}}
	for _, u := range s.KeyUpdates {
		o := req
		if u.Direction == "response" {
			o = rsp
		}
		o.keys = append(o.keys, [2][]byte{hx(u.Key), hx(u.IV)})
	}
	id, err := strconv.ParseUint(s.SessionID, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	for i := s.ExchangeMessageIndex + 2; i < len(c.Messages); i++ {
		m := c.Messages[i]
		p := c.doePayload(t, i)
		if m.DOEType != 2 || binary.LittleEndian.Uint32(p) != uint32(id) {
			continue
		}
		o := req
		if m.Dir == "rsp" {
			o = rsp
		}
		plain, ok := o.open(t, c.Algorithms.AEADCipherSuite, p)
		if !ok {
			t.Fatalf("session %s record %d: no key opens it", s.SessionID, i)
		}
		n := int(binary.LittleEndian.Uint16(plain))
		if n+2 != len(plain) || n < 4 {
			t.Fatalf("session %s record %d: application data length %d of %d", s.SessionID, i, n, len(plain))
		}
		msgs, index = append(msgs, plain[2:]), append(index, i)
		if plain[3] == CodeEndSessionAck {
			break
		}
	}
	return msgs, index
}

// TestSessionMsgGoldenSecured decodes every message inside the corpus's
// sessions: FINISH/PSK_FINISH and their responses (with the verify data and
// TH2 libspdm computed), HEARTBEAT, KEY_UPDATE, END_SESSION and the
// vendor-defined IDE_KM/TDISP/CXL traffic.
func TestSessionMsgGoldenSecured(t *testing.T) {
	counts := map[string]int{}
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			exs := smsgGoldenExchanges(t, c)
			prefixes := smsgSessionPrefixes(t, c)
			ctx := smsgGoldenCtx(t, c)
			for k := range c.Sessions {
				s := &c.Sessions[k]
				msgs, index := smsgSessionMessages(t, c, k)
				th := append(append(bytes.Clone(prefixes[k]), exs[k].reqRaw...), exs[k].rspRaw...)
				var finish []byte
				var ops []string
				var lastVDM *VendorDefinedRequest
				measSigned := false
				pci := map[string]int{}
				for j, b := range msgs {
					code := b[1]
					name := CodeName(code)
					msg, n, ok, err := smsgDecodeAs(code, b, ctx)
					if !ok {
						gctx := goldenDecodeCtx{hashSize: c.hashSize, sigSize: c.sigSize, measSigned: measSigned}
						msg, n, ok, err = codecDecodeAny(b, gctx)
					}
					if !ok {
						t.Errorf("session %s record %d: no decoder for %s", s.SessionID, index[j], name)
						continue
					}
					if err != nil || n != len(b) {
						t.Fatalf("session %s record %d (%s): decode %d of %d bytes: %v\n  % x", s.SessionID, index[j], name, n, len(b), err, b)
					}
					if enc := msg.Marshal(); !bytes.Equal(enc, b) {
						t.Errorf("session %s record %d (%s): Marshal differs\n wire % x\n  got % x", s.SessionID, index[j], name, b, enc)
					}
					counts[name]++
					switch x := msg.(type) {
					case *Finish:
						if x.SignatureIncluded || x.MACedLen() != 4 {
							t.Errorf("FINISH with a signature: %+v", x)
						}
						smsgCheckMAC(t, c, s.RequestFinishedKey, append(bytes.Clone(th), b[:x.MACedLen()]...), x.VerifyData, "RequesterVerifyData")
						finish = b
					case *PSKFinish:
						smsgCheckMAC(t, c, s.RequestFinishedKey, append(bytes.Clone(th), b[:x.MACedLen()]...), x.VerifyData, "PSK_FINISH RequesterVerifyData")
						finish = b
					case *FinishRsp, *PSKFinishRsp:
						if th2 := goldenHash(c.hash, th, finish, b); !bytes.Equal(th2, goldenHex(t, s.TH2)) {
							t.Errorf("session %s: TH2 %x, libspdm %s", s.SessionID, th2, s.TH2)
						}
					case *KeyUpdate:
						ops = append(ops, fmt.Sprintf("KEY_UPDATE %d/%d", x.Operation, x.Tag))
					case *KeyUpdateAck:
						ops = append(ops, fmt.Sprintf("ACK %d/%d", x.Operation, x.Tag))
					case *EndSession:
						ops = append(ops, fmt.Sprintf("END_SESSION clear=%v", x.ClearNegotiatedState))
					case *GetMeasurements:
						measSigned = x.SignatureRequested()
					case *VendorDefinedRequest:
						p, err := x.PCI()
						if err != nil {
							t.Fatalf("record %d: %v", index[j], err)
						}
						pci[fmt.Sprintf("%04x/%d", p.VendorID, p.Protocol)]++
						if !bytes.Equal(p.Request(x.Version).Marshal(), b) {
							t.Errorf("record %d: PCIPayload.Request does not rebuild the request", index[j])
						}
						lastVDM = x
					case *VendorDefinedResponse:
						p, err := x.PCI()
						if err != nil || lastVDM == nil {
							t.Fatalf("record %d: %v (request %v)", index[j], err, lastVDM)
						}
						q, _ := lastVDM.PCI()
						if p.VendorID != q.VendorID || p.Protocol != q.Protocol || x.StandardID != RegistryPCISIG {
							t.Errorf("record %d: response %v to request %v", index[j], p, q)
						}
						if !bytes.Equal(p.Response(x.Version).Marshal(), b) {
							t.Errorf("record %d: PCIPayload.Response does not rebuild the response", index[j])
						}
						lastVDM = nil
					}
				}
				// README: UpdateAllKeys (2), then VerifyNewKey (3), each
				// acknowledged with the same operation and tag.
				if len(s.KeyUpdates) > 0 && (len(ops) < 4 || !strings.HasPrefix(ops[0], "KEY_UPDATE 2/") ||
					strings.TrimPrefix(ops[0], "KEY_UPDATE ") != strings.TrimPrefix(ops[1], "ACK ") ||
					!strings.HasPrefix(ops[2], "KEY_UPDATE 3/") || strings.TrimPrefix(ops[2], "KEY_UPDATE ") != strings.TrimPrefix(ops[3], "ACK ")) {
					t.Errorf("session %s: key updates %v", s.SessionID, ops)
				}
				if last := CodeName(msgs[len(msgs)-1][1]); last != "END_SESSION_ACK" {
					t.Errorf("session %s ends with %s", s.SessionID, last)
				}
				var kinds []string
				for k, n := range pci {
					kinds = append(kinds, fmt.Sprintf("%s x%d", k, n))
				}
				sort.Strings(kinds)
				t.Logf("session %s: %d messages; %v; vendor-defined requests (vendor/protocol) %v", s.SessionID, len(msgs), ops, kinds)
				if c.Case == "v12-ide-km" && s.Type == "key_exchange" {
					for _, kind := range []string{"0001/0", "0001/1", "1e98/0"} {
						if pci[kind] == 0 {
							t.Errorf("session %s: no vendor-defined requests %s", s.SessionID, kind)
						}
					}
				}
			}
		})
	}
	var names []string
	for n, k := range counts {
		names = append(names, fmt.Sprintf("%s x%d", n, k))
	}
	sort.Strings(names)
	t.Logf("decoded inside sessions: %s", strings.Join(names, ", "))
	for _, code := range smsgCodes {
		if code == CodeKeyExchange || code == CodeKeyExchangeRsp || code == CodePSKExchange || code == CodePSKExchangeRsp {
			continue
		}
		if counts[CodeName(code)] == 0 {
			t.Errorf("no %s in the corpus's sessions", CodeName(code))
		}
	}
}

func smsgCheckMAC(t *testing.T, c *goldenCase, keyHex string, transcript, got []byte, what string) {
	t.Helper()
	mac := hmac.New(c.hash.New, goldenHex(t, keyHex))
	mac.Write(goldenHash(c.hash, transcript))
	if !hmac.Equal(mac.Sum(nil), got) {
		t.Errorf("%s does not match the transcript", what)
	}
}

// smsgSample is one hand-built valid message.
type smsgSample struct {
	name    string
	msg     codecMessage
	ctx     smsgCtx
	wantLen int                                  // size by DSP0274 / spdm.h
	check   func(t *testing.T, got codecMessage) // fields worth checking one by one
}

var (
	smsgP256 = smsgCtx{exchange: 64, sig: 64, hash: 32}
	smsgP384 = smsgCtx{exchange: 96, sig: 96, hash: 48}
)

func smsgWith(c smsgCtx, f func(*smsgCtx)) smsgCtx { f(&c); return c }

func smsgRandom(seed byte) (r [RandomDataSize]byte) {
	copy(r[:], codecFill(RandomDataSize, seed))
	return r
}

// smsgHandBuilt covers every session decoder, every version-dependent
// field and the optional parts.
func smsgHandBuilt() []smsgSample {
	sv11 := EncodeSupportedVersions(V11, OpaqueFmtNone, []uint16{SecuredVersion11})
	sv12 := EncodeSupportedVersions(V12, OpaqueFmt1, []uint16{SecuredVersion10, SecuredVersion11, SecuredVersion12})
	sel12 := EncodeVersionSelection(V12, OpaqueFmt1, SecuredVersion12)
	sel11 := EncodeVersionSelection(V11, OpaqueFmtNone, SecuredVersion11)
	ideQuery := PCIPayload{VendorID: VendorIDPCISIG, Protocol: PCIProtocolIDEKM, Body: []byte{0x00, 0x00, 0x00}}
	tdisp := PCIPayload{VendorID: VendorIDPCISIG, Protocol: PCIProtocolTDISP, Body: codecFill(16, 3)}
	tsp := PCIPayload{VendorID: VendorIDCXL, Protocol: CXLProtocolTSP, Body: codecFill(5, 4)}
	kxRsp := func(v Version, mut, slot uint8, summary, verify int, ctx smsgCtx) *KeyExchangeRsp {
		return &KeyExchangeRsp{Version: v, HeartbeatPeriod: 10, RspSessionID: 0xFFFE, MutAuthRequested: mut, ReqSlotID: slot,
			RandomData: smsgRandom(2), ExchangeData: codecFill(ctx.exchange, 3), SummaryHash: codecFill(summary, 4),
			Opaque: sel12, Signature: codecFill(ctx.sig, 5), VerifyData: codecFill(verify, 6)}
	}
	return []smsgSample{
		{name: "KEY_EXCHANGE/1.1", msg: &KeyExchange{Version: V11, SummaryType: SummaryNone, Slot: 0, ReqSessionID: 0xFFFF,
			RandomData: smsgRandom(1), ExchangeData: codecFill(64, 2), Opaque: sv11}, ctx: smsgP256, wantLen: 4 + 4 + 32 + 64 + 2 + 20},
		{name: "KEY_EXCHANGE/1.2 provisioned key", msg: &KeyExchange{Version: V12, SummaryType: SummaryTCB, Slot: 0xFF, ReqSessionID: 0x1234,
			SessionPolicy: SessionPolicyTermination, RandomData: smsgRandom(3), ExchangeData: codecFill(96, 4), Opaque: sv12},
			ctx: smsgP384, wantLen: 4 + 4 + 32 + 96 + 2 + 20,
			check: func(t *testing.T, m codecMessage) {
				k := m.(*KeyExchange)
				if k.Slot != 0xFF || k.SummaryType != SummaryTCB || k.ReqSessionID != 0x1234 || k.SessionPolicy != 1 || k.RandomData != smsgRandom(3) {
					t.Errorf("decoded as %+v", k)
				}
			}},
		{name: "KEY_EXCHANGE/1.3 FFDHE2048 no opaque", msg: &KeyExchange{Version: V13, SummaryType: SummaryAll, Slot: 7,
			SessionPolicy: SessionPolicyTermination | SessionPolicyEventAll, RandomData: smsgRandom(5), ExchangeData: codecFill(256, 6)},
			ctx: smsgWith(smsgP384, func(c *smsgCtx) { c.exchange = 256 }), wantLen: 4 + 4 + 32 + 256 + 2},
		{name: "KEY_EXCHANGE_RSP/1.2 summary", msg: kxRsp(V12, 0, 0, 48, 48, smsgP384),
			ctx: smsgWith(smsgP384, func(c *smsgCtx) { c.summary = 48 }), wantLen: 4 + 4 + 32 + 96 + 48 + 2 + 12 + 96 + 48,
			check: func(t *testing.T, m codecMessage) {
				k := m.(*KeyExchangeRsp)
				if k.SignedLen() != 4+4+32+96+48+2+12 || k.TH1Len() != k.SignedLen()+96 || k.HeartbeatPeriod != 10 || k.RspSessionID != 0xFFFE {
					t.Errorf("SignedLen %d, TH1Len %d, %+v", k.SignedLen(), k.TH1Len(), k)
				}
			}},
		{name: "KEY_EXCHANGE_RSP/1.3 in the clear, encapsulated mutual auth", msg: kxRsp(V13, MutAuthWithEncapRequest, 3, 0, 0, smsgP256),
			ctx: smsgWith(smsgP256, func(c *smsgCtx) { c.inClear = true }), wantLen: 4 + 4 + 32 + 64 + 2 + 12 + 64,
			check: func(t *testing.T, m codecMessage) {
				if k := m.(*KeyExchangeRsp); k.VerifyData != nil || k.TH1Len() != len(k.Marshal()) || k.ReqSlotID != 3 {
					t.Errorf("in-the-clear KEY_EXCHANGE_RSP decoded as %+v", k)
				}
			}},
		{name: "KEY_EXCHANGE_RSP/1.1 mutual auth with GET_DIGESTS", msg: kxRsp(V11, MutAuthWithGetDigests, 0xF, 32, 32, smsgP256),
			ctx: smsgWith(smsgP256, func(c *smsgCtx) { c.summary = 32 }), wantLen: 4 + 4 + 32 + 64 + 32 + 2 + 12 + 64 + 32},
		{name: "FINISH/no signature", msg: &Finish{Version: V12, VerifyData: codecFill(48, 1)}, ctx: smsgP384, wantLen: 4 + 48,
			check: func(t *testing.T, m codecMessage) {
				if f := m.(*Finish); f.SignatureIncluded || f.Signature != nil || f.MACedLen() != 4 || f.SignedLen() != 4 {
					t.Errorf("decoded as %+v", f)
				}
			}},
		{name: "FINISH/signature slot 2", msg: &Finish{Version: V13, SignatureIncluded: true, ReqSlotID: 2, Signature: codecFill(96, 1),
			VerifyData: codecFill(48, 2)}, ctx: smsgP384, wantLen: 4 + 96 + 48,
			check: func(t *testing.T, m codecMessage) {
				f := m.(*Finish)
				if b := m.Marshal(); b[2] != 1 || b[3] != 2 || !f.SignatureIncluded || f.MACedLen() != 100 || f.SignedLen() != 4 {
					t.Errorf("decoded as %+v", f)
				}
			}},
		{name: "FINISH/signature provisioned key", msg: &Finish{Version: V11, SignatureIncluded: true, ReqSlotID: 0xFF, Signature: codecFill(256, 1),
			VerifyData: codecFill(32, 2)}, ctx: smsgWith(smsgP256, func(c *smsgCtx) { c.sig = 256 }), wantLen: 4 + 256 + 32},
		{name: "FINISH_RSP/encrypted", msg: &FinishRsp{Version: V12}, ctx: smsgP384, wantLen: 4},
		{name: "FINISH_RSP/in the clear", msg: &FinishRsp{Version: V13, VerifyData: codecFill(48, 1)},
			ctx: smsgWith(smsgP384, func(c *smsgCtx) { c.inClear = true }), wantLen: 4 + 48,
			check: func(t *testing.T, m codecMessage) {
				if f := m.(*FinishRsp); f.MACedLen() != 4 || len(f.VerifyData) != 48 {
					t.Errorf("decoded as %+v", f)
				}
			}},
		{name: "PSK_EXCHANGE/1.1", msg: &PSKExchange{Version: V11, SummaryType: SummaryNone, ReqSessionID: 0xFFFF, PSKHint: []byte("hint"),
			Context: codecFill(32, 1), Opaque: sv11}, wantLen: 12 + 4 + 32 + 20},
		{name: "PSK_EXCHANGE/1.2", msg: &PSKExchange{Version: V12, SummaryType: SummaryAll, SessionPolicy: SessionPolicyTermination,
			ReqSessionID: 0xFFFE, PSKHint: []byte("TestPskHint\x00"), Context: codecFill(64, 2), Opaque: sv12}, wantLen: 12 + 12 + 64 + 20,
			check: func(t *testing.T, m codecMessage) {
				p := m.(*PSKExchange)
				if string(p.PSKHint) != "TestPskHint\x00" || len(p.Context) != 64 || p.SessionPolicy != 1 || p.SummaryType != SummaryAll {
					t.Errorf("decoded as %+v", p)
				}
			}},
		{name: "PSK_EXCHANGE/1.3 no hint no opaque", msg: &PSKExchange{Version: V13, SummaryType: SummaryTCB, SessionPolicy: SessionPolicyEventAll,
			ReqSessionID: 1, Context: codecFill(48, 3)}, wantLen: 12 + 48},
		{name: "PSK_EXCHANGE_RSP/summary context", msg: &PSKExchangeRsp{Version: V12, HeartbeatPeriod: 0xF0, RspSessionID: 0xFFFF,
			SummaryHash: codecFill(48, 1), Context: codecFill(64, 2), Opaque: sel12, VerifyData: codecFill(48, 3)},
			ctx: smsgWith(smsgP384, func(c *smsgCtx) { c.summary = 48 }), wantLen: 12 + 48 + 64 + 12 + 48,
			check: func(t *testing.T, m codecMessage) {
				if p := m.(*PSKExchangeRsp); p.TH1Len() != 12+48+64+12 || p.HeartbeatPeriod != 0xF0 {
					t.Errorf("TH1Len %d, %+v", p.TH1Len(), p)
				}
			}},
		{name: "PSK_EXCHANGE_RSP/1.1 no context", msg: &PSKExchangeRsp{Version: V11, RspSessionID: 7, Opaque: sel11, VerifyData: codecFill(32, 4)},
			ctx: smsgP256, wantLen: 12 + 16 + 32},
		{name: "PSK_FINISH", msg: &PSKFinish{Version: V12, VerifyData: codecFill(48, 1)}, ctx: smsgP384, wantLen: 4 + 48,
			check: func(t *testing.T, m codecMessage) {
				if m.(*PSKFinish).MACedLen() != 4 {
					t.Errorf("MACedLen %d", m.(*PSKFinish).MACedLen())
				}
			}},
		{name: "PSK_FINISH_RSP", msg: &PSKFinishRsp{Version: V13}, wantLen: 4},
		{name: "HEARTBEAT", msg: &Heartbeat{Version: V11}, wantLen: 4},
		{name: "HEARTBEAT_ACK", msg: &HeartbeatAck{Version: V12}, wantLen: 4},
		{name: "KEY_UPDATE/UpdateKey", msg: &KeyUpdate{Version: V12, Operation: KeyUpdateOpUpdateKey, Tag: 0x5A}, wantLen: 4},
		{name: "KEY_UPDATE/UpdateAllKeys", msg: &KeyUpdate{Version: V11, Operation: KeyUpdateOpUpdateAllKeys, Tag: 0}, wantLen: 4},
		{name: "KEY_UPDATE/VerifyNewKey", msg: &KeyUpdate{Version: V13, Operation: KeyUpdateOpVerifyNewKey, Tag: 0xFF}, wantLen: 4,
			check: func(t *testing.T, m codecMessage) {
				if k := m.(*KeyUpdate); k.Operation != 3 || k.Tag != 0xFF || k.Version != V13 {
					t.Errorf("decoded as %+v", k)
				}
			}},
		{name: "KEY_UPDATE_ACK/UpdateKey", msg: &KeyUpdateAck{Version: V12, Operation: KeyUpdateOpUpdateKey, Tag: 0x5A}, wantLen: 4},
		{name: "KEY_UPDATE_ACK/UpdateAllKeys", msg: &KeyUpdateAck{Version: V12, Operation: KeyUpdateOpUpdateAllKeys, Tag: 1}, wantLen: 4},
		{name: "KEY_UPDATE_ACK/VerifyNewKey", msg: &KeyUpdateAck{Version: V12, Operation: KeyUpdateOpVerifyNewKey, Tag: 2}, wantLen: 4},
		{name: "END_SESSION/preserve", msg: &EndSession{Version: V12}, wantLen: 4},
		{name: "END_SESSION/clear", msg: &EndSession{Version: V13, ClearNegotiatedState: true}, wantLen: 4,
			check: func(t *testing.T, m codecMessage) {
				if b := m.Marshal(); b[2] != 1 || !m.(*EndSession).ClearNegotiatedState {
					t.Errorf("Param1 0x%02x", b[2])
				}
			}},
		{name: "END_SESSION_ACK", msg: &EndSessionAck{Version: V12}, wantLen: 4},
		{name: "VENDOR_DEFINED_REQUEST/PCI-SIG IDE_KM QUERY", msg: ideQuery.Request(V12), wantLen: 4 + 2 + 1 + 2 + 2 + 1 + 3,
			check: func(t *testing.T, m codecMessage) {
				// StandardID 3, Len 2, vendor ID 0x0001 LE, ReqLength 4, protocol 0.
				if b := m.Marshal(); !bytes.Equal(b[4:12], []byte{3, 0, 2, 1, 0, 4, 0, 0}) {
					t.Errorf("vendor-defined header % x", b[4:12])
				}
				p, err := m.(*VendorDefinedRequest).PCI()
				if err != nil || p.VendorID != VendorIDPCISIG || p.Protocol != PCIProtocolIDEKM || !bytes.Equal(p.Body, []byte{0, 0, 0}) {
					t.Errorf("PCI() = %v, %v", p, err)
				}
			}},
		{name: "VENDOR_DEFINED_RESPONSE/PCI-SIG TDISP", msg: tdisp.Response(V12), wantLen: 4 + 5 + 2 + 1 + 16},
		{name: "VENDOR_DEFINED_RESPONSE/CXL TSP", msg: tsp.Response(V13), wantLen: 4 + 5 + 2 + 1 + 5,
			check: func(t *testing.T, m codecMessage) {
				if b := m.Marshal(); b[7] != 0x98 || b[8] != 0x1E {
					t.Errorf("CXL vendor ID bytes % x", b[7:9])
				}
			}},
		{name: "VENDOR_DEFINED_REQUEST/1.0 DMTF empty", msg: &VendorDefinedRequest{Version: V10, StandardID: RegistryDMTF}, wantLen: 4 + 3 + 2},
		{name: "VENDOR_DEFINED_REQUEST/IANA", msg: &VendorDefinedRequest{Version: V11, StandardID: RegistryIANA, VendorID: []byte{1, 2, 3, 4},
			Payload: codecFill(300, 1)}, wantLen: 4 + 3 + 4 + 2 + 300},
		{name: "VENDOR_DEFINED_RESPONSE/IANA CBOR", msg: &VendorDefinedResponse{Version: V13, StandardID: RegistryIANACBOR, VendorID: codecFill(9, 1),
			Payload: []byte{1}}, wantLen: 4 + 3 + 9 + 2 + 1},
	}
}

// TestSessionMsgRoundTrips: Marshal has the size spdm.h gives, Decode
// consumes it exactly (also with DOE padding after it) and Marshal of the
// result is the same bytes.
func TestSessionMsgRoundTrips(t *testing.T) {
	for _, s := range smsgHandBuilt() {
		t.Run(s.name, func(t *testing.T) {
			b := s.msg.Marshal()
			if len(b) != s.wantLen {
				t.Errorf("Marshal gives %d bytes, want %d: % x", len(b), s.wantLen, b)
			}
			got, n, ok, err := smsgDecodeAs(b[1], b, s.ctx)
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
			if _, n, _, err = smsgDecodeAs(b[1], padded, s.ctx); err != nil || n != len(b) {
				t.Errorf("with %d bytes of DOE padding: Decode = %d, %v; want %d", len(padded)-len(b), n, err, len(b))
			}
		})
	}
}

// smsgValidSamples: the corpus's plain exchanges and the hand-built ones.
func smsgValidSamples(t *testing.T) []smsgSample {
	var out []smsgSample
	for _, c := range loadGoldenCases(t) {
		for _, ex := range smsgGoldenExchanges(t, c) {
			reqCtx := ex.rspCtx
			reqCtx.summary = 0
			out = append(out,
				smsgSample{name: fmt.Sprintf("%s#%d", c.Case, ex.index), msg: goldenRaw(ex.reqRaw), ctx: reqCtx},
				smsgSample{name: fmt.Sprintf("%s#%d", c.Case, ex.index+1), msg: goldenRaw(ex.rspRaw), ctx: ex.rspCtx})
		}
	}
	return append(out, smsgHandBuilt()...)
}

// TestSessionMsgNoStrictPrefix: no strict prefix of a valid message
// decodes.
func TestSessionMsgNoStrictPrefix(t *testing.T) {
	count := 0
	for _, s := range smsgValidSamples(t) {
		b := s.msg.Marshal()
		for k := 0; k < len(b); k++ {
			count++
			_, n, _, err := smsgDecodeAs(b[1], b[:k], s.ctx)
			if err == nil {
				t.Errorf("%s: %d-byte prefix of %d decodes (consumed %d)", s.name, k, len(b), n)
				break
			}
			var de *DecodeError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &de) || de.Message == "" {
				t.Errorf("%s: %d-byte prefix: %v is not a *DecodeError naming the message", s.name, k, err)
				break
			}
		}
	}
	t.Logf("%d prefixes refused", count)
}

// TestSessionMsgWrongCode: every session decoder refuses every other code,
// naming RequestResponseCode.
func TestSessionMsgWrongCode(t *testing.T) {
	seen := map[uint8]bool{}
	for _, s := range smsgHandBuilt() {
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
			_, _, _, err := smsgDecodeAs(own, b, s.ctx)
			codecWantDecodeError(t, fmt.Sprintf("%s decoder given %s", CodeName(own), CodeName(uint8(c))), err, "RequestResponseCode")
		}
	}
	if len(seen) != len(smsgCodes) {
		t.Errorf("checked %d decoders, want %d", len(seen), len(smsgCodes))
	}
}

// TestSessionMsgReservedFields sets each reserved bit and expects
// ErrMalformed from a *DecodeError naming the field.
func TestSessionMsgReservedFields(t *testing.T) {
	ke := func(v Version) *KeyExchange {
		return &KeyExchange{Version: v, ExchangeData: codecFill(96, 1)}
	}
	kr := &KeyExchangeRsp{Version: V12, ExchangeData: codecFill(96, 1), Signature: codecFill(96, 2), VerifyData: codecFill(48, 3)}
	pe := func(v Version) *PSKExchange { return &PSKExchange{Version: v, Context: codecFill(48, 1)} }
	pr := &PSKExchangeRsp{Version: V12, VerifyData: codecFill(48, 1)}
	fin := &Finish{Version: V12, VerifyData: codecFill(48, 1)}
	vreq := &VendorDefinedRequest{Version: V12, StandardID: RegistryPCISIG, VendorID: []byte{1, 0}, Payload: []byte{0}}
	vrsp := &VendorDefinedResponse{Version: V12, StandardID: RegistryPCISIG, VendorID: []byte{1, 0}, Payload: []byte{0}}
	f := map[string]codecReservedField{
		"KEY_EXCHANGE/1.1 SessionPolicy":    {msg: ke(V11), off: 6, mask: 0xFF, field: "SessionPolicy", note: "SessionPolicy only from 1.2"},
		"KEY_EXCHANGE/1.2 SessionPolicy":    {msg: ke(V12), off: 6, mask: 0xFE, field: "SessionPolicy", note: "EventAllPolicy only from 1.3"},
		"KEY_EXCHANGE/1.3 SessionPolicy":    {msg: ke(V13), off: 6, mask: 0xFC, field: "SessionPolicy"},
		"KEY_EXCHANGE/Reserved":             {msg: ke(V12), off: 7, mask: 0xFF, field: "Reserved"},
		"KEY_EXCHANGE_RSP/Param2":           {msg: kr, off: 3, mask: 0xFF, field: "Param2"},
		"KEY_EXCHANGE_RSP/MutAuthRequested": {msg: kr, off: 6, mask: 0xF8, field: "MutAuthRequested"},
		"KEY_EXCHANGE_RSP/ReqSlotIDParam":   {msg: kr, off: 7, mask: 0xF0, field: "ReqSlotIDParam"},
		"FINISH/Param1":                     {msg: fin, off: 2, mask: 0xFE, field: "Param1"},
		"FINISH/Param2 without signature":   {msg: fin, off: 3, mask: 0xFF, field: "Param2", note: "ReqSlotID only with a signature"},
		"FINISH_RSP/Param1":                 {msg: &FinishRsp{Version: V12}, off: 2, mask: 0xFF, field: "Param1/Param2"},
		"FINISH_RSP/Param2":                 {msg: &FinishRsp{Version: V12}, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"PSK_EXCHANGE/1.1 Param2":           {msg: pe(V11), off: 3, mask: 0xFF, field: "Param2", note: "SessionPolicy only from 1.2"},
		"PSK_EXCHANGE/1.2 Param2":           {msg: pe(V12), off: 3, mask: 0xFE, field: "Param2"},
		"PSK_EXCHANGE/1.3 Param2":           {msg: pe(V13), off: 3, mask: 0xFC, field: "Param2"},
		"PSK_EXCHANGE_RSP/Param2":           {msg: pr, off: 3, mask: 0xFF, field: "Param2"},
		"PSK_EXCHANGE_RSP/Reserved low":     {msg: pr, off: 6, mask: 0xFF, field: "Reserved"},
		"PSK_EXCHANGE_RSP/Reserved high":    {msg: pr, off: 7, mask: 0xFF, field: "Reserved"},
		"PSK_FINISH/Param1":                 {msg: &PSKFinish{Version: V12, VerifyData: codecFill(48, 1)}, off: 2, mask: 0xFF, field: "Param1/Param2"},
		"PSK_FINISH/Param2":                 {msg: &PSKFinish{Version: V12, VerifyData: codecFill(48, 1)}, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"END_SESSION/Param1":                {msg: &EndSession{Version: V12}, off: 2, mask: 0xFE, field: "Param1/Param2"},
		"END_SESSION/Param2":                {msg: &EndSession{Version: V12}, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"VENDOR_DEFINED_REQUEST/Param1":     {msg: vreq, off: 2, mask: 0xFF, field: "Param1/Param2", note: "bit 7 LargeReq only from 1.4"},
		"VENDOR_DEFINED_REQUEST/Param2":     {msg: vreq, off: 3, mask: 0xFF, field: "Param1/Param2"},
		"VENDOR_DEFINED_RESPONSE/Param1":    {msg: vrsp, off: 2, mask: 0xFF, field: "Param1/Param2"},
		"VENDOR_DEFINED_RESPONSE/Param2":    {msg: vrsp, off: 3, mask: 0xFF, field: "Param1/Param2"},
	}
	for name, m := range map[string]codecMessage{"PSK_FINISH_RSP": &PSKFinishRsp{Version: V12}, "HEARTBEAT": &Heartbeat{Version: V12},
		"HEARTBEAT_ACK": &HeartbeatAck{Version: V12}, "END_SESSION_ACK": &EndSessionAck{Version: V12}} {
		f[name+"/Param1"] = codecReservedField{msg: m, off: 2, mask: 0xFF, field: "Param1/Param2"}
		f[name+"/Param2"] = codecReservedField{msg: m, off: 3, mask: 0xFF, field: "Param1/Param2"}
	}
	ctx := smsgP384
	for name, r := range f {
		t.Run(name, func(t *testing.T) {
			base := r.msg.Marshal()
			if _, n, _, err := smsgDecodeAs(base[1], base, ctx); err != nil || n != len(base) {
				t.Fatalf("base message does not decode: %d, %v", n, err)
			}
			for bit := 0; bit < 8; bit++ {
				if r.mask&(1<<bit) == 0 {
					continue
				}
				b := bytes.Clone(base)
				if b[r.off]&(1<<bit) != 0 {
					t.Fatalf("bit %d of byte %d is already set in the base message", bit, r.off)
				}
				b[r.off] |= 1 << bit
				_, _, _, err := smsgDecodeAs(b[1], b, ctx)
				codecWantDecodeError(t, fmt.Sprintf("byte %d bit %d (%s)", r.off, bit, r.note), err, r.field)
			}
		})
	}
}

// TestSessionMsgInvalidValues: values that are not reserved bits but that
// DSP0274 (or libspdm) does not allow.
func TestSessionMsgInvalidValues(t *testing.T) {
	set := func(off int, v byte) func([]byte) []byte { return func(b []byte) []byte { b[off] = v; return b } }
	setLE16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint16(b[off:], v); return b }
	}
	ke := &KeyExchange{Version: V12, ExchangeData: codecFill(96, 1)}
	kr := &KeyExchangeRsp{Version: V12, ExchangeData: codecFill(96, 1), Signature: codecFill(96, 2), VerifyData: codecFill(48, 3)}
	sig := &Finish{Version: V12, SignatureIncluded: true, Signature: codecFill(96, 1), VerifyData: codecFill(48, 2)}
	pci := &VendorDefinedRequest{Version: V12, StandardID: RegistryPCISIG, VendorID: []byte{1, 0}, Payload: []byte{0}}
	cases := []struct {
		name   string
		msg    codecMessage
		ctx    smsgCtx
		mutate func([]byte) []byte
		field  string
	}{
		{"KEY_EXCHANGE version 1.0", ke, smsgP384, set(0, 0x10), "SPDMVersion"},
		{"KEY_EXCHANGE version 1.4", ke, smsgP384, set(0, 0x14), "SPDMVersion"},
		{"KEY_EXCHANGE summary type 2", ke, smsgP384, set(2, 2), "Param1"},
		{"KEY_EXCHANGE slot 8", ke, smsgP384, set(3, 8), "Param2"},
		{"KEY_EXCHANGE opaque 1025", ke, smsgP384, setLE16(4+4+32+96, MaxOpaqueSize+1), "OpaqueDataLength"},
		{"KEY_EXCHANGE opaque beyond the message", ke, smsgP384, setLE16(4+4+32+96, 1), "OpaqueData"},
		{"KEY_EXCHANGE_RSP two mutual auth modes", kr, smsgP384, set(6, MutAuthRequested|MutAuthWithEncapRequest), "MutAuthRequested"},
		{"KEY_EXCHANGE_RSP opaque 1025", kr, smsgP384, setLE16(4+4+32+96, MaxOpaqueSize+1), "OpaqueDataLength"},
		{"KEY_EXCHANGE_RSP version 1.0", kr, smsgP384, set(0, 0x10), "SPDMVersion"},
		{"FINISH requester slot 8", sig, smsgP384, set(3, 8), "Param2"},
		{"FINISH signature without a size", &Finish{Version: V12, SignatureIncluded: true, VerifyData: codecFill(48, 2)},
			smsgWith(smsgP384, func(c *smsgCtx) { c.sig = 0 }), func(b []byte) []byte { return b }, "Param1"},
		{"FINISH_RSP version 1.4", &FinishRsp{Version: V12}, smsgP384, set(0, 0x14), "SPDMVersion"},
		{"PSK_EXCHANGE summary type 0x80", &PSKExchange{Version: V12}, smsgP384, set(2, 0x80), "Param1"},
		{"PSK_EXCHANGE opaque 1025", &PSKExchange{Version: V12}, smsgP384, setLE16(10, MaxOpaqueSize+1), "OpaqueDataLength"},
		{"PSK_EXCHANGE hint beyond the message", &PSKExchange{Version: V12}, smsgP384, setLE16(6, 1), "PSKHint"},
		{"PSK_EXCHANGE_RSP opaque 1025", &PSKExchangeRsp{Version: V12, VerifyData: codecFill(48, 1)}, smsgP384, setLE16(10, MaxOpaqueSize+1), "OpaqueDataLength"},
		{"KEY_UPDATE operation 0", &KeyUpdate{Version: V12, Operation: 1}, smsgP384, set(2, 0), "Param1"},
		{"KEY_UPDATE operation 4", &KeyUpdate{Version: V12, Operation: 1}, smsgP384, set(2, 4), "Param1"},
		{"KEY_UPDATE_ACK operation 0xFF", &KeyUpdateAck{Version: V12, Operation: 1}, smsgP384, set(2, 0xFF), "Param1"},
		{"HEARTBEAT version 1.0", &Heartbeat{Version: V12}, smsgP384, set(0, 0x10), "SPDMVersion"},
		{"VENDOR_DEFINED PCI-SIG with a 3-byte vendor ID", pci, smsgP384, set(6, 3), "Len"},
		{"VENDOR_DEFINED DMTF with a vendor ID", pci, smsgP384, set(4, RegistryDMTF), "Len"},
		{"VENDOR_DEFINED unknown registry", pci, smsgP384, set(4, 0x0C), "Len"},
		{"VENDOR_DEFINED payload beyond the message", pci, smsgP384, setLE16(9, 2), "VendorDefinedPayload"},
		{"VENDOR_DEFINED version 1.4", pci, smsgP384, set(0, 0x14), "SPDMVersion"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mutate(c.msg.Marshal())
			_, _, _, err := smsgDecodeAs(c.msg.Marshal()[1], b, c.ctx)
			codecWantDecodeError(t, c.name, err, c.field)
		})
	}
	big := &KeyExchange{Version: V12, ExchangeData: codecFill(96, 1), Opaque: codecFill(MaxOpaqueSize+1, 0)}
	_, _, _, err := smsgDecodeAs(CodeKeyExchange, big.Marshal(), smsgP384)
	codecWantDecodeError(t, "KEY_EXCHANGE opaque 1025 present in full", err, "OpaqueDataLength")
}

// TestSessionMsgSizes: the DHE sizes of spdm.h (libspdm_get_dhe_pub_key_size)
// and the session ID rule.
func TestSessionMsgSizes(t *testing.T) {
	for group, want := range map[uint16]int{DHEFFDHE2048: 256, DHEFFDHE3072: 384, DHEFFDHE4096: 512,
		DHESECP256R1: 64, DHESECP384R1: 96, DHESECP521R1: 132, DHESM2P256: 64} {
		if got, err := DHEExchangeSize(group); err != nil || got != want {
			t.Errorf("DHEExchangeSize(%s) = %d, %v; want %d", DHEName(group), got, err, want)
		}
	}
	for _, bad := range []uint16{0, DHESECP256R1 | DHESECP384R1, 1 << 7} {
		if _, err := DHEExchangeSize(bad); !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("DHEExchangeSize(0x%x): %v", bad, err)
		}
	}
	if id := SessionID(0xFFFE, 0x1234); id != 0x1234FFFE || !bytes.Equal(binary.LittleEndian.AppendUint32(nil, id), []byte{0xFE, 0xFF, 0x34, 0x12}) {
		t.Errorf("SessionID = 0x%08x", id)
	}
}

// TestSessionMsgPCIPayload: PCI() refuses payloads of other registries.
func TestSessionMsgPCIPayload(t *testing.T) {
	for name, m := range map[string]*VendorDefinedRequest{
		"DMTF registry":       {Version: V12, StandardID: RegistryDMTF, Payload: []byte{0}},
		"no vendor ID":        {Version: V12, StandardID: RegistryPCISIG, Payload: []byte{0}},
		"no protocol ID":      {Version: V12, StandardID: RegistryPCISIG, VendorID: []byte{1, 0}},
		"CXL registry (0x07)": {Version: V12, StandardID: RegistryCXL, VendorID: []byte{0x98, 0x1E}, Payload: []byte{0}},
	} {
		if p, err := m.PCI(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: PCI() = %v, %v", name, p, err)
		}
	}
	r := &VendorDefinedResponse{Version: V12, StandardID: RegistryPCISIG, VendorID: []byte{0x98, 0x1E}, Payload: []byte{1, 9, 8}}
	if p, err := r.PCI(); err != nil || p.VendorID != VendorIDCXL || p.Protocol != CXLProtocolTSP || !bytes.Equal(p.Body, []byte{9, 8}) {
		t.Errorf("PCI() = %v, %v", p, err)
	}
}
