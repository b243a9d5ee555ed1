package eatda

import (
	"fmt"
	"slices"
)

// VeraisonScheme names the reading of Veraison's da-spdm scheme that
// VeraisonProblems encodes: veraison/services scheme/da-spdm (760073d)
// with veraison/da's token types (61fbaf8, a2172a5), the revision that
// was run against devattest's tokens.
const VeraisonScheme = "Veraison da-spdm (scheme 760073d, veraison/da 61fbaf8)"

// veraisonHashAlgs are the draft's hash-algorithm-type values Veraison
// reads as the algorithm the draft means. Veraison numbers SHA-256 1,
// SHA-384 2, SHA-512 3, SHA3-256 4, ... (the draft: 0, 2, 4, 8, ...), so
// only SHA-384 agrees; the draft's 4 (SHA-512) is Veraison's SHA3-256.
var veraisonHashAlgs = map[uint64]string{2: "SHA-384"}

// VeraisonProblems lists what in t Veraison's da-spdm scheme refuses or
// misreads where it departs from the draft (README, "Where the draft and
// Veraison's da-spdm differ"): each entry names the claim and what
// Veraison does with it. An empty list means the scheme reads the token
// as the draft means it. It judges nothing else: the token is still to be
// verified.
func (t *Token) VeraisonProblems() []string {
	var out []string
	if len(t.Nonce) != 64 {
		out = append(out, fmt.Sprintf("eat_nonce is %d bytes: Veraison compares 64 bytes with its session nonce, so only a 64-byte nonce can match (refused: nonce mismatch)", len(t.Nonce)))
	}
	if len(t.Other) != 0 {
		out = append(out, fmt.Sprintf("submodules %q are of another profile than the SPDM one (refused: unsupported profile)", t.Other))
	}
	names := make([]string, 0, len(t.Submods))
	for n := range t.Submods {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if _, err := ClassID(n); err != nil {
			out = append(out, fmt.Sprintf("submodule %q: Veraison derives no class from its name (refused)", n))
		}
		m := t.Submods[n].Measurements
		if m == nil {
			continue
		}
		if m.Signature != nil {
			out = append(out, fmt.Sprintf("submodule %q: a \"signature\" entry in the measurements map (refused: Veraison reads block indices only)", n))
		}
		idx := make([]int, 0, len(m.Blocks))
		for i := range m.Blocks {
			idx = append(idx, int(i))
		}
		slices.Sort(idx)
		for _, i := range idx {
			b := m.Blocks[uint8(i)]
			if b.ComponentType == 0 {
				out = append(out, fmt.Sprintf("submodule %q block %d: component type 0 (immutable ROM); Veraison numbers component types from 1 (refused: unexpected component type 0)", n, i))
			}
			if b.Digest == nil {
				continue
			}
			switch a := b.Digest.Alg.(type) {
			case uint64:
				if _, ok := veraisonHashAlgs[a]; ok {
					break
				}
				if a == 4 {
					out = append(out, fmt.Sprintf("submodule %q block %d: digest algorithm 4 (the draft's SHA-512) is Veraison's SHA3-256 (misread: never matches a reference)", n, i))
				} else {
					out = append(out, fmt.Sprintf("submodule %q block %d: digest algorithm %d; Veraison knows only its own numbering 1..7 of which the draft's 2 (SHA-384) agrees (refused or misread)", n, i, a))
				}
			default:
				out = append(out, fmt.Sprintf("submodule %q block %d: a text digest algorithm (refused: Veraison takes an integer)", n, i))
			}
		}
	}
	return out
}
