package tdisp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tests/spdmcorpus"
)

// corpusMsg is one TDISP message of the golden corpus v12-ide-km (a copy
// of secchan/testdata/libspdm): spdm-emu's requester running its default
// TDISP flow against spdm-emu's sample device inside an SPDM session.
type corpusMsg struct {
	index int
	req   bool
	spdm  []byte // the whole VENDOR_DEFINED message
	body  []byte // the TDISP message
}

func corpusTDISP(t testing.TB) []corpusMsg {
	t.Helper()
	msgs, err := spdmcorpus.SessionMessages(filepath.Join("testdata", "v12-ide-km.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusMsg
	for _, m := range msgs {
		var body []byte
		switch m.Msg[1] {
		case secchan.CodeVendorDefinedReq:
			_, body, err = UnwrapRequest(m.Msg)
		case secchan.CodeVendorDefinedRsp:
			_, body, err = UnwrapResponse(m.Msg)
		default:
			continue
		}
		if err != nil {
			continue // IDE_KM, CXL IDE_KM, CXL TSP
		}
		out = append(out, corpusMsg{index: m.Index, req: m.Req, spdm: m.Msg, body: body})
	}
	return out
}

// TestCorpusTDISP: every TDISP message of the corpus parses and
// re-encodes to the same bytes, whole VENDOR_DEFINED message included.
func TestCorpusTDISP(t *testing.T) {
	msgs := corpusTDISP(t)
	counts := map[string]int{}
	for _, m := range msgs {
		pm, err := Parse(m.body)
		if err != nil {
			t.Fatalf("record %d: %v\n% x", m.index, err, m.body)
		}
		counts[TypeName(pm.Type())]++
		wrap := WrapResponse
		if m.req {
			wrap = WrapRequest
		}
		if got := wrap(secchan.V12, pm); !bytes.Equal(got, m.spdm) {
			t.Errorf("record %d %s: re-encoding differs\n got % x\nwant % x", m.index, TypeName(pm.Type()), got, m.spdm)
		}
		t.Logf("record %d %s % x", m.index, TypeName(pm.Type()), m.body)
	}
	if len(msgs) == 0 {
		t.Fatal("no TDISP message in the corpus")
	}
	t.Logf("%d TDISP messages parsed and re-encoded byte for byte: %v", len(msgs), counts)
	checkCorpusFlow(t, msgs)
	if os.Getenv("TDISP_WRITE_FUZZ_SEEDS") != "" {
		writeSeeds(t, msgs)
	}
}

// writeSeeds stores the corpus messages as seeds of FuzzParse, and the
// report's portions, put together, as a seed of FuzzParseReport (run
// once: TDISP_WRITE_FUZZ_SEEDS=1 go test -run TestCorpusTDISP ./tdisp/).
func writeSeeds(t *testing.T, msgs []corpusMsg) {
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var report []byte
	for _, m := range msgs {
		write("FuzzParse", fmt.Sprintf("corpus-%d-%s", m.index, TypeName(m.body[1])), m.body)
		if m.body[1] == TypeReport {
			var r ReportResp
			if err := r.Decode(m.body); err == nil {
				report = append(report, r.Portion...)
			}
		}
	}
	if report != nil {
		write("FuzzParseReport", "corpus-report", report)
	}
}

// checkCorpusFlow follows spdm-emu's flow through the corpus: the report
// read in portions decodes to the sample device's report, and every START
// returns the nonce of the LOCK_INTERFACE_RESPONSE before it.
func checkCorpusFlow(t *testing.T, msgs []corpusMsg) {
	var report []byte
	var nonce [NonceSize]byte
	starts := 0
	for _, m := range msgs {
		pm, _ := Parse(m.body)
		switch pm := pm.(type) {
		case *LockInterfaceResp:
			nonce = pm.Nonce
			report = nil
		case *ReportResp:
			report = append(report, pm.Portion...)
			if pm.Remainder != 0 {
				continue
			}
			r, err := ParseReport(report)
			if err != nil {
				t.Fatalf("record %d: %v", m.index, err)
			}
			if !bytes.Equal(r.Marshal(), report) {
				t.Errorf("record %d: report re-encodes differently", m.index)
			}
			if len(r.Ranges) != 4 || r.InterfaceInfo != InfoNoUpdateAfterLock|InfoDMAWithoutPASID ||
				r.Ranges[0].Attributes != AttrNonTEEMem || r.Ranges[1] != (MMIORange{FirstPage: 0x8000, Pages: 4, Attributes: AttrMemAttrUpdatable, RangeID: 2}) ||
				string(bytes.TrimRight(r.DeviceSpecific, "\x00")) != "tdisp_dev_emu" {
				t.Errorf("record %d: report %+v", m.index, r)
			}
		case *Start:
			starts++
			if pm.Nonce != nonce {
				t.Errorf("record %d: START nonce is not the LOCK_INTERFACE_RESPONSE's", m.index)
			}
		}
	}
	if starts != 2 {
		t.Errorf("%d START_INTERFACE_REQUESTs, want 2", starts)
	}
}
