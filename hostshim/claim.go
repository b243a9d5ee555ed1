package hostshim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrClaimed: another process (or another Claim in this one) holds the
// VF's claim. The error's text names the holder when the lock file says.
var ErrClaimed = errors.New("hostshim: VF is claimed by another holder")

// Claim is an exclusive, OS-enforced claim of one VF's mailbox: an
// exclusive flock(2) on <runDir>/<vf>.lock. The kernel drops it when the
// holder exits, however it exits, so a crashed shim leaves no stale claim.
// Any cooperating tool that takes the same lock (flock -n on the same
// file) is kept off the mailbox while the shim serves it, and keeps the
// shim off while it works.
//
// flock locks belong to an open file description: two Claims in one
// process exclude each other as two processes do.
type Claim struct {
	path string
	vf   string
	f    *os.File
}

// LockFileName is the lock file's name for vfID: the ID with every
// character outside [A-Za-z0-9.-] replaced by '_' (a BDF 0000:01:00.1
// becomes 0000_01_00.1.lock). Tools that cooperate must use the same name.
func LockFileName(vfID string) (string, error) {
	if vfID == "" || vfID == "." || vfID == ".." {
		return "", fmt.Errorf("hostshim: %q cannot name a VF's lock file", vfID)
	}
	var b strings.Builder
	for _, r := range vfID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String() + ".lock", nil
}

// ClaimVF takes the claim of vfID under runDir (created if missing), or
// fails with an error wrapping ErrClaimed that names the holder. On
// success the lock file says "pid <pid> <cmdline>" for whoever finds it
// held.
func ClaimVF(runDir, vfID string) (*Claim, error) {
	name, err := LockFileName(vfID)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("hostshim: claim of %s: %w", vfID, err)
	}
	path := filepath.Join(runDir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hostshim: claim of %s: %w", vfID, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("hostshim: claim of %s: locking %s: %w", vfID, path, err)
	}
	if held {
		holder := readHolder(f)
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by %s (lock %s)", ErrClaimed, vfID, holder, path)
	}
	// Ours now: say who we are. A failure here leaves the lock valid but
	// anonymous; refuse rather than run unaccountable.
	if err := writeHolder(f); err != nil {
		f.Close() // drops the lock
		return nil, fmt.Errorf("hostshim: claim of %s: writing %s: %w", vfID, path, err)
	}
	return &Claim{path: path, vf: vfID, f: f}, nil
}

// holderText is what a claim writes into its lock file.
func holderText() string {
	cmd := strings.Join(os.Args, " ")
	cmd = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, cmd)
	return fmt.Sprintf("pid %d %s\n", os.Getpid(), cmd)
}

func writeHolder(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(holderText()), 0)
	return err
}

// readHolder reads what the holder wrote, bounded, for an error message.
func readHolder(f *os.File) string {
	buf := make([]byte, 512)
	n, _ := f.ReadAt(buf, 0)
	s := strings.TrimSpace(strings.ToValidUTF8(string(buf[:n]), "?"))
	if s == "" {
		return "an unnamed process (its lock file is empty)"
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Path is the lock file's path.
func (c *Claim) Path() string { return c.path }

// VF is the claimed VF's ID.
func (c *Claim) VF() string { return c.vf }

// Release gives the claim up. The lock file stays (removing it would let
// a late opener lock an unlinked file while a third party locks a new
// one); it is emptied first so that it names nobody. Release twice is
// harmless.
func (c *Claim) Release() error {
	if c == nil || c.f == nil {
		return nil
	}
	f := c.f
	c.f = nil
	terr := f.Truncate(0)
	uerr := unlock(f)
	cerr := f.Close()
	if err := errors.Join(terr, uerr, cerr); err != nil {
		return fmt.Errorf("hostshim: releasing claim of %s: %w", c.vf, err)
	}
	return nil
}
