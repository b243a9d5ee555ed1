package main

import (
	"bytes"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
)

func serveVF(t *testing.T, dir, name string) (addr, anchor string) {
	t.Helper()
	vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &doe.Server{Mailbox: vf.Driver(), ExchangeTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	anchor = filepath.Join(dir, name+".pem")
	if err := os.WriteFile(anchor, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return "unix:" + ln.Addr().String(), anchor
}

func TestAttestCommand(t *testing.T) {
	dir := t.TempDir()
	a, aRoot := serveVF(t, dir, "a")
	b, bRoot := serveVF(t, dir, "b")
	write := func(name, bAnchor string) string {
		p := filepath.Join(dir, name)
		y := "platform: fake-snp\nide: true\ndevices:\n  - {label: dev-a, shim: \"" + a + "\", trust_anchors: [" + aRoot + "]}\n" +
			"  - {label: dev-b, shim: \"" + b + "\", trust_anchors: [" + bAnchor + "]}\n"
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"attest", "--config", write("good.yaml", bRoot), "--out", out, "--nonce", "00112233"}, &stdout, &stderr); rc != 0 {
		t.Fatalf("attest exit %d\n%s\n%s", rc, stdout.String(), stderr.String())
	}
	for _, want := range []string{"device dev-a (required): ok", "device dev-b (required): ok", "key set K1", "boot binding: no runtime register"} {
		if !strings.Contains(stdout.String(), want) {
			t.Fatalf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Unmarshal(raw)
	if err != nil || len(rep.ParsedBody().Devices) != 2 || !bytes.Equal(rep.ParsedBody().Nonce, []byte{0, 0x11, 0x22, 0x33}) {
		t.Fatalf("report: %v", err)
	}

	stdout.Reset()
	stderr.Reset()
	if rc := run([]string{"attest", "--config", write("bad.yaml", aRoot), "--out", out}, &stdout, &stderr); rc != 1 {
		t.Fatalf("attest with a wrong anchor: exit %d", rc)
	}
	if !strings.Contains(stdout.String(), "device dev-b (required): FAILED at GET_CERTIFICATE") || !strings.Contains(stderr.String(), `"dev-b" failed at GET_CERTIFICATE`) {
		t.Fatalf("failure not reported:\n%s\n%s", stdout.String(), stderr.String())
	}
	if raw, _ := os.ReadFile(out); !bytes.Contains(raw, []byte(`\"status\":\"failed\"`)) {
		t.Fatal("the written report does not record the failure")
	}
	if rc := run([]string{"attest", "--config", "x", "--nonce", "zz"}, &stdout, &stderr); rc != 2 {
		t.Fatalf("bad nonce: exit %d", rc)
	}
}
