//go:build unix

package hostshim

import "syscall"

// fdLimit is the process's RLIMIT_NOFILE (the soft limit, which the Go
// runtime raises to the hard limit at start).
func fdLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}
