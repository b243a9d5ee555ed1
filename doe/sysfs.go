package doe

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// SysfsRoot is where Linux lists PCI devices.
const SysfsRoot = "/sys/bus/pci/devices"

// bdfPattern is the canonical sysfs name: domain:bus:device.function, in
// lower-case hex with a 2-digit bus, 2-digit device and 1-digit function.
// Linux prints the domain with %04x, so it has 4 digits, or more for the
// domains Intel VMD creates from 0x10000 on.
var bdfPattern = regexp.MustCompile(`^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$`)

// ParseBDF validates a PCI address in sysfs form (0000:0d:00.0). It accepts
// upper-case hex and returns the canonical lower-case form.
func ParseBDF(s string) (string, error) {
	lower := []byte(s)
	for i, c := range lower {
		if c >= 'A' && c <= 'F' {
			lower[i] = c + 'a' - 'A'
		}
	}
	m := bdfPattern.FindSubmatch(lower)
	if m == nil {
		return "", fmt.Errorf("doe: %q is not a PCI address of the form DDDD:BB:DD.F", s)
	}
	dev, _ := strconv.ParseUint(string(m[3]), 16, 8)
	if dev > 0x1f {
		return "", fmt.Errorf("doe: %q: device number 0x%x exceeds 0x1f", s, dev)
	}
	return string(lower), nil
}

// SysfsConfigSpace is a function's config space through Linux sysfs
// (/sys/bus/pci/devices/<BDF>/config), accessed with 4-byte aligned
// pread/pwrite so that every access is one config cycle.
type SysfsConfigSpace struct {
	BDF string
	f   *os.File
}

// OpenSysfs opens the config file of the function at bdf under root (use
// SysfsRoot on a real host; tests pass a directory of their own).
func OpenSysfs(root, bdf string) (*SysfsConfigSpace, error) {
	canon, err := ParseBDF(bdf)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, canon, "config")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %w", ErrConfigSpace, path, err)
	}
	return &SysfsConfigSpace{BDF: canon, f: f}, nil
}

func checkOffset(off int) error {
	if off < 0 || off > ConfigSpaceSize-4 || off%4 != 0 {
		return fmt.Errorf("%w: offset 0x%x is not an aligned DW inside config space", ErrConfigSpace, off)
	}
	return nil
}

// ReadConfig32 reads the DW at off.
func (s *SysfsConfigSpace) ReadConfig32(off int) (uint32, error) {
	if err := checkOffset(off); err != nil {
		return 0, err
	}
	var b [4]byte
	n, err := s.f.ReadAt(b[:], int64(off))
	if n != 4 {
		return 0, fmt.Errorf("%w: %s: read at 0x%x returned %d bytes: %v", ErrConfigSpace, s.BDF, off, n, err)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// WriteConfig32 writes the DW at off.
func (s *SysfsConfigSpace) WriteConfig32(off int, v uint32) error {
	if err := checkOffset(off); err != nil {
		return err
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	n, err := s.f.WriteAt(b[:], int64(off))
	if n != 4 {
		return fmt.Errorf("%w: %s: write at 0x%x wrote %d bytes: %v", ErrConfigSpace, s.BDF, off, n, err)
	}
	return nil
}

// Close closes the config file.
func (s *SysfsConfigSpace) Close() error { return s.f.Close() }
