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
				Blocks: []Block{{Index: 1, Type: "immutable ROM", TypeCode: 0, Value: []byte{0xab, 0xcd}}},
			},
			Session: &Session{ID: 0xfffe0001, AEAD: "AES_256_GCM", Ended: true},
			IDE: &IDE{KeySet: "K1", SubStreams: []string{"PR", "NPR", "CPL"}, RootPort: RootPortSimulated,
				Steps: []IDEStep{{Name: "QUERY", Result: "ok"}}},
			TDISP:   &TDISP{FunctionID: 0xbeef, LockFlags: 5, MMIOReportingOffset: 1 << 40, InterfaceReport: bytes.Repeat([]byte{0xd0}, 100), State: "RUN"},
			Events:  []DeviceEvent{{Time: t0, Kind: "session lost", Message: "re-established <after> reset & retry"}},
			Started: t0, Finished: t0.Add(time.Second),
		},
		{Label: "0000:02:00.1", Status: StatusFailed, FailedStep: "GET_CERTIFICATE", Error: "untrusted", Started: t0, Finished: t0},
	}
}

func sampleBody() *Body {
	return &Body{
		Nonce: []byte("owner nonce"), Created: time.Date(2026, 11, 26, 12, 0, 2, 0, time.UTC),
		Platform: "snp", PolicyDigest: bytes.Repeat([]byte{5}, 32), BootBinding: BootBindingNoRegister,
		Devices: sampleDevices(),
	}
}

func sampleReport(t testing.TB) *Report {
	t.Helper()
	r, err := NewReport(sampleBody())
	if err != nil {
		t.Fatal(err)
	}
	r.Platform = Platform{Report: []byte{1, 2, 3}}
	return r
}

func marshalled(t testing.TB) []byte {
	t.Helper()
	b, err := Marshal(sampleReport(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	r := sampleReport(t)
	b := marshalled(t)
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
	body := got.ParsedBody()
	if !body.Devices[0].OK() || body.Devices[1].OK() {
		t.Fatal("device status not preserved")
	}
	if got.UserData() != r.UserData() {
		t.Fatal("user data differs after the round trip")
	}
	if _, err := Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	// Each device's bytes stand in the body exactly: the boot binding
	// hashes them.
	for i, db := range body.DeviceBytes() {
		if !bytes.Contains(got.Body, db) {
			t.Fatalf("device %d's bytes are not inside the body", i)
		}
	}
	// Byte strings are hex in the body.
	if !bytes.Contains(got.Body, []byte(`"cert_chain":"01020304"`)) {
		t.Fatalf("cert_chain is not hex in the body: %s", got.Body)
	}
}

// editBody re-encodes the sample report with its body edited as generic
// JSON (so the body's bytes change and are no longer canonical unless f
// keeps them so).
func editBody(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sampleReport(t).Body, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return withBody(t, string(body))
}

// withBody is the sample report with its body replaced by body (as a
// report author may write any body).
func withBody(t *testing.T, body string) []byte {
	t.Helper()
	r := sampleReport(t)
	r.Body = []byte(body)
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func editContainer(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(marshalled(t), &m); err != nil {
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
	good := marshalled(t)
	body := string(sampleReport(t).Body)
	dev0 := func(m map[string]any) map[string]any { return m["devices"].([]any)[0].(map[string]any) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"unknown container field", editContainer(t, func(m map[string]any) { m["verdict"] = "pass" }), ErrUnknownField},
		{"v1 report", []byte(`{"version":"devattest-report/1","nonce":"AA=="}`), ErrVersion},
		{"other version", editContainer(t, func(m map[string]any) { m["version"] = "devattest-report/3" }), ErrVersion},
		{"no version", editContainer(t, func(m map[string]any) { delete(m, "version") }), ErrVersion},
		{"other body type", editContainer(t, func(m map[string]any) { m["body_type"] = "eat" }), ErrVersion},
		{"no body", editContainer(t, func(m map[string]any) { delete(m, "body") }), ErrInvalid},
		{"unknown body field", editBody(t, func(m map[string]any) { m["verdict"] = "pass" }), ErrUnknownField},
		{"unknown device field", editBody(t, func(m map[string]any) { dev0(m)["trusted"] = true }), ErrUnknownField},
		{"base64 nonce", editBody(t, func(m map[string]any) { m["nonce"] = "b3duZXIgbm9uY2U=" }), ErrEncoding},
		{"upper-case hex", editBody(t, func(m map[string]any) { dev0(m)["cert_chain"] = "0A0B" }), ErrEncoding},
		{"odd hex", editBody(t, func(m map[string]any) { dev0(m)["cert_chain"] = "abc" }), ErrEncoding},
		{"failed device claims ok", editBody(t, func(m map[string]any) {
			m["devices"].([]any)[1].(map[string]any)["status"] = "ok"
		}), ErrInvalid},
		{"failed device without step", editBody(t, func(m map[string]any) {
			delete(m["devices"].([]any)[1].(map[string]any), "failed_step")
		}), ErrInvalid},
		// Keys are sorted by encoding/json's map encoding, so the body is
		// no longer in declaration order.
		{"not canonical: key order", editBody(t, func(map[string]any) {}), ErrCanonical},
		{"not canonical: white space", withBody(t, strings.Replace(body, `"nonce":`, `"nonce": `, 1)), ErrCanonical},
		{"not canonical: escaped character", withBody(t, strings.Replace(body, `snp`, `\u0073np`, 1)), ErrCanonical},
		{"duplicate key", withBody(t, strings.Replace(body, `{"nonce":"`, `{"nonce":"00","nonce":"`, 1)), ErrSyntax},
		{"key differing in case", withBody(t, strings.Replace(body, `{"nonce":"`, `{"NONCE":"00","nonce":"`, 1)), ErrSyntax},
		{"key folding to a field", withBody(t, strings.Replace(body, `"platform":`, `"platform":"tdx","platfoſm":`, 1)), ErrSyntax},
		{"duplicate container key", bytes.Replace(good, []byte(`"version": `), []byte(`"version": "x", "version": `), 1), ErrSyntax},
		{"trailing data", append(append([]byte(nil), good...), []byte(`{}`)...), ErrSyntax},
		{"truncated", good[:len(good)/2], ErrSyntax},
		{"wrong type", editBody(t, func(m map[string]any) { m["devices"] = "none" }), ErrSyntax},
		{"too large", append(bytes.Repeat([]byte(" "), MaxReportSize), good...), ErrTooLarge},
		{"tdisp without its report", withBody(t, strings.Replace(body, `"interface_report":"`+strings.Repeat("d0", 100)+`"`, `"interface_report":""`, 1)), ErrInvalid},
		{"tdisp without its state", withBody(t, strings.Replace(body, `"state":"RUN"`, `"state":""`, 1)), ErrInvalid},
		{"tdisp unknown field", withBody(t, strings.Replace(body, `"state":"RUN"`, `"state":"RUN","nonce":"00"`, 1)), ErrUnknownField},
		{"bad boot binding", withBody(t, strings.Replace(body, BootBindingNoRegister, "yes", 1)), ErrInvalid},
		{"bad platform kind", withBody(t, strings.Replace(body, `"platform":"snp"`, `"platform":"sev"`, 1)), ErrInvalid},
		{"too deep", withBody(t, strings.Replace(body, `"nonce":`, `"x":[[[[[[[[1]]]]]]]],"nonce":`, 1)), ErrSyntax},
		{"lone surrogate in the container", bytes.Replace(good, []byte(`GET_CERT`), []byte(`\ud800GET`), 1), ErrEncoding},
		{"lone surrogate in the body", bytes.Replace(good, []byte(`GET_CERT`), []byte(`\\ud800GET`), 1), ErrCanonical},
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

func TestUserDataCoversTheBody(t *testing.T) {
	r := sampleReport(t)
	want := r.UserData()
	for _, pos := range []int{0, len(r.Body) / 2, len(r.Body) - 1} {
		b := bytes.Clone(r.Body)
		b[pos] ^= 1
		if UserData(r.BodyType, b) == want {
			t.Fatalf("flipping byte %d of the body does not change the user data", pos)
		}
	}
	if UserData("other", r.Body) == want {
		t.Fatal("another body type gives the same user data")
	}
	// Length prefixes: moving a byte between type and body changes it.
	if UserData("ab", []byte("c")) == UserData("a", []byte("bc")) {
		t.Fatal("the type/body boundary is not bound")
	}
}

// TestUserDataVector pins the construction: a change to the label, the
// prefixes or the hash breaks every verifier.
func TestUserDataVector(t *testing.T) {
	got := UserData("t", []byte("xy"))
	var buf bytes.Buffer
	buf.WriteString("devattest-report/2 user data\x00")
	buf.Write([]byte{0, 1, 't'})
	buf.Write([]byte{0, 0, 0, 0, 0, 0, 0, 2, 'x', 'y'})
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

// TestBootSection: a body's boot section round-trips, and its devices
// must decode strictly, canonically, to valid devices.
func TestBootSection(t *testing.T) {
	body := sampleBody()
	devBytes, err := DeviceBytes(body.Devices)
	if err != nil {
		t.Fatal(err)
	}
	body.Boot = &Boot{PolicyDigest: body.PolicyDigest}
	for _, b := range devBytes {
		body.Boot.Devices = append(body.Boot.Devices, b)
	}
	r, err := NewReport(body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := got.ParsedBody().Boot.ParseDevices()
	if err != nil || len(devs) != len(body.Devices) || devs[0].Label != body.Devices[0].Label {
		t.Fatalf("boot devices %+v, %v", devs, err)
	}
	for name, bad := range map[string]string{
		"unknown field": `{"label":"a","status":"ok","color":"red"}`,
		"invalid":       `{"label":"a","status":"ok"}`,
		"not canonical": `{"status":"failed","label":"a","failed_step":"x"}`,
	} {
		body.Boot = &Boot{Devices: []json.RawMessage{json.RawMessage(bad)}}
		if _, err := NewReport(body); err == nil || !strings.Contains(err.Error(), "boot device 0") {
			t.Errorf("%s: NewReport = %v, want an error naming boot device 0", name, err)
		}
	}
}
