package guest

import (
	"bytes"
	"context"
	"crypto"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	vplatform "github.com/devattest/devattest/policy/platform"
	"github.com/devattest/devattest/secchan"
)

// simDevice serves an emulated SPDM VF (devsim) on a unix socket, as the
// shim would, and writes its root certificate to a PEM file.
type simDevice struct {
	addr   string
	anchor string
}

func startDevice(t *testing.T, dir, name string) simDevice {
	t.Helper()
	vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &doe.Server{Mailbox: vf.Driver(), ExchangeTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	anchor := filepath.Join(dir, name+"-root.pem")
	if err := os.WriteFile(anchor, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return simDevice{addr: "unix:" + path, anchor: anchor}
}

// twoDevices writes a configuration for two emulated devices and loads it.
func twoDevices(t *testing.T, ide bool) (*Config, [2]simDevice) {
	t.Helper()
	dir := t.TempDir()
	devs := [2]simDevice{startDevice(t, dir, "a"), startDevice(t, dir, "b")}
	yml := "platform: fake-snp\n"
	if ide {
		yml += "ide: true\n"
	}
	yml += "devices:\n"
	for i, d := range devs {
		yml += "  - label: \"0000:0" + string(rune('1'+i)) + ":00.1\"\n    shim: " + d.addr + "\n    trust_anchors: [" + filepath.Base(d.anchor) + "]\n"
	}
	cfgPath := filepath.Join(dir, "guest.yaml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, devs
}

func fakeSNP(t *testing.T) *platform.FakeSNP {
	t.Helper()
	a, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// verifyReport checks what a remote verifier checks, from the JSON alone:
// strict decoding, the platform report over the user data recomputed from
// the carried bytes, and each passed device's measurement signature from
// its carried transcript and chain, with the nonce derived from the
// owner's.
func verifyReport(t *testing.T, rep *evidence.Report, roots *platform.SNPRoots) *evidence.Report {
	t.Helper()
	b, err := evidence.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	got, err := evidence.Unmarshal(b)
	if err != nil {
		t.Fatalf("strict decoding of the guest's report: %v", err)
	}
	ud := got.UserData()
	var pr platform.Report
	if err := pr.UnmarshalBinary(got.Platform.Report); err != nil {
		t.Fatal(err)
	}
	if err := vplatform.VerifyReport(&pr, vplatform.TrustAnchors{SNP: roots}, ud); err != nil {
		t.Fatalf("VerifyReport: %v", err)
	}
	if err := vplatform.VerifySNP(pr.Raw, pr.Certs, roots, ud); err != nil {
		t.Fatalf("VerifySNP: %v", err)
	}
	for _, d := range got.ParsedBody().Devices {
		if d.OK() {
			verifyDeviceSignature(t, got.ParsedBody().Nonce, d)
		}
	}
	return got
}

func verifyDeviceSignature(t *testing.T, ownerNonce []byte, d evidence.Device) {
	t.Helper()
	m := d.Measurements
	hashes := map[uint32]crypto.Hash{secchan.HashSHA256: crypto.SHA256, secchan.HashSHA384: crypto.SHA384, secchan.HashSHA512: crypto.SHA512}
	h, ok := hashes[d.Algorithms.BaseHashBits]
	if !ok {
		t.Fatalf("%s: hash %s", d.Label, d.Algorithms.BaseHash)
	}
	chain, err := secchan.ParseCertChain(d.CertChain, h)
	if err != nil {
		t.Fatalf("%s: chain: %v", d.Label, err)
	}
	v, err := secchan.ParseVersion(d.SPDMVersion)
	if err != nil {
		t.Fatal(err)
	}
	// The transcript ends with the request and the response without its
	// signature; the rest of the response is the signature.
	i := bytes.LastIndex(m.Transcript, m.Request)
	if i < 0 {
		t.Fatalf("%s: transcript does not contain the carried request", d.Label)
	}
	unsigned := m.Transcript[i+len(m.Request):]
	if !bytes.HasPrefix(m.Response, unsigned) || len(m.Response) == len(unsigned) {
		t.Fatalf("%s: transcript does not end with the carried response", d.Label)
	}
	sig := m.Response[len(unsigned):]
	th := h.New()
	th.Write(m.Transcript)
	if err := secchan.VerifySignature(v, d.Algorithms.BaseAsymBits, h, chain.Leaf().PublicKey, secchan.ContextMeasurements, th.Sum(nil), sig); err != nil {
		t.Fatalf("%s: measurement signature does not verify from the carried bytes: %v", d.Label, err)
	}
	want := SPDMNonce(d.Label, ownerNonce)
	if !bytes.Equal(m.Nonce, want[:]) || !bytes.Equal(m.Request[4:4+secchan.NonceSize], want[:]) {
		t.Fatalf("%s: GET_MEASUREMENTS nonce is not derived from the owner's nonce", d.Label)
	}
}

func TestAttestTwoDevices(t *testing.T) {
	cfg, _ := twoDevices(t, true)
	att := fakeSNP(t)
	nonce := []byte("owner nonce 0123456789abcdef0123")
	rep, err := AttestWith(ctxT(t), cfg, att, nonce)
	if err != nil {
		t.Fatalf("AttestWith: %v", err)
	}
	if len(rep.ParsedBody().Devices) != 2 {
		t.Fatalf("%d devices", len(rep.ParsedBody().Devices))
	}
	for _, d := range rep.ParsedBody().Devices {
		if !d.OK() || d.Session == nil || !d.Session.Ended || d.IDE == nil || d.IDE.KeySet != "K1" || len(d.Measurements.Blocks) == 0 {
			t.Fatalf("device %s: %+v", d.Label, d)
		}
	}
	if rep.ParsedBody().Platform != "snp" || rep.ParsedBody().BootBinding != evidence.BootBindingNoRegister {
		t.Fatalf("platform %+v", rep.Platform)
	}
	got := verifyReport(t, rep, att.Roots())
	// A flipped byte of the body breaks the binding.
	body := bytes.Clone(got.Body)
	body[len(body)/2] ^= 1
	var pr platform.Report
	_ = pr.UnmarshalBinary(got.Platform.Report)
	if err := vplatform.VerifyReport(&pr, vplatform.TrustAnchors{SNP: att.Roots()}, evidence.UserData(got.BodyType, body)); err == nil {
		t.Fatal("platform report verifies for altered evidence")
	}
}

func TestWrongAnchor(t *testing.T) {
	cfg, devs := twoDevices(t, false)
	// Device 0 is configured with device 1's root.
	cfg.Devices[0].Anchors = nil
	cfg.Devices[0].TrustAnchors = []string{devs[1].anchor}
	if err := cfg.Devices[0].LoadAnchors(); err != nil {
		t.Fatal(err)
	}
	att := fakeSNP(t)
	rep, err := AttestWith(ctxT(t), cfg, att, []byte("nonce"))
	var de *DeviceError
	if !errors.As(err, &de) || de.Label != cfg.Devices[0].Label || de.Step != StepCertificate {
		t.Fatalf("AttestWith error = %v, want device %q failed at %s", err, cfg.Devices[0].Label, StepCertificate)
	}
	if !errors.Is(err, secchan.ErrCertChain) || !strings.Contains(err.Error(), cfg.Devices[0].Label) {
		t.Fatalf("error %v does not name the device and the chain failure", err)
	}
	if rep == nil {
		t.Fatal("no report with the failure")
	}
	d0, d1 := rep.ParsedBody().Devices[0], rep.ParsedBody().Devices[1]
	if d0.OK() || d0.Status != evidence.StatusFailed || d0.FailedStep != StepCertificate || d0.Measurements != nil {
		t.Fatalf("device 0: %+v", d0)
	}
	if !d1.OK() {
		t.Fatalf("device 1 did not pass: %+v", d1)
	}
	verifyReport(t, rep, att.Roots())
}

func TestShimDown(t *testing.T) {
	dir := t.TempDir()
	dev := startDevice(t, dir, "a")
	cfg, err := ParseConfig([]byte("platform: fake-snp\ndevices:\n  - label: up\n    shim: "+dev.addr+"\n    trust_anchors: ["+dev.anchor+"]\n"+
		"  - label: down\n    shim: unix:"+filepath.Join(dir, "nothing.sock")+"\n    trust_anchors: ["+dev.anchor+"]\n"+
		"  - label: optional-down\n    required: false\n    shim: unix:"+filepath.Join(dir, "none.sock")+"\n    trust_anchors: ["+dev.anchor+"]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	att := fakeSNP(t)
	rep, err := AttestWith(ctxT(t), cfg, att, []byte("nonce"))
	var de *DeviceError
	if !errors.As(err, &de) || de.Label != "down" || de.Step != StepConnect {
		t.Fatalf("AttestWith error = %v, want device down failed at connect", err)
	}
	if strings.Contains(err.Error(), "optional-down") {
		t.Fatalf("error names an optional device: %v", err)
	}
	for i, want := range []string{"", StepConnect, StepConnect} {
		if rep.ParsedBody().Devices[i].FailedStep != want || rep.ParsedBody().Devices[i].OK() != (want == "") {
			t.Fatalf("device %d: %+v", i, rep.ParsedBody().Devices[i])
		}
	}
	verifyReport(t, rep, att.Roots())
}

func TestSameNonceTwice(t *testing.T) {
	cfg, _ := twoDevices(t, false)
	att := fakeSNP(t)
	nonce := []byte("the same owner nonce")
	var reps [2]*evidence.Report
	for i := range reps {
		rep, err := AttestWith(ctxT(t), cfg, att, nonce)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		reps[i] = verifyReport(t, rep, att.Roots())
	}
	for i := range reps[0].ParsedBody().Devices {
		a, b := reps[0].ParsedBody().Devices[i].Measurements, reps[1].ParsedBody().Devices[i].Measurements
		if !bytes.Equal(a.Request, b.Request) {
			t.Fatalf("device %d: the same owner nonce gave different requests", i)
		}
		if bytes.Equal(a.Response, b.Response) || bytes.Equal(a.Transcript, b.Transcript) {
			t.Fatalf("device %d: two sessions signed the same response", i)
		}
	}
}

func TestAttestDeviceDirect(t *testing.T) {
	dev := startDevice(t, t.TempDir(), "a")
	d, err := AttestDevice(ctxT(t), DeviceConfig{Label: "x", Shim: dev.addr, TrustAnchors: []string{dev.anchor}}, []byte("n"))
	if err != nil || !d.OK() || d.IDE != nil {
		t.Fatalf("AttestDevice = %+v, %v", d, err)
	}
	verifyDeviceSignature(t, []byte("n"), d)
}

func TestAttestNonce(t *testing.T) {
	cfg := &Config{Platform: "fake-snp"}
	if _, err := AttestWith(context.Background(), cfg, fakeSNP(t), nil); !errors.Is(err, ErrNonce) {
		t.Fatalf("empty nonce: %v", err)
	}
}
