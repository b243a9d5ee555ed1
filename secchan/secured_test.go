package secchan

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
)

// sessionPair makes a requester and a responder session sharing keys.
func sessionPair(t testing.TB, aead uint16) (req, rsp *Session) {
	t.Helper()
	ks := KeySchedule{Version: V12, Hash: crypto.SHA384, AEAD: aead}
	ikm := bytes.Repeat([]byte{0x42}, 48)
	th1 := bytes.Repeat([]byte{1}, 48)
	for _, role := range []Role{RoleRequester, RoleResponder} {
		hs, err := ks.NewHandshakeSecret(ikm, false)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(0xfffefffd, role, ks, hs, th1)
		if err != nil {
			t.Fatal(err)
		}
		if role == RoleRequester {
			req = s
		} else {
			rsp = s
		}
	}
	return req, rsp
}

func establish(t testing.TB, sessions ...*Session) {
	t.Helper()
	th2 := bytes.Repeat([]byte{2}, 48)
	for _, s := range sessions {
		if err := s.Establish(th2); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSecuredRoundTripEverySuite(t *testing.T) {
	for _, aead := range []uint16{AEADAES128GCM, AEADAES256GCM, AEADChaCha20Poly1305} {
		t.Run(AEADName(aead), func(t *testing.T) {
			req, rsp := sessionPair(t, aead)
			for phase := 0; phase < 2; phase++ {
				for i := 0; i < 3; i++ {
					msg := []byte{0x12, CodeHeartbeat, byte(i), 0}
					rec, err := req.Seal(msg)
					if err != nil {
						t.Fatal(err)
					}
					// DOE pads the record to a DW; Open accepts that.
					padded := append(rec, make([]byte, (4-len(rec)%4)%4)...)
					got, err := rsp.Open(padded)
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("phase %d record %d: %x, %v", phase, i, got, err)
					}
					back, err := rsp.Seal(msg)
					if err != nil {
						t.Fatal(err)
					}
					if got, err := req.Open(back); err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("phase %d reply %d: %v", phase, i, err)
					}
				}
				if phase == 0 {
					establish(t, req, rsp)
				}
			}
		})
	}
}

func TestSecuredRejectsTamperReplayReorder(t *testing.T) {
	msgs := [][]byte{{0x12, CodeHeartbeat, 0, 0}, {0x12, CodeEndSession, 0, 0}}
	cases := map[string]func(recs [][]byte) [][]byte{
		"tampered ciphertext": func(r [][]byte) [][]byte { r[0][8] ^= 1; return r[:1] },
		"tampered header":     func(r [][]byte) [][]byte { r[0][4] ^= 1; return r[:1] },
		"tampered tag":        func(r [][]byte) [][]byte { r[0][len(r[0])-1] ^= 1; return r[:1] },
		"replayed":            func(r [][]byte) [][]byte { return [][]byte{r[0], r[0]} },
		"reordered":           func(r [][]byte) [][]byte { return [][]byte{r[1], r[0]} },
		"dropped":             func(r [][]byte) [][]byte { return r[1:] },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			req, rsp := sessionPair(t, AEADAES256GCM)
			establish(t, req, rsp)
			var recs [][]byte
			for _, m := range msgs {
				r, err := req.Seal(m)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, r)
			}
			var err error
			for _, r := range mutate(recs) {
				if _, err = rsp.Open(r); err != nil {
					break
				}
			}
			if err == nil {
				t.Fatal("every record was accepted")
			}
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrDecrypt or ErrMalformed", err)
			}
			if errors.Is(err, ErrDecrypt) {
				if rsp.Phase() != PhaseEnded {
					t.Fatal("a failed authentication left the session open")
				}
				if _, err := rsp.Seal(msgs[0]); !errors.Is(err, ErrSessionEnded) {
					t.Fatalf("sealing after the failure: %v", err)
				}
			}
		})
	}
}

func TestSecuredWrongSessionAndFraming(t *testing.T) {
	req, rsp := sessionPair(t, AEADAES128GCM)
	rec, _ := req.Seal([]byte{0x12, CodeHeartbeat, 0, 0})
	other := append([]byte(nil), rec...)
	other[0] ^= 0xFF
	if _, err := rsp.Open(other); !errors.Is(err, ErrSessionID) {
		t.Fatalf("record of another session: %v", err)
	}
	for name, b := range map[string][]byte{
		"short header":   rec[:5],
		"short body":     rec[:len(rec)-1],
		"non-zero pad":   append(append([]byte(nil), rec...), 1),
		"pad of 4 bytes": append(append([]byte(nil), rec...), 0, 0, 0, 0),
		"length too small": func() []byte {
			c := append([]byte(nil), rec...)
			c[4], c[5] = 17, 0
			return c
		}(),
	} {
		if _, err := rsp.Open(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// The session survived framing errors (nothing was authenticated).
	if got, err := rsp.Open(rec); err != nil || got[1] != CodeHeartbeat {
		t.Fatalf("the genuine record after framing errors: %v", err)
	}
}

func TestSecuredSequenceLimit(t *testing.T) {
	req, rsp := sessionPair(t, AEADAES256GCM)
	req.SetRecordLimit(2)
	rsp.SetRecordLimit(2)
	for i := 0; i < 2; i++ {
		rec, err := req.Seal([]byte{0x12, CodeHeartbeat, 0, 0})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rsp.Open(rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := req.Seal([]byte{0x12, CodeHeartbeat, 0, 0}); !errors.Is(err, ErrSequenceExhausted) {
		t.Fatalf("third seal under a limit of 2: %v", err)
	}
	// A key update restarts the count.
	establish(t, req, rsp)
	if err := req.UpdateSendKey(); err != nil {
		t.Fatal(err)
	}
	if err := rsp.UpdateRecvKey(); err != nil {
		t.Fatal(err)
	}
	rec, err := req.Seal([]byte{0x12, CodeHeartbeat, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsp.Open(rec); err != nil {
		t.Fatalf("after the key update: %v", err)
	}
}

func TestSessionEndZeroesKeys(t *testing.T) {
	req, rsp := sessionPair(t, AEADAES256GCM)
	establish(t, req, rsp)
	secret := req.data.ReqSecret
	key := req.data.Req.Key
	req.End()
	if !bytes.Equal(secret, make([]byte, len(secret))) || !bytes.Equal(key, make([]byte, len(key))) {
		t.Fatal("End left key material in memory")
	}
	if _, err := req.Seal([]byte{0x12, CodeHeartbeat, 0, 0}); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("seal after End: %v", err)
	}
	if err := req.UpdateSendKey(); err == nil {
		t.Fatal("key update after End succeeded")
	}
}

func TestKeyUpdateOldKeyRejected(t *testing.T) {
	req, rsp := sessionPair(t, AEADChaCha20Poly1305)
	establish(t, req, rsp)
	if err := req.UpdateSendKey(); err != nil {
		t.Fatal(err)
	}
	// The responder has not moved yet: the new key's record fails.
	rec, _ := req.Seal([]byte{0x12, CodeHeartbeat, 0, 0})
	if _, err := rsp.Open(rec); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("record under a key the peer does not have: %v", err)
	}
}

func FuzzParseSecuredRecord(f *testing.F) {
	req, _ := sessionPair(f, AEADAES256GCM)
	rec, _ := req.Seal([]byte{0x12, CodeHeartbeat, 0, 0})
	f.Add(rec)
	f.Add(append(rec, 0, 0))
	f.Add([]byte{1, 2, 3, 4, 18, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, r, err := ParseSecuredRecord(b)
		if err != nil {
			return
		}
		if len(r) != securedHeaderSize+int(h.Length) || !bytes.Equal(r, b[:len(r)]) {
			t.Fatalf("record of %d bytes for Length %d", len(r), h.Length)
		}
		// Only the genuine record authenticates under the seed's keys.
		_, rsp := sessionPair(t, AEADAES256GCM)
		if _, err := rsp.Open(b); err == nil && !bytes.Equal(r, rec) {
			t.Fatal("a forged record authenticated")
		}
	})
}
