// Package spdmcorpus replays the secure sessions of a golden corpus
// capture (libspdm's requester and responder over PCI DOE, with every
// secret libspdm derived, see DESIGN.md) and returns the decrypted
// messages, for the tests of the packages that ride on the sessions
// (ide, tdisp). The session keys are derived with secchan's exported key
// schedule from the input key material and the transcript hashes libspdm
// printed (secchan's own corpus test recomputes those hashes from the
// captured bytes), and the records are replayed in order with their key
// updates, as secchan/corpus_session_test.go does.
package spdmcorpus

import (
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/devattest/devattest/secchan"
)

type corpusJSON struct {
	Messages []struct {
		Dir     string `json:"dir"`
		DOEType int    `json:"doe_type"`
		Hex     string `json:"hex"`
	} `json:"messages"`
	Sessions []struct {
		SessionID string `json:"session_id"`
		Type      string `json:"type"`
		Exchange  int    `json:"exchange_message_index"`
		DHESecret string `json:"dhe_secret"`
		PSK       string `json:"psk"`
		TH1       string `json:"th1"`
		TH2       string `json:"th2"`
	} `json:"sessions"`
}

// Msg is one decrypted message of a session.
type Msg struct {
	Index int    // the record's index in the capture
	Req   bool   // sent by the requester
	Msg   []byte // the decrypted SPDM message
}

// SessionMessages decrypts every secured record of the capture at path,
// an SPDM 1.2 capture with SHA-384 and AES-256-GCM (case v12-ide-km).
// Every session must end in the capture.
func SessionMessages(path string) (out []Msg, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c corpusJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	ks := secchan.KeySchedule{Version: secchan.V12, Hash: crypto.SHA384, AEAD: secchan.AEADAES256GCM}
	type views struct{ req, rsp *secchan.Session }
	starts := map[int]int{}
	for i, s := range c.Sessions {
		starts[s.Exchange+1] = i
	}
	active := map[uint32]*views{}
	defer func() {
		for _, v := range active {
			v.req.End()
			v.rsp.End()
		}
	}()
	var pendingKU uint8
	for i, m := range c.Messages {
		if si, ok := starts[i]; ok {
			js := c.Sessions[si]
			id64, err := strconv.ParseUint(js.SessionID, 16, 32)
			if err != nil {
				return nil, err
			}
			psk := js.Type == "psk"
			ikm := js.DHESecret
			if psk {
				ikm = js.PSK
			}
			ikmb, err1 := hex.DecodeString(ikm)
			th1, err2 := hex.DecodeString(js.TH1)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("session %s: bad hex", js.SessionID)
			}
			var v views
			for _, role := range []secchan.Role{secchan.RoleRequester, secchan.RoleResponder} {
				hs, err := ks.NewHandshakeSecret(ikmb, psk)
				if err != nil {
					return nil, err
				}
				s, err := secchan.NewSession(uint32(id64), role, ks, hs, th1)
				if err != nil {
					return nil, err
				}
				if role == secchan.RoleRequester {
					v.req = s
				} else {
					v.rsp = s
				}
			}
			active[uint32(id64)] = &v
		}
		if m.DOEType != 2 {
			continue
		}
		obj, err := hex.DecodeString(m.Hex)
		if err != nil || len(obj) < 12 {
			return nil, fmt.Errorf("record %d: bad object", i)
		}
		rec := obj[8:]
		id := binary.LittleEndian.Uint32(rec)
		v := active[id]
		if v == nil {
			return nil, fmt.Errorf("record %d: unknown session 0x%08x", i, id)
		}
		view := v.req
		if m.Dir == "req" {
			view = v.rsp
		}
		msg, err := view.Open(rec)
		if err != nil {
			return nil, fmt.Errorf("record %d (%s, session 0x%08x): %w", i, m.Dir, id, err)
		}
		out = append(out, Msg{Index: i, Req: m.Dir == "req", Msg: msg})
		h, err := secchan.PeekHeader(msg)
		if err != nil {
			return nil, err
		}
		if err := step(h, v.req, v.rsp, &pendingKU, func() ([]byte, error) {
			var th2 string
			for _, s := range c.Sessions {
				if id64, _ := strconv.ParseUint(s.SessionID, 16, 32); uint32(id64) == id && s.Exchange < i {
					th2 = s.TH2 // the latest session with this ID started before i
				}
			}
			return hex.DecodeString(th2)
		}); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if h.Code == secchan.CodeEndSessionAck {
			v.req.End()
			v.rsp.End()
			delete(active, id)
		}
	}
	if len(active) != 0 {
		return nil, fmt.Errorf("%d sessions never ended", len(active))
	}
	return out, nil
}

// step advances both views of a session past one message: the handshake
// ends at FINISH_RSP/PSK_FINISH_RSP, and KEY_UPDATE/ACK switch keys.
func step(h secchan.Header, req, rsp *secchan.Session, pendingKU *uint8, th2 func() ([]byte, error)) error {
	switch h.Code {
	case secchan.CodeFinishRsp, secchan.CodePSKFinishRsp:
		th, err := th2()
		if err != nil {
			return err
		}
		if err := req.Establish(th); err != nil {
			return err
		}
		return rsp.Establish(th)
	case secchan.CodeKeyUpdate:
		*pendingKU = h.Param1
		switch h.Param1 {
		case 1:
			return rsp.UpdateRecvKey()
		case 2:
			if err := rsp.UpdateRecvKey(); err != nil {
				return err
			}
			if err := rsp.UpdateSendKey(); err != nil {
				return err
			}
			return req.UpdateRecvKey()
		}
	case secchan.CodeKeyUpdateAck:
		k := *pendingKU
		*pendingKU = 0
		if k == 1 || k == 2 {
			return req.UpdateSendKey()
		}
	}
	return nil
}
