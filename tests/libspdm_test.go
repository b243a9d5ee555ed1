package tests

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
)

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startResponderEmu starts libspdm's spdm_responder_emu on 127.0.0.1 with
// PCI DOE transport and waits until it serves. It is killed when the test
// ends if it is still running.
func startResponderEmu(t *testing.T, binDir string, extra ...string) (*proc, string) {
	t.Helper()
	exe := filepath.Join(binDir, "spdm_responder_emu")
	if !fileExists(exe) {
		t.Fatalf("LIBSPDM_EMU_BIN=%s holds no spdm_responder_emu", binDir)
	}
	port := freeLoopbackPort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := append([]string{"--trans", "PCI_DOE", "--ip", "127.0.0.1", "--port", strconv.Itoa(port)}, extra...)
	cmd := exec.Command(exe, args...)
	cmd.Dir = binDir // it reads its sample keys relative to the working directory
	cmd.Env = os.Environ()
	if pre := os.Getenv("LIBSPDM_NODELAY_PRELOAD"); pre != "" {
		if fileExists(pre) {
			cmd.Env = append(cmd.Env, "LD_PRELOAD="+pre)
		} else {
			t.Logf("LIBSPDM_NODELAY_PRELOAD=%s is not a file; running without it (round trips may stall on Nagle)", pre)
		}
	}
	p := startProc(t, "spdm_responder_emu", cmd)

	// Wait until it accepts. The responder serves one client at a time and
	// exits when a client leaves without SHUTDOWN or CONTINUE, so the
	// readiness check speaks the framing: TEST, then CONTINUE.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := doe.Dial(ctx, addr)
		if err == nil {
			err = c.Ping(ctx)
			c.Release()
			cancel()
			if err != nil {
				t.Fatalf("spdm_responder_emu at %s did not answer TEST: %v\nstdout:\n%s", addr, err, p.stdout)
			}
			return p, addr
		}
		cancel()
		if p.exited() {
			t.Fatalf("spdm_responder_emu exited before serving: %v\nstdout:\n%s\nstderr:\n%s", p.err, p.stdout, p.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("spdm_responder_emu did not accept on %s within 15s\nstdout:\n%s", addr, p.stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLibspdmResponderDiscovery runs DOE discovery against DMTF libspdm's
// spdm_responder_emu: first through the host shim (whose upstream
// connection ends with CONTINUE, so the responder stays up), then
// directly with a client that ends with SHUTDOWN, after which the
// responder exits.
func TestLibspdmResponderDiscovery(t *testing.T) {
	binDir := os.Getenv("LIBSPDM_EMU_BIN")
	if binDir == "" {
		t.Skip("LIBSPDM_EMU_BIN not set: skipping interop with libspdm's spdm_responder_emu (build DMTF spdm-emu and point LIBSPDM_EMU_BIN at its bin directory)")
	}
	emu, addr := startResponderEmu(t, binDir)

	t.Run("through shim", func(t *testing.T) {
		// The shim and its backend live in this subtest: when it ends, the
		// shim's server closes and the backend sends CONTINUE upstream.
		shimAddr := startShim(t, t.TempDir(), addr)
		for i := range 2 { // two guest sessions over one upstream connection
			if got := discover(t, shimAddr, false); !slices.Equal(got, wantProtocols) {
				t.Fatalf("session %d: Discover through the shim = %v, want %v", i+1, got, wantProtocols)
			}
		}
	})
	if t.Failed() {
		return
	}
	// A guest's SHUTDOWN must not have reached the responder, and the
	// backend's CONTINUE must have left it serving.
	if emu.waitExit(200 * time.Millisecond) {
		t.Fatalf("spdm_responder_emu exited after the shim session (%v): the shim forwarded SHUTDOWN or dropped the connection\nstdout:\n%s", emu.err, emu.stdout)
	}

	t.Run("direct", func(t *testing.T) {
		if got := discover(t, addr, false); !slices.Equal(got, wantProtocols) {
			t.Fatalf("Discover directly = %v, want %v", got, wantProtocols)
		}
	})
	// The direct client's Close sent SHUTDOWN: the responder stops.
	if !emu.waitExit(10 * time.Second) {
		t.Fatalf("spdm_responder_emu still running 10s after SHUTDOWN")
	}
	if emu.err != nil {
		t.Errorf("spdm_responder_emu after SHUTDOWN: %v, want exit status 0", emu.err)
	}
}
