package eatda_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/evidence/eatda"
)

// TestVeraisonProblems: the golden token (devsim's default blocks, whose
// block 1 is immutable ROM, and a short nonce) names what Veraison's
// scheme refuses in it; the draft's own example names its SHA-256 block;
// a token without any of the differences names nothing; and every
// difference the function knows is found on its own.
func TestVeraisonProblems(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "golden.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := eatda.Decode(golden)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(tok.VeraisonProblems(), "\n")
	for _, want := range []string{"eat_nonce is 32 bytes", "block 1: component type 0 (immutable ROM)"} {
		if !strings.Contains(got, want) {
			t.Errorf("golden token: no %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "block 2") {
		t.Errorf("golden token: block 2 (mutable firmware, SHA-384) named:\n%s", got)
	}

	ex, err := os.ReadFile(filepath.Join("testdata", "draft-example-1.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := eatda.Decode(ex); err != nil {
		t.Fatal(err)
	} else if got := strings.Join(tok.VeraisonProblems(), "\n"); !strings.Contains(got, "digest algorithm 0") {
		t.Errorf("the draft's example: no SHA-256 (0) problem in\n%s", got)
	}

	clean := func() *eatda.Token {
		return &eatda.Token{Profile: eatda.ProfileDevice, Nonce: bytes.Repeat([]byte{7}, 64), Submods: map[string]*eatda.SPDMClaims{
			"spdm:ACME:WIDGET:0001": {Profile: eatda.ProfileDeviceSPDM, Measurements: &eatda.Measurements{Blocks: map[uint8]eatda.Measurement{
				1: {ComponentType: 1, Digest: &eatda.Digest{Alg: uint64(2), Val: make([]byte, 48)}},
				2: {ComponentType: 6, Raw: []byte("v1")},
			}}},
		}}
	}
	if p := clean().VeraisonProblems(); len(p) != 0 {
		t.Fatalf("a token without differences: %q", p)
	}
	cases := map[string]struct {
		edit func(*eatda.Token)
		want string
	}{
		"32-byte nonce":  {func(t *eatda.Token) { t.Nonce = t.Nonce[:32] }, "eat_nonce is 32 bytes"},
		"type 0":         {func(t *eatda.Token) { setBlock(t, 1, func(m *eatda.Measurement) { m.ComponentType = 0 }) }, "block 1: component type 0"},
		"SHA-256":        {func(t *eatda.Token) { setBlock(t, 1, func(m *eatda.Measurement) { m.Digest.Alg = uint64(0) }) }, "digest algorithm 0"},
		"SHA-512":        {func(t *eatda.Token) { setBlock(t, 1, func(m *eatda.Measurement) { m.Digest.Alg = uint64(4) }) }, "Veraison's SHA3-256"},
		"text algorithm": {func(t *eatda.Token) { setBlock(t, 1, func(m *eatda.Measurement) { m.Digest.Alg = "sha-384" }) }, "text digest algorithm"},
		"signature entry": {func(t *eatda.Token) {
			t.Submods["spdm:ACME:WIDGET:0001"].Measurements.Signature = &eatda.Signature{}
		}, `"signature" entry`},
		"other profile": {func(t *eatda.Token) { t.Other = []string{"pcie-legacy"} }, "another profile"},
		"no class": {func(t *eatda.Token) {
			t.Submods["spdm:widget"] = t.Submods["spdm:ACME:WIDGET:0001"]
		}, `"spdm:widget": Veraison derives no class`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tok := clean()
			c.edit(tok)
			p := tok.VeraisonProblems()
			if len(p) != 1 || !strings.Contains(p[0], c.want) {
				t.Fatalf("problems %q, want one naming %q", p, c.want)
			}
		})
	}
}

func setBlock(t *eatda.Token, i uint8, f func(*eatda.Measurement)) {
	m := t.Submods["spdm:ACME:WIDGET:0001"].Measurements
	b := m.Blocks[i]
	d := *b.Digest
	b.Digest = &d
	f(&b)
	m.Blocks[i] = b
}
