package platform

import (
	"bytes"
	"errors"
	"testing"
)

func sampleReport() *Report {
	return &Report{
		Kind:      KindTPM,
		Raw:       []byte{1, 2, 3},
		Signature: []byte{4},
		AKPublic:  []byte{5, 6},
		PCRs:      []PCRValue{{Index: 7, Digest: bytes.Repeat([]byte{7}, 32)}},
		EventLog:  []Event{{Register: 15, Digest: []byte{8}, Description: "dev"}},
	}
}

func TestReportRoundTrip(t *testing.T) {
	b, err := sampleReport().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	b2, err := r.MarshalBinary()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("round trip differs: %v", err)
	}
	// No strict prefix parses, and trailing bytes are rejected.
	for i := range len(b) {
		if err := new(Report).UnmarshalBinary(b[:i]); !errors.Is(err, ErrMalformedReport) {
			t.Fatalf("prefix of %d bytes: err = %v", i, err)
		}
	}
	if err := new(Report).UnmarshalBinary(append(b, 0)); !errors.Is(err, ErrMalformedReport) {
		t.Fatalf("trailing byte: err = %v", err)
	}
}

func FuzzReportUnmarshal(f *testing.F) {
	b, _ := sampleReport().MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Report
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("accepted non-canonical encoding")
		}
	})
}
