package capture_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/devattest/devattest/cmd/internal/capture"
)

// Seeds: testdata/fuzz/FuzzDecode (pieces of corpus captures) and
// testdata/fuzz/FuzzParseKeyLog.

// FuzzDecode: a hostile capture never panics the decoder, with or
// without keys, and every record it reads is reported.
func FuzzDecode(f *testing.F) {
	keys, _ := capture.ParseKeyLog(strings.NewReader("SESSION kind=psk secret=5465737450736b4461746100\nSESSION kind=dhe secret=01\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dm, err := capture.Decode(bytes.NewReader(data), capture.Options{KeyLog: keys, MaxRecords: 1000})
		if err == nil && dm == nil {
			t.Fatal("no dump and no error")
		}
		if dm != nil {
			capture.WriteText(new(bytes.Buffer), dm)
		}
	})
}

// FuzzParseKeyLog: never panics; what it accepts has a secret.
func FuzzParseKeyLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := capture.ParseKeyLog(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range es {
			if len(e.Secret) == 0 {
				t.Fatal("entry without a secret")
			}
		}
	})
}
