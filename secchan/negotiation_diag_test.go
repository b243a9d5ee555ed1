package secchan_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/secchan"
)

// TestNegotiationFailuresNameOffers is issue 16's finding 4: a
// negotiation that fails names what each side offered, in the requester's
// error and in the responder's log.
func TestNegotiationFailuresNameOffers(t *testing.T) {
	ctx := context.Background()
	sessionCaps := devsim.SPDMVFCaps
	psks := map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)}
	for _, c := range []struct {
		name    string
		mutate  func(*secchan.RequesterConfig)
		session bool
		want    []string // in the requester's error
		log     []string // in the responder's log
		is      error
	}{
		{
			name:   "no common signature algorithm",
			mutate: func(c *secchan.RequesterConfig) { c.BaseAsym = secchan.AsymRSAPSS3072 },
			want:   []string{"ERROR InvalidRequest", "we offered BaseAsym RSAPSS_3072"},
			log:    []string{"requester_offered=\"BaseAsym RSAPSS_3072", "responder_supports=\"BaseAsym ECDSA_P256,ECDSA_P384"},
			is:     secchan.ErrCodeInvalidRequest,
		},
		{
			name: "no common version",
			mutate: func(c *secchan.RequesterConfig) {
				c.Versions = []secchan.Version{secchan.V13}
				c.MinVersion = secchan.V13
			},
			want: []string{"responder offers [1.0 1.1 1.2]", "we accept [1.3]"},
		},
		{
			name:    "FFDHE only",
			mutate:  func(c *secchan.RequesterConfig) { c.DHE = secchan.DHEFFDHE2048 | secchan.DHEFFDHE3072 },
			session: true,
			want:    []string{"no DHE group (we offered FFDHE_2048,FFDHE_3072)"},
			log:     []string{"field=\"DHE FFDHE_2048,FFDHE_3072\"", "DHE SECP_256_R1,SECP_384_R1,SECP_521_R1"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			rc := secchan.ResponderConfig{Caps: sessionCaps, PSKs: psks, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}
			if c.name == "no common version" {
				rc.Versions = []secchan.Version{secchan.V10, secchan.V11, secchan.V12}
			}
			f := newFixture(t, rc)
			c.mutate(&f.cfg)
			q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
			err := q.Connect(ctx)
			if c.session && err == nil {
				_, err = q.KeyExchange(ctx, secchan.SessionOptions{})
			}
			if err == nil || !errors.Is(err, secchan.ErrNegotiation) {
				t.Fatalf("err = %v, want a negotiation error", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("err = %v does not match %v", err, c.is)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("requester error %q does not say %q", err, w)
				}
			}
			for _, w := range c.log {
				if !strings.Contains(logBuf.String(), w) {
					t.Errorf("responder log %q does not say %q", logBuf.String(), w)
				}
			}
		})
	}
}
