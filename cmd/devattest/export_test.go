package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/evidence/eatda"
	"github.com/devattest/devattest/guest/platform"
)

// snpReport is a report of two emulated VFs on the fake SEV-SNP platform,
// with a policy written by "policy init".
func snpReport(t *testing.T) e2e {
	t.Helper()
	a, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	return attestOn(t, "fake-snp", a, snpRoots(t, a))
}

func TestExportEATDA(t *testing.T) {
	e := snpReport(t)
	out := filepath.Join(e.dir, "token.cbor")
	code, stdout, stderr := runCmd("export", "--eat-da", e.report, "--out", out)
	if code != 0 {
		t.Fatalf("export: %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, `application/eat-ucs+cbor; eat_profile="tag:linaro.org,2025:device#1.0.0"`) {
		t.Fatalf("no media type in:\n%s", stdout)
	}
	// devsim's default block 1 is immutable ROM and the nonce is short:
	// export says Veraison's scheme would refuse both.
	for _, want := range []string{"note: Veraison da-spdm", "block 1: component type 0", "eat_nonce is 20 bytes"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
	tok, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok, e.rep.ParsedBody().EATDA) {
		t.Fatal("the written token is not the report's claims set")
	}
	dec, err := eatda.Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(dec.Submods) != 2 || !bytes.Equal(dec.Nonce, []byte("owner nonce fake-snp")) {
		t.Fatalf("%d submodules, nonce %q", len(dec.Submods), dec.Nonce)
	}
	// Without --out the token goes to standard output, the media type to
	// standard error.
	code, stdout, stderr = runCmd("export", "--eat-da", e.report)
	if code != 0 || stdout != string(tok) || !strings.Contains(stderr, "media type") {
		t.Fatalf("export to stdout: %d, %d bytes\n%s", code, len(stdout), stderr)
	}
}

func TestExportRefuses(t *testing.T) {
	e := snpReport(t)
	rewrite := func(name string, change func(b *evidence.Body)) string {
		rep, err := evidence.Unmarshal(mustRead(t, e.report))
		if err != nil {
			t.Fatal(err)
		}
		body := rep.ParsedBody()
		change(body)
		re, err := evidence.NewReport(body)
		if err != nil {
			t.Fatal(err)
		}
		re.Platform = rep.Platform
		b, err := evidence.Marshal(re)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, filepath.Join(e.dir, name), b)
	}
	for name, c := range map[string]struct {
		path, want string
	}{
		"no claims set": {rewrite("none.json", func(b *evidence.Body) { b.EATDA = nil }), "carries no EAT-DA claims set"},
		"not the body's": {rewrite("other.json", func(b *evidence.Body) {
			b.PolicyDigest = []byte("another digest")
		}), "not the encoding of the report's body"},
		"not CBOR":       {rewrite("garbage.json", func(b *evidence.Body) { b.EATDA = []byte{0xa1} }), "malformed claims set"},
		"missing report": {filepath.Join(e.dir, "nope.json"), "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCmd("export", "--eat-da", c.path, "--out", filepath.Join(e.dir, "x.cbor"))
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Fatalf("export: %d, want an error with %q:\n%s", code, c.want, stderr)
			}
		})
	}
	if code, _, _ := runCmd("export", e.report); code != 2 {
		t.Fatalf("export without --eat-da: %d, want 2", code)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
