package eatda_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/evidence/eatda"
	"github.com/devattest/devattest/guest"
)

var update = flag.Bool("update", false, "attest a devsim device and rewrite testdata/body.json and golden.cbor")

// fixture is a body with one device attested by devsim (IDE, in session)
// and one failed device, recorded once (-update) so the golden CBOR is
// stable: devsim's keys are random.
func fixture(t testing.TB) *evidence.Body {
	t.Helper()
	path := filepath.Join("testdata", "body.json")
	if *update {
		writeFixture(t, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := evidence.ParseBody(b)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func writeFixture(t testing.TB, path string) {
	dir := t.TempDir()
	vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "vf.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &doe.Server{Mailbox: vf.Driver(), ExchangeTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nonce := bytes.Repeat([]byte{0xa5}, 32)
	d, err := guest.AttestDevice(ctx, guest.DeviceConfig{Label: "0000:01:00.1", Shim: "unix:" + sock, IDE: true,
		Anchors: []*x509.Certificate{root}}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	d.Events = []evidence.DeviceEvent{{Time: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), Kind: "measurement changed", Message: "block 2"}}
	body := &evidence.Body{
		Nonce: nonce, Created: time.Date(2026, 12, 4, 10, 0, 1, 0, time.UTC), Platform: "tdx",
		PolicyDigest: bytes.Repeat([]byte{0x11}, 32), BootBinding: evidence.BootBindingExtended,
		Devices: []evidence.Device{d, {Label: "0000:02:00.0", Status: evidence.StatusFailed, FailedStep: "connect", Error: "refused",
			Started: d.Started, Finished: d.Finished}},
	}
	rep, err := evidence.NewReport(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, rep.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	golden, err := eatda.EncodeBody(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "golden.cbor"), golden, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGolden(t *testing.T) {
	body := fixture(t)
	got, err := eatda.EncodeBody(body)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "golden.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs from testdata/golden.cbor:\n got %x\nwant %x", got, want)
	}
	// Deterministic: a second encoding is the same bytes.
	again, _ := eatda.EncodeBody(body)
	if !bytes.Equal(again, got) {
		t.Fatal("two encodings of one body differ")
	}
}

// TestClaims checks what the golden token says, claim by claim, against
// the body it came from.
func TestClaims(t *testing.T) {
	body := fixture(t)
	b, err := eatda.EncodeBody(body)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := eatda.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	d := body.Devices[0]
	if tok.Profile != eatda.ProfileDevice || !bytes.Equal(tok.Nonce, body.Nonce) {
		t.Fatalf("profile %q nonce %x", tok.Profile, tok.Nonce)
	}
	if len(tok.Submods) != 1 {
		t.Fatalf("%d submodules, want 1 (the failed device has none)", len(tok.Submods))
	}
	var name string
	var c *eatda.SPDMClaims
	for name, c = range tok.Submods {
	}
	if !strings.HasPrefix(name, "spdm:") || !strings.Contains(name, "devsim device") {
		t.Fatalf("submodule name %q", name)
	}
	if c.Profile != eatda.ProfileDeviceSPDM {
		t.Fatalf("submodule profile %q", c.Profile)
	}
	if len(c.Measurements.Blocks) != len(d.Measurements.Blocks) {
		t.Fatalf("%d measurement blocks, body has %d", len(c.Measurements.Blocks), len(d.Measurements.Blocks))
	}
	for _, blk := range d.Measurements.Blocks {
		m := c.Measurements.Blocks[blk.Index]
		if m.ComponentType != blk.TypeCode {
			t.Fatalf("block %d: component type %d, want %d", blk.Index, m.ComponentType, blk.TypeCode)
		}
		got := m.Raw
		if !blk.Raw {
			got = m.Digest.Val
			if m.Digest.Alg != uint64(2) { // devsim measures with SHA-384
				t.Fatalf("block %d: digest alg %v", blk.Index, m.Digest.Alg)
			}
		}
		if !bytes.Equal(got, blk.Value) {
			t.Fatalf("block %d: value %x, want %x", blk.Index, got, blk.Value)
		}
	}
	if chain := c.Certificates[0]; len(chain) == 0 || !bytes.HasSuffix(d.CertChain, chain) {
		t.Fatal("slot 0 is not the DER tail of the SPDM chain")
	}
	if _, err := x509.ParseCertificates(c.Certificates[0]); err != nil {
		t.Fatal(err)
	}
	s := c.Challenge
	if s == nil || !bytes.Equal(s.IL1, d.Measurements.Transcript) || !bytes.Equal(s.RequesterNonce, d.Measurements.Nonce) ||
		!bytes.HasSuffix(d.Measurements.Response, s.Signature) || len(s.CombinedPrefix) != 100 ||
		!strings.HasSuffix(string(s.CombinedPrefix), "responder-measurements signing") ||
		!bytes.Contains(d.Measurements.Response, s.ResponderNonce) {
		t.Fatalf("challenge claim %+v", s)
	}
	if !bytes.HasPrefix(d.Measurements.Transcript, c.VCA) || len(c.VCA) == 0 {
		t.Fatal("VCA is not the transcript's prefix")
	}
	p := c.Devattest
	if p.Label != d.Label || p.SPDMVersion != d.SPDMVersion || p.IDE == nil || p.IDE.Stream != d.IDE.Stream ||
		len(p.Events) != 1 || p.Events[0].Kind != "measurement changed" {
		t.Fatalf("device private claims %+v", p)
	}
	if d.Session != nil && (p.Session == nil || p.Session.ID != d.Session.ID) {
		t.Fatalf("session %+v", p.Session)
	}
	top := tok.Devattest
	if !bytes.Equal(top.PolicyDigest, body.PolicyDigest) || top.Platform != "tdx" || top.BootBinding != body.BootBinding ||
		len(top.Failed) != 1 || top.Failed[0].FailedStep != "connect" {
		t.Fatalf("private claims %+v", top)
	}
}

// TestRoundTrip: every claim survives decode and re-encode.
func TestRoundTrip(t *testing.T) {
	tok, err := eatda.FromBody(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := eatda.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, tok) {
		t.Fatalf("decoded token differs:\n got %+v\nwant %+v", back, tok)
	}
	b2, err := back.Marshal()
	if err != nil || !bytes.Equal(b2, b) {
		t.Fatalf("re-encoding differs (%v)", err)
	}
	// A UCCS-tagged token decodes to the same.
	tagged, err := cbor.Marshal(cbor.RawTag{Number: 601, Content: b})
	if err != nil {
		t.Fatal(err)
	}
	if back2, err := eatda.Decode(tagged); err != nil || !reflect.DeepEqual(back2, tok) {
		t.Fatalf("tagged: %v", err)
	}
}

// TestDraftExample decodes the draft's example 1 (cddl/examples/1.diag),
// encoded from its diagnostic notation in testdata.
func TestDraftExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "draft-example-1.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := eatda.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	a := tok.Submods["spdm:ACME:WIDGET-A:0123456789"]
	bb := tok.Submods["spdm:C=CA,O=ACME,OU=Widget-B,CN=9876543210"]
	if len(tok.Nonce) != 64 || a == nil || bb == nil {
		t.Fatalf("token %+v", tok)
	}
	if m := a.Measurements.Blocks[1]; m.ComponentType != 2 || string(m.Raw) != "Omaha" {
		t.Fatalf("widget A block 1: %+v", m)
	}
	if m := bb.Measurements.Blocks[6]; m.ComponentType != 2 || m.Digest.Alg != uint64(0) || string(m.Digest.Val) != "undercry" {
		t.Fatalf("widget B block 6: %+v", m)
	}
	if _, ok := bb.Certificates[2]; !ok {
		t.Fatal("widget B has no slot 2")
	}
	for name, want := range map[string]string{"spdm:ACME:WIDGET-A:0123456789": "spdm:ACME:WIDGET-A", "spdm:C=CA,O=ACME,OU=Widget-B,CN=9876543210": "spdm:C=CA,O=ACME,OU=Widget-B"} {
		if got, err := eatda.ClassID(name); err != nil || got != want {
			t.Fatalf("ClassID(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "golden.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nonce := bytes.Repeat([]byte{1}, 32)
	sub := func(m map[any]any) map[any]any {
		return map[any]any{265: eatda.ProfileDevice, 10: nonce, 266: map[string]any{"spdm:a:b:c": m}}
	}
	good := map[any]any{265: eatda.ProfileDeviceSPDM, 3803: map[any]any{0: []byte{1}}}
	for name, c := range map[string]struct {
		in   []byte
		want error
	}{
		"duplicate key":     {append([]byte{0xa3, 0x0a, 0x41, 0x00, 0x0a}, golden[1:]...), eatda.ErrDecode},
		"indefinite map":    {[]byte{0xbf, 0xff}, eatda.ErrDecode},
		"truncated":         {golden[:len(golden)-1], eatda.ErrDecode},
		"trailing bytes":    {append(bytes.Clone(golden), 0), eatda.ErrDecode},
		"wrong profile":     {enc(map[any]any{265: "x", 10: nonce, 266: map[string]any{"a": good}}), eatda.ErrInvalid},
		"short nonce":       {enc(map[any]any{265: eatda.ProfileDevice, 10: []byte{1}, 266: map[string]any{"a": good}}), eatda.ErrInvalid},
		"no submods":        {enc(map[any]any{265: eatda.ProfileDevice, 10: nonce, 266: map[string]any{}}), eatda.ErrInvalid},
		"unknown profile":   {enc(sub(map[any]any{265: "tag:x"})), eatda.ErrInvalid},
		"no artefacts":      {enc(sub(map[any]any{265: eatda.ProfileDeviceSPDM})), eatda.ErrInvalid},
		"no slot 0":         {enc(sub(map[any]any{265: eatda.ProfileDeviceSPDM, 3803: map[any]any{1: []byte{1}}})), eatda.ErrInvalid},
		"block 240":         {enc(sub(map[any]any{265: eatda.ProfileDeviceSPDM, 3802: map[any]any{240: map[any]any{1: 0, 3: []byte{1}}}})), eatda.ErrInvalid},
		"component type 11": {enc(sub(map[any]any{265: eatda.ProfileDeviceSPDM, 3802: map[any]any{1: map[any]any{1: 11, 3: []byte{1}}}})), eatda.ErrInvalid},
		"digest and raw":    {enc(sub(map[any]any{265: eatda.ProfileDeviceSPDM, 3802: map[any]any{1: map[any]any{1: 1, 2: []any{0, []byte{1}}, 3: []byte{1}}}})), eatda.ErrInvalid},
		"short prefix": {enc(sub(map[any]any{265: eatda.ProfileDeviceSPDM, 3803: map[any]any{0: []byte{1}},
			3807: map[any]any{1: 0, 2: nonce, 3: nonce, 4: []byte{1}, 5: []byte{1}, 6: 2, 7: []byte{1}}})), eatda.ErrInvalid},
		"tag inside": {enc(map[any]any{265: eatda.ProfileDevice, 10: cbor.Tag{Number: 2, Content: nonce}, 266: map[string]any{"a": good}}), eatda.ErrDecode},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eatda.Decode(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode: %v, want %v", err, c.want)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	body := fixture(t)
	for name, mod := range map[string]func(b *evidence.Body){
		"nonce too short":  func(b *evidence.Body) { b.Nonce = b.Nonce[:7] },
		"nonce too long":   func(b *evidence.Body) { b.Nonce = bytes.Repeat([]byte{1}, 65) },
		"no device passed": func(b *evidence.Body) { b.Devices = b.Devices[1:] },
		"slot 1":           func(b *evidence.Body) { b.Devices[0].CertSlot = 1 },
		"same device twice": func(b *evidence.Body) {
			d := b.Devices[0]
			d.Label = "other"
			b.Devices = append(b.Devices, d)
		},
		"chain garbage":    func(b *evidence.Body) { b.Devices[0].CertChain = bytes.Repeat([]byte{0}, 80) },
		"response garbage": func(b *evidence.Body) { b.Devices[0].Measurements.Response = []byte{0x12} },
	} {
		t.Run(name, func(t *testing.T) {
			b := cloneBody(t, body)
			mod(b)
			if _, err := eatda.EncodeBody(b); !errors.Is(err, eatda.ErrEncode) {
				t.Fatalf("EncodeBody: %v, want ErrEncode", err)
			}
		})
	}
}

func cloneBody(t testing.TB, b *evidence.Body) *evidence.Body {
	j, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var out evidence.Body
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func FuzzDecode(f *testing.F) {
	for _, p := range []string{"golden.cbor", "draft-example-1.cbor"} {
		if b, err := os.ReadFile(filepath.Join("testdata", p)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := eatda.Decode(b)
		if err != nil {
			return
		}
		// What decodes re-encodes, and the re-encoding decodes to the same.
		enc, err := tok.Marshal()
		if err != nil {
			t.Fatalf("a decoded token does not encode: %v", err)
		}
		back, err := eatda.Decode(enc)
		if err != nil {
			t.Fatalf("the re-encoding does not decode: %v", err)
		}
		enc2, _ := back.Marshal()
		if !bytes.Equal(enc, enc2) {
			t.Fatal("re-encoding is not stable")
		}
	})
}

// FuzzEncodeBody: a verifier encodes every body that carries a claims
// set, so hostile bodies must never panic the encoder, and whatever it
// encodes must decode under the profile's rules.
func FuzzEncodeBody(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "body.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := evidence.ParseBody(b)
		if err != nil {
			return
		}
		tok, err := eatda.EncodeBody(body)
		if err != nil {
			return
		}
		if _, err := eatda.Decode(tok); err != nil {
			t.Fatalf("an encoded body does not decode: %v", err)
		}
	})
}

func TestCombinedPrefix(t *testing.T) {
	p := eatda.CombinedPrefix(0x13, "responder-measurements signing")
	if len(p) != 100 || !strings.HasPrefix(string(p), "dmtf-spdm-v1.3.*dmtf-spdm-v1.3.*") {
		t.Fatalf("%q", p)
	}
	if p := eatda.CombinedPrefix(0xFF, strings.Repeat("x", 40)); p != nil {
		t.Fatalf("an oversized prefix: %q", p)
	}
}
