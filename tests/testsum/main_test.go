package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSummary: a run with a pass, a skip with its reason, a failure with
// its output and a build failure line prints each where a person looks.
func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: LIBSPDM_EMU_BIN not set: skipping\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: want 1, got 2\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}`,
		`# q [q.test]`,
		`./q.go:1: undefined: x`,
	}, "\n")
	var pass, out bytes.Buffer
	s, err := read(strings.NewReader(in), &pass)
	if err != nil {
		t.Fatal(err)
	}
	s.print(&out)
	got := out.String()
	for _, want := range []string{"FAIL\tp\t0.01s", "--- FAIL: TestC (p)", "want 1, got 2",
		"skipped tests (1):", "p TestB: b_test.go:9: LIBSPDM_EMU_BIN not set: skipping", "\n1 passed, 1 failed, 1 skipped\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(pass.String(), "undefined: x") {
		t.Errorf("the build failure was not passed through: %q", pass.String())
	}
}
