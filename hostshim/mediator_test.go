package hostshim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

// wantProtocols is what devsim.NewVF lists in discovery.
var wantProtocols = []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA}

// protocolCDAT is a protocol the default allowlist does not forward.
var protocolCDAT = doe.Protocol{Vendor: 0x1E98, Type: 2}

// syncBuffer is a bytes.Buffer that a logger and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// events records what the Connect hook saw, in order, so that tests can
// assert causality (who held the mailbox when) without relying on sleeps.
type events struct {
	mu  sync.Mutex
	seq []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq = append(e.seq, s)
}

func (e *events) index(s string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Index(e.seq, s)
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.seq, ", ")
}

// waitFor polls until the event s has been recorded (bounded).
func (e *events) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.index(s) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("event %q did not happen within 5s; events: %s", s, e)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitLog polls until the audit log contains s (bounded).
func (sh *shim) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(sh.audit.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("audit log did not record %q within 5s:\n%s", s, sh.audit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// shim is a Mediator served by a doe.Server on a unix socket in
// t.TempDir().
type shim struct {
	med    *hostshim.Mediator
	srv    *doe.Server
	addr   string // "unix:PATH"
	audit  *syncBuffer
	events *events
}

// startShim serves a Mediator over backend. Options.Logger, if nil, is set
// to a JSON logger into the shim's audit buffer; the doe.Server logs there
// too.
func startShim(t *testing.T, backend doe.Mailbox, o hostshim.Options) *shim {
	t.Helper()
	s := &shim{audit: &syncBuffer{}, events: &events{}}
	logger := slog.New(slog.NewJSONHandler(s.audit, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.Logger == nil {
		o.Logger = logger
	}
	if o.VF == "" {
		o.VF = "devsim"
	}
	s.med = hostshim.NewMediator(backend, o)
	var n atomic.Int32
	s.srv = &doe.Server{
		Logger: logger,
		// Generous, so that a loaded machine does not turn these tests
		// into timeout tests; the device's own 1 s bound still applies.
		ExchangeTimeout: 10 * time.Second,
		Connect: func(ctx context.Context, conn net.Conn) (doe.Mailbox, func(), error) {
			id := n.Add(1)
			s.events.add(fmt.Sprintf("enter %d", id))
			mb, release, err := s.med.Connect(ctx, conn)
			if err != nil {
				s.events.add(fmt.Sprintf("refused %d", id))
				return nil, nil, err
			}
			s.events.add(fmt.Sprintf("granted %d", id))
			return mb, func() {
				s.events.add(fmt.Sprintf("release %d", id))
				release()
			}, nil
		},
	}
	path := filepath.Join(t.TempDir(), "shim.sock")
	s.addr = "unix:" + path
	serve(t, s.srv, s.addr)
	return s
}

// serve listens on addr and serves srv until the test ends; Serve must
// then return nil.
func serve(t *testing.T, srv *doe.Server, addr string) {
	t.Helper()
	ln, err := doe.Listen(context.Background(), addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve(%s) returned %v after Close", addr, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve(%s) did not return within 5s of Close", addr)
		}
	})
}

func dial(t *testing.T, addr string) *doe.SocketClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := doe.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func exchange(c *doe.SocketClient, req doe.Object) (doe.Object, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Exchange(ctx, req)
}

func discoveryRequest(index uint8) doe.Object {
	return doe.EncodeDiscoveryRequest(index, doe.DiscoveryVersion(devsim.DOEVersion))
}

// mustDiscover0 does one discovery exchange (index 0) and checks its answer.
func mustDiscover0(t *testing.T, c *doe.SocketClient) {
	t.Helper()
	resp, err := exchange(c, discoveryRequest(0))
	if err != nil {
		t.Fatalf("discovery exchange: %v", err)
	}
	p, next, err := doe.DecodeDiscoveryResponse(resp)
	if err != nil || p != doe.ProtocolDiscovery || next != 1 {
		t.Fatalf("discovery index 0 = %v next %d (err %v), want %v next 1", p, next, err, doe.ProtocolDiscovery)
	}
}

// wantRefusal checks that err is a refusal from the peer whose reason
// contains every one of parts, and returns the reason.
func wantRefusal(t *testing.T, err error, parts ...string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("exchange succeeded, want a refusal")
	}
	var re *doe.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *doe.RemoteError", err, err)
	}
	if !errors.Is(err, doe.ErrRefused) {
		t.Fatalf("errors.Is(%v, doe.ErrRefused) = false", err)
	}
	for _, p := range parts {
		if !strings.Contains(re.Reason, p) {
			t.Errorf("refusal reason %q does not mention %q", re.Reason, p)
		}
	}
	return re.Reason
}

func TestMediatorDiscoveryThroughShim(t *testing.T) {
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{})
	c := dial(t, s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := doe.Discover(ctx, c, doe.DiscoveryVersion(devsim.DOEVersion))
	if err != nil {
		t.Fatalf("Discover through the shim: %v", err)
	}
	if !slices.Equal(got, wantProtocols) {
		t.Fatalf("Discover through the shim = %v, want %v", got, wantProtocols)
	}
	if st := vf.Stats(); st.Requests != 3 || st.Responses != 3 || st.Errors != 0 {
		t.Errorf("device stats after discovery = %+v, want 3 requests, 3 responses, 0 errors", st)
	}
}

func TestMediatorRefusesDisallowedProtocol(t *testing.T) {
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{})
	c := dial(t, s.addr)
	mustDiscover0(t, c)
	before := vf.Stats().Requests

	_, err := exchange(c, doe.NewObject(protocolCDAT, []byte{0, 0, 0, 0}))
	wantRefusal(t, err, "not allowed", "1e98:02")
	if got := vf.Stats().Requests; got != before {
		t.Errorf("device saw %d requests after the refusal, want %d: a disallowed object reached the VF", got, before)
	}
	// The refusal keeps the stream in step: the same connection still works.
	mustDiscover0(t, c)
}

func TestMediatorCustomAllowlist(t *testing.T) {
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{Allowed: []doe.Protocol{doe.ProtocolDiscovery}})
	c := dial(t, s.addr)
	mustDiscover0(t, c)
	_, err := exchange(c, doe.NewObject(doe.ProtocolCMA, []byte{0x10, 0x84, 0, 0}))
	wantRefusal(t, err, "not allowed", "0001:01", "CMA/SPDM")
	mustDiscover0(t, c)
}

func TestMediatorRefusesOversizeRequest(t *testing.T) {
	const limit = 256
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{MaxObjectSize: limit})
	c := dial(t, s.addr)
	before := vf.Stats().Requests

	for _, size := range []int{limit + 4, 4 * limit} { // one DW over, and well over
		big := doe.NewObject(doe.ProtocolCMA, make([]byte, size-doe.HeaderSize))
		_, err := exchange(c, big)
		wantRefusal(t, err, "too large", fmt.Sprint(size), fmt.Sprint(limit))
		if got := vf.Stats().Requests; got != before {
			t.Errorf("device saw %d requests after the refusal, want %d: an oversize object reached the VF", got, before)
		}
	}

	// Exactly at the bound is forwarded, on the same connection.
	atLimit := doe.NewObject(doe.ProtocolCMA, append([]byte{0x10, 0x84}, make([]byte, limit-doe.HeaderSize-2)...))
	if atLimit.Size() != limit {
		t.Fatalf("test bug: object of %d bytes, want %d", atLimit.Size(), limit)
	}
	resp, err := exchange(c, atLimit)
	if err != nil {
		t.Fatalf("exchange of an object of exactly MaxObjectSize bytes: %v", err)
	}
	if resp.Protocol() != doe.ProtocolCMA {
		t.Fatalf("response protocol %v, want %v", resp.Protocol(), doe.ProtocolCMA)
	}
	mustDiscover0(t, c)
}

func TestMediatorHeldMailboxShortWait(t *testing.T) {
	const wait = 200 * time.Millisecond
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{Wait: wait})

	first := dial(t, s.addr)
	mustDiscover0(t, first) // the first connection holds the mailbox
	s.events.waitFor(t, "granted 1")

	start := time.Now()
	second := dial(t, s.addr)
	_, err := exchange(second, discoveryRequest(0))
	elapsed := time.Since(start)
	reason := wantRefusal(t, err, "in use by")
	if strings.Contains(reason, "@") || strings.Contains(reason, "127.0.0.1") || strings.Contains(reason, "devsim") {
		t.Errorf("refusal %q tells the guest about the holder or the host", reason)
	}
	if !strings.Contains(reason, hostshim.ErrMailboxHeld.Error()) {
		t.Errorf("refusal %q does not carry ErrMailboxHeld's text %q", reason, hostshim.ErrMailboxHeld)
	}
	if elapsed < wait {
		t.Errorf("second connection was refused after %v, before the %v wait ran out", elapsed, wait)
	}
	if elapsed > wait+3*time.Second {
		t.Errorf("second connection was refused only after %v (wait %v)", elapsed, wait)
	}
	if s.events.index("refused 2") < 0 {
		t.Errorf("events %s: want the second connection refused", s.events)
	}

	// The holder is unaffected.
	mustDiscover0(t, first)
	if err := first.Close(); err != nil {
		t.Fatalf("closing the first connection: %v", err)
	}
	s.waitLog(t, "connection released mailbox")

	// Now the mailbox is free: a new connection is served.
	third := dial(t, s.addr)
	mustDiscover0(t, third)
	if !strings.Contains(s.audit.String(), "mailbox busy") {
		t.Errorf("audit log does not record the busy refusal:\n%s", s.audit)
	}
}

func TestMediatorHeldMailboxServedAfterRelease(t *testing.T) {
	const wait = 20 * time.Second // far beyond the test's own bounds
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{Wait: wait})

	first := dial(t, s.addr)
	mustDiscover0(t, first)
	s.events.waitFor(t, "granted 1")

	type result struct {
		err error
		at  time.Time
	}
	second := dial(t, s.addr)
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := second.Exchange(ctx, discoveryRequest(0))
		res <- result{err, time.Now()}
	}()
	// The second connection is waiting for the mailbox ...
	s.events.waitFor(t, "enter 2")
	// ... and its exchange is not answered while the first holds it, even
	// while the first keeps exchanging.
	for range 3 {
		mustDiscover0(t, first)
	}
	select {
	case r := <-res:
		t.Fatalf("second connection's exchange finished (err %v) while the first held the mailbox", r.err)
	case <-time.After(100 * time.Millisecond):
	}
	if i := s.events.index("granted 2"); i >= 0 {
		t.Fatalf("second connection was granted the mailbox while the first held it; events: %s", s.events)
	}

	closedAt := time.Now()
	if err := first.Close(); err != nil {
		t.Fatalf("closing the first connection: %v", err)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(5 * time.Second):
		t.Fatalf("second connection not served within 5s of the first closing; events: %s", s.events)
	}
	if r.err != nil {
		t.Fatalf("second connection's exchange after the first closed: %v", r.err)
	}
	if r.at.Before(closedAt) {
		t.Errorf("second exchange completed at %v, before the first connection closed at %v", r.at, closedAt)
	}
	if d := r.at.Sub(closedAt); d >= wait {
		t.Errorf("second exchange took %v after the first closed: it was not served on release", d)
	}
	rel, granted := s.events.index("release 1"), s.events.index("granted 2")
	if rel < 0 || granted < 0 || granted < rel {
		t.Errorf("want release of 1 before grant to 2; events: %s", s.events)
	}
	mustDiscover0(t, second)
}

// auditLines parses the JSON audit log.
func auditLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestMediatorAuditLog(t *testing.T) {
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{})
	c := dial(t, s.addr)

	// A payload that is easy to recognise in any encoding a logger might use.
	secret := append([]byte{0x10, 0x84}, []byte("TOPSECRET-payload-7f3a9c-do-not-log")...)
	req := doe.NewObject(doe.ProtocolCMA, secret)
	if _, err := exchange(c, req); err != nil {
		t.Fatalf("CMA exchange: %v", err)
	}
	mustDiscover0(t, c)
	_, err := exchange(c, doe.NewObject(protocolCDAT, secret))
	wantRefusal(t, err, "not allowed")
	c.Close()
	s.waitLog(t, "connection released mailbox")

	log := s.audit.String()
	type key struct {
		msg           string
		vendor, typ   float64
		requestBytes  float64
		hasRespFields bool
	}
	var got []key
	for _, m := range auditLines(t, log) {
		msg, _ := m["msg"].(string)
		if msg != "exchange" && msg != "exchange refused" {
			continue
		}
		v, ok1 := m["vendor"].(float64)
		ty, ok2 := m["type"].(float64)
		rb, ok3 := m["request_bytes"].(float64)
		if !ok1 || !ok2 || !ok3 {
			t.Errorf("audit line %v lacks numeric vendor/type/request_bytes", m)
		}
		_, hasResp := m["response_bytes"]
		got = append(got, key{msg, v, ty, rb, hasResp})
	}
	want := []key{
		{"exchange", 1, 1, float64(req.Size()), true},
		{"exchange", 1, 0, 12, true},
		{"exchange refused", 0x1E98, 2, float64(req.Size()), false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit exchange lines = %+v, want %+v\nlog:\n%s", got, want, log)
	}
	for _, form := range []string{
		"TOPSECRET",
		hex.EncodeToString([]byte("TOPSECRET")),
		strings.ToUpper(hex.EncodeToString([]byte("TOPSECRET"))),
		hex.EncodeToString(req.Payload),
		base64.StdEncoding.EncodeToString(req.Payload),
		base64.StdEncoding.EncodeToString(secret),
		strings.Trim(fmt.Sprint([]byte("TOPSECRET")), "[]"),
	} {
		if strings.Contains(log, form) {
			t.Errorf("audit log contains request payload bytes (%q):\n%s", form, log)
		}
	}
	if !strings.Contains(log, "connection holds mailbox") {
		t.Errorf("audit log lacks the claim:\n%s", log)
	}
}

func TestMediatorBackendError(t *testing.T) {
	vf := devsim.NewVF()
	s := startShim(t, vf.Driver(), hostshim.Options{})
	c := dial(t, s.addr)
	mustDiscover0(t, c)

	vf.SetFaults(devsim.Faults{ErrorOnGo: true})
	_, err := exchange(c, discoveryRequest(0))
	wantRefusal(t, err, "DOE error bit")
	if st := vf.Stats(); st.Errors == 0 {
		t.Errorf("device stats %+v: want the Error bit set at the device", st)
	}
	if !strings.Contains(s.audit.String(), `"msg":"exchange failed"`) {
		t.Errorf("audit log lacks the failed exchange:\n%s", s.audit)
	}

	vf.SetFaults(devsim.Faults{})
	mustDiscover0(t, c) // same connection, mailbox usable again
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := doe.Discover(ctx, c, 2)
	if err != nil || !slices.Equal(got, wantProtocols) {
		t.Fatalf("Discover after clearing the fault = %v, %v; want %v", got, err, wantProtocols)
	}
}

// countingUpstream serves vf's driver and counts upstream connections.
func countingUpstream(vf *devsim.Function, n *atomic.Int32) *doe.Server {
	d := vf.Driver()
	return &doe.Server{Connect: func(context.Context, net.Conn) (doe.Mailbox, func(), error) {
		n.Add(1)
		return d, nil, nil
	}}
}

func TestSocketBackendKeepsOneUpstreamConnection(t *testing.T) {
	vf := devsim.NewVF()
	var upstreamConns atomic.Int32
	up := countingUpstream(vf, &upstreamConns)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Serve(ln) }()
	t.Cleanup(func() { up.Close(); <-upDone })

	backend := &hostshim.SocketBackend{Addr: ln.Addr().String()}
	t.Cleanup(func() { backend.Close() })
	s := startShim(t, backend, hostshim.Options{})

	for i := range 2 {
		c := dial(t, s.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := doe.Discover(ctx, c, 2)
		cancel()
		if err != nil || !slices.Equal(got, wantProtocols) {
			t.Fatalf("guest connection %d: Discover = %v, %v; want %v", i+1, got, err, wantProtocols)
		}
		// A guest's SHUTDOWN ends only the guest's connection.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		s.events.waitFor(t, fmt.Sprintf("release %d", i+1))
	}
	if n := upstreamConns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections for two guest connections, want 1", n)
	}
	if st := vf.Stats(); st.Requests != 6 {
		t.Errorf("device saw %d requests, want 6", st.Requests)
	}
}

func TestSocketBackendRedialsAfterUpstreamRestart(t *testing.T) {
	vf := devsim.NewVF()
	upAddr := "unix:" + filepath.Join(t.TempDir(), "up.sock")

	var conns1 atomic.Int32
	up1 := countingUpstream(vf, &conns1)
	ln1, err := doe.Listen(context.Background(), upAddr)
	if err != nil {
		t.Fatal(err)
	}
	up1Done := make(chan error, 1)
	go func() { up1Done <- up1.Serve(ln1) }()

	backend := &hostshim.SocketBackend{Addr: upAddr}
	t.Cleanup(func() { backend.Close() })
	s := startShim(t, backend, hostshim.Options{})
	c := dial(t, s.addr)
	mustDiscover0(t, c)
	if n := conns1.Load(); n != 1 {
		t.Fatalf("first upstream saw %d connections, want 1", n)
	}

	// Restart the upstream on a new listener at the same address.
	up1.Close()
	if err := <-up1Done; err != nil {
		t.Fatalf("first upstream Serve: %v", err)
	}
	var conns2 atomic.Int32
	up2 := countingUpstream(vf, &conns2)
	serve(t, up2, upAddr)

	// The backend's connection to the old server is dead. The first
	// exchange after the restart may fail on it; if so the guest is told
	// (a refusal, its own connection stays in step) and the backend drops
	// the dead connection.
	resp, err := exchange(c, discoveryRequest(0))
	if err != nil {
		t.Logf("first exchange after the upstream restart failed as allowed: %v", err)
		wantRefusal(t, err, "device exchange failed")
	} else if p, _, derr := doe.DecodeDiscoveryResponse(resp); derr != nil || p != doe.ProtocolDiscovery {
		t.Fatalf("first exchange after restart answered %v (%v)", p, derr)
	}
	// The next one must succeed, over a fresh upstream connection.
	mustDiscover0(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := doe.Discover(ctx, c, 2)
	if err != nil || !slices.Equal(got, wantProtocols) {
		t.Fatalf("Discover after the upstream restart = %v, %v; want %v", got, err, wantProtocols)
	}
	if n := conns2.Load(); n != 1 {
		t.Errorf("restarted upstream saw %d connections, want exactly 1 (one redial)", n)
	}
}

func TestSocketBackendUpstreamDown(t *testing.T) {
	upAddr := "unix:" + filepath.Join(t.TempDir(), "up.sock")
	backend := &hostshim.SocketBackend{Addr: upAddr}
	t.Cleanup(func() { backend.Close() })
	s := startShim(t, backend, hostshim.Options{})
	c := dial(t, s.addr)

	// Nothing listens upstream: the guest gets a refusal, not a hang.
	_, err := exchange(c, discoveryRequest(0))
	reason := wantRefusal(t, err, "unreachable")
	if strings.Contains(reason, "up.sock") {
		t.Errorf("refusal %q tells the guest the host's upstream path", reason)
	}

	// Once the upstream is there, the same guest connection works.
	vf := devsim.NewVF()
	serve(t, &doe.Server{Mailbox: vf.Driver()}, upAddr)
	mustDiscover0(t, c)
}

// TestSocketBackendCloseSendsContinue checks what the backend sends
// upstream: NORMAL frames over PCI_DOE, and CONTINUE (never SHUTDOWN) on
// Close, which keeps an spdm-emu responder serving its next client.
func TestSocketBackendCloseSendsContinue(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "up.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	vf := devsim.NewVF()
	d := vf.Driver()
	cmds := make(chan []string, 1)
	go func() {
		var seen []string
		defer func() { cmds <- seen }()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		for {
			f, err := doe.ReadFrame(conn, doe.MaxFramePayload)
			if err != nil {
				seen = append(seen, "EOF")
				return
			}
			seen = append(seen, fmt.Sprintf("%s/%d", doe.CommandName(f.Command), f.Transport))
			if f.Command != doe.CommandNormal {
				_ = doe.WriteFrame(conn, doe.Frame{Command: f.Command, Transport: f.Transport})
				return
			}
			req, err := doe.Decode(f.Payload)
			if err != nil {
				return
			}
			resp, err := d.Exchange(context.Background(), req)
			if err != nil {
				return
			}
			b, _ := resp.Encode()
			_ = doe.WriteFrame(conn, doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: b})
		}
	}()

	backend := &hostshim.SocketBackend{Addr: "unix:" + ln.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := doe.Discover(ctx, backend, 2)
	if err != nil || !slices.Equal(got, wantProtocols) {
		t.Fatalf("Discover through SocketBackend = %v, %v", got, err)
	}
	if err := backend.Close(); err != nil {
		t.Fatalf("backend.Close: %v", err)
	}
	var seen []string
	select {
	case seen = <-cmds:
	case <-time.After(5 * time.Second):
		t.Fatal("fake upstream did not finish")
	}
	want := []string{"NORMAL/2", "NORMAL/2", "NORMAL/2", "CONTINUE/2"}
	if !slices.Equal(seen, want) {
		t.Errorf("upstream saw %v, want %v", seen, want)
	}
	// Close twice is harmless.
	if err := backend.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenSysfsBackendErrors(t *testing.T) {
	const bdf = "0000:01:00.0"
	root := t.TempDir()
	writeConfig := func(t *testing.T, bdf string, cfg []byte) {
		t.Helper()
		dir := filepath.Join(root, bdf)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config"), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open := func(bdf string, timeout time.Duration) (*hostshim.SysfsBackend, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return hostshim.OpenSysfsBackend(ctx, root, bdf, nil)
	}
	writeConfig(t, bdf, make([]byte, doe.ConfigSpaceSize))

	t.Run("bad BDF", func(t *testing.T) {
		for _, bad := range []string{"", "01:00.0", "0000:01:00.8", "0000:01:20.0", "0000:01:00.0/../x", "../0000:01:00.0"} {
			b, err := open(bad, time.Second)
			if err == nil {
				b.Close()
				t.Errorf("OpenSysfsBackend(%q) succeeded", bad)
				continue
			}
			if !strings.Contains(err.Error(), "PCI address") && !strings.Contains(err.Error(), "device number") {
				t.Errorf("OpenSysfsBackend(%q) = %v, want a complaint about the address", bad, err)
			}
		}
	})
	t.Run("nothing but discovery to serve", func(t *testing.T) {
		_, err := hostshim.OpenSysfsBackend(context.Background(), root, bdf, []doe.Protocol{doe.ProtocolDiscovery})
		if err == nil || !strings.Contains(err.Error(), "no protocol but discovery") {
			t.Fatalf("OpenSysfsBackend(discovery only) = %v, want a refusal", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := open("0000:02:00.0", time.Second)
		if !errors.Is(err, doe.ErrConfigSpace) || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenSysfsBackend on a missing function = %v, want ErrConfigSpace and ErrNotExist", err)
		}
	})
	t.Run("no extended capabilities", func(t *testing.T) {
		_, err := open(bdf, time.Second)
		if !errors.Is(err, doe.ErrNoCapability) {
			t.Fatalf("OpenSysfsBackend on all-zero config = %v, want ErrNoCapability", err)
		}
		for _, part := range []string{"no DOE capability", bdf} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not mention %q", err, part)
			}
		}
	})
	t.Run("upper-case BDF is canonicalised", func(t *testing.T) {
		writeConfig(t, "0000:0a:00.0", make([]byte, doe.ConfigSpaceSize))
		_, err := open("0000:0A:00.0", time.Second)
		if !errors.Is(err, doe.ErrNoCapability) {
			t.Fatalf("OpenSysfsBackend(upper case) = %v, want it to reach the (all-zero) config and report ErrNoCapability", err)
		}
	})
	t.Run("short config (unprivileged read)", func(t *testing.T) {
		// Without CAP_SYS_ADMIN, sysfs config reads stop at 64 bytes.
		writeConfig(t, "0000:03:00.0", make([]byte, 64))
		_, err := open("0000:03:00.0", time.Second)
		if !errors.Is(err, doe.ErrConfigSpace) {
			t.Fatalf("OpenSysfsBackend on a 64-byte config = %v, want ErrConfigSpace", err)
		}
	})
	t.Run("DOE capability that never answers", func(t *testing.T) {
		// A regular file cannot act as DOE registers: Status never shows
		// Data Object Ready, so discovery times out and the instance is
		// reported as unusable, within the caller's deadline.
		cfg := make([]byte, doe.ConfigSpaceSize)
		binary.LittleEndian.PutUint32(cfg[0x100:], doe.ExtCapIDDOE|2<<16)
		writeConfig(t, "0000:04:00.0", cfg)
		start := time.Now()
		_, err := open("0000:04:00.0", 300*time.Millisecond)
		if err == nil {
			t.Fatal("OpenSysfsBackend on a mute DOE capability succeeded")
		}
		if !strings.Contains(err.Error(), "no DOE instance offering any of [0001:01 (CMA/SPDM)]") || !strings.Contains(err.Error(), "0x100") {
			t.Errorf("error %q does not name the unusable instance", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("OpenSysfsBackend took %v with a 300ms deadline", d)
		}
	})
}
