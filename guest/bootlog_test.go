package guest

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	vplatform "github.com/devattest/devattest/policy/platform"
)

// TestDaemonAdoptsBootEventLog: the one-shot attest extends RTMR 3 at
// boot; the daemon, a second process on the same TD, must not extend again
// but take over that event log, so that its own reports replay to the
// register. Without the boot report it would extend a second time and its
// log would not replay.
func TestDaemonAdoptsBootEventLog(t *testing.T) {
	dir := t.TempDir()
	vfs := []*liveVF{newLiveVF(t, dir, "a", true), newLiveVF(t, dir, "b", true)}
	yml := "platform: fake-tdx\nremeasure_interval: 1h\ndevices:\n"
	for i, v := range vfs {
		yml += fmt.Sprintf("  - label: dev%d\n    shim: unix:%s\n    trust_anchors: [%s]\n", i, v.path, v.anchor)
	}
	cfg, err := ParseConfig([]byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Devices {
		if err := cfg.Devices[i].LoadAnchors(); err != nil {
			t.Fatal(err)
		}
	}
	boot, err := platform.NewFakeTDX(platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bootRep, err := AttestWith(ctxT(t), cfg, boot, bytes.Repeat([]byte{0xb0}, 32))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := evidence.Marshal(bootRep)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := evidence.Unmarshal(raw) // as the daemon reads it back
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(cfg, ServiceOptions{Attester: boot.SamePlatform(), BootReport: onDisk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DeviceTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if _, err := svc.Start(ctxT(t), bytes.Repeat([]byte{0xb1}, 32)); err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{0x42}, 32)
	rep, err := svc.Report(ctxT(t), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ParsedBody().BootBinding != evidence.BootBindingExtended {
		t.Fatalf("boot binding %q", rep.ParsedBody().BootBinding)
	}
	var pr platform.Report
	if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
		t.Fatal(err)
	}
	if len(pr.EventLog) != 1+len(cfg.Devices) {
		t.Fatalf("daemon report carries %d events, want the boot's %d", len(pr.EventLog), 1+len(cfg.Devices))
	}
	anchors := vplatform.TrustAnchors{TDX: boot.Roots()}
	if err := vplatform.VerifyReport(&pr, anchors, rep.UserData()); err != nil {
		t.Fatalf("the daemon's report does not verify with the boot event log: %v", err)
	}
	// A daemon of another platform kind refuses the boot report.
	snp := fakeSNP(t)
	other, err := NewService(cfg, ServiceOptions{Attester: snp, BootReport: onDisk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	if _, err := other.Start(ctxT(t), nonce); err == nil {
		t.Fatal("a fake-snp daemon took over a TDX boot report")
	}

}
