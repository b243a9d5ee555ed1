package hostshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/devattest/devattest/doe"
)

// kindWrongPeer is the audit kind of a vsock connection from another CID.
const kindWrongPeer = "wrong_peer"

// ErrTooManyConnections: a connection over the listener's max_connections.
var ErrTooManyConnections = errors.New("hostshim: too many connections")

// Listen opens the guest-facing listener that lc describes:
//
//   - vsock: the host's port, accepting connections from lc.Vsock.CID only
//     (others are closed at once and logged). The shim never dials vsock.
//   - unix: the socket is created under a temporary name, given its mode
//     (and owner and group, when running as root), then renamed into
//     place, so no client can connect before the permissions hold. A stale
//     socket left by a dead process is replaced; a live one is refused.
//   - tcp: the address as given (Validate refuses non-loopback addresses
//     unless allowed).
func Listen(ctx context.Context, lc ListenConfig, log *slog.Logger) (net.Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case lc.Vsock != nil:
		// Bound to VMADDR_CID_ANY: vsock.Listen would ask /dev/vsock for
		// the local CID, and a sandboxed service has no /dev (PrivateDevices).
		ln, err := vsock.ListenContextID(vmaddrCIDAny, lc.Vsock.Port, nil)
		if err != nil {
			return nil, fmt.Errorf("hostshim: vsock port %d: %w", lc.Vsock.Port, err)
		}
		return FilterPeers(ln, vsockPeerIs(lc.Vsock.CID), log), nil
	case lc.Unix != nil:
		return listenUnix(lc.Unix, log)
	case lc.TCP != nil:
		var c net.ListenConfig
		return c.Listen(ctx, "tcp", lc.TCP.Address)
	}
	return nil, errors.New("hostshim: the listen block names no socket")
}

// vmaddrCIDAny is VMADDR_CID_ANY (linux/vm_sockets.h).
const vmaddrCIDAny = math.MaxUint32

// vsockPeerIs accepts connections from the guest with CID cid only.
func vsockPeerIs(cid uint32) func(net.Addr) error {
	return func(a net.Addr) error {
		va, ok := a.(*vsock.Addr)
		if !ok {
			return fmt.Errorf("peer %v is not a vsock address", a)
		}
		if va.ContextID != cid {
			return fmt.Errorf("peer CID %d is not the configured guest CID %d", va.ContextID, cid)
		}
		return nil
	}
}

// FilterPeers wraps ln so that Accept returns only connections whose
// remote address check accepts; the others are closed and logged.
func FilterPeers(ln net.Listener, check func(net.Addr) error, log *slog.Logger) net.Listener {
	return &peerFilter{Listener: ln, check: check, log: log}
}

type peerFilter struct {
	net.Listener
	check func(net.Addr) error
	log   *slog.Logger
	// audit, when the daemon sets it, takes the refusals instead of log:
	// another guest hammering this port gets summed up, not a line each.
	audit *audit
}

func (f *peerFilter) Accept() (net.Conn, error) {
	for {
		c, err := f.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := f.check(c.RemoteAddr()); err != nil {
			args := []any{"listen", f.Addr().String(), "remote", c.RemoteAddr().String(), "err", err}
			if f.audit != nil {
				f.audit.refusal(kindWrongPeer, "connection refused: wrong peer", args...)
			} else {
				f.log.Warn("connection refused: wrong peer", args...)
			}
			_ = c.Close()
			continue
		}
		return c, nil
	}
}

// unixListener removes its socket file on Close if the file is still the
// one it created.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

func (u *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: u.path, Net: "unix"} }

func (u *unixListener) Close() error {
	err := u.UnixListener.Close()
	if fi, serr := os.Lstat(u.path); serr == nil && os.SameFile(fi, u.fi) {
		_ = os.Remove(u.path)
	}
	return err
}

var unixSeq atomic.Uint64

func listenUnix(u *UnixListen, log *slog.Logger) (net.Listener, error) {
	if err := removeStaleSocket(u.Path); err != nil {
		return nil, err
	}
	mode := os.FileMode(0o600)
	if u.Mode != "" {
		m, err := ParseMode(u.Mode)
		if err != nil {
			return nil, err
		}
		mode = m
	}
	uid, gid := -1, -1
	if u.Owner != "" {
		id, err := lookupID(u.Owner, false)
		if err != nil {
			return nil, err
		}
		uid = id
	}
	if u.Group != "" {
		id, err := lookupID(u.Group, true)
		if err != nil {
			return nil, err
		}
		gid = id
	}
	tmp := filepath.Join(filepath.Dir(u.Path), fmt.Sprintf(".shim%d.%d", os.Getpid(), unixSeq.Add(1)))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("hostshim: unix socket %s: %w", u.Path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("hostshim: unix socket %s: %w", u.Path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if os.Geteuid() != 0 && uid >= 0 && uid != os.Geteuid() {
		// Only root may give a file away; the group can still be set.
		log.Info("not running as root: the unix socket's owner is left as it is", "path", u.Path, "owner", u.Owner)
		uid = -1
	}
	if uid >= 0 || gid >= 0 {
		// Without root, changing the group works for a group the shim is a
		// member of (systemd: SupplementaryGroups=).
		if err := os.Lchown(tmp, uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, u.Path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(u.Path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ln, path: u.Path, fi: fi}, nil
}

// removeStaleSocket removes a socket file nobody listens on; a live
// socket or any other kind of file is an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hostshim: unix socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("hostshim: unix socket %s: the path exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("hostshim: unix socket %s: another process listens on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("hostshim: unix socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("hostshim: removing the stale socket %s: %w", path, err)
	}
	return nil
}

// drainListener is a listener's accept side. It tracks the connections
// it accepted, so that a graceful stop can let each finish the exchange
// in flight and then end it; it refuses connections over max at once;
// and it survives running out of file descriptors.
//
// Draining works on the connection, under doe.Server: once draining, a
// read returns end of stream. A connection blocked waiting for its next
// frame is woken by a read deadline in the past; a connection in an
// exchange is not reading, so its exchange completes, its response is
// written, and its next read ends it.
//
// Out of file descriptors (EMFILE, ENFILE), accept fails while the
// connection stays queued in the kernel; the listener then retries with
// back-off (up to maxAcceptBackoff) instead of failing for good, logs
// one line when the episode starts and one when it ends, and reports it
// through health and the accept_paused metric meanwhile.
type drainListener struct {
	net.Listener
	med  *Mediator // audits and counts for the listener's guest
	max  int       // connections open at once; over it, refused
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	conns    map[*drainConn]struct{}
	draining bool
	paused   error     // the accept error of the current fd episode
	since    time.Time // when it started
	retries  int
	wg       sync.WaitGroup
}

// maxAcceptBackoff bounds the wait between accepts while out of file
// descriptors.
const maxAcceptBackoff = time.Second

// refuseWriteTimeout bounds telling a refused connection why.
const refuseWriteTimeout = 100 * time.Millisecond

func newDrainListener(ln net.Listener, med *Mediator, max int) *drainListener {
	return &drainListener{Listener: ln, med: med, max: max, done: make(chan struct{}), conns: make(map[*drainConn]struct{})}
}

func (l *drainListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *drainListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
				return nil, err
			}
			l.pause(err)
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			select {
			case <-l.done:
				return nil, net.ErrClosed
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		l.resume()
		l.mu.Lock()
		if l.max > 0 && len(l.conns) >= l.max && !l.draining {
			n := len(l.conns)
			l.mu.Unlock()
			l.refuse(c, n)
			continue
		}
		dc := &drainConn{Conn: c, l: l}
		l.conns[dc] = struct{}{}
		l.wg.Add(1)
		if l.draining {
			dc.draining.Store(true)
		}
		l.mu.Unlock()
		return dc, nil
	}
}

// refuse tells a connection over max why, without waiting on it, and
// closes it: it never holds a file descriptor or a goroutine for wait.
func (l *drainListener) refuse(c net.Conn, open int) {
	err := fmt.Errorf("%w: the listener serves at most %d connections at once (max_connections)", ErrTooManyConnections, l.max)
	if l.med != nil {
		l.med.metrics.refusedConnection(KindTooManyConnections)
		l.med.audit.refusal(KindTooManyConnections, "connection refused: too many connections", "client", clientName(c), "open", open, "max_connections", l.max)
	}
	_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
	_ = doe.WriteFrame(c, doe.Frame{Command: doe.CommandUnknown, Transport: doe.TransportPCIDOE, Payload: []byte(err.Error())})
	_ = c.Close()
}

// pause records an accept that failed for want of file descriptors.
func (l *drainListener) pause(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retries++
	if l.paused != nil {
		return
	}
	l.paused, l.since = err, time.Now()
	if l.med != nil {
		l.med.metrics.setAcceptPaused(true)
		l.med.log.Error("accept paused: the process is out of file descriptors; retrying with back-off", "listen", l.Addr().String(), "err", err)
	}
}

// resume ends an fd episode, if there was one.
func (l *drainListener) resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused == nil {
		return
	}
	if l.med != nil {
		l.med.metrics.setAcceptPaused(false)
		l.med.log.Info("accept resumed", "listen", l.Addr().String(), "paused_for", time.Since(l.since).Round(time.Millisecond), "retries", l.retries)
	}
	l.paused, l.retries = nil, 0
}

// health is nil unless accept is paused for want of file descriptors.
func (l *drainListener) health() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused != nil {
		return fmt.Errorf("accept paused since %s (%v ago): %w", l.since.UTC().Format(time.RFC3339), time.Since(l.since).Round(time.Second), l.paused)
	}
	return nil
}

// drain marks every connection draining and wakes those waiting for a
// frame.
func (l *drainListener) drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = true
	for c := range l.conns {
		c.endReads()
	}
}

// wait waits until every connection ended or ctx is done; false means
// some are still open.
func (l *drainListener) wait(ctx context.Context) bool {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

type drainConn struct {
	net.Conn
	l        *drainListener
	draining atomic.Bool
	once     sync.Once
}

// endReads makes the connection's reads end: the one waiting for a frame
// at once, an exchange in flight after its reply is written.
func (c *drainConn) endReads() {
	c.draining.Store(true)
	_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
}

func (c *drainConn) Read(p []byte) (int, error) {
	if c.draining.Load() {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.draining.Load() {
		return n, io.EOF
	}
	return n, err
}

func (c *drainConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.wg.Done()
	})
	return err
}

// SyscallConn exposes the socket, so that the Mediator can watch for a
// peer that leaves during an exchange.
func (c *drainConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("hostshim: connection has no file descriptor")
	}
	return sc.SyscallConn()
}
