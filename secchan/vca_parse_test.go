package secchan_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/devattest/devattest/secchan"
)

// TestParseVCA: VCA taken from a real flow decodes whole, with what it
// negotiated and its length, whatever follows it; a cut or a wrong first
// message is refused naming the message.
func TestParseVCA(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{})
	f.cfg.Versions = []secchan.Version{secchan.V12}
	q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
	if err := flow(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	raw := q.VCA()
	vca, err := secchan.ParseVCA(append(bytes.Clone(raw), 0x12, 0x81, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if vca.Len != len(raw) || vca.Algorithms.Version != secchan.V12 || vca.Capabilities.Version != secchan.V12 {
		t.Fatalf("Len %d of %d, versions %v %v", vca.Len, len(raw), vca.Algorithms.Version, vca.Capabilities.Version)
	}
	if _, err := secchan.ParseVCA(raw[:len(raw)-1]); err == nil || !strings.HasPrefix(err.Error(), "ALGORITHMS: ") {
		t.Fatalf("cut in ALGORITHMS: %v", err)
	}
	if _, err := secchan.ParseVCA(raw[4:]); err == nil || !strings.HasPrefix(err.Error(), "GET_VERSION: ") {
		t.Fatalf("starting at VERSION: %v", err)
	}
	if _, err := secchan.ParseVCA(nil); err == nil {
		t.Fatal("an empty transcript parsed")
	}
}
