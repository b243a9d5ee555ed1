package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
)

// writeIdentityFiles writes devsim identities as chain DER and PKCS#8 PEM
// files in dir and returns their names.
func writeIdentityFiles(t *testing.T, dir string) (chains, keys []string) {
	t.Helper()
	_, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		der, err := x509.MarshalPKCS8PrivateKey(id.Key)
		if err != nil {
			t.Fatal(err)
		}
		c, k := filepath.Join(dir, "chain"+string(rune('0'+i))+".der"), filepath.Join(dir, "key"+string(rune('0'+i))+".pem")
		if err := os.WriteFile(c, bytes.Join(id.Chain, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		chains, keys = append(chains, c), append(keys, k)
	}
	return chains, keys
}

func TestDevsimSlots(t *testing.T) {
	dir := t.TempDir()
	chains, keys := writeIdentityFiles(t, dir)
	yml := filepath.Join(dir, "slots.yaml")
	if err := os.WriteFile(yml, []byte("slots:\n  - cert_chain: chain0.der\n    key: key0.pem\n  - cert_chain: "+chains[1]+"\n    key: "+keys[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, ids, _, err := slotIdentities(chains[:1], keys[:1], yml)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || root == nil || !bytes.Equal(bytes.Join(ids[1].Chain, nil), bytes.Join(ids[0].Chain, nil)) {
		t.Fatalf("%d identities from one flag pair and a two-slot file", len(ids))
	}

	for name, c := range map[string]struct {
		chains, keys []string
		file, want   string
	}{
		"unpaired":      {chains: chains, keys: keys[:1], want: "pairs"},
		"wrong key":     {chains: chains[:1], keys: keys[1:], want: "slot 0"},
		"nine slots":    {chains: append(chains, chains[0], chains[0], chains[0], chains[0], chains[0], chains[0], chains[0]), keys: append(keys, keys[0], keys[0], keys[0], keys[0], keys[0], keys[0], keys[0]), want: "SPDM has 8"},
		"unknown field": {file: "slots:\n  - cert_chain: a\n    key: b\n    colour: red\n", want: "colour"},
		"missing key":   {file: "slots:\n  - cert_chain: a\n", want: "slot 0 needs both"},
		"empty":         {file: "slots: []\n", want: "no slots"},
	} {
		t.Run(name, func(t *testing.T) {
			f := ""
			if c.file != "" {
				f = filepath.Join(t.TempDir(), "s.yaml")
				if err := os.WriteFile(f, []byte(c.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, _, _, err := slotIdentities(c.chains, c.keys, f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
}

// FuzzReadSlotFile: any --slots content gives slots or an error, never a
// panic, and never more than eight slots or an entry without both paths.
func FuzzReadSlotFile(f *testing.F) {
	f.Add([]byte("slots:\n  - cert_chain: a.der\n    key: a.pem\n"))
	f.Add([]byte("slots: []\n"))
	f.Add([]byte("slots:\n  - cert_chain: /abs\n    key: k\n  - {cert_chain: b, key: c}\n"))
	f.Add([]byte("slots: {cert_chain: a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "s.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		pairs, err := readSlotFile(p)
		if err != nil {
			return
		}
		for _, s := range pairs {
			if s.chain == "" || s.key == "" {
				t.Fatalf("slot without a path: %+v", s)
			}
		}
	})
}
