package guest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	vplatform "github.com/devattest/devattest/policy/platform"
)

// liveVF is an emulated SPDM VF behind a doe.Server on a unix socket,
// with its function and measurements at hand; it may start down.
type liveVF struct {
	vf     *devsim.Function
	meas   *devsim.Measurements
	path   string
	anchor string
}

func newLiveVF(t *testing.T, dir, name string, up bool) *liveVF {
	t.Helper()
	vf, rootDER, meas, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	v := &liveVF{vf: vf, meas: meas, path: filepath.Join(dir, name+".sock"), anchor: filepath.Join(dir, name+"-root.pem")}
	if err := os.WriteFile(v.anchor, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if up {
		v.up(t)
	}
	return v
}

// up starts serving the VF (the shim comes up).
func (v *liveVF) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("unix", v.path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &doe.Server{Mailbox: v.vf.Driver(), ExchangeTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// startService configures a service for vfs (labels dev0, dev1, ...),
// with extraYAML added to the configuration, starts it with a fake SNP
// attester and serves its API on a unix socket.
func startService(t *testing.T, dir, extraYAML string, vfs ...*liveVF) (*Service, *platform.FakeSNP, *evidence.Report, error, *http.Client) {
	t.Helper()
	yml := "platform: fake-snp\nremeasure_interval: 1s\n" + extraYAML + "devices:\n"
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
	att := fakeSNP(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	svc, err := NewService(cfg, ServiceOptions{Attester: att, Logger: log, Interval: 100 * time.Millisecond, DeviceTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	boot, bootErr := svc.Start(ctxT(t), bytes.Repeat([]byte{0xb0}, 32))

	sock := filepath.Join(dir, "api.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("API socket mode: %v %v", fi.Mode(), err)
	}
	hs := svc.NewHTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	return svc, att, boot, bootErr, client
}

func get(t *testing.T, c *http.Client, path string) (int, []byte) {
	t.Helper()
	resp, err := c.Get("http://guest" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func devicesOf(t *testing.T, c *http.Client) []DeviceState {
	t.Helper()
	code, b := get(t, c, "/v1/devices")
	if code != http.StatusOK {
		t.Fatalf("/v1/devices: %d %s", code, b)
	}
	var out struct{ Devices []DeviceState }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Devices
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasEvent(st DeviceState, kind, substr string) bool {
	for _, e := range st.Events {
		if e.Kind == kind && strings.Contains(e.Message, substr) {
			return true
		}
	}
	return false
}

// fetchReport asks for a report over the API and verifies it as a remote
// verifier would.
func fetchReport(t *testing.T, c *http.Client, roots *platform.SNPRoots, nonce []byte) *evidence.Report {
	t.Helper()
	code, b := get(t, c, "/v1/report?nonce="+hex.EncodeToString(nonce))
	if code != http.StatusOK {
		t.Fatalf("/v1/report: %d %s", code, b)
	}
	rep, err := evidence.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rep.ParsedBody().Nonce, nonce) {
		t.Fatalf("report nonce %x, want %x", rep.ParsedBody().Nonce, nonce)
	}
	for _, d := range rep.ParsedBody().Devices {
		if !d.OK() || d.Measurements == nil || !d.Measurements.InSession {
			t.Fatalf("device %s not ok in report: %s %s", d.Label, d.FailedStep, d.Error)
		}
	}
	return verifyReport(t, rep, roots)
}

func TestServiceReport(t *testing.T) {
	dir := t.TempDir()
	a, b := newLiveVF(t, dir, "a", true), newLiveVF(t, dir, "b", true)
	_, att, boot, bootErr, c := startService(t, dir, "", a, b)
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	verifyReport(t, boot, att.Roots())
	if boot.ParsedBody().BootBinding != evidence.BootBindingNoRegister {
		t.Fatalf("boot binding %q", boot.ParsedBody().BootBinding)
	}

	for _, st := range devicesOf(t, c) {
		if st.Status != evidence.StatusOK || st.Sessions != 1 || st.LastMeasured.IsZero() || !hasEvent(st, EventAttested, "") {
			t.Fatalf("device state %+v", st)
		}
	}
	if code, body := get(t, c, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}

	rep := fetchReport(t, c, att.Roots(), bytes.Repeat([]byte{0x42}, 16))
	if rep.ParsedBody().Platform != "snp" || len(rep.ParsedBody().Devices) != 2 {
		t.Fatalf("report %+v", rep.Platform)
	}
	// The report ran inside the boot sessions: no new session.
	for i, d := range rep.ParsedBody().Devices {
		if d.Session.ID != boot.ParsedBody().Devices[i].Session.ID || d.Session.Ended {
			t.Fatalf("%s: session %+v, boot session %+v", d.Label, d.Session, boot.ParsedBody().Devices[i].Session)
		}
	}

	for _, bad := range []string{"", "?nonce=00", "?nonce=zz", "?nonce=" + strings.Repeat("00", 15), "?nonce=" + strings.Repeat("00", 65), "?nonce=" + strings.Repeat("00", 16) + "&nonce=00"} {
		code, body := get(t, c, "/v1/report"+bad)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "nonce") {
			t.Errorf("/v1/report%s: %d %s", bad, code, body)
		}
	}
	if code, _ := get(t, c, "/v1/nothing"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			nonce := bytes.Repeat([]byte{byte(0x10 + i)}, 64)
			code, body := get(t, c, "/v1/report?nonce="+hex.EncodeToString(nonce))
			if code != http.StatusOK {
				t.Errorf("concurrent report %d: %d %s", i, code, body)
				return
			}
			rep, err := evidence.Unmarshal(body)
			if err != nil || !bytes.Equal(rep.ParsedBody().Nonce, nonce) {
				t.Errorf("concurrent report %d: %v", i, err)
				return
			}
			var pr platform.Report
			if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
				t.Error(err)
				return
			}
			if err := vplatform.VerifyReport(&pr, vplatform.TrustAnchors{SNP: att.Roots()}, rep.UserData()); err != nil {
				t.Errorf("concurrent report %d: %v", i, err)
			}
			for _, d := range rep.ParsedBody().Devices {
				want := SPDMNonce(d.Label, nonce)
				if !d.OK() || !bytes.Equal(d.Measurements.Nonce, want[:]) {
					t.Errorf("concurrent report %d: %s: %s %s", i, d.Label, d.Status, d.Error)
				}
			}
		})
	}
	wg.Wait()
}

func TestServiceResetAndChange(t *testing.T) {
	dir := t.TempDir()
	a, b := newLiveVF(t, dir, "a", true), newLiveVF(t, dir, "b", true)
	svc, att, boot, bootErr, c := startService(t, dir, "", a, b)
	if bootErr != nil {
		t.Fatal(bootErr)
	}

	// A function-level reset drops the device's SPDM state: the next
	// re-measurement fails and the service opens a new session.
	a.vf.Reset()
	waitFor(t, "dev0 re-established", func() bool {
		st := svc.Devices()[0]
		return st.Status == evidence.StatusOK && st.Sessions >= 2 && hasEvent(st, EventSessionLost, "") && hasEvent(st, EventReestablished, "")
	})
	if st := svc.Devices()[1]; st.Status != evidence.StatusOK || st.Sessions != 1 {
		t.Fatalf("dev1 should be untouched: %+v", st)
	}
	rep := fetchReport(t, c, att.Roots(), bytes.Repeat([]byte{7}, 32))
	if rep.ParsedBody().Devices[0].Session.ID == boot.ParsedBody().Devices[0].Session.ID && svc.Devices()[0].Sessions < 2 {
		t.Fatalf("dev0 still on the boot session")
	}
	// The next report carries the events, bound in the evidence bytes, and
	// the report after it does not repeat them.
	if !reportHasEvent(rep.ParsedBody().Devices[0], EventSessionLost) || !reportHasEvent(rep.ParsedBody().Devices[0], EventReestablished) {
		t.Fatalf("the report after the reset lacks its events: %+v", rep.ParsedBody().Devices[0].Events)
	}
	if reportHasEvent(rep.ParsedBody().Devices[1], EventSessionLost) {
		t.Fatalf("dev1's report entry has a lost session it did not have: %+v", rep.ParsedBody().Devices[1].Events)
	}
	again := fetchReport(t, c, att.Roots(), bytes.Repeat([]byte{8}, 32))
	if reportHasEvent(again.ParsedBody().Devices[0], EventSessionLost) {
		t.Fatalf("a second report repeats events already reported: %+v", again.ParsedBody().Devices[0].Events)
	}

	// A measurement change is an event.
	idx := boot.ParsedBody().Devices[1].Measurements.Blocks[0].Index
	if err := b.meas.Set(idx, bytes.Repeat([]byte{0xee}, 32)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("measurement index %d changed", idx)
	waitFor(t, "the change event", func() bool { return hasEvent(svc.Devices()[1], EventChanged, want) })
	if changed := fetchReport(t, c, att.Roots(), bytes.Repeat([]byte{9}, 32)); !reportHasEvent(changed.ParsedBody().Devices[1], EventChanged) {
		t.Fatalf("the report after the change lacks it: %+v", changed.ParsedBody().Devices[1].Events)
	}
	for _, st := range devicesOf(t, c) {
		if st.Status != evidence.StatusOK {
			t.Fatalf("%+v", st)
		}
	}
}

func TestServiceDeviceDown(t *testing.T) {
	dir := t.TempDir()
	a, b := newLiveVF(t, dir, "a", true), newLiveVF(t, dir, "b", false)
	svc, att, boot, bootErr, c := startService(t, dir, "", a, b)
	if bootErr == nil || !strings.Contains(bootErr.Error(), "dev1") {
		t.Fatalf("boot error %v, want dev1 named", bootErr)
	}
	if !boot.ParsedBody().Devices[0].OK() || boot.ParsedBody().Devices[1].FailedStep != StepConnect {
		t.Fatalf("boot devices %+v", boot.ParsedBody().Devices)
	}
	sts := devicesOf(t, c)
	if sts[0].Status != evidence.StatusOK || sts[1].Status != evidence.StatusFailed || sts[1].FailedStep != StepConnect || !hasEvent(sts[1], EventFailed, StepConnect) {
		t.Fatalf("states %+v", sts)
	}
	if code, body := get(t, c, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "dev1") || strings.Contains(string(body), "dev0") {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	// A report still comes, with dev1 recorded as failed, and verifies.
	code, body := get(t, c, "/v1/report?nonce="+strings.Repeat("ab", 16))
	if code != http.StatusOK {
		t.Fatalf("/v1/report: %d %s", code, body)
	}
	rep, err := evidence.Unmarshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.ParsedBody().Devices[0].OK() || rep.ParsedBody().Devices[1].OK() {
		t.Fatalf("report devices %+v", rep.ParsedBody().Devices)
	}
	verifyReport(t, rep, att.Roots())

	b.up(t)
	waitFor(t, "dev1 recovered", func() bool { return svc.Devices()[1].Status == evidence.StatusOK })
	if code, body := get(t, c, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after recovery: %d %s", code, body)
	}
	fetchReport(t, c, att.Roots(), bytes.Repeat([]byte{9}, 20))
}

func TestCompareBlocks(t *testing.T) {
	b := func(i uint8, v string) evidence.Block { return evidence.Block{Index: i, Value: []byte(v)} }
	got := compareBlocks([]evidence.Block{b(1, "aa"), b(2, "bb"), b(3, "cc")}, []evidence.Block{b(1, "aa"), b(2, "b0"), b(4, "dd")})
	want := []string{"measurement index 2 changed", "measurement index 4 appeared", "measurement index 3 disappeared"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if compareBlocks(nil, []evidence.Block{b(1, "aa")}) != nil {
		t.Fatal("first measurement compared")
	}
}

func TestConfigAPI(t *testing.T) {
	base := "devices:\n  - label: d\n    shim: unix:/x\n    trust_anchors: [a.pem]\n"
	c, err := ParseConfig([]byte(base), "")
	if err != nil || c.RemeasureInterval != DefaultRemeasureInterval {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := ParseConfig([]byte(base+"remeasure_interval: 10ms\n"), ""); err == nil {
		t.Fatal("10ms interval accepted")
	}
	if _, err := ParseConfig([]byte(base+"api:\n  tcp: 0.0.0.0:7443\n"), ""); err == nil {
		t.Fatal("non-loopback TCP accepted")
	}
	for _, ok := range []string{"api:\n  tcp: 127.0.0.1:7443\n", "api:\n  tcp: \"[::1]:7443\"\n", "api:\n  tcp: 0.0.0.0:7443\n  allow_remote: true\n"} {
		if _, err := ParseConfig([]byte(base+ok), ""); err != nil {
			t.Fatalf("%q: %v", ok, err)
		}
	}
}

func TestServiceResetRekeysIDE(t *testing.T) {
	dir := t.TempDir()
	a := newLiveVF(t, dir, "a", true)
	svc, att, boot, bootErr, c := startService(t, dir, "ide: true\n", a)
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	if x := boot.ParsedBody().Devices[0].IDE; x == nil || x.KeySet != "K1" {
		t.Fatalf("boot IDE %+v", x)
	}
	a.vf.Reset()
	waitFor(t, "dev0 re-established", func() bool {
		st := svc.Devices()[0]
		return st.Status == evidence.StatusOK && st.Sessions >= 2
	})
	rep := fetchReport(t, c, att.Roots(), bytes.Repeat([]byte{3}, 32))
	if x := rep.ParsedBody().Devices[0].IDE; x == nil || x.KeySet != "K1" {
		t.Fatalf("IDE after the reset %+v", x)
	}
}

func reportHasEvent(d evidence.Device, kind string) bool {
	for _, e := range d.Events {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// TestServiceClosedRefuses: a closed service answers no more reports (and
// does not reconnect to its devices to try).
func TestServiceClosedRefuses(t *testing.T) {
	dir := t.TempDir()
	a := newLiveVF(t, dir, "a", true)
	svc, _, _, bootErr, _ := startService(t, dir, "", a)
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Report(ctxT(t), bytes.Repeat([]byte{1}, 32)); !errors.Is(err, ErrServiceClosed) {
		t.Fatalf("Report after Close: %v, want ErrServiceClosed", err)
	}
	if _, err := svc.Start(ctxT(t), bytes.Repeat([]byte{1}, 32)); !errors.Is(err, ErrServiceClosed) {
		t.Fatalf("Start after Close: %v, want ErrServiceClosed", err)
	}
}
