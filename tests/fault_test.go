package tests

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/hostshim"
	"github.com/devattest/devattest/secchan"
)

// Bounds for the fault tests: a fault must surface as an error within
// failBound, and the path must work again within recoverBound of the
// fault being cleared. They are generous against a loaded machine; the
// measured times are logged.
const (
	failBound    = 10 * time.Second
	recoverBound = 15 * time.Second
)

// faultyVF is a devsim SPDM VF whose mailbox driver sits behind a host
// shim (a Mediator in a doe.Server) on a unix socket, as on a host.
type faultyVF struct {
	vf   *devsim.Function
	root *x509.Certificate
	addr string // the shim's
	path string // its socket file
	med  *hostshim.Mediator
	// timeout is the driver's wait bound (driverTimeout by default).
	timeout time.Duration
}

// shimExchangeTimeout bounds one device exchange in the shim; the
// server's bound is longer so that the shim's recovery (its abort) always
// finishes before the server gives up.
const shimExchangeTimeout = 5 * time.Second

func newFaultyVF(t *testing.T) *faultyVF {
	t.Helper()
	return newFaultyVFTimeout(t, driverTimeout)
}

// newFaultyVFTimeout is newFaultyVF with the driver's wait bound timeout.
func newFaultyVFTimeout(t *testing.T, timeout time.Duration) *faultyVF {
	t.Helper()
	vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shim.sock")
	f := &faultyVF{vf: vf, root: root, addr: "unix:" + path, path: path, timeout: timeout}
	f.med = f.newMediator()
	serve(t, &doe.Server{Connect: f.med.Connect, ExchangeTimeout: 2 * shimExchangeTimeout}, f.addr)
	return f
}

// driverTimeout bounds the driver's waits on the device (for Busy to
// clear, for a response, for an abort). Shorter than the PCIe second so
// that a stuck mailbox fails, aborts and is reported well within the
// requester's own per-message timeout.
const driverTimeout = 300 * time.Millisecond

// newMediator is what a (re)started shim makes in front of the VF.
func (f *faultyVF) newMediator() *hostshim.Mediator {
	d := f.vf.Driver()
	d.Timeout, d.AbortTimeout = f.timeout, f.timeout
	return hostshim.NewMediator(d, hostshim.Options{VF: "devsim", Wait: recoverBound, ExchangeTimeout: shimExchangeTimeout})
}

// flow dials the shim and runs the whole SPDM authentication flow, with
// a fresh connection each time (a new client).
func (f *faultyVF) flow(ctx context.Context) error {
	c, err := doe.Dial(ctx, f.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	return spdmFlow(ctx, c, trusting(f.root))
}

// timed runs fn under a context bounded by bound and returns its error
// and duration.
func timed(bound time.Duration, fn func(ctx context.Context) error) (error, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	return err, time.Since(start)
}

// wantClearFailure checks that a failure came back in time, as the
// shim's refusal naming the class of DOE failure (and no context
// expiry, which would mean nobody answered).
func wantClearFailure(t *testing.T, what string, err error, d time.Duration, class string) {
	t.Helper()
	t.Logf("%s: failed after %v: %v", what, d.Round(time.Microsecond), err)
	switch {
	case err == nil:
		t.Fatalf("%s: the flow succeeded, want a failure", what)
	case d > failBound:
		t.Fatalf("%s: the failure took %v, over the bound of %v", what, d, failBound)
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("%s: the client's own deadline expired (no answer), want the shim's error: %v", what, err)
	case !errors.Is(err, doe.ErrRefused) || !strings.Contains(err.Error(), "device exchange failed"):
		t.Fatalf("%s: err = %v, want the shim's refusal saying the device exchange failed", what, err)
	case class != "" && !strings.Contains(err.Error(), class):
		t.Fatalf("%s: err = %v, want it to name %q", what, err, class)
	}
}

// wantRecovery checks that a new client's full flow works, in time.
func (f *faultyVF) wantRecovery(t *testing.T, what string) {
	t.Helper()
	err, d := timed(recoverBound, f.flow)
	if err != nil {
		t.Fatalf("%s: a new client's SPDM flow after the fault cleared failed after %v: %v\nshim health: %v", what, d, err, f.med.Health())
	}
	t.Logf("%s: recovered; a new client's full SPDM flow took %v", what, d.Round(time.Microsecond))
	if err := f.med.Health(); err != nil {
		t.Errorf("%s: shim still reports the VF unhealthy after a good flow: %v", what, err)
	}
}

// TestFaultDOEBusyForever: a mailbox that stays Busy fails the flow with
// the shim's timeout (the driver gave up waiting for Busy and its abort
// did not complete), and once Busy clears the next client works.
func TestFaultDOEBusyForever(t *testing.T) {
	f := newFaultyVF(t)
	f.vf.SetFaults(devsim.Faults{StayBusy: true})
	err, d := timed(failBound+5*time.Second, f.flow)
	wantClearFailure(t, "busy forever", err, d, doe.ErrTimeout.Error())
	// A few more failures mark the VF wedged in the shim.
	for range 2 {
		err, d := timed(failBound+5*time.Second, f.flow)
		wantClearFailure(t, "busy forever, again", err, d, "")
	}
	if err := f.med.Health(); !errors.Is(err, hostshim.ErrWedged) {
		t.Errorf("shim health after three failures = %v, want ErrWedged", err)
	}
	f.vf.SetFaults(devsim.Faults{})
	f.wantRecovery(t, "busy cleared")
}

// TestFaultErrorOnEveryGo: a device that sets Error on every Go fails the
// flow at once with the device-error class; cleared, the next client
// works.
func TestFaultErrorOnEveryGo(t *testing.T) {
	f := newFaultyVF(t)
	f.vf.SetFaults(devsim.Faults{ErrorOnGo: true})
	err, d := timed(failBound+5*time.Second, f.flow)
	wantClearFailure(t, "error on go", err, d, doe.ErrDeviceError.Error())
	if st := f.vf.Stats(); st.Errors == 0 {
		t.Errorf("device stats %+v: the Error bit was never set", st)
	}
	f.vf.SetFaults(devsim.Faults{})
	f.wantRecovery(t, "error bit cleared")
}

// TestFaultAbortMidTransfer: the device holds a response back past the
// client's deadline; the client gives up and hangs up mid-exchange, the
// shim aborts the mailbox, and the next client's full flow works.
func TestFaultAbortMidTransfer(t *testing.T) {
	// The driver would wait far longer than the client does: the client
	// is the one to give up.
	f := newFaultyVFTimeout(t, shimExchangeTimeout)
	f.vf.SetFaults(devsim.Faults{Delay: time.Minute})
	const clientDeadline = 500 * time.Millisecond
	err, d := timed(clientDeadline, f.flow)
	t.Logf("abort mid-transfer: the client gave up after %v: %v", d.Round(time.Microsecond), err)
	if err == nil {
		t.Fatal("the flow succeeded against a device that never answers in time")
	}
	if d > failBound {
		t.Fatalf("the client's give-up took %v, over %v", d, failBound)
	}
	if !errors.Is(err, doe.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a timeout", err)
	}
	if errors.Is(err, doe.ErrRefused) {
		t.Errorf("err = %v: the shim answered first, want the client to have given up", err)
	}
	f.vf.SetFaults(devsim.Faults{})
	f.wantRecovery(t, "after the abandoned exchange")
	if st := f.vf.Stats(); st.Aborts == 0 {
		t.Errorf("device stats %+v: the abandoned exchange was never aborted", st)
	}
}

// TestFaultDeviceResetDuringSession: a function-level reset while a
// session is open loses the device's session; the next in-session
// request fails with an error, and a new connection and KEY_EXCHANGE
// work.
func TestFaultDeviceResetDuringSession(t *testing.T) {
	f := newFaultyVF(t)
	c := dialT(t, f.addr)
	q := authenticate(t, c, trusting(f.root))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}

	f.vf.Reset()
	err, d := timed(failBound, ss.Heartbeat)
	t.Logf("reset during session: the in-session request failed after %v: %v", d.Round(time.Microsecond), err)
	switch {
	case err == nil:
		t.Fatal("HEARTBEAT in a session the device lost to a reset succeeded")
	case d > failBound || errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("the in-session failure was not prompt (%v): %v", d, err)
	case err.Error() == "":
		t.Fatal("empty error")
	}
	if st := f.vf.Stats(); st.Resets != 1 {
		t.Errorf("device stats %+v: want one reset", st)
	}

	err, d = timed(recoverBound, func(ctx context.Context) error {
		q := secchan.NewRequester(&secchan.DOETransport{Mailbox: c}, trusting(f.root))
		if err := q.Connect(ctx); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		if _, err := q.GetDigests(ctx); err != nil {
			return err
		}
		if _, err := q.GetCertificate(ctx, 0); err != nil {
			return err
		}
		ss, err := q.KeyExchange(ctx, secchan.SessionOptions{Summary: secchan.SummaryAll})
		if err != nil {
			return err
		}
		if err := ss.Heartbeat(ctx); err != nil {
			return err
		}
		if _, err := ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true}); err != nil {
			return err
		}
		return ss.End(ctx)
	})
	if err != nil {
		t.Fatalf("a new Connect and KEY_EXCHANGE after the reset failed after %v: %v", d, err)
	}
	t.Logf("reset during session: recovered; Connect, KEY_EXCHANGE and a session took %v", d.Round(time.Microsecond))
}

// TestFaultShimRestart: the shim's server closes under a client (the
// client's next request fails), a new one comes up on the same socket
// path, and a new client works.
func TestFaultShimRestart(t *testing.T) {
	vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shim.sock")
	f := &faultyVF{vf: vf, root: root, addr: "unix:" + path, path: path, timeout: driverTimeout}

	// The first shim, owned here so that it can be stopped mid-test.
	f.med = f.newMediator()
	srv := &doe.Server{Connect: f.med.Connect, ExchangeTimeout: 2 * shimExchangeTimeout}
	ln, err := doe.Listen(context.Background(), f.addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	c := dialT(t, f.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := spdmFlow(ctx, c, trusting(root)); err != nil {
		t.Fatal(err)
	}

	stopped := time.Now()
	f.med.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Close: %v", err)
		}
	case <-time.After(failBound):
		t.Fatalf("the shim's server did not stop within %v", failBound)
	}
	err, d := timed(failBound, func(ctx context.Context) error { return spdmFlow(ctx, c, trusting(root)) })
	t.Logf("shim restart: the old client's request failed after %v: %v", d.Round(time.Microsecond), err)
	if err == nil || d > failBound || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the old client's request after the shim stopped: err %v after %v, want a prompt error", err, d)
	}

	f.med = f.newMediator()
	serve(t, &doe.Server{Connect: f.med.Connect, ExchangeTimeout: 2 * shimExchangeTimeout}, f.addr)
	f.wantRecovery(t, "shim restarted")
	t.Logf("shim restart: %v from the old shim's stop to a new client's completed flow", time.Since(stopped).Round(time.Microsecond))
}

// TestFaultGuestRestart: the guest daemon is closed and a new one is
// started against the same devices; it re-attests every one of them
// (which it can only do if the old daemon released their mailboxes in
// the shims).
func TestFaultGuestRestart(t *testing.T) {
	dir := t.TempDir()
	yml := "platform: fake-snp\nremeasure_interval: 1s\ndevices:\n"
	var vfs []*faultyVF
	for i := range 2 {
		f := newFaultyVF(t)
		vfs = append(vfs, f)
		anchor := filepath.Join(dir, fmt.Sprintf("root%d.pem", i))
		if err := os.WriteFile(anchor, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.root.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		yml += fmt.Sprintf("  - label: dev%d\n    shim: %s\n    trust_anchors: [%s]\n", i, f.addr, anchor)
	}
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	start := func(round int) (*guest.Service, *evidence.Report, time.Duration) {
		t.Helper()
		cfg, err := guest.ParseConfig([]byte(yml), dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := range cfg.Devices {
			if err := cfg.Devices[i].LoadAnchors(); err != nil {
				t.Fatal(err)
			}
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		svc, err := guest.NewService(cfg, guest.ServiceOptions{Attester: att, Logger: log, Interval: 100 * time.Millisecond, DeviceTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), recoverBound)
		defer cancel()
		t0 := time.Now()
		rep, err := svc.Start(ctx, []byte(fmt.Sprintf("owner nonce, boot %d", round)))
		d := time.Since(t0)
		if err != nil {
			t.Fatalf("service %d: Start after %v: %v", round, d, err)
		}
		if len(rep.ParsedBody().Devices) != len(vfs) {
			t.Fatalf("service %d: report has %d devices, want %d", round, len(rep.ParsedBody().Devices), len(vfs))
		}
		for _, dev := range rep.ParsedBody().Devices {
			if !dev.OK() {
				t.Fatalf("service %d: device %s not attested: %s %s", round, dev.Label, dev.FailedStep, dev.Error)
			}
		}
		return svc, rep, d
	}

	svc, _, d := start(1)
	t.Logf("guest restart: the first daemon attested %d devices in %v", len(vfs), d.Round(time.Microsecond))
	before := make([]int, len(vfs))
	for i, f := range vfs {
		before[i] = f.vf.Stats().Requests
	}
	t0 := time.Now()
	if err := svc.Close(); err != nil {
		t.Fatalf("closing the first daemon: %v", err)
	}
	closed := time.Since(t0)
	if closed > failBound {
		t.Fatalf("closing the daemon took %v, over %v", closed, failBound)
	}
	t.Logf("guest restart: the first daemon closed in %v", closed.Round(time.Microsecond))

	_, _, d = start(2)
	t.Logf("guest restart: the new daemon re-attested %d devices in %v", len(vfs), d.Round(time.Microsecond))
	if d > recoverBound {
		t.Errorf("re-attestation took %v, over %v", d, recoverBound)
	}
	for i, f := range vfs {
		if got := f.vf.Stats().Requests; got <= before[i] {
			t.Errorf("dev%d saw no request from the new daemon", i)
		}
	}
}
