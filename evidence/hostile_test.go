package evidence

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

func repeatTo(prefix, unit, suffix string, size int) string {
	n := (size - len(prefix) - len(suffix)) / len(unit)
	return prefix + strings.Repeat(unit, n) + suffix
}

// TestHostileReportsBounded: a report author's 16 MiB inputs are refused
// before they cost memory or time: the decoder checks counts, depth and
// keys while it scans, before encoding/json allocates anything for them.
// Finding 10 of issue 14: "devices":[{},{},…] took 15 s and 4.7 GB.
func TestHostileReportsBounded(t *testing.T) {
	const size = MaxReportSize - 4096
	cases := map[string][]byte{
		"devices flood":   withBody(t, repeatTo(`{"nonce":"00","devices":[`, `{},`, `{}]}`, size)),
		"blocks flood":    withBody(t, repeatTo(`{"nonce":"00","devices":[{"measurements":{"blocks":[`, `{},`, `{}]}}]}`, size)),
		"events flood":    withBody(t, repeatTo(`{"nonce":"00","devices":[{"events":[`, `{},`, `{}]}]}`, size)),
		"boot flood":      withBody(t, repeatTo(`{"nonce":"00","boot":{"devices":[`, `{},`, `{}]}}`, size)),
		"protocols flood": withBody(t, repeatTo(`{"nonce":"00","devices":[{"protocols":[`, `"a",`, `"a"]}]}`, size*2/3)),
		"deep nesting":    withBody(t, repeatTo(`{"x":`, `{"a":`, ``, size*5/7)),
		"many keys":       withBody(t, repeatTo(`{`, `"k":1,`, `"k":1}`, size*6/8)),
		"container array": []byte(repeatTo(`{"version":"devattest-report/2","body":[`, `0,`, `0]}`, size)),
		"huge hex field":  withBody(t, repeatTo(`{"nonce":"`, `00`, `","created":"2026-01-01T00:00:00Z","platform":"snp","boot_binding":"none","devices":[]}`, size)),
		"padding":         append(bytes.Repeat([]byte(" "), MaxReportSize), '{', '}'),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := Unmarshal(in)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("a hostile report was accepted")
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes refused in %v, %d KiB allocated: %v", len(in), took, alloc>>10, err)
			// All the memory it allocated, peak or not, stays under 64 MiB.
			if alloc > 64<<20 {
				t.Errorf("allocated %d MiB (want under 64 MiB)", alloc>>20)
			}
			// The figure without the race detector is in the closing
			// note; this bound is loose so a loaded machine passes.
			if took > 10*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestDecodeCapsWhileReading: Decode stops reading at the cap, so an
// endless stream (verify /dev/zero) is refused, not read whole.
func TestDecodeCapsWhileReading(t *testing.T) {
	var endless zeros
	_, err := Decode(&endless)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode(endless) = %v, want ErrTooLarge", err)
	}
	if endless.n > MaxReportSize+1+64<<10 {
		t.Fatalf("read %d bytes of an endless stream", endless.n)
	}
}

type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.n += len(p)
	return len(p), nil
}

var _ io.Reader = (*zeros)(nil)
