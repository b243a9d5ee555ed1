package tests

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// TestLibspdmNegotiationFailures is issue 16's finding 4 against libspdm:
// when nothing is in common, our requester's error names what it offered
// (libspdm's ERROR(InvalidRequest) carries nothing), and devsim's log
// names both sides' offers when libspdm's requester finds nothing in
// common with it.
func TestLibspdmNegotiationFailures(t *testing.T) {
	bin := libspdmBin(t)
	for _, c := range []struct {
		name string
		rsp  []string
		cfg  func(*secchan.RequesterConfig)
		want []string
	}{
		{"FFDHE-only responder", []string{"--dhe", "FFDHE_2048"}, func(*secchan.RequesterConfig) {},
			[]string{"ERROR InvalidRequest", "we offered", "DHE SECP_256_R1,SECP_384_R1,SECP_521_R1"}},
		{"RSAPSS-only responder", []string{"--asym", "RSAPSS_3072", "--hash", "SHA_384"}, func(c *secchan.RequesterConfig) { c.BaseAsym = secchan.AsymECDSAP384 },
			[]string{"ERROR InvalidRequest", "we offered BaseAsym ECDSA_P384"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, addr := startResponderEmu(t, bin, append([]string{"--mut_auth", "NO", "--basic_mut_auth", "NO"}, c.rsp...)...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cfg := trusting(libspdmRoot(t, bin, "ecp384"))
			c.cfg(&cfg)
			q := secchan.NewRequester(&secchan.DOETransport{Mailbox: dialT(t, addr)}, cfg)
			err := q.Connect(ctx)
			if err == nil || !errors.Is(err, secchan.ErrNegotiation) {
				t.Fatalf("Connect: %v, want a negotiation error", err)
			}
			t.Logf("our requester: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("RSAPSS-only requester against devsim", func(t *testing.T) {
		id := libspdmIdentity(t, filepath.Join(bin, "ecp384"), "bundle_responder.certchain.der", "end_responder.key")
		vf, rsp, err := devsim.NewSPDMVF([]secchan.Identity{id}, devsim.NewMeasurements())
		if err != nil {
			t.Fatal(err)
		}
		var logBuf syncBuffer
		rsp.SetLogger(slog.New(slog.NewTextHandler(&logBuf, nil)))
		addr := serveLoopback(t, &doe.Server{Mailbox: vf.Driver()})
		out, _ := execRequesterEmuRaw(bin, addr, []string{"--ver", "1.2", "--asym", "RSAPSS_3072", "--hash", "SHA_384", "--exe_conn", "DIGEST"})
		log := logBuf.String()
		t.Logf("devsim: %s", strings.TrimSpace(log))
		for _, w := range []string{"no common algorithm", "requester_offered=\"BaseAsym RSAPSS_3072", "responder_supports=\"BaseAsym ECDSA_P384"} {
			if !strings.Contains(log, w) {
				t.Errorf("devsim's log does not say %q:\n%s\nrequester:\n%s", w, log, tail(out, 10))
			}
		}
	})
}
