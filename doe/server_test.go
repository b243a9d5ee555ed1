package doe_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
)

// srvEcho answers every object with the same protocol and payload, except
// that a payload starting with "REFUSE" is refused with an error.
func srvEcho(ctx context.Context, req doe.Object) (doe.Object, error) {
	if bytes.HasPrefix(req.Payload, []byte("REFUSE")) {
		return doe.Object{}, errors.New("refused by test mailbox")
	}
	return doe.Object{Vendor: req.Vendor, Type: req.Type, Payload: append([]byte(nil), req.Payload...)}, nil
}

// srvSockPath returns a unix socket path short enough for sun_path.
func srvSockPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s")
	if len(p) < 100 {
		return p
	}
	dir, err := os.MkdirTemp("/tmp", "doe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

type srvRunning struct {
	srv   *doe.Server
	addr  string // ParseAddr form
	path  string
	serve chan error // receives Serve's return value
}

// srvStart serves srv on a fresh unix socket; Cleanup closes it and checks
// that Serve returned.
func srvStart(t *testing.T, srv *doe.Server) *srvRunning {
	t.Helper()
	path := srvSockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := &srvRunning{srv: srv, addr: "unix:" + path, path: path, serve: make(chan error, 1)}
	go func() { r.serve <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-r.serve:
			if err != nil {
				t.Errorf("Serve returned %v after Close", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
	})
	return r
}

func srvDial(t *testing.T, r *srvRunning) *doe.SocketClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := doe.Dial(ctx, r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func srvRaw(t *testing.T, r *srvRunning) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", r.path)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

func srvRoundTrip(t *testing.T, conn net.Conn, f doe.Frame) doe.Frame {
	t.Helper()
	if err := doe.WriteFrame(conn, f); err != nil {
		t.Fatalf("writing %s: %v", doe.CommandName(f.Command), err)
	}
	resp, err := doe.ReadFrame(conn, doe.MaxFramePayload)
	if err != nil {
		t.Fatalf("reading the answer to %s: %v", doe.CommandName(f.Command), err)
	}
	return resp
}

func srvCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// srvNoServerGoroutines fails if a Server goroutine is still running.
func srvNoServerGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "doe.(*Server)") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server goroutines still running after Close:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerNormalExchange(t *testing.T) {
	var calls atomic.Int32
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		calls.Add(1)
		if _, ok := ctx.Deadline(); !ok {
			return doe.Object{}, errors.New("exchange has no deadline")
		}
		return srvEcho(ctx, req)
	})})
	c := srvDial(t, r)
	ctx := srvCtx(t)
	for _, n := range []int{0, 4, 64, 4096, doe.MaxPayload} {
		req := doe.Object{Vendor: 0x1234, Type: 7, Payload: patterned(n)}
		resp, err := c.Exchange(ctx, req)
		if err != nil {
			t.Fatalf("%d-byte payload: %v", n, err)
		}
		if resp.Protocol() != req.Protocol() || !bytes.Equal(resp.Payload, req.Payload) {
			t.Fatalf("%d-byte payload: response %v with %d bytes", n, resp.Protocol(), len(resp.Payload))
		}
	}
	if calls.Load() != 5 {
		t.Errorf("mailbox called %d times, want 5", calls.Load())
	}
	// An unpadded request is refused by the client before it is sent.
	if _, err := c.Exchange(ctx, doe.Object{Vendor: 1, Type: 1, Payload: []byte{1}}); !errors.Is(err, doe.ErrMalformed) {
		t.Errorf("unpadded request: %v", err)
	}
	if _, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte{1})); err != nil {
		t.Errorf("connection unusable after a locally refused request: %v", err)
	}
}

func TestServerPing(t *testing.T) {
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(srvEcho)})
	c := srvDial(t, r)
	for range 3 {
		if err := c.Ping(srvCtx(t)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	// By hand: TEST is answered with TEST on the same transport.
	conn := srvRaw(t, r)
	resp := srvRoundTrip(t, conn, doe.Frame{Command: doe.CommandTest, Transport: doe.TransportMCTP, Payload: []byte("Client Hello!\x00")})
	if resp.Command != doe.CommandTest || resp.Transport != doe.TransportMCTP {
		t.Fatalf("TEST answered with %s transport %d", doe.CommandName(resp.Command), resp.Transport)
	}
}

func TestServerRefusal(t *testing.T) {
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(srvEcho)})
	c := srvDial(t, r)
	ctx := srvCtx(t)
	for i := range 3 {
		_, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte("REFUSE me")))
		var re *doe.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("refusal %d: err = %v (%T), want *doe.RemoteError", i, err, err)
		}
		if !errors.Is(err, doe.ErrRefused) {
			t.Fatalf("refusal %d: %v does not match ErrRefused", i, err)
		}
		if !strings.Contains(re.Reason, "refused by test mailbox") {
			t.Errorf("reason %q does not carry the mailbox's error", re.Reason)
		}
		// The same connection still works.
		resp, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte("fine")))
		if err != nil || string(resp.Payload) != "fine" {
			t.Fatalf("exchange after refusal %d: %q, %v", i, resp.Payload, err)
		}
	}
}

func TestServerRefusesBadResponses(t *testing.T) {
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		switch string(bytes.TrimRight(req.Payload, "\x00")) {
		case "unpadded":
			return doe.Object{Vendor: req.Vendor, Type: req.Type, Payload: []byte{1, 2, 3}}, nil
		case "other":
			return doe.NewObject(doe.ProtocolSecuredCMA, nil), nil
		}
		return srvEcho(ctx, req)
	})})
	c := srvDial(t, r)
	ctx := srvCtx(t)
	// A response the server cannot encode is refused, not sent half-made.
	if _, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte("unpadded"))); !errors.Is(err, doe.ErrRefused) {
		t.Errorf("unencodable response: err = %v, want ErrRefused", err)
	}
	// A response of another protocol is caught by the client.
	if _, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte("other"))); !errors.Is(err, doe.ErrUnexpectedResponse) {
		t.Errorf("response of another protocol: err = %v, want ErrUnexpectedResponse", err)
	}
	if _, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte("ok"))); err != nil {
		t.Errorf("connection unusable afterwards: %v", err)
	}
}

func TestServerWrongTransport(t *testing.T) {
	var calls atomic.Int32
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		calls.Add(1)
		return srvEcho(ctx, req)
	})})
	conn := srvRaw(t, r)
	obj, _ := doe.NewObject(doe.ProtocolCMA, []byte{0x12, 0x84}).Encode()
	for _, tr := range []uint32{doe.TransportNone, doe.TransportMCTP, doe.TransportTCP, 0xFFFFFFFF} {
		resp := srvRoundTrip(t, conn, doe.Frame{Command: doe.CommandNormal, Transport: tr, Payload: obj})
		if resp.Command != doe.CommandUnknown {
			t.Fatalf("transport %d answered with %s", tr, doe.CommandName(resp.Command))
		}
		if !bytes.Contains(resp.Payload, []byte("transport")) {
			t.Errorf("transport %d: reason %q", tr, resp.Payload)
		}
	}
	// A NORMAL frame whose payload is not a DOE object.
	for _, p := range [][]byte{nil, {1, 2, 3}, obj[:len(obj)-4], append(append([]byte(nil), obj...), 0, 0, 0, 0)} {
		resp := srvRoundTrip(t, conn, doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: p})
		if resp.Command != doe.CommandUnknown {
			t.Fatalf("malformed %d-byte object answered with %s", len(p), doe.CommandName(resp.Command))
		}
	}
	if calls.Load() != 0 {
		t.Errorf("the mailbox saw %d bad requests", calls.Load())
	}
	// The stream is still in step.
	resp := srvRoundTrip(t, conn, doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: obj})
	if resp.Command != doe.CommandNormal || resp.Transport != doe.TransportPCIDOE || !bytes.Equal(resp.Payload, obj) {
		t.Fatalf("good frame after refusals: %s %d % x", doe.CommandName(resp.Command), resp.Transport, resp.Payload)
	}
}

// TestServerUnknownCommand: any command the server does not know, among
// them spdm-emu's out-of-band 0x8001 (start an encapsulated KEY_UPDATE,
// payload the session ID) and 0x8002, gets an UNKNOWN frame with no
// payload in the request's transport, which libspdm's requester reads
// into its zero-length buffer (issue 16, finding 6); the stream stays in
// step.
func TestServerUnknownCommand(t *testing.T) {
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(srvEcho)})
	conn := srvRaw(t, r)
	for _, cmd := range []uint32{0, 2, 0x1234, 0x8001, 0x8002, doe.CommandUnknown, 0xFFFFFFFF} {
		for _, tr := range []uint32{doe.TransportPCIDOE, doe.TransportMCTP} {
			resp := srvRoundTrip(t, conn, doe.Frame{Command: cmd, Transport: tr, Payload: []byte{1, 2, 3, 4}})
			if resp.Command != doe.CommandUnknown || resp.Transport != tr || len(resp.Payload) != 0 {
				t.Fatalf("command %#x transport %d answered with %s transport %d and %d payload bytes, want an empty UNKNOWN in kind",
					cmd, tr, doe.CommandName(resp.Command), resp.Transport, len(resp.Payload))
			}
		}
	}
	resp := srvRoundTrip(t, conn, doe.Frame{Command: doe.CommandTest, Transport: doe.TransportPCIDOE})
	if resp.Command != doe.CommandTest {
		t.Fatalf("TEST after unknown commands answered with %s", doe.CommandName(resp.Command))
	}
}

func TestServerShutdownAndContinue(t *testing.T) {
	var calls atomic.Int32
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		calls.Add(1)
		return srvEcho(ctx, req)
	})})
	for _, cmd := range []uint32{doe.CommandShutdown, doe.CommandContinue} {
		conn := srvRaw(t, r)
		resp := srvRoundTrip(t, conn, doe.Frame{Command: cmd, Transport: doe.TransportPCIDOE})
		if resp.Command != cmd {
			t.Fatalf("%s answered with %s", doe.CommandName(cmd), doe.CommandName(resp.Command))
		}
		// The server ends that connection.
		if _, err := doe.ReadFrame(conn, 64); err != io.EOF {
			t.Fatalf("after %s: read = %v, want io.EOF", doe.CommandName(cmd), err)
		}
	}
	// The server still accepts new connections; SocketClient.Close sends
	// SHUTDOWN and Release sends CONTINUE.
	for i := range 3 {
		c := srvDial(t, r)
		if _, err := c.Exchange(srvCtx(t), doe.NewObject(doe.ProtocolCMA, []byte{byte(i)})); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if i%2 == 0 {
			c.Close()
		} else {
			c.Release()
		}
		if _, err := c.Exchange(srvCtx(t), doe.NewObject(doe.ProtocolCMA, nil)); !errors.Is(err, doe.ErrClosed) {
			t.Fatalf("exchange after Close: err = %v, want ErrClosed", err)
		}
	}
	if calls.Load() != 3 {
		t.Errorf("mailbox called %d times, want 3 (SHUTDOWN must not reach it)", calls.Load())
	}
}

func TestServerClientDeadline(t *testing.T) {
	entered := make(chan struct{}, 1)
	var inFlight atomic.Int32
	srv := &doe.Server{
		ExchangeTimeout: time.Minute, // only the client's deadline or Close may end it
		Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			entered <- struct{}{}
			<-ctx.Done()
			return doe.Object{}, ctx.Err()
		}),
	}
	r := srvStart(t, srv)
	c := srvDial(t, r)
	const wait = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	_, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte{0x12, 0x84}))
	elapsed := time.Since(start)
	if !errors.Is(err, doe.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if elapsed > wait+time.Second {
		t.Errorf("Exchange returned %v after a %v deadline", elapsed, wait)
	}
	select {
	case <-entered:
	default:
		t.Fatal("the request never reached the mailbox")
	}
	// The client does not reuse a stream that may be out of step.
	if _, err := c.Exchange(srvCtx(t), doe.NewObject(doe.ProtocolCMA, nil)); !errors.Is(err, doe.ErrClosed) {
		t.Errorf("exchange after a timeout: err = %v, want ErrClosed", err)
	}

	// Close cancels the exchange still blocked in the mailbox and waits for it.
	start = time.Now()
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Server.Close did not return")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Server.Close took %v", d)
	}
	if n := inFlight.Load(); n != 0 {
		t.Errorf("%d mailbox calls still running after Close", n)
	}
	select {
	case err := <-r.serve:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
		r.serve <- nil // for the cleanup's check
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	srvNoServerGoroutines(t)
}

func TestServerCloseWithIdleClients(t *testing.T) {
	srv := &doe.Server{Mailbox: doe.MailboxFunc(srvEcho)}
	r := srvStart(t, srv)
	var clients []*doe.SocketClient
	for range 3 {
		c := srvDial(t, r)
		if err := c.Ping(srvCtx(t)); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	raw := srvRaw(t, r) // connected, never sends anything
	start := time.Now()
	srv.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with idle clients", d)
	}
	srvNoServerGoroutines(t)
	for i, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, nil))
		cancel()
		if err == nil {
			t.Errorf("client %d: exchange after server Close succeeded", i)
		}
	}
	if _, err := doe.ReadFrame(raw, 64); err == nil {
		t.Error("raw connection still open after Close")
	}
	// New connections are refused (the listener is closed) and Serve on a
	// closed server returns ErrClosed.
	if conn, err := net.Dial("unix", r.path); err == nil {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := doe.ReadFrame(conn, 64); err == nil {
			t.Error("a closed server answered a new connection")
		}
		conn.Close()
	}
	ln, err := net.Listen("unix", srvSockPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); !errors.Is(err, doe.ErrClosed) {
		t.Errorf("Serve after Close = %v, want ErrClosed", err)
	}
}

func TestServerOversizeFrame(t *testing.T) {
	var calls atomic.Int32
	r := srvStart(t, &doe.Server{MaxPayload: 64, Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		calls.Add(1)
		return srvEcho(ctx, req)
	})})
	conn := srvRaw(t, r)
	// Only the header is sent: the server must refuse on the announced size.
	if _, err := conn.Write(rawFrame(doe.CommandNormal, doe.TransportPCIDOE, 0xFFFFFFF0, nil)); err != nil {
		t.Fatal(err)
	}
	resp, err := doe.ReadFrame(conn, 4096)
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	if resp.Command != doe.CommandUnknown {
		t.Fatalf("oversize frame answered with %s", doe.CommandName(resp.Command))
	}
	if _, err := doe.ReadFrame(conn, 4096); err != io.EOF {
		t.Errorf("after an oversize frame: %v, want the connection closed", err)
	}
	// The bound admits a frame exactly at it.
	c := srvDial(t, r)
	if _, err := c.Exchange(srvCtx(t), doe.Object{Vendor: 1, Type: 1, Payload: make([]byte, 56)}); err != nil {
		t.Errorf("64-byte object: %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("mailbox calls = %d", calls.Load())
	}
}

func TestServerTruncatedFrame(t *testing.T) {
	var calls atomic.Int32
	r := srvStart(t, &doe.Server{Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		calls.Add(1)
		return srvEcho(ctx, req)
	})})
	conn := srvRaw(t, r)
	obj, _ := doe.NewObject(doe.ProtocolCMA, []byte{1, 2, 3, 4}).Encode()
	wire := doe.AppendFrame(nil, doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: obj})
	if _, err := conn.Write(wire[:len(wire)-2]); err != nil {
		t.Fatal(err)
	}
	conn.(*net.UnixConn).CloseWrite()
	if _, err := doe.ReadFrame(conn, 64); err != io.EOF {
		t.Errorf("after a truncated frame: %v, want the connection closed without an answer", err)
	}
	if calls.Load() != 0 {
		t.Errorf("a truncated frame reached the mailbox")
	}
}

func TestServerConnect(t *testing.T) {
	var released atomic.Int32
	var mu sync.Mutex
	var seen []string
	srv := &doe.Server{
		Connect: func(ctx context.Context, conn net.Conn) (doe.Mailbox, func(), error) {
			mu.Lock()
			n := len(seen)
			seen = append(seen, "c")
			mu.Unlock()
			if n == 1 {
				return nil, nil, errors.New("no VF for you")
			}
			return doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
				return doe.NewObject(req.Protocol(), []byte{byte(n)}), nil
			}), func() { released.Add(1) }, nil
		},
	}
	r := srvStart(t, srv)
	c := srvDial(t, r)
	resp, err := c.Exchange(srvCtx(t), doe.NewObject(doe.ProtocolCMA, nil))
	if err != nil || !bytes.Equal(resp.Payload, []byte{0, 0, 0, 0}) {
		t.Fatalf("first connection: % x, %v", resp.Payload, err)
	}
	// The second connection is refused with the reason, then closed.
	conn := srvRaw(t, r)
	f, err := doe.ReadFrame(conn, 4096)
	if err != nil || f.Command != doe.CommandUnknown || !bytes.Contains(f.Payload, []byte("no VF for you")) {
		t.Fatalf("refused connection: %+v, %v", f, err)
	}
	if _, err := doe.ReadFrame(conn, 64); err != io.EOF {
		t.Errorf("refused connection stays open: %v", err)
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for released.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if released.Load() != 1 {
		t.Errorf("release called %d times after the first connection ended", released.Load())
	}
}

// srvFakePeer serves one connection with a hand-written peer.
func srvFakePeer(t *testing.T, handle func(conn net.Conn)) string {
	t.Helper()
	path := srvSockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		handle(conn)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "unix:" + path
}

func TestClientAgainstMisbehavingPeer(t *testing.T) {
	obj := doe.NewObject(doe.ProtocolCMA, []byte{0x12, 0x84})
	cases := []struct {
		name    string
		answer  func(req doe.Frame) []byte
		want    error
		reason  string
		broken  bool // the client refuses further exchanges
		ensured bool // a second exchange is attempted
	}{
		{
			name: "refusal with control bytes",
			answer: func(req doe.Frame) []byte {
				return doe.AppendFrame(nil, doe.Frame{Command: doe.CommandUnknown, Transport: 2, Payload: []byte("\x1b[31mbad\x00\xff\n")})
			},
			want: doe.ErrRefused, reason: "?[31mbad??",
		},
		{
			name: "empty refusal",
			answer: func(req doe.Frame) []byte {
				return doe.AppendFrame(nil, doe.Frame{Command: doe.CommandUnknown, Transport: 2})
			},
			want: doe.ErrRefused, reason: "no reason given",
		},
		{
			name: "long refusal",
			answer: func(req doe.Frame) []byte {
				return doe.AppendFrame(nil, doe.Frame{Command: doe.CommandUnknown, Transport: 2, Payload: bytes.Repeat([]byte("a"), 5000)})
			},
			want: doe.ErrRefused, reason: strings.Repeat("a", 512),
		},
		{
			name: "wrong transport in response",
			answer: func(req doe.Frame) []byte {
				return doe.AppendFrame(nil, doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportMCTP, Payload: req.Payload})
			},
			want: doe.ErrMalformed,
		},
		{
			name: "malformed object in response",
			answer: func(req doe.Frame) []byte {
				return doe.AppendFrame(nil, doe.Frame{Command: doe.CommandNormal, Transport: 2, Payload: req.Payload[:len(req.Payload)-4]})
			},
			want: doe.ErrMalformed,
		},
		{
			name: "TEST in answer to NORMAL",
			answer: func(req doe.Frame) []byte {
				return doe.AppendFrame(nil, doe.Frame{Command: doe.CommandTest, Transport: 2})
			},
			want: doe.ErrMalformed, broken: true,
		},
		{
			name: "truncated response",
			answer: func(req doe.Frame) []byte {
				b := doe.AppendFrame(nil, doe.Frame{Command: doe.CommandNormal, Transport: 2, Payload: req.Payload})
				return b[:len(b)-1]
			},
			want: doe.ErrMalformed, broken: true,
		},
		{
			name: "oversize response",
			answer: func(req doe.Frame) []byte {
				return rawFrame(doe.CommandNormal, 2, doe.MaxFramePayload+1, nil)
			},
			want: doe.ErrTooLarge, broken: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := srvFakePeer(t, func(conn net.Conn) {
				for {
					req, err := doe.ReadFrame(conn, doe.MaxFramePayload)
					if err != nil {
						return
					}
					if req.Command != doe.CommandNormal {
						doe.WriteFrame(conn, doe.Frame{Command: req.Command, Transport: req.Transport})
						return
					}
					conn.Write(tc.answer(req))
					if tc.broken {
						return
					}
				}
			})
			c, err := doe.Dial(srvCtx(t), addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 2 {
				_, err := c.Exchange(srvCtx(t), obj)
				if i == 1 && tc.broken {
					if !errors.Is(err, doe.ErrClosed) {
						t.Errorf("exchange after a broken stream: err = %v, want ErrClosed", err)
					}
					break
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("exchange %d: err = %v, want %v", i, err, tc.want)
				}
				if tc.reason != "" {
					var re *doe.RemoteError
					if !errors.As(err, &re) || re.Reason != tc.reason {
						t.Fatalf("reason = %q, want %q", re.Reason, tc.reason)
					}
				}
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	ctx := srvCtx(t)
	if _, err := doe.Dial(ctx, "unix:"+filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Dial to a missing socket succeeded")
	}
	if _, err := doe.Dial(ctx, "nonsense"); err == nil {
		t.Error("Dial of an unparsable address succeeded")
	}
	// A cancelled context stops a dial.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := doe.Dial(cctx, ln.Addr().String()); err == nil {
		t.Error("Dial with a cancelled context succeeded")
	}
}

func TestServerOverTCP(t *testing.T) {
	srv := &doe.Server{Mailbox: doe.MailboxFunc(srvEcho)}
	ln, err := doe.Listen(srvCtx(t), "tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve := make(chan error, 1)
	go func() { serve <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-serve; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c, err := doe.Dial(srvCtx(t), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Exchange(srvCtx(t), doe.NewObject(doe.ProtocolCMA, []byte("tcp")))
	if err != nil || !bytes.Equal(resp.Payload, []byte("tcp\x00")) {
		t.Fatalf("exchange over TCP: %q, %v", resp.Payload, err)
	}
}

func TestParseAddr(t *testing.T) {
	ok := []struct{ in, network, address string }{
		{"unix:/run/devattest.sock", "unix", "/run/devattest.sock"},
		{"unix:relative/sock", "unix", "relative/sock"},
		{"unix:@abstract", "unix", "@abstract"},
		{"tcp:127.0.0.1:2323", "tcp", "127.0.0.1:2323"},
		{"127.0.0.1:2323", "tcp", "127.0.0.1:2323"},
		{"localhost:0", "tcp", "localhost:0"},
		{"[::1]:2323", "tcp", "[::1]:2323"},
		{"tcp:[::1]:2323", "tcp", "[::1]:2323"},
		{":2323", "tcp", ":2323"},
	}
	for _, tc := range ok {
		network, address, err := doe.ParseAddr(tc.in)
		if err != nil || network != tc.network || address != tc.address {
			t.Errorf("ParseAddr(%q) = %q, %q, %v; want %q, %q", tc.in, network, address, err, tc.network, tc.address)
		}
	}
	for _, in := range []string{
		"", "unix:", "tcp:", "localhost", "127.0.0.1", "127.0.0.1:", "tcp:127.0.0.1:",
		"::1:2323", "/run/devattest.sock", "tcp:/run/x", "a:b:c",
	} {
		if network, address, err := doe.ParseAddr(in); err == nil {
			t.Errorf("ParseAddr(%q) = %q, %q; want an error", in, network, address)
		}
	}
}

// TestServeConnHonoursContext: a cancellation that arrives while an
// exchange is in flight ends ServeConn once the reply is sent, even though
// the client stays connected and silent.
func TestServeConnHonoursContext(t *testing.T) {
	entered := make(chan struct{})
	srv := &doe.Server{Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		close(entered)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a driver aborting takes a moment
		return doe.Object{}, ctx.Err()
	})}
	server, client := net.Pipe()
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.ServeConn(ctx, server); close(done) }()
	obj, _ := doe.NewObject(doe.ProtocolCMA, []byte{0x12, 0x84}).Encode()
	go func() {
		doe.WriteFrame(client, doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: obj})
		doe.ReadFrame(client, doe.MaxFramePayload) // the refusal; then stay connected and silent
	}()
	<-entered
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("ServeConn still running 3 s after its context was cancelled")
	}
}
