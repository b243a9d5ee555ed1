package hostshim

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/mdlayher/vsock"
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
