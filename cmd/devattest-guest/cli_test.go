package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/guest"
)

func runGuest(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestGuestCLIRules: the command-line rules of issue 17 for
// devattest-guest (see cmd/devattest's TestCLIRules).
func TestGuestCLIRules(t *testing.T) {
	dir := t.TempDir()
	a, aRoot := serveVF(t, dir, "a")
	cfg := filepath.Join(dir, "guest.yaml")
	if err := os.WriteFile(cfg, []byte("platform: fake-snp\ndevices:\n  - {label: dev-a, shim: \""+a+"\", trust_anchors: ["+aRoot+"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte("platform: fake-snp\ndevices:\n  - label: dev-a\n    shm: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stream string
		want   []string
	}{
		{"version", []string{"--version"}, 0, "out", []string{"devattest-guest ", "revision"}},
		{"attest help", []string{"attest", "--help"}, 0, "err", []string{"usage: devattest-guest attest"}},
		{"serve help", []string{"serve", "-h"}, 0, "err", []string{"--log-level"}},
		{"attest without a configuration", []string{"attest"}, 2, "err", []string{"--config FILE is required"}},
		{"discover without a shim", []string{"discover"}, 2, "err", []string{"--shim ADDR is required"}},
		{"bad hex nonce", []string{"attest", "--config", cfg, "--nonce", "xyz"}, 2, "err", []string{`--nonce: "xyz" is not hex`}},
		{"configuration YAML mistake", []string{"attest", "--config", typo}, 1, "err", []string{typo, "line 4", `devices[0].shm: unknown key "shm"`}},
		{"attest without --out", []string{"attest", "--config", cfg}, 0, "err", []string{"the report was not kept: give --out FILE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runGuest(c.args...)
			got := map[string]string{"out": out, "err": errOut}[c.stream]
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("std%s lacks %q:\n%s", c.stream, w, got)
				}
			}
			if strings.Contains(errOut, "not found in type") {
				t.Errorf("a Go type name in the error:\n%s", errOut)
			}
		})
	}
}

// TestExampleConfigParses: the example configuration beside the binary
// is one the guest accepts.
func TestExampleConfigParses(t *testing.T) {
	b, err := os.ReadFile("devattest-guest.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := guest.ParseConfig(b, ".")
	if err != nil {
		t.Fatalf("the example configuration: %v", err)
	}
	if len(c.Devices) != 2 || c.Devices[1].IsRequired() || c.API.Unix == "" {
		t.Fatalf("example configuration read as %+v", c)
	}
}
