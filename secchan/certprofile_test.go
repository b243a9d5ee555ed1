package secchan

import (
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestResponderLeafEKU validates libspdm's sample responder certificates
// (ECP256, under its sample CA and intermediate): with no SPDM purpose,
// with the responder purpose, with both, and with the requester purpose
// alone, which is refused.
func TestResponderLeafEKU(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "libspdm-eku", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	caDER, interDER := read("ca.cert.der"), read("inter.cert.der")
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	v := &AnchorValidator{Roots: []*x509.Certificate{ca}, Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }}
	for _, c := range []struct {
		leaf string
		ok   bool
	}{
		{"end_responder.cert.der", true},
		{"end_responder_with_spdm_rsp_eku.cert.der", true},
		{"end_responder_with_spdm_req_rsp_eku.cert.der", true},
		{"end_responder_with_spdm_req_eku.cert.der", false},
	} {
		t.Run(c.leaf, func(t *testing.T) {
			raw, err := BuildCertChain(crypto.SHA256, caDER, caDER, interDER, read(c.leaf))
			if err != nil {
				t.Fatal(err)
			}
			chain, err := ParseCertChain(raw, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			err = v.ValidateChain(chain, crypto.SHA256)
			if c.ok && err != nil {
				t.Fatalf("ValidateChain = %v, want success", err)
			}
			if !c.ok && (!errors.Is(err, ErrCertChain) || !strings.Contains(err.Error(), "requester authentication")) {
				t.Fatalf("ValidateChain = %v, want ErrCertChain naming the requester purpose", err)
			}
		})
	}
}
