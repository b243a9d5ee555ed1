package secchan_test

// Tests of the responder's secure sessions, driven with hand-built
// requests. The test side derives its own keys from its own transcripts
// (the exact bytes it sent and received) and uses Session with
// RoleRequester as its record layer, so the responder's transcript and
// key-schedule rules are checked independently of its own code.

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
	. "github.com/devattest/devattest/secchan"
)

func TestResponderKeyExchangeSessions(t *testing.T) {
	suites := []struct {
		name          string
		asym, hashAlg uint32
		dhe, aead     uint16
	}{
		{"P256-AES128", AsymECDSAP256, HashSHA256, DHESECP256R1, AEADAES128GCM},
		{"P384-AES256", AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM},
		{"P384-ChaCha", AsymECDSAP384, HashSHA384, DHESECP384R1, AEADChaCha20Poly1305},
		{"P256-ChaCha", AsymECDSAP256, HashSHA256, DHESECP256R1, AEADChaCha20Poly1305},
		{"P521-AES128", AsymECDSAP384, HashSHA512, DHESECP521R1, AEADAES128GCM},
	}
	for _, v := range []Version{V11, V12, V13} {
		for _, su := range suites {
			t.Run(v.String()+"/"+su.name, func(t *testing.T) {
				r, meas := newSTResponder(t, nil)
				c := stSetup(t, r, v, su.asym, su.hashAlg, su.dhe, su.aead)
				// With a measurement summary hash of all blocks.
				ss := c.keyExchangeRsp(0xABCD, SummaryAll, []uint16{SecuredVersion10, SecuredVersion11, SecuredVersion12}, false)
				want := rtDigest(c.hash, MarshalRecord(rtBlocks(meas.Measurements(), c.measHash, false)))
				if !bytes.Equal(ss.summary, want) {
					t.Fatalf("MeasurementSummaryHash %x, want %x", ss.summary, want)
				}
				if sel, err := DecodeVersionSelection(c.v, c.otherParams, ss.opaque); err != nil || sel != SecuredVersion12 {
					t.Fatalf("secured version 0x%04x, %v; want 1.2", sel, err)
				}
				if ids := r.Sessions(); len(ids) != 1 || ids[0] != SessionID(0xABCD, 0xFFFF) {
					t.Fatalf("sessions %x, want 0xffffabcd", ids)
				}
				if ss.period != 240 {
					t.Fatalf("heartbeat period %d, want the default 240", ss.period)
				}
				c.finish(ss)
				if ss.s.Phase() != PhaseEstablished {
					t.Fatal("not established")
				}
				c.heartbeat(ss)
				var l []byte
				c.measureIn(ss, &l, false)
				c.measureIn(ss, &l, true)
				// Plain measurements keep their own L1L2 alongside.
				c.measure(c.chain.Leaf().PublicKey, MeasAttrSignature, MeasOpAll)
				c.heartbeat(ss)
				c.endSession(ss)
				if len(r.Sessions()) != 0 {
					t.Fatal("session still live after END_SESSION")
				}
			})
		}
	}
}

// The secured-message version is the best one both sides speak.
func TestResponderSecuredVersionSelection(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss := c.keyExchangeRsp(1, SummaryNone, []uint16{SecuredVersion10, SecuredVersion11 | 0x05}, false)
	if sel, err := DecodeVersionSelection(c.v, c.otherParams, ss.opaque); err != nil || sel != SecuredVersion11 {
		t.Fatalf("secured version 0x%04x, %v; want 1.1", sel, err)
	}
	ke := KeyExchange{Version: c.v, ReqSessionID: 2, ExchangeData: make([]byte, 96), Opaque: EncodeSupportedVersions(c.v, c.otherParams, []uint16{0x2000})}
	rtWantError(t, c.send(ke.Marshal()), ErrCodeInvalidRequest, 0)
}

func TestResponderPSKSessions(t *testing.T) {
	for _, v := range []Version{V11, V12, V13} {
		for _, withContext := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/context=%v", v, withContext), func(t *testing.T) {
				r, _ := newSTResponder(t, func(cfg *ResponderConfig) {
					if !withContext {
						cfg.Caps = cfg.Caps&^CapPSKWithContext | CapPSK
					}
				})
				c := stNewConn(t, r, v, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
				c.vca()
				ss := c.pskOpen(0x1234, withContext)
				if ss.period != 240 {
					t.Fatalf("heartbeat period %d", ss.period)
				}
				c.heartbeat(ss)
				c.keyUpdate(ss, KeyUpdateOpUpdateAllKeys)
				c.heartbeat(ss)
				c.endSession(ss)
			})
		}
	}
}

// The PSK session's transcripts match the libspdm corpus rules; the
// unknown hint, and PSK_FINISH on a responder without context, are
// refused.
func TestResponderPSKErrors(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stNewConn(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	c.vca()
	pe := PSKExchange{Version: c.v, ReqSessionID: 1, PSKHint: []byte("other hint"), Context: make([]byte, 48),
		Opaque: EncodeSupportedVersions(c.v, c.otherParams, []uint16{SecuredVersion12})}
	rtWantError(t, c.send(pe.Marshal()), ErrCodeInvalidRequest, 0)
	if len(r.Sessions()) != 0 {
		t.Fatal("a session was opened")
	}
	// KEY_EXCHANGE session: PSK_FINISH in it is unexpected.
	c.chain = c.certificate(4096)
	ss := c.keyExchangeRsp(2, SummaryNone, []uint16{SecuredVersion12}, false)
	header := (&PSKFinish{Version: c.v}).Marshal()
	rtWantError(t, c.sec(ss.s, append(header, make([]byte, 48)...)), ErrCodeUnexpectedRequest, 0)
	c.finish(ss)

	r2, _ := newSTResponder(t, func(cfg *ResponderConfig) { cfg.Caps = cfg.Caps&^CapPSKWithContext | CapPSK })
	c2 := stNewConn(t, r2, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	c2.vca()
	ss2 := c2.pskOpen(3, false)
	rtWantError(t, c2.sec(ss2.s, append(header, make([]byte, 48)...)), ErrCodeUnsupportedRequest, CodePSKFinish)
}

func TestResponderKeyUpdate(t *testing.T) {
	for _, op := range []uint8{KeyUpdateOpUpdateKey, KeyUpdateOpUpdateAllKeys} {
		t.Run(fmt.Sprint("op", op), func(t *testing.T) {
			r, _ := newSTResponder(t, nil)
			c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADChaCha20Poly1305)
			ss := c.open(7)
			c.keyUpdate(ss, op)
			c.heartbeat(ss)
			c.keyUpdate(ss, op)
			var l []byte
			c.measureIn(ss, &l, true)
			c.endSession(ss)
		})
	}
	t.Run("errors", func(t *testing.T) {
		r, _ := newSTResponder(t, nil)
		c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
		ss := c.open(7)
		verify := (&KeyUpdate{Version: c.v, Operation: KeyUpdateOpVerifyNewKey}).Marshal()
		rtWantError(t, c.sec(ss.s, verify), ErrCodeInvalidRequest, 0)
		rtWantError(t, c.sec(ss.s, []byte{byte(c.v), CodeKeyUpdate, 4, 0}), ErrCodeInvalidRequest, 0)
		// UpdateKey, then a second update before VerifyNewKey.
		c.secMust(ss.s, (&KeyUpdate{Version: c.v, Operation: KeyUpdateOpUpdateKey}).Marshal(), CodeKeyUpdateAck)
		if err := ss.s.UpdateSendKey(); err != nil {
			t.Fatal(err)
		}
		rtWantError(t, c.sec(ss.s, (&KeyUpdate{Version: c.v, Operation: KeyUpdateOpUpdateAllKeys}).Marshal()), ErrCodeInvalidRequest, 0)
		c.secMust(ss.s, verify, CodeKeyUpdateAck)
		c.heartbeat(ss)
	})
	t.Run("old key refused", func(t *testing.T) {
		r, _ := newSTResponder(t, nil)
		c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
		ss := c.open(7)
		c.secMust(ss.s, (&KeyUpdate{Version: c.v, Operation: KeyUpdateOpUpdateKey}).Marshal(), CodeKeyUpdateAck)
		// The requester keeps its old key: the responder has moved on.
		if _, err := c.secTry(ss.s, (&Heartbeat{Version: c.v}).Marshal()); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("record under the old key: %v, want ErrDecrypt", err)
		}
		if len(r.Sessions()) != 0 {
			t.Fatal("session survived a record that failed authentication")
		}
	})
}

func TestResponderEndSessionRefusesRecords(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V13, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss := c.open(1)
	// END_SESSION with the Negotiated State Clearing Indicator.
	c.secMust(ss.s, (&EndSession{Version: c.v, ClearNegotiatedState: true}).Marshal(), CodeEndSessionAck)
	rec, err := ss.s.Seal((&Heartbeat{Version: c.v}).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RespondSecured(context.Background(), rec); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("record after END_SESSION: %v, want ErrUnknownSession", err)
	}
	// The connection itself goes on.
	c.measure(c.chain.Leaf().PublicKey, MeasAttrSignature, MeasOpAll)
	ss2 := c.open(1)
	if ss2.s.ID != ss.s.ID {
		t.Fatalf("session ID 0x%08x, want 0x%08x reused as libspdm does", ss2.s.ID, ss.s.ID)
	}
	c.heartbeat(ss2)
}

func TestResponderTwoSessions(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	a := c.open(0x0001)
	b := c.open(0x0001) // the same ReqSessionID: the responder's half differs
	p := c.pskOpen(0x0001, true)
	ids := map[uint32]bool{a.s.ID: true, b.s.ID: true, p.s.ID: true}
	if len(ids) != 3 || a.s.ID != 0xFFFF0001 || b.s.ID != 0xFFFE0001 || p.s.ID != 0xFFFD0001 {
		t.Fatalf("session IDs 0x%08x 0x%08x 0x%08x", a.s.ID, b.s.ID, p.s.ID)
	}
	var la, lb []byte
	c.measureIn(a, &la, false)
	c.measureIn(b, &lb, false)
	c.heartbeat(a)
	la = nil                  // the heartbeat ended a's L1L2
	c.measureIn(b, &lb, true) // b's L1L2 holds b's pairs only
	c.measureIn(a, &la, true)
	c.keyUpdate(b, KeyUpdateOpUpdateAllKeys)
	c.heartbeat(a)
	c.heartbeat(p)
	c.endSession(a)
	c.heartbeat(b)
	c.endSession(b)
	c.endSession(p)
}

func TestResponderSessionLimit(t *testing.T) {
	r, _ := newSTResponder(t, func(cfg *ResponderConfig) { cfg.MaxSessions = 2 })
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	a := c.open(1)
	hs := c.keyExchangeRsp(2, SummaryNone, []uint16{SecuredVersion12}, false) // a handshake counts too
	ke := KeyExchange{Version: c.v, ReqSessionID: 3, ExchangeData: make([]byte, 96), Opaque: EncodeSupportedVersions(c.v, c.otherParams, []uint16{SecuredVersion12})}
	rtWantError(t, c.send(ke.Marshal()), ErrCodeSessionLimitExceeded, 0)
	pe := PSKExchange{Version: c.v, ReqSessionID: 3, PSKHint: stPSKHint, Context: make([]byte, 48)}
	rtWantError(t, c.send(pe.Marshal()), ErrCodeSessionLimitExceeded, 0)
	c.finish(hs)
	c.endSession(a)
	b := c.open(3)
	c.heartbeat(b)
	c.heartbeat(hs)
}

// A FINISH whose RequesterVerifyData is wrong gets a secured
// ERROR(DecryptError) and the session ends.
func TestResponderFinishBadMAC(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss := c.keyExchangeRsp(9, SummaryNone, []uint16{SecuredVersion12}, false)
	req := c.finishMsg(ss)
	req[len(req)-1] ^= 1
	rtWantError(t, c.sec(ss.s, req), ErrCodeDecryptError, 0)
	if len(r.Sessions()) != 0 {
		t.Fatal("session survived a bad FINISH")
	}
	if _, err := c.secTry(ss.s, c.finishMsg(ss)); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("FINISH after the failed one: %v, want ErrUnknownSession", err)
	}
}

// A record that fails authentication, or names no session, is an error
// without a response; the former ends its session.
func TestResponderBadRecords(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss := c.open(1)
	other := c.open(2)
	rec, err := ss.s.Seal((&Heartbeat{Version: c.v}).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	unknown := slices.Clone(rec)
	unknown[2] = 0x42 // RspSessionID 0x..42: no such session
	if _, err := r.RespondSecured(context.Background(), unknown); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("unknown session ID: %v", err)
	}
	if _, err := r.RespondSecured(context.Background(), rec[:5]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated record: %v", err)
	}
	rec[len(rec)-1] ^= 0x80
	if _, err := r.RespondSecured(context.Background(), rec); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered record: %v, want ErrDecrypt", err)
	}
	if ids := r.Sessions(); len(ids) != 1 || ids[0] != other.s.ID {
		t.Fatalf("sessions %x after the tampered record", ids)
	}
	c.heartbeat(other)
}

func TestResponderVendorDefined(t *testing.T) {
	type call struct {
		session uint32
		req     []byte
	}
	var calls []call
	hook := func(_ context.Context, session uint32, req []byte) ([]byte, error) {
		calls = append(calls, call{session, slices.Clone(req)})
		var m VendorDefinedRequest
		if _, err := m.Decode(req); err != nil {
			return nil, err
		}
		if len(m.Payload) > 0 && m.Payload[0] == 0xEE {
			return nil, ErrCodeInvalidRequest
		}
		if len(m.Payload) > 0 && m.Payload[0] == 0xBB {
			return []byte{byte(m.Version), CodeVendorDefinedRsp, 0, 0}, nil // malformed
		}
		return (&VendorDefinedResponse{Version: m.Version, StandardID: m.StandardID, VendorID: m.VendorID,
			Payload: append([]byte{0x01}, m.Payload...)}).Marshal(), nil
	}
	r, _ := newSTResponder(t, func(cfg *ResponderConfig) { cfg.VendorHandler = hook })
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss := c.open(1)
	req := (&VendorDefinedRequest{Version: c.v, StandardID: RegistryPCISIG, VendorID: []byte{0x01, 0x00}, Payload: []byte{0x00, 0x01, 0x02}}).Marshal()
	resp := c.secMust(ss.s, req, CodeVendorDefinedRsp)
	var m VendorDefinedResponse
	if _, err := m.Decode(resp); err != nil || !bytes.Equal(m.Payload, []byte{0x01, 0x00, 0x01, 0x02}) {
		t.Fatalf("VENDOR_DEFINED_RESPONSE % x: %v", resp, err)
	}
	if len(calls) != 1 || calls[0].session != ss.s.ID || !bytes.Equal(calls[0].req, req) {
		t.Fatalf("hook calls %+v", calls)
	}
	bad := (&VendorDefinedRequest{Version: c.v, StandardID: RegistryPCISIG, VendorID: []byte{0x01, 0x00}, Payload: []byte{0xEE}}).Marshal()
	rtWantError(t, c.sec(ss.s, bad), ErrCodeInvalidRequest, 0)
	malformed := (&VendorDefinedRequest{Version: c.v, StandardID: RegistryPCISIG, VendorID: []byte{0x01, 0x00}, Payload: []byte{0xBB}}).Marshal()
	rtWantError(t, c.sec(ss.s, malformed), ErrCodeUnspecified, 0)
	// Outside a session the hook sees session 0.
	c.must(req, CodeVendorDefinedRsp)
	if last := calls[len(calls)-1]; last.session != 0 {
		t.Fatalf("plain VENDOR_DEFINED reached the hook as session 0x%08x", last.session)
	}
	rtWantError(t, c.send([]byte{byte(c.v), CodeVendorDefinedReq, 0, 0, 3, 0}), ErrCodeInvalidRequest, 0)

	// Without a hook: UnsupportedRequest, in and out of sessions.
	r2, _ := newSTResponder(t, nil)
	c2 := stSetup(t, r2, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss2 := c2.open(1)
	rtWantError(t, c2.sec(ss2.s, req), ErrCodeUnsupportedRequest, CodeVendorDefinedReq)
	rtWantError(t, c2.send(req), ErrCodeUnsupportedRequest, CodeVendorDefinedReq)
}

// Session requests outside a session, and connection requests inside
// one, are refused as libspdm does.
func TestResponderSessionRequestPlacement(t *testing.T) {
	for _, v := range []Version{V11, V12} {
		t.Run(v.String(), func(t *testing.T) {
			r, _ := newSTResponder(t, nil)
			c := stSetup(t, r, v, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
			want := ErrCodeSessionRequired
			if v == V11 {
				want = ErrCodeUnexpectedRequest
			}
			for _, req := range [][]byte{
				(&Heartbeat{Version: v}).Marshal(),
				(&KeyUpdate{Version: v, Operation: KeyUpdateOpUpdateKey}).Marshal(),
				(&EndSession{Version: v}).Marshal(),
				append((&PSKFinish{Version: v}).Marshal(), make([]byte, 48)...),
				append((&Finish{Version: v}).Marshal(), make([]byte, 48)...),
			} {
				rtWantError(t, c.send(req), want, 0)
			}
			ss := c.keyExchangeRsp(1, SummaryNone, []uint16{SecuredVersion12}, false)
			// In the handshake phase only FINISH is expected.
			rtWantError(t, c.sec(ss.s, (&Heartbeat{Version: v}).Marshal()), ErrCodeUnexpectedRequest, 0)
			rtWantError(t, c.sec(ss.s, (&GetMeasurements{Version: v, Operation: MeasOpAll}).Marshal()), ErrCodeUnexpectedRequest, 0)
			c.finish(ss)
			rtWantError(t, c.sec(ss.s, append((&Finish{Version: v}).Marshal(), make([]byte, 48)...)), ErrCodeUnexpectedRequest, 0)
			for _, req := range [][]byte{
				(&GetVersion{}).Marshal(),
				(&NegotiateAlgorithms{Version: v, BaseAsymAlgo: c.asym, BaseHashAlgo: c.hashAlg}).Marshal(),
				(&Challenge{Version: v}).Marshal(),
				(&KeyExchange{Version: v, ExchangeData: make([]byte, 96)}).Marshal(),
			} {
				rtWantError(t, c.sec(ss.s, req), ErrCodeUnexpectedRequest, 0)
			}
			rtWantError(t, c.sec(ss.s, []byte{byte(v), 0xEF, 0, 0}), ErrCodeUnsupportedRequest, 0xEF)
			rtWantError(t, c.sec(ss.s, []byte{byte(v), CodeHeartbeat, 1, 0}), ErrCodeInvalidRequest, 0)
			rtWantError(t, c.sec(ss.s, []byte{byte(v)}), ErrCodeInvalidRequest, 0)
			// The session still works; digests and certificates are served in it.
			c.heartbeat(ss)
			c.secMust(ss.s, (&GetDigests{Version: v}).Marshal(), CodeDigests)
			c.secMust(ss.s, (&GetCertificate{Version: v, Length: 100}).Marshal(), CodeCertificate)
		})
	}
}

// GET_VERSION and Reset end every session.
func TestResponderConnectionResetEndsSessions(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	a := c.open(1)
	b := c.pskOpen(2, true)
	c.must((&GetVersion{}).Marshal(), CodeVersion)
	if len(r.Sessions()) != 0 {
		t.Fatal("sessions survive GET_VERSION")
	}
	for _, ss := range []*stSession{a, b} {
		if _, err := c.secTry(ss.s, (&Heartbeat{Version: c.v}).Marshal()); !errors.Is(err, ErrUnknownSession) {
			t.Fatalf("record after GET_VERSION: %v", err)
		}
	}
	c = stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	a = c.open(1)
	r.Reset()
	if _, err := c.secTry(a.s, (&Heartbeat{Version: c.v}).Marshal()); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("record after Reset: %v", err)
	}
}

// Without a request for twice the heartbeat period the session ends.
func TestResponderHeartbeatTimeout(t *testing.T) {
	r, _ := newSTResponder(t, func(cfg *ResponderConfig) { cfg.HeartbeatPeriod = 10 })
	now := time.Now()
	SetResponderClock(r, func() time.Time { return now })
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss := c.open(1)
	if ss.period != 10 {
		t.Fatalf("heartbeat period %d", ss.period)
	}
	now = now.Add(19 * time.Second)
	c.heartbeat(ss)
	now = now.Add(20 * time.Second)
	c.heartbeat(ss)
	now = now.Add(21 * time.Second)
	if _, err := c.secTry(ss.s, (&Heartbeat{Version: c.v}).Marshal()); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("record after the timeout: %v", err)
	}
}

// Without HBEAT on the requester's side, no period is announced and
// HEARTBEAT is unsupported.
func TestResponderHeartbeatNotNegotiated(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stNewConn(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	c.caps &^= CapHbeat
	c.vca()
	c.chain = c.certificate(4096)
	ke := KeyExchange{Version: c.v, ReqSessionID: 1, Opaque: EncodeSupportedVersions(c.v, c.otherParams, []uint16{SecuredVersion12})}
	priv, _ := ecdh.P384().GenerateKey(rand.Reader)
	ke.ExchangeData = priv.PublicKey().Bytes()[1:]
	resp := c.must(ke.Marshal(), CodeKeyExchangeRsp)
	if resp[2] != 0 {
		t.Fatalf("HeartbeatPeriod %d without the requester's HBEAT", resp[2])
	}
}

// With HANDSHAKE_IN_THE_CLEAR on both sides, KEY_EXCHANGE_RSP has no
// verify data; FINISH and FINISH_RSP go in the clear, FINISH_RSP with
// ResponderVerifyData.
func TestResponderHandshakeInClear(t *testing.T) {
	r, _ := newSTResponder(t, func(cfg *ResponderConfig) { cfg.Caps |= CapHandshakeInClr })
	c := stNewConn(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	c.caps |= CapHandshakeInClr
	c.vca()
	c.chain = c.certificate(4096)
	ss := c.keyExchangeRsp(1, SummaryNone, []uint16{SecuredVersion12}, true)
	// Encrypted, FINISH is refused: the session expects it in the clear.
	rtWantError(t, c.sec(ss.s, c.finishMsg(ss)), ErrCodeUnexpectedRequest, 0)
	// A FINISH in the clear goes to the latest KEY_EXCHANGE: ss's
	// FINISH does not verify for ss2, which ends.
	ss2 := c.keyExchangeRsp(2, SummaryNone, []uint16{SecuredVersion12}, true)
	rtWantError(t, c.send(c.finishMsg(ss)), ErrCodeDecryptError, 0)
	if ids := r.Sessions(); len(ids) != 1 || ids[0] != ss.s.ID {
		t.Fatalf("sessions %x", ids)
	}
	ss2 = c.keyExchangeRsp(3, SummaryNone, []uint16{SecuredVersion12}, true)
	req := c.finishMsg(ss2)
	resp := c.must(req, CodeFinishRsp)
	var m FinishRsp
	if n, err := m.Decode(resp, c.hash.Size()); err != nil || n != len(resp) {
		t.Fatalf("FINISH_RSP: %v", err)
	}
	want, _ := ss2.s.VerifyData(false, c.th(ss2.th, req, resp[:4]))
	if !bytes.Equal(want, m.VerifyData) {
		t.Fatal("FINISH_RSP ResponderVerifyData")
	}
	if err := ss2.s.Establish(c.th(ss2.th, req, resp)); err != nil {
		t.Fatal(err)
	}
	c.heartbeat(ss2)
	c.endSession(ss2)
	rtWantError(t, c.send(req), ErrCodeSessionRequired, 0) // no handshake left to finish
}

// Requests that cannot open a session.
func TestResponderExchangeErrors(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	opaque := EncodeSupportedVersions(c.v, c.otherParams, []uint16{SecuredVersion12})
	priv, _ := ecdh.P384().GenerateKey(rand.Reader)
	good := KeyExchange{Version: c.v, ReqSessionID: 1, ExchangeData: priv.PublicKey().Bytes()[1:], Opaque: opaque}
	for name, mod := range map[string]func(*KeyExchange){
		"slot 1":        func(m *KeyExchange) { m.Slot = 1 },
		"slot 0xFF":     func(m *KeyExchange) { m.Slot = 0xFF },
		"not a point":   func(m *KeyExchange) { m.ExchangeData = make([]byte, 96) },
		"bad opaque":    func(m *KeyExchange) { m.Opaque = []byte{1, 2, 3, 4} },
		"short data":    func(m *KeyExchange) { m.ExchangeData = m.ExchangeData[:64] },
		"version":       func(m *KeyExchange) { m.Version = V11 },
		"summary type":  func(m *KeyExchange) { m.SummaryType = 2 },
		"policy 1.3bit": func(m *KeyExchange) { m.SessionPolicy = SessionPolicyEventAll },
	} {
		m := good
		mod(&m)
		resp := c.send(m.Marshal())
		e, ok := rtErr(resp)
		if !ok || (e.Code != ErrCodeInvalidRequest && !(name == "version" && e.Code == ErrCodeVersionMismatch)) {
			t.Errorf("%s: % x", name, resp)
		}
	}
	if len(r.Sessions()) != 0 {
		t.Fatal("a bad KEY_EXCHANGE opened a session")
	}
	c.must(good.Marshal(), CodeKeyExchangeRsp)

	// Before ALGORITHMS: unexpected. Without the requester's KEY_EX:
	// unsupported. A 1.2 connection without OpaqueDataFmt1: invalid.
	r2, _ := newSTResponder(t, nil)
	c2 := stNewConn(t, r2, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	rtWantError(t, c2.send(good.Marshal()), ErrCodeUnexpectedRequest, 0)
	c2.caps &^= CapKeyEx
	c2.vca()
	rtWantError(t, c2.send(good.Marshal()), ErrCodeUnsupportedRequest, CodeKeyExchange)

	r3, _ := newSTResponder(t, nil)
	c3 := stNewConn(t, r3, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	c3.caps &^= CapEncrypt
	c3.vca()
	rtWantError(t, c3.send(good.Marshal()), ErrCodeInvalidRequest, 0)

	// A responder without session caps knows none of it.
	r4, _ := newRTResponder(t, ResponderConfig{})
	c4 := stNewConn(t, r4, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	c4.caps = CapCert | CapChal | CapChunk
	req := (&GetVersion{}).Marshal()
	c4.must(req, CodeVersion)
	c4.must((&GetCapabilities{Version: c4.v, Flags: c4.caps, DataTransferSize: 4096, MaxSPDMmsgSize: 4096}).Marshal(), CodeCapabilities)
	c4.must((&NegotiateAlgorithms{Version: c4.v, BaseAsymAlgo: c4.asym, BaseHashAlgo: c4.hashAlg}).Marshal(), CodeAlgorithms)
	for _, req := range [][]byte{good.Marshal(), (&PSKExchange{Version: c4.v}).Marshal(), (&Heartbeat{Version: c4.v}).Marshal()} {
		rtWantError(t, c4.send(req), ErrCodeUnsupportedRequest, req[1])
	}
}

func TestResponderSecuredDOE(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	ss := c.open(1)
	rec, _ := ss.s.Seal((&Heartbeat{Version: c.v}).Marshal())
	out, err := r.HandleSecuredDOE(context.Background(), doe.NewObject(doe.ProtocolSecuredCMA, rec))
	if err != nil || out.Protocol() != doe.ProtocolSecuredCMA || len(out.Payload)%4 != 0 {
		t.Fatalf("HandleSecuredDOE: %v %v", out.Protocol(), err)
	}
	if msg, err := ss.s.Open(out.Payload); err != nil || msg[1] != CodeHeartbeatAck {
		t.Fatalf("HEARTBEAT_ACK: % x %v", msg, err)
	}
	if _, err := r.HandleSecuredDOE(context.Background(), doe.NewObject(doe.ProtocolCMA, rec)); err == nil {
		t.Fatal("HandleSecuredDOE took a CMA object")
	}
}

func TestNewResponderRejectsSessionConfigs(t *testing.T) {
	_, ids := rtIdentities()
	psks := map[string][]byte{"h": []byte("k")}
	for name, cfg := range map[string]ResponderConfig{
		"PSK and PSK_WITH_CONTEXT": {Caps: CapCert | CapPSK | CapPSKWithContext | CapEncrypt | CapMAC, PSKs: psks},
		"KEY_EX without MAC":       {Caps: CapCert | CapKeyEx | CapEncrypt},
		"KEY_EX without ENCRYPT":   {Caps: CapCert | CapKeyEx | CapMAC},
		"HBEAT without sessions":   {Caps: CapCert | CapHbeat},
		"KEY_EX without CERT":      {Caps: CapKeyEx | CapEncrypt | CapMAC},
		"PSK without PSKs":         {Caps: CapCert | CapPSK | CapEncrypt | CapMAC},
		"PSKs without PSK":         {Caps: CapCert | CapKeyEx | CapEncrypt | CapMAC, PSKs: psks},
		"empty PSK":                {Caps: CapCert | CapPSK | CapEncrypt | CapMAC, PSKs: map[string][]byte{"h": nil}},
		"long hint":                {Caps: CapCert | CapPSK | CapEncrypt | CapMAC, PSKs: map[string][]byte{string(make([]byte, 33)): []byte("k")}},
		"in the clear, PSK only":   {Caps: CapCert | CapPSK | CapEncrypt | CapMAC | CapHandshakeInClr, PSKs: psks},
		"MUT_AUTH":                 {Caps: CapCert | CapKeyEx | CapEncrypt | CapMAC | CapMutAuth},
		"MaxSessions":              {Caps: CapCert | CapKeyEx | CapEncrypt | CapMAC, MaxSessions: -1},
	} {
		cfg.Identities = []Identity{ids[AsymECDSAP384]}
		if _, err := NewResponder(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Session-based mutual authentication with a provisioned requester chain:
// MutAuthRequested 1h, FINISH signed by the requester, the requester's
// chain hash in the FINISH transcript and TH2.
func TestResponderMutualAuth(t *testing.T) {
	_, ids := rtIdentities()
	reqID := ids[AsymECDSAP256]
	mod := func(cfg *ResponderConfig) {
		cfg.Caps |= CapMutAuth
		cfg.MutualAuth = &RequesterChain{Chain: reqID.Chain, Root: reqID.Root}
	}
	for _, v := range []Version{V11, V12, V13} {
		t.Run(v.String(), func(t *testing.T) {
			r, _ := newSTResponder(t, mod)
			c := stNewConn(t, r, v, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
			c.caps |= CapMutAuth | CapEncap
			c.reqAsym, c.mutual = uint16(AsymECDSAP256|AsymECDSAP384), &reqID
			c.vca()
			if v == V11 && c.rspCaps&CapMutAuth != 0 {
				t.Fatal("1.1 CAPABILITIES offers MUT_AUTH without ENCAP")
			}
			c.chain = c.certificate(4096)
			ss := c.keyExchangeRsp(1, SummaryNone, []uint16{SecuredVersion12}, false)
			c.finish(ss)
			c.heartbeat(ss)
			var l []byte
			c.measureIn(ss, &l, true)
			c.endSession(ss)
		})
	}
	t.Run("bad FINISH", func(t *testing.T) {
		r, _ := newSTResponder(t, mod)
		c := stNewConn(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
		c.caps |= CapMutAuth
		c.reqAsym, c.mutual = uint16(AsymECDSAP256|AsymECDSAP384), &reqID
		c.vca()
		c.chain = c.certificate(4096)
		ss := c.keyExchangeRsp(1, SummaryNone, []uint16{SecuredVersion12}, false)
		// Without the signature.
		noSig := append((&Finish{Version: c.v}).Marshal(), make([]byte, 48)...)
		rtWantError(t, c.sec(ss.s, noSig), ErrCodeInvalidRequest, 0)
		// Signed by a key that is not the chain's.
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c.mutual = &Identity{Chain: reqID.Chain, Root: reqID.Root, Key: other}
		rtWantError(t, c.sec(ss.s, c.finishMsg(ss)), ErrCodeDecryptError, 0)
		if len(r.Sessions()) != 0 {
			t.Fatal("session survived a bad FINISH signature")
		}
	})
	t.Run("requester without MUT_AUTH", func(t *testing.T) {
		r, _ := newSTResponder(t, mod)
		c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
		c.heartbeat(c.open(1)) // no mutual authentication asked for
	})
}

// FuzzResponderSecuredRequest sends any plaintext inside an established
// session: the responder must answer every one with a record the session
// opens (an ERROR where nothing else fits), never fail or panic, and keep
// the session usable unless the request ended it.
func FuzzResponderSecuredRequest(f *testing.F) {
	v := byte(V12)
	for _, seed := range [][]byte{
		{v, CodeHeartbeat, 0, 0},
		{v, CodeKeyUpdate, KeyUpdateOpVerifyNewKey, 1},
		{v, CodeKeyUpdate, KeyUpdateOpUpdateAllKeys, 0x30},
		{v, CodeEndSession, 1, 0},
		{v, CodeGetMeasurements, 0, MeasOpAll},
		{v, CodeGetDigests, 0, 0},
		{v, CodeGetCertificate, 0, 0, 0, 0, 0x10, 0},
		{v, CodeFinish, 0, 0},
		{v, CodePSKFinish, 0, 0},
		{v, CodeVendorDefinedReq, 0, 0, 3, 0, 2, 1, 0, 1, 0, 0},
		{v, CodeChunkGet, 0, 1, 0, 0},
		{v, CodeGetVersion, 0, 0},
		{v},
		{},
	} {
		f.Add(seed)
	}
	hook := func(_ context.Context, _ uint32, req []byte) ([]byte, error) {
		return (&VendorDefinedResponse{Version: Version(req[0]), StandardID: RegistryPCISIG, VendorID: []byte{1, 0}}).Marshal(), nil
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		if len(req) > 1024 {
			return
		}
		r, _ := newSTResponder(t, func(cfg *ResponderConfig) { cfg.VendorHandler = hook })
		c := stSetup(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
		ss := c.open(1)
		rec, err := ss.s.Seal(req)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.RespondSecured(context.Background(), rec)
		if err != nil {
			t.Fatalf("% x: %v", req, err)
		}
		if len(req) == 4 && req[0] == v && req[1] == CodeKeyUpdate && req[2] == KeyUpdateOpUpdateAllKeys {
			// A valid UpdateAllKeys: the ACK comes under the new key.
			if err := ss.s.UpdateRecvKey(); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := ss.s.Open(out)
		if err != nil {
			t.Fatalf("% x: opening the answer: %v", req, err)
		}
		if len(resp) < 4 || Version(resp[0]) != V12 {
			t.Fatalf("% x answered % x", req, resp)
		}
		if len(r.Sessions()) == 0 || resp[1] == CodeKeyUpdateAck {
			return // ended, or keys moved
		}
		c.heartbeat(ss)
	})
}

// TestResponderChunkStaysInItsChannel: a large response to a request made
// inside a session is read with CHUNK_GET in that session only; a
// CHUNK_GET in the clear or in another session gets none of it, and the
// transfer stays open for its own session.
func TestResponderChunkStaysInItsChannel(t *testing.T) {
	r, _ := newSTResponder(t, nil)
	c := stNewConn(t, r, V12, AsymECDSAP384, HashSHA384, DHESECP384R1, AEADAES256GCM)
	c.caps |= CapChunk
	c.dts, c.max = MinDataTransferSize, 1<<16
	c.vca()
	c.chain = c.certificate(4096)
	a, b := c.open(0x0001), c.open(0x0002)

	e, ok := rtErr(c.sec(a.s, (&GetMeasurements{Version: V12, Operation: MeasOpAll}).Marshal()))
	if !ok || e.Code != ErrCodeLargeResponse || len(e.Ext) != 1 {
		t.Fatalf("GET_MEASUREMENTS in session a: want ERROR(LargeResponse), got %+v", e)
	}
	get := (&ChunkGet{Version: V12, Handle: e.Ext[0]}).Marshal()
	rtWantError(t, r.Respond(context.Background(), get), ErrCodeUnexpectedRequest, 0)
	rtWantError(t, c.sec(b.s, get), ErrCodeUnexpectedRequest, 0)
	resp := c.sec(a.s, get)
	var m ChunkResponse
	if _, err := m.Decode(resp); err != nil || m.Handle != e.Ext[0] || m.Seq != 0 || m.LargeMessageSize == 0 {
		t.Fatalf("CHUNK_GET in session a: %+v %v (% x)", m, err, resp)
	}
}
