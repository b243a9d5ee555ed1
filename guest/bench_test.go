package guest

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/guest/platform"
)

// benchDevices serves n emulated VFs (devsim), each answering every DOE
// message after delay, and returns a configuration naming all of them.
func benchDevices(b *testing.B, n int, delay time.Duration) *Config {
	b.Helper()
	dir := b.TempDir()
	cfg := &Config{Platform: "fake-snp"}
	for i := range n {
		vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
		if err != nil {
			b.Fatal(err)
		}
		vf.SetFaults(devsim.Faults{Delay: delay})
		root, err := x509.ParseCertificate(rootDER)
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("vf%d.sock", i))
		ln, err := net.Listen("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		srv := &doe.Server{Mailbox: vf.Driver(), ExchangeTimeout: 10 * time.Second}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		cfg.Devices = append(cfg.Devices, DeviceConfig{
			Label:   fmt.Sprintf("0000:%02x:00.1", i+1),
			Shim:    "unix:" + path,
			Anchors: []*x509.Certificate{root},
		})
	}
	return cfg
}

// BenchmarkAttestDevices compares attesting 8 devices with attesting 1,
// each device answering every message 2 ms late (a slow mailbox): the
// devices are attested concurrently, so 8 should cost little more than 1.
// Each iteration times one 1-device and one 8-device attestation, so the
// ratio is measured within one run; goal 8dev/1dev ≤ 1.5. The emulated
// devices' own cryptography (P-384 signing) runs in this process too, so
// on a machine with few cores the 8-device run is partly CPU-bound.
func BenchmarkAttestDevices(b *testing.B) {
	cfg8 := benchDevices(b, 8, benchDelay)
	cfg1 := &Config{Platform: cfg8.Platform, Devices: cfg8.Devices[:1]}
	att, err := platform.NewFakeSNP()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	nonce := []byte("benchmark owner nonce")
	attest := func(cfg *Config) time.Duration {
		start := time.Now()
		rep, err := AttestWith(ctx, cfg, att, nonce)
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.ParsedBody().Devices) != len(cfg.Devices) {
			b.Fatalf("%d devices in the report", len(rep.ParsedBody().Devices))
		}
		return time.Since(start)
	}
	attest(cfg8) // warm up: connections, caches
	var t1, t8 time.Duration
	iters := 0
	for b.Loop() {
		t1 += attest(cfg1)
		t8 += attest(cfg8)
		iters++
	}
	n := float64(iters)
	b.ReportMetric(float64(t1.Microseconds())/1e3/n, "ms/1dev")
	b.ReportMetric(float64(t8.Microseconds())/1e3/n, "ms/8dev")
	b.ReportMetric(float64(t8)/float64(t1), "8dev/1dev")
}

// benchDelay is each emulated device's per-message latency.
const benchDelay = 2 * time.Millisecond
