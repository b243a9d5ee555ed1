package doe_test

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/devattest/devattest/doe"
)

func TestParseBDF(t *testing.T) {
	valid := map[string]string{
		"0000:00:00.0":  "0000:00:00.0",
		"0000:0d:00.0":  "0000:0d:00.0",
		"0000:0D:00.0":  "0000:0d:00.0",
		"ABCD:EF:1F.7":  "abcd:ef:1f.7",
		"ffff:ff:1f.7":  "ffff:ff:1f.7",
		"0001:80:10.3":  "0001:80:10.3",
		"10000:e1:00.0": "10000:e1:00.0", // an Intel VMD domain
	}
	for in, want := range valid {
		got, err := doe.ParseBDF(in)
		if err != nil || got != want {
			t.Errorf("ParseBDF(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	invalid := []string{
		"",
		"0000:00:20.0",      // device > 0x1f
		"0000:00:ff.0",      // device > 0x1f
		"0000:00:00.8",      // function 8
		"0000:00:00.f",      // function f
		"00:00.0",           // no domain
		"000:00:00.0",       // short domain
		"123456789:00:00.0", // domain over 8 digits
		"0000:0:00.0",
		"0000:000:00.0",
		"0000:00:0.0",
		"0000:00:00.00",
		"0000:00:00",
		"0000-00-00.0",
		"0000:0g:00.0",
		"0000:0G:00.0",
		" 0000:00:00.0",
		"0000:00:00.0\n",
		"0000:00:00.0/../../x",
		"../0000:00:00.0",
		"0000:00:00.0 ",
		"0x00:00:00.0",
	}
	for _, in := range invalid {
		if got, err := doe.ParseBDF(in); err == nil {
			t.Errorf("ParseBDF(%q) = %q, want an error", in, got)
		}
	}
}

// fakeSysfs makes <root>/<bdf>/config as a 4096-byte regular file.
func fakeSysfs(t *testing.T, bdf string, content []byte) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, bdf)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, doe.ConfigSpaceSize)
	copy(b, content)
	if err := os.WriteFile(filepath.Join(dir, "config"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestSysfsConfigSpace(t *testing.T) {
	init := make([]byte, doe.ConfigSpaceSize)
	binary.LittleEndian.PutUint32(init[0:], 0xD0E01234)
	binary.LittleEndian.PutUint32(init[0x100:], 0x1502E|1<<16)
	binary.LittleEndian.PutUint32(init[4092:], 0xCAFEF00D)
	root := fakeSysfs(t, "0000:01:00.0", init)

	cs, err := doe.OpenSysfs(root, "0000:01:00.0")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if cs.BDF != "0000:01:00.0" {
		t.Errorf("BDF = %q", cs.BDF)
	}
	var _ doe.ConfigSpace = cs

	for off, want := range map[int]uint32{0: 0xD0E01234, 0x100: 0x1502E | 1<<16, 4092: 0xCAFEF00D, 8: 0} {
		if got, err := cs.ReadConfig32(off); err != nil || got != want {
			t.Errorf("ReadConfig32(%#x) = %#x, %v; want %#x", off, got, err, want)
		}
	}
	for _, off := range []int{0, 0x104, 0x150 + doe.RegWriteMailbox, 4092} {
		v := uint32(0xA5000000 | off)
		if err := cs.WriteConfig32(off, v); err != nil {
			t.Fatalf("WriteConfig32(%#x): %v", off, err)
		}
		if got, err := cs.ReadConfig32(off); err != nil || got != v {
			t.Errorf("after write, ReadConfig32(%#x) = %#x, %v; want %#x", off, got, err, v)
		}
	}
	// The write reached the file, little-endian, at the right offset, and
	// nothing else changed size.
	b, err := os.ReadFile(filepath.Join(root, "0000:01:00.0", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != doe.ConfigSpaceSize {
		t.Fatalf("config file is now %d bytes", len(b))
	}
	if got := binary.LittleEndian.Uint32(b[0x104:]); got != 0xA5000104 {
		t.Errorf("file holds %#x at 0x104", got)
	}
	if b[0x108] != 0 || b[0x103] != 0 {
		t.Errorf("write spilled over its DW")
	}

	// Out-of-range and unaligned accesses are refused without touching the file.
	for _, off := range []int{-4, -1, 1, 2, 3, 0x101, 4093, 4094, 4095, 4096, 4100, 1 << 20} {
		if v, err := cs.ReadConfig32(off); !errors.Is(err, doe.ErrConfigSpace) {
			t.Errorf("ReadConfig32(%#x) = %#x, %v; want ErrConfigSpace", off, v, err)
		}
		if err := cs.WriteConfig32(off, 0xFFFFFFFF); !errors.Is(err, doe.ErrConfigSpace) {
			t.Errorf("WriteConfig32(%#x) = %v; want ErrConfigSpace", off, err)
		}
	}
	after, err := os.ReadFile(filepath.Join(root, "0000:01:00.0", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(b) {
		t.Errorf("refused writes changed the file")
	}
}

func TestSysfsUpperCaseBDF(t *testing.T) {
	root := fakeSysfs(t, "0000:0d:00.0", []byte{0x34, 0x12})
	cs, err := doe.OpenSysfs(root, "0000:0D:00.0")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if cs.BDF != "0000:0d:00.0" {
		t.Errorf("BDF = %q", cs.BDF)
	}
	if v, err := cs.ReadConfig32(0); err != nil || v != 0x1234 {
		t.Errorf("ReadConfig32(0) = %#x, %v", v, err)
	}
}

func TestSysfsShortFile(t *testing.T) {
	// A config file shorter than 4 KiB (a conventional-only function read
	// without privileges exposes 64 or 256 bytes) fails cleanly past its end.
	root := t.TempDir()
	dir := filepath.Join(root, "0000:02:00.0")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), make([]byte, 256), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := doe.OpenSysfs(root, "0000:02:00.0")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.ReadConfig32(252); err != nil {
		t.Errorf("ReadConfig32(252): %v", err)
	}
	if v, err := cs.ReadConfig32(256); !errors.Is(err, doe.ErrConfigSpace) {
		t.Errorf("ReadConfig32(256) past the end of a 256-byte file = %#x, %v; want ErrConfigSpace", v, err)
	}
}

func TestOpenSysfsErrors(t *testing.T) {
	root := fakeSysfs(t, "0000:01:00.0", nil)
	_, err := doe.OpenSysfs(root, "0000:01:00.1")
	if !errors.Is(err, doe.ErrConfigSpace) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing function: err = %v, want ErrConfigSpace and fs.ErrNotExist", err)
	}
	if _, err := doe.OpenSysfs(filepath.Join(root, "nope"), "0000:01:00.0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: err = %v", err)
	}
	for _, bdf := range []string{"../0000:01:00.0", "0000:01:00.0/..", "0000:01:20.0", ""} {
		if cs, err := doe.OpenSysfs(root, bdf); err == nil {
			cs.Close()
			t.Errorf("OpenSysfs(%q) succeeded", bdf)
		}
	}
	// A read-only config file cannot be opened read-write.
	if os.Geteuid() != 0 {
		ro := fakeSysfs(t, "0000:03:00.0", nil)
		if err := os.Chmod(filepath.Join(ro, "0000:03:00.0", "config"), 0o400); err != nil {
			t.Fatal(err)
		}
		if _, err := doe.OpenSysfs(ro, "0000:03:00.0"); !errors.Is(err, doe.ErrConfigSpace) {
			t.Errorf("read-only config: err = %v", err)
		}
	}
	// After Close, accesses fail rather than panic.
	cs, err := doe.OpenSysfs(root, "0000:01:00.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ReadConfig32(0); !errors.Is(err, doe.ErrConfigSpace) {
		t.Errorf("read after Close: %v", err)
	}
	if err := cs.WriteConfig32(0, 1); !errors.Is(err, doe.ErrConfigSpace) {
		t.Errorf("write after Close: %v", err)
	}
}
