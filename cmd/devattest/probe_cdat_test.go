package main

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
)

func TestProbeCDAT(t *testing.T) {
	dir := t.TempDir()
	table := devsim.DefaultCDAT()
	f, err := devsim.NewCXLFunction(table)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveMailbox(t, dir, "cxl", f.Driver())

	code, out, errOut := runCmd("probe", "--connect", addr, "--cdat", "--end", "continue")
	if code != 0 {
		t.Fatalf("probe --cdat: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"136 bytes", "checksum ok", "[0] DSMAS", "[1] DSLBIS", "[4] DSEMTS"} {
		if !strings.Contains(out, want) {
			t.Errorf("probe --cdat output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCmd("probe", "--connect", addr, "--cdat", "--json", "--end", "continue")
	var j cdatJSON
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil {
		t.Fatalf("probe --cdat --json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if j.Table != hex.EncodeToString(table) || j.Length != uint32(len(table)) || len(j.Structures) != 5 || j.Structures[0].Name != "DSMAS" {
		t.Errorf("probe --cdat --json = %+v", j)
	}

	// A device without CDAT: the request goes unanswered or refused, and
	// the probe says so within its deadline.
	vfAddr, _ := startVF(t, dir, "spdm", nil)
	code, _, errOut = runCmd("probe", "--connect", vfAddr, "--cdat", "--timeout", "5s")
	if code != 1 || !strings.Contains(errOut, "CDAT entry 0") {
		t.Errorf("probe --cdat on a VF without CDAT: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCmd("probe", "--connect", addr, "--cdat", "--discovery"); code != 2 || !strings.Contains(errOut, "exactly one of") {
		t.Errorf("--cdat with --discovery: exit %d\n%s", code, errOut)
	}
}
