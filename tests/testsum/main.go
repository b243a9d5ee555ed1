// Command testsum reads `go test -json` events on standard input and
// prints what a person needs from a whole run: each package's result
// line, the full output of every failed test, then every skipped test
// with its reason (a test that needs an external peer skips with one),
// and last a count line, "N passed, N failed, N skipped".
//
// Lines that are not JSON events (a build failure printed by the go
// command) are passed through as they are.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one test2json event (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type testKey struct{ pkg, test string }

type summary struct {
	output  map[testKey][]string
	skipped []testKey
	failed  []testKey
	passed  int
	pkgLine []string
}

func main() {
	s, err := read(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsum: %v\n", err)
		os.Exit(2)
	}
	s.print(os.Stdout)
	if len(s.failed) > 0 {
		os.Exit(1)
	}
}

func read(r io.Reader, passthrough io.Writer) (*summary, error) {
	s := &summary{output: map[testKey][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintln(passthrough, string(line))
			continue
		}
		k := testKey{e.Package, e.Test}
		switch {
		case e.Action == "output" && e.Test == "":
			// The package's own lines: its result, or a build failure.
			s.pkgLine = append(s.pkgLine, strings.TrimRight(e.Output, "\n"))
		case e.Action == "output":
			s.output[k] = append(s.output[k], strings.TrimRight(e.Output, "\n"))
		case e.Action == "pass" && e.Test != "":
			s.passed++
			delete(s.output, k)
		case e.Action == "skip" && e.Test != "":
			s.skipped = append(s.skipped, k)
		case e.Action == "fail" && e.Test != "":
			s.failed = append(s.failed, k)
		}
	}
	return s, sc.Err()
}

// reason is the skip message: the last indented line the test printed
// before its "--- SKIP" line.
func (s *summary) reason(k testKey) string {
	out := s.output[k]
	for i := len(out) - 1; i >= 0; i-- {
		l := strings.TrimSpace(out[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return l
	}
	return "(no reason given)"
}

func (s *summary) print(w io.Writer) {
	for _, l := range s.pkgLine {
		if l == "PASS" || l == "FAIL" {
			continue
		}
		fmt.Fprintln(w, l)
	}
	for _, k := range s.failed {
		fmt.Fprintf(w, "\n--- FAIL: %s (%s)\n", k.test, k.pkg)
		for _, l := range s.output[k] {
			fmt.Fprintln(w, l)
		}
	}
	if len(s.skipped) > 0 {
		// Subtests of a skipped test say the same thing: list the top
		// ones, sorted.
		sort.Slice(s.skipped, func(i, j int) bool {
			a, b := s.skipped[i], s.skipped[j]
			return a.pkg < b.pkg || a.pkg == b.pkg && a.test < b.test
		})
		fmt.Fprintf(w, "\nskipped tests (%d):\n", len(s.skipped))
		for _, k := range s.skipped {
			fmt.Fprintf(w, "  %s %s: %s\n", strings.TrimPrefix(k.pkg, "github.com/devattest/devattest/"), k.test, s.reason(k))
		}
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", s.passed, len(s.failed), len(s.skipped))
}
