package doe_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
)

// Seeds: testdata/fuzz/FuzzPcapReader (a libspdm capture's first records,
// ours, hostile headers) and FuzzPcapRoundTrip.

// FuzzPcapReader: a hostile file never panics the reader, every error is
// ErrPcap, and no record is longer than the bound.
func FuzzPcapReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := doe.NewPcapReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, doe.ErrPcap) {
				t.Fatalf("header error %v is not ErrPcap", err)
			}
			return
		}
		for {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, doe.ErrPcap) {
					t.Fatalf("record error %v is not ErrPcap", err)
				}
				return
			}
			if len(rec.Data) > doe.MaxPcapRecord || rec.OrigLen < len(rec.Data) {
				t.Fatalf("record of %d bytes (orig %d)", len(rec.Data), rec.OrigLen)
			}
			if o, err := doe.Decode(rec.Data); err == nil {
				doe.DecodeAnnotation(o)
			}
		}
	})
}

// FuzzPcapRoundTrip: whatever the writer is given reads back the same,
// cut at the snap length, with the time to the microsecond.
func FuzzPcapRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b []byte, sec uint32, usec uint32) {
		var buf bytes.Buffer
		w, err := doe.NewPcapWriter(&buf, doe.LinkTypePCIDOE, doe.PcapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ts := time.Unix(int64(sec), int64(usec%1e6)*1000)
		w.Write(ts, a)
		w.Write(ts, b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := doe.NewPcapReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range [][]byte{a, b} {
			rec, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Data, want[:min(len(want), doe.PcapSnapLen)]) || rec.OrigLen != len(want) || !rec.Time.Equal(ts) {
				t.Fatalf("record differs: %d/%d bytes at %v", len(rec.Data), rec.OrigLen, rec.Time)
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after the last record: %v", err)
		}
	})
}
