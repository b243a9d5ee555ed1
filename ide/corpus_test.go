package ide

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/devattest/devattest/secchan"
)

// The golden corpus v12-ide-km (a copy of secchan/testdata/libspdm): DMTF
// spdm-emu's requester and responder running PCI IDE_KM, TDISP, CXL
// IDE_KM and CXL TSP inside SPDM sessions. The session keys are derived
// here with secchan's exported key schedule from the input key material
// and the transcript hashes libspdm printed (secchan's own corpus test
// recomputes those hashes from the captured bytes), and the records are
// replayed in order with the key updates, as secchan/corpus_session_test.go
// does.

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

type corpusMsg struct {
	index int
	req   bool
	msg   []byte // the decrypted SPDM message
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corpusSessionMessages decrypts every secured record of the corpus.
func corpusSessionMessages(t *testing.T) []corpusMsg {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "v12-ide-km.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpusJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	ks := secchan.KeySchedule{Version: secchan.V12, Hash: crypto.SHA384, AEAD: secchan.AEADAES256GCM}
	type views struct{ req, rsp *secchan.Session }
	starts := map[int]int{}
	for i, s := range c.Sessions {
		starts[s.Exchange+1] = i
	}
	active := map[uint32]*views{}
	var out []corpusMsg
	var pendingKU uint8
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range c.Messages {
		if si, ok := starts[i]; ok {
			js := c.Sessions[si]
			id64, err := strconv.ParseUint(js.SessionID, 16, 32)
			must(err)
			psk := js.Type == "psk"
			ikm := js.DHESecret
			if psk {
				ikm = js.PSK
			}
			var v views
			for _, role := range []secchan.Role{secchan.RoleRequester, secchan.RoleResponder} {
				hs, err := ks.NewHandshakeSecret(mustHex(t, ikm), psk)
				must(err)
				s, err := secchan.NewSession(uint32(id64), role, ks, hs, mustHex(t, js.TH1))
				must(err)
				if role == secchan.RoleRequester {
					v.req = s
				} else {
					v.rsp = s
				}
			}
			active[uint32(id64)] = &v
			t.Cleanup(func() { v.req.End(); v.rsp.End() })
		}
		if m.DOEType != 2 {
			continue
		}
		obj := mustHex(t, m.Hex)
		rec := obj[8:]
		id := binary.LittleEndian.Uint32(rec)
		v := active[id]
		if v == nil {
			t.Fatalf("record %d: unknown session 0x%08x", i, id)
		}
		view := v.req
		if m.Dir == "req" {
			view = v.rsp
		}
		msg, err := view.Open(rec)
		if err != nil {
			t.Fatalf("record %d (%s, session 0x%08x): %v", i, m.Dir, id, err)
		}
		out = append(out, corpusMsg{index: i, req: m.Dir == "req", msg: msg})
		h, err := secchan.PeekHeader(msg)
		must(err)
		switch h.Code {
		case secchan.CodeFinishRsp, secchan.CodePSKFinishRsp:
			var th2 []byte
			for _, s := range c.Sessions {
				if id64, _ := strconv.ParseUint(s.SessionID, 16, 32); uint32(id64) == id && s.Exchange < i {
					th2 = mustHex(t, s.TH2) // the latest session with this ID started before i
				}
			}
			must(v.req.Establish(th2))
			must(v.rsp.Establish(th2))
		case secchan.CodeKeyUpdate:
			pendingKU = h.Param1
			switch h.Param1 {
			case 1:
				must(v.rsp.UpdateRecvKey())
			case 2:
				must(v.rsp.UpdateRecvKey())
				must(v.rsp.UpdateSendKey())
				must(v.req.UpdateRecvKey())
			}
		case secchan.CodeKeyUpdateAck:
			if pendingKU == 1 || pendingKU == 2 {
				must(v.req.UpdateSendKey())
			}
			pendingKU = 0
		case secchan.CodeEndSessionAck:
			delete(active, id)
		}
	}
	if len(active) != 0 {
		t.Fatalf("%d sessions never ended", len(active))
	}
	return out
}

// corpusIDEKM returns the IDE_KM objects of the corpus, in order.
func corpusIDEKM(t *testing.T) (msgs []corpusMsg, bodies [][]byte) {
	t.Helper()
	for _, m := range corpusSessionMessages(t) {
		var body []byte
		var err error
		switch m.msg[1] {
		case secchan.CodeVendorDefinedReq:
			_, body, err = UnwrapRequest(m.msg)
		case secchan.CodeVendorDefinedRsp:
			_, body, err = UnwrapResponse(m.msg)
		default:
			continue
		}
		if err != nil {
			continue // TDISP, CXL IDE_KM, CXL TSP
		}
		msgs = append(msgs, m)
		bodies = append(bodies, body)
	}
	return msgs, bodies
}

func TestCorpusIDEKM(t *testing.T) {
	msgs, bodies := corpusIDEKM(t)
	counts := map[string]int{}
	others := 0
	for _, m := range corpusSessionMessages(t) {
		if c := m.msg[1]; c == secchan.CodeVendorDefinedReq || c == secchan.CodeVendorDefinedRsp {
			others++
		}
	}
	for i, m := range msgs {
		pm, err := Parse(bodies[i])
		if err != nil {
			t.Fatalf("record %d: %v\n% x", m.index, err, bodies[i])
		}
		counts[ObjectName(pm.ObjectID())]++
		wrap := WrapResponse
		if m.req {
			wrap = WrapRequest
		}
		if got := wrap(secchan.V12, pm); !bytes.Equal(got, m.msg) {
			t.Errorf("record %d %s: re-encoding differs\n got % x\nwant % x", m.index, ObjectName(pm.ObjectID()), got, m.msg)
		}
		switch pm := pm.(type) {
		case *KeyProg:
			// spdm-emu's requester writes the IFV DWs {0, 1}: the
			// specification's initial invocation field 1 in our order.
			if pm.IFV != 1 {
				t.Errorf("record %d: KEY_PROG IFV = %#x, want 1", m.index, pm.IFV)
			}
			if pm.PortIndex != 1 || pm.StreamID != 0 || pm.KSS.KeySet() != K0 {
				t.Errorf("record %d: KEY_PROG %v port %d stream %d", m.index, pm.KSS, pm.PortIndex, pm.StreamID)
			}
		case *KPAck:
			if pm.Status != KPSuccess {
				t.Errorf("record %d: KP_ACK %v", m.index, pm.Status)
			}
		case *QueryResp:
			if pm.ZeroDWs != 72 || pm.Cap != 0 || pm.MaxPortIndex != 7 {
				t.Errorf("record %d: QUERY_RESP cap %#x, max port %d, %d zero DWs", m.index, pm.Cap, pm.MaxPortIndex, pm.ZeroDWs)
			}
		}
	}
	want := map[string]int{"QUERY": 2, "QUERY_RESP": 2, "KEY_PROG": 12, "KP_ACK": 12, "K_SET_GO": 12, "K_SET_STOP": 12, "K_GOSTOP_ACK": 24}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d in the corpus, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	t.Logf("%d IDE_KM objects parsed and re-encoded byte for byte (%v); %d vendor-defined messages in all", len(msgs), counts, others)
	if dir := os.Getenv("IDE_WRITE_FUZZ_SEEDS"); dir != "" {
		writeSeeds(t, bodies)
	}
}

// writeSeeds stores the corpus objects as seeds of FuzzParse (run once:
// IDE_WRITE_FUZZ_SEEDS=1 go test -run TestCorpusIDEKM ./ide/).
func writeSeeds(t *testing.T, bodies [][]byte) {
	seen := map[string]bool{}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		name := fmt.Sprintf("corpus-%s-%x", ObjectName(b[0]), b[:min(len(b), 8)])
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
