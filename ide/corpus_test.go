package ide

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tests/spdmcorpus"
)

// The golden corpus v12-ide-km (a copy of secchan/testdata/libspdm): DMTF
// spdm-emu's requester and responder running PCI IDE_KM, TDISP, CXL
// IDE_KM and CXL TSP inside SPDM sessions, decrypted by spdmcorpus.

type corpusMsg struct {
	index int
	req   bool
	msg   []byte // the decrypted SPDM message
}

// corpusSessionMessages decrypts every secured record of the corpus.
func corpusSessionMessages(t *testing.T) []corpusMsg {
	t.Helper()
	msgs, err := spdmcorpus.SessionMessages(filepath.Join("testdata", "v12-ide-km.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]corpusMsg, len(msgs))
	for i, m := range msgs {
		out[i] = corpusMsg{index: m.Index, req: m.Req, msg: m.Msg}
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
