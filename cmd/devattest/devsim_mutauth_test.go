package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
)

// TestDevsimMutAuthFlags: each bad combination is refused with the flag
// it names; a good one builds a VF that asks.
func TestDevsimMutAuthFlags(t *testing.T) {
	dir := t.TempDir()
	rootDER, id, err := devsim.NewRequesterIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "req-ca.der")
	chain := filepath.Join(dir, "req-chain.der")
	if err := os.WriteFile(ca, rootDER, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chain, bytes.Join(id.Chain, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	_, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string // "" builds
	}{
		{[]string{"--mut-auth", "SOMETIMES"}, "--mut-auth"},
		{[]string{"--mut-auth", "W_ENCAP", "--req-ca", ca, "--req-slot", "8"}, "--req-slot"},
		{[]string{"--req-ca", ca}, "need --mut-auth"},
		{[]string{"--mut-auth", "W_ENCAP"}, "anchors"},
		{[]string{"--mut-auth", "WO_ENCAP"}, "requester's chain"},
		{[]string{"--mut-auth", "W_ENCAP", "--req-ca", filepath.Join(dir, "missing")}, "--req-ca"},
		{[]string{"--mut-auth", "WO_ENCAP", "--req-cert-chain", ca + "x"}, "--req-cert-chain"},
		{[]string{"--mut-auth", "w_encap", "--req-ca", ca}, ""},
		{[]string{"--mut-auth", "DIGESTS", "--basic-mut-auth", "--req-ca", ca, "--req-slot", "1"}, ""},
		{[]string{"--mut-auth", "WO_ENCAP", "--req-cert-chain", chain}, ""},
		{nil, ""},
	} {
		fs := flag.NewFlagSet("devsim", flag.ContinueOnError)
		m := addMutAuthFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		opt, err := m.option()
		if err == nil {
			var opts []devsim.Option
			if opt != nil {
				opts = append(opts, opt)
			}
			_, _, err = devsim.NewSPDMVF(ids, devsim.NewMeasurements(), opts...)
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}
