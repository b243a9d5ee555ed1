//go:build !unix

package hostshim

// fdLimit is unknown here.
func fdLimit() (uint64, bool) { return 0, false }
