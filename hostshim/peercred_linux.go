package hostshim

import (
	"fmt"
	"net"
	"syscall"
)

// unixPeerName names a unix socket's peer by the process and user that
// connected (SO_PEERCRED, as the kernel recorded them at connect), since a
// unix peer has no address of its own.
func unixPeerName(conn net.Conn) (string, bool) {
	if a := conn.RemoteAddr(); a == nil || a.Network() != "unix" {
		return "", false
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return "", false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return "", false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return "", false
	}
	return fmt.Sprintf("unix:pid=%d,uid=%d,gid=%d", cred.Pid, cred.Uid, cred.Gid), true
}
