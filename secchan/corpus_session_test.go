package secchan

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// goldenSessionState replays one captured session from both sides: the
// requester's view opens responses, the responder's view opens requests.
// Keys come from our own key schedule over transcripts rebuilt from the
// captured bytes; libspdm's printed values are only compared against.
type goldenSessionState struct {
	js        *goldenSession
	req, rsp  *Session
	th        []byte // transcript so far: VCA, [D], [Ct], exchange, exchange response
	finish    []byte // FINISH / PSK_FINISH plaintext
	pendingKU uint8  // key-update operation awaiting its ACK
	updates   int    // key updates compared so far
	records   int
}

// goldenSessionPrefix rebuilds what TH1 starts with for a session that
// begins at exchange index i: VCA, then for KEY_EXCHANGE the first DIGESTS
// (multi-key connections only) and the hash of the slot's chain.
func (c *goldenCase) goldenSessionPrefix(t *testing.T, recs []goldenRecord, s *goldenSession) []byte {
	var vca, firstDigests []byte
	for _, r := range recs {
		if r.index >= 6 && r.index <= 11 {
			vca = append(vca, r.raw...)
		}
		if _, ok := r.msg.(*Digests); ok && firstDigests == nil {
			firstDigests = r.raw
		}
	}
	out := append([]byte(nil), vca...)
	if s.Type != "key_exchange" {
		return out
	}
	if c.MultiKeyConnRsp {
		out = append(out, firstDigests...)
	}
	chains := c.goldenChains(t, recs)
	chain := chains.raw[uint8(*s.SlotID)]
	if chain == nil {
		t.Fatalf("slot %d chain not captured", *s.SlotID)
	}
	return append(out, goldenHash(c.hash, chain)...)
}

// exchangeLengths returns the exact lengths of the exchange request and
// response (without DOE padding) and where the response's verify data
// starts, by walking their length fields.
func (c *goldenCase) exchangeLengths(t *testing.T, s *goldenSession, req, rsp []byte) (reqLen, rspLen, verifyAt int) {
	h := c.hashSize
	le := func(b []byte, off int) int { return int(binary.LittleEndian.Uint16(b[off:])) }
	summary := 0
	if req[2] != SummaryNone {
		summary = h
	}
	if s.Type == "key_exchange" {
		d := map[int]int{0x08: 64, 0x10: 96, 0x20: 132}[c.Algorithms.DHENamedGroup]
		off := 4 + 2 + 1 + 1 + 32 + d
		reqLen = off + 2 + le(req, off)
		off = 4 + 2 + 1 + 1 + 32 + d + summary
		verifyAt = off + 2 + le(rsp, off) + c.sigSize
		return reqLen, verifyAt + h, verifyAt
	}
	// PSK_EXCHANGE: header, ReqSessionID, PSKHintLength, RequesterContextLength,
	// OpaqueDataLength, then the three fields.
	reqLen = 12 + le(req, 6) + le(req, 8) + le(req, 10)
	// PSK_EXCHANGE_RSP: header, RspSessionID, Reserved, ResponderContextLength,
	// OpaqueDataLength, MeasurementSummaryHash, context, opaque, verify data.
	verifyAt = 12 + summary + le(rsp, 8) + le(rsp, 10)
	return reqLen, verifyAt + h, verifyAt
}

func TestGoldenSessions(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Case, func(t *testing.T) {
			recs := c.plainRecords(t)
			ks := KeySchedule{Version: c.version, Hash: c.hash, AEAD: uint16(c.Algorithms.AEADCipherSuite)}
			active := map[uint32]*goldenSessionState{}
			started := map[int]*goldenSession{}
			for i := range c.Sessions {
				started[c.Sessions[i].ExchangeMessageIndex+1] = &c.Sessions[i]
			}
			decrypted := 0
			for i, m := range c.Messages {
				if js := started[i]; js != nil {
					st := c.startGoldenSession(t, recs, ks, js, c.doePayload(t, i-1), c.doePayload(t, i))
					active[st.req.ID] = st
				}
				if m.DOEType != 2 {
					continue
				}
				rec := c.doePayload(t, i)
				id := binary.LittleEndian.Uint32(rec)
				st := active[id]
				if st == nil {
					t.Fatalf("record %d: secured message for unknown session 0x%08x", i, id)
				}
				view := st.req
				if m.Dir == "req" {
					view = st.rsp
				}
				msg, err := view.Open(rec)
				if err != nil {
					t.Fatalf("record %d (%s, session 0x%08x, %v phase): %v", i, m.Dir, id, view.Phase(), err)
				}
				decrypted++
				st.records++
				if ended := st.advance(t, c, i, msg); ended {
					if st.updates != len(st.js.KeyUpdates) {
						t.Errorf("session 0x%08x: %d key updates replayed, JSON lists %d", id, st.updates, len(st.js.KeyUpdates))
					}
					delete(active, id)
				}
			}
			if len(active) != 0 {
				t.Errorf("%d sessions never ended", len(active))
			}
			total := 0
			for _, m := range c.Messages {
				if m.DOEType == 2 {
					total++
				}
			}
			if decrypted != total {
				t.Fatalf("decrypted %d of %d secured records", decrypted, total)
			}
			t.Logf("%d sessions, %d secured records decrypted and parsed", len(c.Sessions), decrypted)
		})
	}
}

// startGoldenSession derives the session's keys with our schedule from the
// captured exchange and the session's input key material, and checks every
// value libspdm printed on the way.
func (c *goldenCase) startGoldenSession(t *testing.T, recs []goldenRecord, ks KeySchedule, js *goldenSession, reqP, rspP []byte) *goldenSessionState {
	t.Helper()
	eq := func(what string, got []byte, want string) {
		t.Helper()
		if want == "" {
			return // not printed by libspdm (PSK sessions)
		}
		if !bytes.Equal(got, goldenHex(t, want)) {
			t.Errorf("session 0x%s %s:\n  ours    %x\n  libspdm %s", js.SessionID, what, got, want)
		}
	}
	reqLen, rspLen, verifyAt := c.exchangeLengths(t, js, reqP, rspP)
	for name, pad := range map[string][]byte{"request": reqP[reqLen:], "response": rspP[rspLen:]} {
		if len(pad) >= 4 || !bytes.Equal(pad, make([]byte, len(pad))) {
			t.Fatalf("session 0x%s: exchange %s leaves % x", js.SessionID, name, pad)
		}
	}
	th := append(c.goldenSessionPrefix(t, recs, js), reqP[:reqLen]...)
	th = append(th, rspP[:verifyAt]...)
	th1 := goldenHash(c.hash, th)
	eq("TH1", th1, js.TH1)

	psk := js.Type == "psk"
	ikm := js.DHESecret
	if psk {
		ikm = js.PSK
	}
	var views [2]*Session
	for i, role := range []Role{RoleRequester, RoleResponder} {
		hs, err := ks.NewHandshakeSecret(goldenHex(t, ikm), psk)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			eq("handshake_secret", hs.Secret(), js.HandshakeSecret)
		}
		id := binary.LittleEndian.Uint16(reqP[4:]) // ReqSessionID
		rspID := binary.LittleEndian.Uint16(rspP[4:])
		sessionID := uint32(rspID)<<16 | uint32(id)
		if want := js.SessionID; hex.EncodeToString(binary.BigEndian.AppendUint32(nil, sessionID)) != want {
			t.Errorf("session ID (RspSessionID<<16 | ReqSessionID) = %08x, JSON %s", sessionID, want)
		}
		s, err := NewSession(sessionID, role, ks, hs, th1)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			k := s.hs
			eq("request_handshake_secret", k.ReqSecret, js.RequestHandshakeSecret)
			eq("response_handshake_secret", k.RspSecret, js.ResponseHandshakeSecret)
			eq("request_finished_key", k.ReqFinished, js.RequestFinishedKey)
			eq("response_finished_key", k.RspFinished, js.ResponseFinishedKey)
			eq("request_handshake_key", k.Req.Key, js.RequestHandshakeKey)
			eq("request_handshake_iv", k.Req.IV, js.RequestHandshakeIV)
			eq("response_handshake_key", k.Rsp.Key, js.ResponseHandshakeKey)
			eq("response_handshake_iv", k.Rsp.IV, js.ResponseHandshakeIV)
			eq("master_secret", s.master.Secret(), js.MasterSecret)
		}
		views[i] = s
	}
	// ResponderVerifyData = HMAC(response finished key, TH1).
	vd, _ := views[0].VerifyData(false, th1)
	if !hmac.Equal(vd, rspP[verifyAt:rspLen]) {
		t.Errorf("session 0x%s: ResponderVerifyData differs from HMAC(response finished key, TH1)", js.SessionID)
	}
	return &goldenSessionState{js: js, req: views[0], rsp: views[1], th: append(th, rspP[verifyAt:rspLen]...)}
}

// advance follows the session through one decrypted message: the finish
// pair establishes data keys, KEY_UPDATE moves keys, END_SESSION_ACK ends.
// It reports whether the session ended.
func (st *goldenSessionState) advance(t *testing.T, c *goldenCase, i int, msg []byte) bool {
	t.Helper()
	h, err := PeekHeader(msg)
	if err != nil {
		t.Fatalf("record %d: %v", i, err)
	}
	if h.Version != c.version {
		t.Errorf("record %d: %s inside the session has version %v", i, CodeName(h.Code), h.Version)
	}
	hs := c.hashSize
	switch h.Code {
	case CodeFinish, CodePSKFinish:
		// RequesterVerifyData = HMAC(request finished key, hash(TH so far,
		// the message up to the verify data)).
		if len(msg) < 4+hs {
			t.Fatalf("record %d: %s of %d bytes", i, CodeName(h.Code), len(msg))
		}
		body := msg[:len(msg)-hs]
		vd, _ := st.req.VerifyData(true, goldenHash(c.hash, st.th, body))
		if !hmac.Equal(vd, msg[len(msg)-hs:]) {
			t.Errorf("record %d: RequesterVerifyData does not verify", i)
		}
		st.finish = msg
	case CodeFinishRsp, CodePSKFinishRsp:
		th2 := goldenHash(c.hash, st.th, st.finish, msg)
		if want := goldenHex(t, st.js.TH2); !bytes.Equal(th2, want) {
			t.Errorf("record %d: TH2\n  ours    %x\n  libspdm %x", i, th2, want)
		}
		for _, v := range []*Session{st.req, st.rsp} {
			if err := v.Establish(th2); err != nil {
				t.Fatal(err)
			}
		}
		d := st.req.data
		for _, p := range []struct {
			what string
			got  []byte
			want string
		}{
			{"request_data_secret", d.ReqSecret, st.js.RequestDataSecret},
			{"response_data_secret", d.RspSecret, st.js.ResponseDataSecret},
			{"export_master_secret", d.ExportMaster, st.js.ExportMasterSecret},
			{"request_data_key", d.Req.Key, st.js.RequestDataKey},
			{"request_data_iv", d.Req.IV, st.js.RequestDataIV},
			{"response_data_key", d.Rsp.Key, st.js.ResponseDataKey},
			{"response_data_iv", d.Rsp.IV, st.js.ResponseDataIV},
		} {
			if p.want != "" && !bytes.Equal(p.got, goldenHex(t, p.want)) {
				t.Errorf("record %d: %s\n  ours    %x\n  libspdm %s", i, p.what, p.got, p.want)
			}
		}
	case CodeKeyUpdate:
		op := h.Param1
		st.pendingKU = op
		switch op {
		case 1: // UpdateKey: the requester's direction, after the ACK
			st.must(t, st.rsp.UpdateRecvKey())
		case 2: // UpdateAllKeys: the ACK already uses the new response key
			st.must(t, st.rsp.UpdateRecvKey())
			st.must(t, st.rsp.UpdateSendKey())
			st.must(t, st.req.UpdateRecvKey())
			st.checkUpdate(t, i, "response", st.req.data.RspSecret, st.req.data.Rsp)
		}
	case CodeKeyUpdateAck:
		if st.pendingKU == 1 || st.pendingKU == 2 {
			st.must(t, st.req.UpdateSendKey())
			st.checkUpdate(t, i, "request", st.req.data.ReqSecret, st.req.data.Req)
		}
		st.pendingKU = 0
	case CodeEndSessionAck:
		st.req.End()
		st.rsp.End()
		return true
	}
	return false
}

func (st *goldenSessionState) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkUpdate compares one key update with the next JSON entry.
func (st *goldenSessionState) checkUpdate(t *testing.T, i int, dir string, secret []byte, k DirectionKeys) {
	t.Helper()
	if st.updates >= len(st.js.KeyUpdates) {
		t.Errorf("record %d: key update beyond the %d libspdm logged", i, len(st.js.KeyUpdates))
		return
	}
	want := st.js.KeyUpdates[st.updates]
	st.updates++
	if want.Direction != dir {
		t.Errorf("record %d: key update %d is %s, libspdm logged %s", i, st.updates, dir, want.Direction)
	}
	for _, p := range []struct {
		what      string
		got       []byte
		wantValue string
	}{{"new_data_secret", secret, want.NewDataSecret}, {"key", k.Key, want.Key}, {"iv", k.IV, want.IV}} {
		if !bytes.Equal(p.got, goldenHex(t, p.wantValue)) {
			t.Errorf("record %d: key update %d %s\n  ours    %x\n  libspdm %s", i, st.updates, p.what, p.got, p.wantValue)
		}
	}
}
