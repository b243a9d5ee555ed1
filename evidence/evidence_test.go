package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleDevices() []Device {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	return []Device{
		{
			Label: "0000:01:00.1", Status: StatusOK, Protocols: []string{"DOE discovery", "CMA/SPDM"},
			SPDMVersion:  "1.2",
			Algorithms:   &Algorithms{BaseAsym: "ECDSA_P384", BaseAsymBits: 0x80, BaseHash: "SHA_384", BaseHashBits: 2},
			Capabilities: []string{"CERT", "CHAL"}, CapabilityFlags: 0x6,
			CertChain: []byte{1, 2, 3, 4},
			Measurements: &Measurements{
				InSession: true, Nonce: bytes.Repeat([]byte{7}, 32),
				Request: []byte{0x12, 0xe0, 1, 0xff}, Response: []byte{0x12, 0x60, 0, 0}, Transcript: []byte{9, 9},
				Blocks: []Block{{Index: 1, Type: "immutable ROM", TypeCode: 0, Value: "abcd"}},
			},
			Session: &Session{ID: 0xfffe0001, AEAD: "AES_256_GCM", Ended: true},
			IDE: &IDE{KeySet: "K1", SubStreams: []string{"PR", "NPR", "CPL"}, RootPort: "simulated root port",
				Steps: []IDEStep{{Name: "QUERY", Result: "ok"}}},
			Started: t0, Finished: t0.Add(time.Second),
		},
		{Label: "0000:02:00.1", Status: StatusFailed, FailedStep: "GET_CERTIFICATE", Error: "untrusted", Started: t0, Finished: t0},
	}
}

func sampleReport(t testing.TB) *Report {
	r, err := NewReport([]byte("owner nonce"), sampleDevices())
	if err != nil {
		t.Fatal(err)
	}
	r.Platform = Platform{Kind: "snp", Report: []byte{1, 2, 3}, BootBinding: BootBindingNoRegister}
	r.PolicyDigest = bytes.Repeat([]byte{5}, 32)
	r.Created = time.Date(2026, 11, 26, 12, 0, 2, 0, time.UTC)
	return r
}

func TestRoundTrip(t *testing.T) {
	r := sampleReport(t)
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	b2, err := Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the encoding:\n%s\n%s", b, b2)
	}
	if !got.Devices[0].OK() || got.Devices[1].OK() {
		t.Fatal("device status not preserved")
	}
	if UserData(got.Nonce, got.Evidence) != UserData(r.Nonce, r.Evidence) {
		t.Fatal("user data differs after the round trip")
	}
	if _, err := Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("Decode: %v", err)
	}
}

// edit decodes a marshalled report into generic JSON, applies f and
// re-encodes it.
func edit(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	b, err := Marshal(sampleReport(t))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStrictDecoding(t *testing.T) {
	good, _ := Marshal(sampleReport(t))
	dev0 := func(m map[string]any) map[string]any { return m["devices"].([]any)[0].(map[string]any) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"unknown top-level field", edit(t, func(m map[string]any) { m["verdict"] = "pass" }), ErrUnknownField},
		{"unknown device field", edit(t, func(m map[string]any) { dev0(m)["trusted"] = true }), ErrUnknownField},
		{"wrong version", edit(t, func(m map[string]any) { m["version"] = "devattest-report/2" }), ErrVersion},
		{"no version", edit(t, func(m map[string]any) { delete(m, "version") }), ErrVersion},
		{"bad base64 nonce", edit(t, func(m map[string]any) { m["nonce"] = "!!not base64!!" }), ErrEncoding},
		{"bad base64 chain", edit(t, func(m map[string]any) { dev0(m)["cert_chain"] = "a" }), ErrEncoding},
		{"bad hex value", edit(t, func(m map[string]any) {
			dev0(m)["measurements"].(map[string]any)["blocks"].([]any)[0].(map[string]any)["value"] = "xyz"
		}), ErrInvalid},
		{"failed device claims ok", edit(t, func(m map[string]any) {
			m["devices"].([]any)[1].(map[string]any)["status"] = "ok"
		}), ErrInvalid},
		{"failed device without step", edit(t, func(m map[string]any) {
			delete(m["devices"].([]any)[1].(map[string]any), "failed_step")
		}), ErrInvalid},
		{"parsed device differs from evidence", edit(t, func(m map[string]any) { dev0(m)["spdm_version"] = "1.3" }), ErrEvidence},
		{"evidence missing", edit(t, func(m map[string]any) { m["evidence"] = []any{} }), ErrEvidence},
		{"trailing data", append(append([]byte(nil), good...), []byte(`{}`)...), ErrSyntax},
		{"truncated", good[:len(good)/2], ErrSyntax},
		{"wrong type", edit(t, func(m map[string]any) { m["devices"] = "none" }), ErrSyntax},
		{"too large", append(bytes.Repeat([]byte(" "), MaxReportSize), good...), ErrTooLarge},
		{"bad boot binding", edit(t, func(m map[string]any) { m["platform"].(map[string]any)["boot_binding"] = "yes" }), ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Unmarshal(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("Unmarshal = %v, want %v", err, c.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
		})
	}
}

func TestUserDataFromCarriedBytes(t *testing.T) {
	r := sampleReport(t)
	want := UserData(r.Nonce, r.Evidence)
	b, _ := Marshal(r)
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	// Recompute from the bytes carried in the report, before parsing them.
	if UserData(got.Nonce, got.Evidence) != want {
		t.Fatal("user data does not recompute from the carried evidence bytes")
	}
	for i := range r.Evidence {
		for _, pos := range []int{0, len(r.Evidence[i]) / 2, len(r.Evidence[i]) - 1} {
			ev := cloneAll(r.Evidence)
			ev[i][pos] ^= 1
			if UserData(r.Nonce, ev) == want {
				t.Fatalf("flipping byte %d of evidence %d does not change the user data", pos, i)
			}
		}
	}
	if UserData([]byte("other nonce"), r.Evidence) == want {
		t.Fatal("another nonce gives the same user data")
	}
	// Length prefixes: moving a byte between blobs changes the result.
	a := UserData(nil, [][]byte{[]byte("ab"), []byte("c")})
	if a == UserData(nil, [][]byte{[]byte("a"), []byte("bc")}) {
		t.Fatal("blob boundaries are not bound")
	}
	if EvidenceDigest(r.Evidence[0]) == EvidenceDigest(r.Evidence[1]) {
		t.Fatal("evidence digests collide")
	}
}

func cloneAll(in [][]byte) [][]byte {
	out := make([][]byte, len(in))
	for i, b := range in {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

// TestUserDataVector pins the construction: a change to the label, the
// prefixes or the hash breaks every verifier.
func TestUserDataVector(t *testing.T) {
	got := UserData([]byte{1, 2, 3}, [][]byte{[]byte("x"), {}})
	var buf bytes.Buffer
	buf.WriteString("devattest-report/1 user data\x00")
	buf.Write([]byte{0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 2})
	buf.Write([]byte{0, 0, 0, 0, 0, 0, 0, 1, 'x'})
	buf.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	if want := sha512Sum(buf.Bytes()); got != want {
		t.Fatalf("UserData = %x, want %x", got, want)
	}
}

// TestFuzzSeedsPresent checks that the decoder's fuzz seeds are in
// testdata (go test runs them as part of FuzzUnmarshal).
func TestFuzzSeedsPresent(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzUnmarshal", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fuzz seeds in testdata/fuzz/FuzzUnmarshal (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "go test fuzz v1\n") {
			t.Fatalf("%s is not a fuzz corpus file", f)
		}
	}
}

// TestBootSection: a report's boot section round-trips, and its evidence
// must decode strictly to valid devices.
func TestBootSection(t *testing.T) {
	r := sampleReport(t)
	r.Boot = &Boot{PolicyDigest: r.PolicyDigest, Evidence: r.Evidence}
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := got.Boot.Devices()
	if err != nil || len(devs) != len(r.Devices) || devs[0].Label != r.Devices[0].Label {
		t.Fatalf("boot devices %+v, %v", devs, err)
	}
	for name, bad := range map[string][]byte{
		"not JSON":      []byte("{"),
		"unknown field": []byte(`{"label":"a","status":"ok","color":"red"}`),
		"invalid":       []byte(`{"label":"a","status":"ok"}`),
	} {
		r.Boot = &Boot{Evidence: [][]byte{bad}}
		b, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Unmarshal(b); !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), "boot device 0") {
			t.Errorf("%s: Unmarshal = %v, want ErrEvidence naming boot device 0", name, err)
		}
	}
}
