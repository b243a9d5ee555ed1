package tests

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestLibspdmRequesterThroughShimBinaryToResponder runs libspdm's whole
// chain of emulators through our shim binary in socket-backend mode:
// spdm_requester_emu -> devattest-shim -> spdm_responder_emu. The shim
// does not parse SPDM and never passes the requester's SHUTDOWN on, so
// the responder is still serving when the requester has finished.
func TestLibspdmRequesterThroughShimBinaryToResponder(t *testing.T) {
	bin := libspdmBin(t)
	if testing.Short() {
		t.Skip("builds and runs the binaries; skipped with -short")
	}
	tools := buildBinaries(t)
	emu, upstream := startResponderEmu(t, bin, "--mut_auth", "NO", "--basic_mut_auth", "NO")
	shimAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	shim := startProc(t, "devattest-shim", exec.Command(filepath.Join(tools, "devattest-shim"),
		"--listen", shimAddr, "--device", "socket:"+upstream, "--run-dir", t.TempDir()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", shimAddr)
		if err == nil {
			c.Close()
			break
		}
		if shim.exited() || time.Now().After(deadline) {
			t.Fatalf("shim did not listen on %s: %v\n%s", shimAddr, err, shim.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantPasses(t, runRequesterEmu(t, bin, shimAddr), true)
	if emu.exited() {
		t.Fatal("spdm_responder_emu exited: the shim passed the requester's SHUTDOWN on")
	}
	shim.terminate(t)
}
