package platform

import (
	"bytes"
	"context"
	"errors"
	"strings"
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

// A fake SNP report survives encoding and still verifies.
func TestFakeSNPReportEncodedVerifies(t *testing.T) {
	a, err := NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	ud := userData(42)
	r, err := a.Report(context.Background(), ud)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if err := VerifyReport(&got, TrustAnchors{SNP: a.Roots()}, ud); err != nil {
		t.Fatal(err)
	}
}

func TestAutoNamesWhatItLookedFor(t *testing.T) {
	for _, p := range []string{configfsTSMReport, sevGuestDevice, tdxGuestDevice, "/dev/tpmrm0"} {
		if exists(p) {
			t.Skipf("%s exists: auto may find a real platform", p)
		}
	}
	_, err := New("auto", Options{})
	if !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("auto: err = %v, want ErrNotAvailable", err)
	}
	for _, want := range []string{configfsTSMReport, sevGuestDevice, tdxGuestDevice, "/dev/tpmrm0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("auto error %q does not name %s", err, want)
		}
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
