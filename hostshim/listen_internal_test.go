package hostshim

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mdlayher/vsock"

	"github.com/devattest/devattest/doe"
)

// fakeConn is a connection with a chosen remote address.
type fakeConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

// fakeListener hands out its connections, then fails.
type fakeListener struct {
	conns []*fakeConn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.conns) == 0 {
		return nil, net.ErrClosed
	}
	c := l.conns[0]
	l.conns = l.conns[1:]
	return c, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &vsock.Addr{ContextID: 2, Port: 5000} }

// Connecting over vsock does not work on the test machines, so the CID
// check is tested on accepted connections with vsock addresses.
func TestVsockPeerFilter(t *testing.T) {
	wrongCID := &fakeConn{remote: &vsock.Addr{ContextID: 4, Port: 1024}}
	host := &fakeConn{remote: &vsock.Addr{ContextID: 2, Port: 1025}}
	notVsock := &fakeConn{remote: &net.UnixAddr{Name: "@", Net: "unix"}}
	guest := &fakeConn{remote: &vsock.Addr{ContextID: 3, Port: 1026}}
	fl := &fakeListener{conns: []*fakeConn{wrongCID, host, notVsock, guest}}
	var logBuf bytes.Buffer
	ln := FilterPeers(fl, vsockPeerIs(3), slog.New(slog.NewTextHandler(&logBuf, nil)))

	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if c != guest {
		t.Errorf("Accept returned %v, want the guest's connection", c.RemoteAddr())
	}
	for _, refused := range []*fakeConn{wrongCID, host, notVsock} {
		if !refused.closed {
			t.Errorf("connection from %v was not closed", refused.remote)
		}
	}
	if guest.closed {
		t.Errorf("the guest's connection was closed")
	}
	log := logBuf.String()
	if n := strings.Count(log, "connection refused: wrong peer"); n != 3 {
		t.Errorf("%d refusals logged, want 3:\n%s", n, log)
	}
	if !strings.Contains(log, "peer CID 4 is not the configured guest CID 3") {
		t.Errorf("log does not say which CID was refused:\n%s", log)
	}
	if _, err := ln.Accept(); err == nil {
		t.Errorf("Accept after the last connection succeeded")
	}
}

// emfileListener fails accept with EMFILE n times, checking health
// during the episode, then hands out one connection.
type emfileListener struct {
	fakeListener
	n      int
	during func()
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		if l.during != nil && l.n == 0 {
			l.during()
		}
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.fakeListener.Accept()
}

// TestAcceptSurvivesEMFILE: out of file descriptors, accept backs off
// and retries; the episode is one log line when it starts and one when it
// ends, and health reports it meanwhile.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	var logBuf syncLog
	med := NewMediator(nil, Options{VF: "vf0", Guest: "g", Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	c := &fakeConn{remote: &net.UnixAddr{Net: "unix"}}
	fl := &emfileListener{fakeListener: fakeListener{conns: []*fakeConn{c}}, n: 5}
	dl := newDrainListener(fl, med, 0)
	var healthDuring error
	fl.during = func() { healthDuring = dl.health() }
	got, err := dl.Accept()
	if err != nil {
		t.Fatalf("Accept after EMFILE: %v", err)
	}
	if got.(*drainConn).Conn != c {
		t.Errorf("Accept returned another connection")
	}
	if healthDuring == nil || !strings.Contains(healthDuring.Error(), "too many open files") {
		t.Errorf("health during the episode = %v, want the accept error", healthDuring)
	}
	if err := dl.health(); err != nil {
		t.Errorf("health after the episode = %v", err)
	}
	log := logBuf.String()
	if strings.Count(log, "accept paused") != 1 || strings.Count(log, "accept resumed") != 1 || !strings.Contains(log, `"guest":"g"`) {
		t.Errorf("want one paused and one resumed line with the guest, got:\n%s", log)
	}
}

// TestMaxConnectionsRefusedAtOnce: a connection over max is told why and
// closed without being handed to the server.
func TestMaxConnectionsRefusedAtOnce(t *testing.T) {
	med := NewMediator(nil, Options{VF: "vf0"})
	a, b := net.Pipe()
	defer b.Close()
	held := &fakeConn{Conn: a, remote: &net.UnixAddr{Net: "unix"}}
	over, overPeer := net.Pipe()
	defer overPeer.Close()
	overConn := &fakeConn{Conn: over, remote: &net.UnixAddr{Net: "unix"}}
	fl := &fakeListener{conns: []*fakeConn{held, overConn}}
	dl := newDrainListener(fl, med, 1)
	if _, err := dl.Accept(); err != nil {
		t.Fatal(err)
	}
	reply := make(chan doe.Frame, 1)
	go func() {
		f, _ := doe.ReadFrame(overPeer, doe.MaxFramePayload)
		reply <- f
	}()
	if _, err := dl.Accept(); err == nil {
		t.Fatalf("the connection over max_connections was handed out")
	}
	if !overConn.closed {
		t.Errorf("the connection over max_connections was not closed")
	}
	if f := <-reply; f.Command != doe.CommandUnknown || !strings.Contains(string(f.Payload), "max_connections") {
		t.Errorf("refused connection got %s %q", doe.CommandName(f.Command), f.Payload)
	}
}

// syncLog is a log sink safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
