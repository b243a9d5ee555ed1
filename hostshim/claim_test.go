package hostshim_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/hostshim"
)

const claimVF = "0000:3b:00.1"

func TestLockFileName(t *testing.T) {
	for in, want := range map[string]string{
		"0000:3b:00.1": "0000_3b_00.1.lock",
		"devsim":       "devsim.lock",
		"../etc/x":     ".._etc_x.lock",
		"a/b":          "a_b.lock",
	} {
		got, err := hostshim.LockFileName(in)
		if err != nil || got != want {
			t.Errorf("LockFileName(%q) = %q, %v; want %q", in, got, err, want)
		}
		if strings.Contains(got, "/") {
			t.Errorf("LockFileName(%q) = %q leaves the run directory", in, got)
		}
	}
	for _, bad := range []string{"", ".", ".."} {
		if got, err := hostshim.LockFileName(bad); err == nil {
			t.Errorf("LockFileName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestClaimHeldInProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run") // created by ClaimVF
	c, err := hostshim.ClaimVF(dir, claimVF)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if want := filepath.Join(dir, "0000_3b_00.1.lock"); c.Path() != want {
		t.Errorf("claim path %q, want %q", c.Path(), want)
	}
	b, err := os.ReadFile(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("pid %d %s", os.Getpid(), os.Args[0]); !strings.HasPrefix(string(b), want) {
		t.Errorf("lock file says %q, want it to start with %q", b, want)
	}

	// A second Claim opens the file again (its own open file description),
	// so flock excludes it as it would another process.
	c2, err := hostshim.ClaimVF(dir, claimVF)
	if err == nil {
		c2.Release()
		t.Fatal("second claim of a held VF succeeded")
	}
	if !errors.Is(err, hostshim.ErrClaimed) {
		t.Fatalf("second claim: %v, want ErrClaimed", err)
	}
	for _, part := range []string{claimVF, fmt.Sprintf("pid %d", os.Getpid()), c.Path()} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %q", err, part)
		}
	}

	// Another VF is independent.
	other, err := hostshim.ClaimVF(dir, "0000:3b:00.2")
	if err != nil {
		t.Fatalf("claim of another VF: %v", err)
	}
	defer other.Release()

	if err := c.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := c.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	c3, err := hostshim.ClaimVF(dir, claimVF)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	if err := c3.Release(); err != nil {
		t.Fatal(err)
	}
}

func TestClaimEmptyLockFileHeld(t *testing.T) {
	// A cooperating tool that locks without writing its name.
	dir := t.TempDir()
	c, err := hostshim.ClaimVF(dir, claimVF)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if err := os.Truncate(c.Path(), 0); err != nil {
		t.Fatal(err)
	}
	_, err = hostshim.ClaimVF(dir, claimVF)
	if !errors.Is(err, hostshim.ErrClaimed) || !strings.Contains(err.Error(), "unnamed process") {
		t.Fatalf("claim held anonymously: %v, want ErrClaimed naming an unnamed process", err)
	}
}

// TestClaimHelperProcess is not a test: TestClaimHeldBySubprocess runs the
// test binary with it selected to hold a claim in another process.
func TestClaimHelperProcess(t *testing.T) {
	dir := os.Getenv("HOSTSHIM_CLAIM_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestClaimHeldBySubprocess")
	}
	c, err := hostshim.ClaimVF(dir, claimVF)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("claimed")
	// Hold until the parent closes stdin, then exit without releasing:
	// the kernel drops the lock with the process.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = c
	os.Exit(0)
}

func TestClaimHeldBySubprocess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestClaimHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HOSTSHIM_CLAIM_HELPER_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			stdin.Close()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "claimed" {
		t.Fatalf("helper said %q (%v), want \"claimed\"", line, err)
	}

	_, err = hostshim.ClaimVF(dir, claimVF)
	if !errors.Is(err, hostshim.ErrClaimed) {
		t.Fatalf("claim held by pid %d: %v, want ErrClaimed", cmd.Process.Pid, err)
	}
	for _, part := range []string{fmt.Sprintf("pid %d ", cmd.Process.Pid), "TestClaimHelperProcess"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name the holder (%q)", err, part)
		}
	}

	// The holder exits without releasing: the claim is free again.
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not exit")
	}
	c, err := hostshim.ClaimVF(dir, claimVF)
	if err != nil {
		t.Fatalf("claim after the holder exited: %v", err)
	}
	c.Release()
}
