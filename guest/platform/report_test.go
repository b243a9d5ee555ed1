package platform

import (
	"context"
	"errors"
	"strings"
	"testing"

	vplatform "github.com/devattest/devattest/policy/platform"
)

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
	if err := vplatform.VerifyReport(&got, vplatform.TrustAnchors{SNP: a.Roots()}, ud); err != nil {
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
