package devsim

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// TestIDEKMOverDevsim: a KEY_EXCHANGE session with the emulated VF through
// its DOE registers, then the whole IDE_KM check with the link.
func TestIDEKMOverDevsim(t *testing.T) {
	f, idekm, q, ctx := authenticatedIDEVF(t)
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := idekm.Port(1)
	steps, err := ide.RunCheck(ctx, ss, &ide.SimRootPort{}, ide.CheckOptions{Version: q.Negotiated().Version, Port: 1, Device: dev})
	for _, s := range steps {
		t.Log(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.End(ctx); err != nil {
		t.Fatal(err)
	}
	// Program K0 again, then reset the function: the device forgets it.
	ss, err = q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ide.NewRequester(ss, q.Negotiated().Version, &ide.SimRootPort{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ProgramKeySet(ctx, 1, 0, ide.K0); err != nil {
		t.Fatal(err)
	}
	if _, ok := dev.LinkKey(0, ide.K0, ide.RX, ide.PR); !ok {
		t.Fatal("programmed key not visible to the link")
	}
	f.Reset()
	if _, ok := dev.LinkKey(0, ide.K0, ide.RX, ide.PR); ok {
		t.Fatal("a function reset left the IDE key in the device")
	}
}

// TestNewSPDMVFServesIDEKM: the plain constructor (used by `devattest
// devsim`) answers IDE_KM too; without a device end of the link the link
// steps are skipped.
func TestNewSPDMVFServesIDEKM(t *testing.T) {
	_, ids, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := NewSPDMVF(ids, NewMeasurements())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: f.Driver()}, secchan.DefaultRequesterConfig())
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ss, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(SamplePSK), PSKHint: []byte(SamplePSKHint)})
	if err != nil {
		t.Fatal(err)
	}
	steps, err := ide.RunCheck(ctx, ss, &ide.SimRootPort{}, ide.CheckOptions{Version: q.Negotiated().Version})
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, s := range steps {
		if s.Skipped {
			skipped++
		}
	}
	if skipped != 3 {
		t.Fatalf("%d steps skipped, want the 3 link steps: %v", skipped, steps)
	}
}

// TestSimulatedLinkOverDOE: the VF lists the simulated IDE link in
// discovery, and RunCheck's link steps run through the VF's own DOE
// registers, protected TLPs only, the device's keys staying inside it.
func TestSimulatedLinkOverDOE(t *testing.T) {
	_, ids, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := NewSPDMVF(ids, NewMeasurements())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	protos, err := doe.Discover(ctx, f.Driver(), doe.DiscoveryVersion(DOEVersion))
	if err != nil {
		t.Fatal(err)
	}
	if want := []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA, ide.LinkProtocol}; !slices.Equal(protos, want) {
		t.Fatalf("discovery %v, want %v", protos, want)
	}
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: f.Driver()}, secchan.DefaultRequesterConfig())
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ss, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(SamplePSK), PSKHint: []byte(SamplePSKHint)})
	if err != nil {
		t.Fatal(err)
	}
	link := ide.NewRemoteLink(f.Driver())
	if err := link.Hello(ctx, 0); err != nil {
		t.Fatal(err)
	}
	steps, err := ide.RunCheck(ctx, ss, &ide.SimRootPort{}, ide.CheckOptions{Version: q.Negotiated().Version, Link: link})
	for _, s := range steps {
		t.Log(s)
		if s.Skipped || s.Err != nil {
			t.Errorf("step %s", s)
		}
	}
	if err != nil || len(steps) != 9 {
		t.Fatalf("%d steps, %v", len(steps), err)
	}
	// Program and GO K0 again, then reset the function: the device end
	// has no key any more, and says so.
	r, err := ide.NewRequester(ss, q.Negotiated().Version, &ide.SimRootPort{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ProgramKeySet(ctx, 0, 0, ide.K0); err != nil {
		t.Fatal(err)
	}
	if err := r.Go(ctx, 0, 0, ide.K0); err != nil {
		t.Fatal(err)
	}
	f.Reset()
	tlp := ide.TLP{Header: []byte{0x40, 0, 0, 1}, Data: make([]byte, ide.MACSize+4)}
	if _, err := link.Exchange(ctx, 0, tlp); !errors.Is(err, ide.ErrNoKey) {
		t.Fatalf("after a function reset: %v", err)
	}
	if st := f.Stats(); st.Errors != 0 {
		t.Errorf("mailbox stats %+v: want no errors", st)
	}
}

// TestIDERekeyAfterAbortedSession: a session puts K0 in use and ends
// without K_SET_STOP (a guest that lost its session); the next session's
// keying must still work, by stopping the stale key set first.
func TestIDERekeyAfterAbortedSession(t *testing.T) {
	_, idekm, q, ctx := authenticatedIDEVF(t)
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ide.NewRequester(ss, q.Negotiated().Version, &ide.SimRootPort{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ProgramKeySet(ctx, 1, 0, ide.K0); err != nil {
		t.Fatal(err)
	}
	if err := r.Go(ctx, 1, 0, ide.K0); err != nil {
		t.Fatal(err)
	}
	if err := ss.End(ctx); err != nil { // no K_SET_STOP
		t.Fatal(err)
	}
	ss2, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := idekm.Port(1)
	steps, err := ide.RunCheck(ctx, ss2, &ide.SimRootPort{}, ide.CheckOptions{Version: q.Negotiated().Version, Port: 1, Device: dev})
	if err != nil {
		for _, s := range steps {
			t.Log(s)
		}
		t.Fatalf("re-keying after an aborted session: %v", err)
	}
}

// authenticatedIDEVF makes a default IDE VF and a requester that has
// authenticated it through its DOE registers (VCA, digests, the chain).
func authenticatedIDEVF(t *testing.T) (*Function, *ide.Responder, *secchan.Requester, context.Context) {
	t.Helper()
	f, rootDER, idekm, err := NewDefaultIDESPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cfg := secchan.DefaultRequesterConfig()
	cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{root}}
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: f.Driver()}, cfg)
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetCertificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	return f, idekm, q, ctx
}
