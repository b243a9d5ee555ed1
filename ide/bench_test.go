package ide_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// BenchmarkIDEKeyingVsSession measures, in one run, establishing a
// KEY_EXCHANGE session (KEY_EXCHANGE and FINISH, over a connection whose
// version, algorithms and certificate chain are already known) and, inside
// that session, programming and starting one IDE key set: six KEY_PROG and
// six K_SET_GO. It reports keying/session, the cost of keying a stream
// relative to the session that carries it. Requester and responder are in
// process, SPDM 1.2 with ECDSA P-384, SHA-384, ECDHE P-384 and AES-256-GCM.
func BenchmarkIDEKeyingVsSession(b *testing.B) {
	rootDER, ids, err := devsim.NewIdentity()
	if err != nil {
		b.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		b.Fatal(err)
	}
	dev, err := ide.NewResponder(ide.DefaultResponderConfig())
	if err != nil {
		b.Fatal(err)
	}
	rsp, err := secchan.NewResponder(secchan.ResponderConfig{
		Caps:          secchan.CapCert | secchan.CapKeyEx | secchan.CapEncrypt | secchan.CapMAC,
		Identities:    ids,
		VendorHandler: dev.Handle,
	})
	if err != nil {
		b.Fatal(err)
	}
	mb := doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		if req.Protocol() == doe.ProtocolSecuredCMA {
			return rsp.HandleSecuredDOE(ctx, req)
		}
		return rsp.HandleDOE(ctx, req)
	})
	cfg := secchan.DefaultRequesterConfig()
	cfg.Versions = []secchan.Version{secchan.V12}
	cfg.BaseAsym, cfg.BaseHash = secchan.AsymECDSAP384, secchan.HashSHA384
	cfg.DHE, cfg.AEAD = secchan.DHESECP384R1, secchan.AEADAES256GCM
	cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{root}}
	ctx := context.Background()
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: mb}, cfg)
	if err := q.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := q.GetDigests(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := q.GetCertificate(ctx, 0); err != nil {
		b.Fatal(err)
	}
	v := q.Negotiated().Version

	const port, stream = 1, 5
	var session, keying time.Duration
	for b.Loop() {
		dev.Reset() // a fresh device: key set 0 is not in use
		t0 := time.Now()
		ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		r, err := ide.NewRequester(ss, v, &ide.SimRootPort{})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.ProgramKeySet(ctx, port, stream, ide.K0); err != nil {
			b.Fatal(err)
		}
		if err := r.Go(ctx, port, stream, ide.K0); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		session += t1.Sub(t0)
		keying += t2.Sub(t1)
		if err := ss.End(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if session > 0 {
		b.ReportMetric(float64(keying)/float64(session), "keying/session")
	}
}
