//go:build unix

package hostshim

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// peerWatchInterval is how often a long exchange checks that its client
// is still connected. Exchanges shorter than this never check.
const peerWatchInterval = 20 * time.Millisecond

// watchPeer calls gone once if conn's peer closes its end while an
// exchange is in flight, so that the exchange can be aborted at once
// instead of running to its deadline for nobody. It peeks at the socket
// (MSG_PEEK: nothing is consumed; the doe.Server does not read while an
// exchange is in flight); end of stream means the peer is gone, pending
// bytes mean it is there. stop ends the watch and returns once no peek is
// running, before the server reads from conn again.
func watchPeer(conn net.Conn, gone func()) (stop func()) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	var (
		mu      sync.Mutex
		stopped bool
		timer   *time.Timer
	)
	var check func()
	check = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if peerClosed(raw) {
			gone()
			return
		}
		timer.Reset(peerWatchInterval)
	}
	mu.Lock()
	timer = time.AfterFunc(peerWatchInterval, check)
	mu.Unlock()
	return func() {
		timer.Stop()
		mu.Lock() // waits out a check in progress
		stopped = true
		mu.Unlock()
	}
}

// peerClosed peeks one byte without waiting: 0 bytes and no error is end
// of stream.
func peerClosed(raw syscall.RawConn) bool {
	var closed bool
	var buf [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			closed = true
		case err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
			closed = true // ECONNRESET and the like
		}
		return true // never wait for readiness
	})
	return closed
}
