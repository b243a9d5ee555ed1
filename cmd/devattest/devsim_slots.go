package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/devattest/devattest/secchan"
)

// Certificate slots of devsim: --cert-chain and --key repeat, one pair per
// slot in order, and --slots names a YAML file with the same list, e.g.
//
//	slots:
//	  - cert_chain: ecp384/bundle_responder.certchain.der
//	    key: ecp384/end_responder.key
//	  - cert_chain: ecp384/bundle_responder.certchain1.der
//	    key: ecp384/end_responder.key
//
// Relative paths in the file are relative to the file's directory. After
// ALGORITHMS the responder serves, from slot 0 up, the identities whose key
// matches the selected algorithm, so slots of one key type number as they
// are listed.

// maxSlots is SPDM's slot count (slot IDs 0-7).
const maxSlots = 8

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// slotFile is --slots' YAML.
type slotFile struct {
	Slots []struct {
		CertChain string `yaml:"cert_chain"`
		Key       string `yaml:"key"`
	} `yaml:"slots"`
}

// slotPair is one slot's chain and key files.
type slotPair struct{ chain, key string }

// readSlotFile parses --slots strictly: unknown fields, a missing path or
// more than eight slots are errors that name the entry.
func readSlotFile(path string) ([]slotPair, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--slots: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f slotFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("--slots %s: %w", path, err)
	}
	if len(f.Slots) == 0 {
		return nil, fmt.Errorf("--slots %s: no slots listed", path)
	}
	dir := path[:strings.LastIndex(path, "/")+1]
	var out []slotPair
	for i, s := range f.Slots {
		if s.CertChain == "" || s.Key == "" {
			return nil, fmt.Errorf("--slots %s: slot %d needs both cert_chain and key", path, i)
		}
		out = append(out, slotPair{chain: relTo(dir, s.CertChain), key: relTo(dir, s.Key)})
	}
	return out, nil
}

func relTo(dir, p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return dir + p
}

// slotIdentities loads the slots from the repeated flags and the --slots
// file (flags first) and returns the first slot's root and every identity.
func slotIdentities(chains, keys []string, slotsFile string) ([]byte, []secchan.Identity, string, error) {
	if len(chains) != len(keys) {
		return nil, nil, "", fmt.Errorf("%d --cert-chain and %d --key: they go in pairs, one pair per slot", len(chains), len(keys))
	}
	var pairs []slotPair
	for i := range chains {
		pairs = append(pairs, slotPair{chain: chains[i], key: keys[i]})
	}
	if slotsFile != "" {
		more, err := readSlotFile(slotsFile)
		if err != nil {
			return nil, nil, "", err
		}
		pairs = append(pairs, more...)
	}
	if len(pairs) > maxSlots {
		return nil, nil, "", fmt.Errorf("%d certificate slots given; SPDM has %d", len(pairs), maxSlots)
	}
	if len(pairs) == 0 {
		return nil, nil, "", errors.New("no certificate slot given")
	}
	var root []byte
	var ids []secchan.Identity
	var sources []string
	for i, p := range pairs {
		r, id, err := loadIdentity(p.chain, p.key)
		if err != nil {
			return nil, nil, "", fmt.Errorf("slot %d: %w", i, err)
		}
		if i == 0 {
			root = r
		}
		ids = append(ids, id...)
		sources = append(sources, p.chain)
	}
	return root, ids, strings.Join(sources, ","), nil
}
