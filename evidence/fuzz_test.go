package evidence

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sha512Sum(b []byte) [64]byte { return sha512.Sum512(b) }

// FuzzUnmarshal: whatever the input, Unmarshal either refuses it with a
// *DecodeError or returns a report whose body validates and survives a
// Marshal/Unmarshal round trip with the same bytes and user data.
func FuzzUnmarshal(f *testing.F) {
	f.Add(marshalled(f))
	f.Add([]byte(`{"version":"devattest-report/1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Unmarshal(b)
		if err != nil {
			if r != nil {
				t.Fatal("a report returned with an error")
			}
			return
		}
		if err := r.ParsedBody().Validate(); err != nil {
			t.Fatalf("accepted body does not validate: %v", err)
		}
		out, err := Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		r2, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("re-encoded report refused: %v", err)
		}
		if r.UserData() != r2.UserData() || !bytes.Equal(r.Body, r2.Body) {
			t.Fatal("body changed across a round trip")
		}
	})
}

// FuzzParseBody: a body either is refused or re-encodes to itself.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte(sampleReport(f).Body))
	f.Add([]byte(`{"nonce":"00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := ParseBody(b)
		if err != nil {
			return
		}
		r, err := NewReport(body)
		if err != nil {
			t.Fatalf("accepted body does not seal: %v", err)
		}
		if !bytes.Equal(r.Body, b) {
			t.Fatal("accepted body is not canonical")
		}
	})
}

// TestWriteFuzzSeeds rewrites testdata/fuzz from the samples when
// EVIDENCE_WRITE_FUZZ_SEEDS is set:
//
//	EVIDENCE_WRITE_FUZZ_SEEDS=1 go test ./evidence -run TestWriteFuzzSeeds
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("EVIDENCE_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set EVIDENCE_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	good := marshalled(t)
	body := []byte(sampleReport(t).Body)
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("FuzzUnmarshal", "valid-report", good)
	write("FuzzUnmarshal", "v1-report", []byte(`{"version":"devattest-report/1","nonce":"AA=="}`))
	write("FuzzUnmarshal", "duplicate-key", bytes.Replace(good, []byte(`"version": `), []byte(`"version": "x", "version": `), 1))
	write("FuzzUnmarshal", "trailing", append(bytes.Clone(good), '{', '}'))
	write("FuzzParseBody", "valid-body", body)
	write("FuzzParseBody", "case-folded-key", bytes.Replace(body, []byte(`{"nonce":"`), []byte(`{"NONCE":"00","nonce":"`), 1))
	write("FuzzParseBody", "deep", bytes.Replace(body, []byte(`"nonce":`), []byte(`"x":[[[[[[[[1]]]]]]]],"nonce":`), 1))
	write("FuzzParseBody", "many-devices", []byte(`{"nonce":"00","devices":[`+strings.Repeat(`{},`, 300)+`{}]}`))
}
