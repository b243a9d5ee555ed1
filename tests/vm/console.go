// Package vm is what the QEMU test (vm_test.go) and the program it runs
// as the VM's init (./vminit) agree on: the lines vminit prints on the
// serial console and how the test reads them back.
package vm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Console markers. Each starts a line of its own; anything else on the
// console (firmware, kernel, the shim's warnings) is ignored.
const (
	// ResultMarker is followed by one scenario's Result as JSON.
	ResultMarker = "DEVATTEST-VM "
	// KernelMarker is followed by one kernel log line about CXL or DOE.
	KernelMarker = "DEVATTEST-VM-KLOG "
	// EndMarker says vminit finished and is powering the VM off.
	EndMarker = "DEVATTEST-VM-END"
)

// Result is one scenario's outcome.
type Result struct {
	Scenario int    `json:"scenario"`
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Millis   int64  `json:"ms"`
	// Steps say what was checked, in order.
	Steps []string `json:"steps"`
	Error string   `json:"error,omitempty"`
	// Facts are values the host test checks again.
	Facts map[string]any `json:"facts,omitempty"`
}

// Step records one check that passed.
func (r *Result) Step(format string, args ...any) {
	r.Steps = append(r.Steps, fmt.Sprintf(format, args...))
}

// Fact records a value for the host to check.
func (r *Result) Fact(key string, v any) {
	if r.Facts == nil {
		r.Facts = make(map[string]any)
	}
	r.Facts[key] = v
}

// Console is what ParseConsole found.
type Console struct {
	Results []Result
	Kernel  []string // the kernel's CXL and DOE lines
	End     bool     // the end marker came
}

// ParseConsole reads the serial console. A result line that does not
// parse is an error.
func ParseConsole(out []byte) (Console, error) {
	var c Console
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == EndMarker {
			c.End = true
			continue
		}
		if k, ok := strings.CutPrefix(line, KernelMarker); ok {
			c.Kernel = append(c.Kernel, k)
			continue
		}
		js, ok := strings.CutPrefix(line, ResultMarker)
		if !ok {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			return c, fmt.Errorf("result line %q: %w", line, err)
		}
		c.Results = append(c.Results, r)
	}
	return c, sc.Err()
}
