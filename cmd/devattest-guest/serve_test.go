package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
)

func TestServeCommand(t *testing.T) {
	dir := t.TempDir()
	a, aRoot := serveVF(t, dir, "a")
	sock := filepath.Join(dir, "run", "guest.sock")
	cfgPath := filepath.Join(dir, "guest.yaml")
	y := "platform: fake-snp\nide: true\napi: {unix: \"" + sock + "\"}\ndevices:\n  - {label: dev-a, shim: \"" + a + "\", trust_anchors: [" + aRoot + "]}\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := guest.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get("http://guest/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never became healthy: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := c.Get("http://guest/v1/report?nonce=" + strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rep, err := evidence.Unmarshal(body)
	if resp.StatusCode != http.StatusOK || err != nil || !rep.ParsedBody().Devices[0].OK() || rep.ParsedBody().Devices[0].IDE == nil || rep.ParsedBody().Devices[0].IDE.KeySet != "K1" {
		t.Fatalf("report: %d %v %s", resp.StatusCode, err, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}

	var stderr strings.Builder
	if rc := run([]string{"serve"}, io.Discard, &stderr); rc != 2 {
		t.Fatalf("serve without --config: exit %d", rc)
	}
	noAPI := filepath.Join(dir, "noapi.yaml")
	if err := os.WriteFile(noAPI, []byte("platform: fake-snp\ndevices:\n  - {label: d, shim: \""+a+"\", trust_anchors: ["+aRoot+"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc := run([]string{"serve", "--config", noAPI}, io.Discard, &stderr); rc != 1 || !strings.Contains(stderr.String(), "api.unix") {
		t.Fatalf("serve without an API listener: exit %d: %s", rc, stderr.String())
	}
}
