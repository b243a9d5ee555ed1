//go:build unix

package hostshim

import (
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// peerWatchInterval is how often a long exchange checks that its client
// is still connected. Exchanges shorter than this never check.
const peerWatchInterval = 20 * time.Millisecond

// watchPeer calls gone once if conn's peer is gone while an exchange is
// in flight, so that the exchange can be aborted at once instead of
// running to its deadline for nobody. It polls the socket without
// consuming anything (the doe.Server does not read while an exchange is
// in flight): a hang-up or a socket error means the peer is gone. End of
// stream alone does not: a client may send its request and shut down its
// write side (shutdown(SHUT_WR)), and it still gets its answer. (A unix
// peer that closes shows as a hang-up at once; a TCP peer that closes
// looks like a half-close until the shim writes, so its exchange runs to
// its deadline.) stop ends the watch and returns once no check is
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

// peerClosed polls the socket without waiting: a hang-up (both
// directions shut, as when a unix peer closes) or a pending error (a TCP
// reset) means the peer is gone.
func peerClosed(raw syscall.RawConn) bool {
	var closed bool
	_ = raw.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		if err != nil || n == 0 {
			return
		}
		closed = p[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
	})
	return closed
}
