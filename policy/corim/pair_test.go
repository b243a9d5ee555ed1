package corim_test

import (
	"bytes"
	"testing"

	"github.com/devattest/devattest/evidence/eatda"
	"github.com/devattest/devattest/policy/corim"
)

// veraisonName is the name Veraison's da-spdm derives for a token's
// component type (it numbers types from 1; 0 it refuses).
var veraisonName = map[uint8]string{1: "immutable-rom", 2: "mutable-firmware", 3: "hardware-config", 4: "firmware-config",
	5: "freeform-manifest", 6: "device-mode", 7: "mutable-firmware-version", 8: "mutable-firmware-svn",
	9: "hash-extended-measurement", 10: "informational"}

// TestPairMatchesAsVeraison: the CoRIM written from a body and the
// body's EAT-DA token pair up the way Veraison's scheme pairs them: the
// class-id derived from each submodule name, mkey = block index, the name
// derived from the component type, and the digest (SHA-384: the draft's 2
// is Veraison's 2, IANA 7 in the CoRIM).
func TestPairMatchesAsVeraison(t *testing.T) {
	b := body(t)
	tok, err := eatda.FromBody(b)
	if err != nil {
		t.Fatal(err)
	}
	rim, err := corim.FromDevices("pair", b.Devices)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range tok.Submods {
		class, err := eatda.ClassID(name)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := rim.Reference(class)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.Measurements {
			ev, ok := c.Measurements.Blocks[m.Index]
			if !ok {
				t.Fatalf("mkey %d: not in the token", m.Index)
			}
			if want, known := veraisonName[ev.ComponentType]; known && m.Name != want {
				t.Errorf("mkey %d: CoRIM name %q, Veraison derives %q", m.Index, m.Name, want)
			}
			if ev.Digest.Alg != uint64(2) || m.Digests[0].Alg != 7 || !bytes.Equal(ev.Digest.Val, m.Digests[0].Value) {
				t.Errorf("mkey %d: token %v/%x, CoRIM %d/%x", m.Index, ev.Digest.Alg, ev.Digest.Val, m.Digests[0].Alg, m.Digests[0].Value)
			}
		}
	}
}
