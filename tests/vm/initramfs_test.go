package vm_test

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"testing"
)

// cpio "newc" archive writer (the format the kernel unpacks as an
// initramfs: Documentation/driver-api/early-userspace/buffer-format.rst).
// Each entry: a 110-byte ASCII header "070701" and 13 fields of 8 hex
// digits, the NUL-terminated name, padding to 4 bytes, the data, padding
// to 4 bytes. The archive ends with the entry "TRAILER!!!".

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
)

type cpioEntry struct {
	name         string
	mode         uint32 // type bits | permissions
	data         []byte
	major, minor uint32 // of a device node
}

func writeCPIO(w io.Writer, entries []cpioEntry) error {
	var buf bytes.Buffer
	pad := func() {
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
	}
	write := func(ino int, e cpioEntry) {
		nlink := 1
		if e.mode&0o170000 == modeDir {
			nlink = 2
		}
		fmt.Fprintf(&buf, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.major, e.minor, len(e.name)+1, 0)
		buf.WriteString(e.name)
		buf.WriteByte(0)
		pad()
		buf.Write(e.data)
		pad()
	}
	for i, e := range entries {
		write(i+1, e)
	}
	write(len(entries)+1, cpioEntry{name: "TRAILER!!!"})
	_, err := w.Write(buf.Bytes())
	return err
}

// TestCPIOFormat checks the writer against the newc layout by reading the
// header fields back.
func TestCPIOFormat(t *testing.T) {
	var b bytes.Buffer
	if err := writeCPIO(&b, []cpioEntry{
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeChar | 0o600, major: 5, minor: 1},
		{name: "init", mode: modeFile | 0o755, data: []byte("hello")},
	}); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	field := func(hdr []byte, i int) uint64 {
		v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("field %d of %q: %v", i, hdr[:110], err)
		}
		return v
	}
	var names []string
	for off := 0; off < len(raw); {
		hdr := raw[off:]
		if string(hdr[:6]) != "070701" {
			t.Fatalf("entry at %d starts with %q", off, hdr[:6])
		}
		size, namesize := int(field(hdr, 6)), int(field(hdr, 11))
		name := string(hdr[110 : 110+namesize-1])
		names = append(names, name)
		if name == "dev/console" && (field(hdr, 1) != modeChar|0o600 || field(hdr, 9) != 5 || field(hdr, 10) != 1) {
			t.Errorf("dev/console: mode %o, rdev %d:%d", field(hdr, 1), field(hdr, 9), field(hdr, 10))
		}
		dataOff := (110 + namesize + 3) &^ 3
		if name == "init" && string(hdr[dataOff:dataOff+size]) != "hello" {
			t.Errorf("init holds %q", hdr[dataOff:dataOff+size])
		}
		off += (dataOff + size + 3) &^ 3
	}
	if fmt.Sprint(names) != "[dev dev/console init TRAILER!!!]" {
		t.Fatalf("entries %v", names)
	}
	if len(raw)%4 != 0 {
		t.Fatalf("archive of %d bytes is not 4-byte aligned", len(raw))
	}
}
