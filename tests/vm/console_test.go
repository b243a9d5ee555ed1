package vm_test

import (
	"bytes"
	"testing"

	"github.com/devattest/devattest/tests/vm"
)

// FuzzParseConsole: whatever the console carries, ParseConsole does not
// panic, and every result or kernel line it returns came from a line of
// the input that starts with its marker.
func FuzzParseConsole(f *testing.F) {
	f.Fuzz(func(t *testing.T, out []byte) {
		c, err := vm.ParseConsole(out)
		if err != nil {
			return
		}
		markers := bytes.Count(out, []byte(vm.ResultMarker)) + bytes.Count(out, []byte(vm.KernelMarker))
		if len(c.Results)+len(c.Kernel) > markers {
			t.Fatalf("%d results and %d kernel lines from %d markers", len(c.Results), len(c.Kernel), markers)
		}
		if c.End && !bytes.Contains(out, []byte(vm.EndMarker)) {
			t.Fatal("end seen without the end marker")
		}
	})
}
