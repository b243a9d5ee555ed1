package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRules: the command-line rules every binary keeps (issue 17):
// --version, exit 0 ok / 1 failure / 2 usage, --help exits 0, usage
// errors name what is missing, one wording for bad hex, YAML errors name
// the file, line and key, --json errors are JSON.
func TestCLIRules(t *testing.T) {
	dir := t.TempDir()
	report := writeFile(t, filepath.Join(dir, "r.json"), []byte("{}"))
	badPolicy := writeFile(t, filepath.Join(dir, "bad.yaml"), []byte("devices:\n  - default: true\n    trust_anchors: [x.pem]\n    min_spdm_verison: \"1.2\"\n"))
	cases := []struct {
		name   string
		args   []string
		code   int
		stream string // "out" or "err"
		want   []string
		not    []string
	}{
		{"version", []string{"--version"}, 0, "out", []string{"devattest ", "revision"}, nil},
		{"help", []string{"--help"}, 0, "out", []string{"commands:"}, nil},
		{"verify help", []string{"verify", "--help"}, 0, "err", []string{"usage: devattest verify"}, nil},
		{"inspect help", []string{"inspect", "-h"}, 0, "err", []string{"usage: devattest inspect"}, nil},
		{"policy init help", []string{"policy", "init", "--help"}, 0, "err", []string{"usage: devattest policy init"}, nil},
		{"probe help", []string{"probe", "--help"}, 0, "err", []string{"usage:"}, nil},
		{"verify without a report", []string{"verify", "--policy", badPolicy}, 2, "err", []string{"give REPORT", "--help"}, nil},
		{"verify without a policy", []string{"verify", report}, 2, "err", []string{"--policy FILE is required"}, nil},
		{"policy typo", []string{"policy", "inti"}, 2, "err", []string{`"inti" is not one`, "init"}, nil},
		{"unknown command", []string{"verfy"}, 2, "err", []string{`unknown command "verfy"`}, nil},
		{"bad hex nonce", []string{"verify", report, "--policy", badPolicy, "--nonce", "xyz"}, 2, "err",
			[]string{`--nonce: "xyz" is not hex`}, nil},
		{"flags that go together", []string{"probe", "--connect", "127.0.0.1:1", "--trust-anchor", report, "--ide"}, 2, "err",
			[]string{"--ide goes with --session"}, nil},
		{"bad hex raw", []string{"probe", "--connect", "127.0.0.1:1", "--raw", "zz"}, 2, "err", []string{`--raw: "zz" is not hex`}, nil},
		{"policy YAML mistake", []string{"verify", report, "--policy", badPolicy}, 1, "err",
			[]string{badPolicy, "line 4", `devices[0].min_spdm_verison: unknown key "min_spdm_verison"`}, []string{"DeviceRule", "not found in type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCmd(c.args...)
			got := map[string]string{"out": out, "err": errOut}[c.stream]
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("std%s lacks %q:\n%s", c.stream, w, got)
				}
			}
			for _, w := range c.not {
				if strings.Contains(got, w) {
					t.Errorf("std%s has %q:\n%s", c.stream, w, got)
				}
			}
		})
	}
	t.Run("json error", func(t *testing.T) {
		code, out, _ := runCmd("verify", report, "--policy", filepath.Join(dir, "missing.yaml"), "--json")
		var v struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if code != 1 || json.Unmarshal([]byte(out), &v) != nil || v.OK || !strings.Contains(v.Error, "missing.yaml") {
			t.Fatalf("verify --json with a missing policy: exit %d, stdout %q", code, out)
		}
	})
	if _, err := os.Stat(report); err != nil {
		t.Fatal(err)
	}
}
