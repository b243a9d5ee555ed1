package secchan_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/secchan"
)

// fixture is a responder with a fresh devsim identity and a requester
// configuration that trusts it.
type fixture struct {
	rsp  *secchan.Responder
	root *x509.Certificate
	cfg  secchan.RequesterConfig
}

var (
	identityOnce sync.Once
	identityRoot []byte
	identityIDs  []secchan.Identity
	identityErr  error
)

func newFixture(t testing.TB, rc secchan.ResponderConfig) *fixture {
	t.Helper()
	identityOnce.Do(func() { identityRoot, identityIDs, identityErr = devsim.NewIdentity() })
	if identityErr != nil {
		t.Fatal(identityErr)
	}
	rc.Identities = identityIDs
	if rc.Measurements == nil {
		rc.Measurements = devsim.NewMeasurements()
	}
	rsp, err := secchan.NewResponder(rc)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(identityRoot)
	if err != nil {
		t.Fatal(err)
	}
	cfg := secchan.DefaultRequesterConfig()
	cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{root}}
	return &fixture{rsp: rsp, root: root, cfg: cfg}
}

// hook sees every request and may replace the responder's answer.
type hook func(n int, req, resp []byte) []byte

// tamperTransport passes requests to the responder and lets a hook
// rewrite responses, numbering requests from 1.
type tamperTransport struct {
	rsp  *secchan.Responder
	hook hook
	n    int
}

func (tt *tamperTransport) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	tt.n++
	resp := tt.rsp.Respond(ctx, req)
	if tt.hook != nil {
		resp = tt.hook(tt.n, req, resp)
	}
	return resp, nil
}

// flow runs the whole authentication flow and returns the first error.
func flow(ctx context.Context, q *secchan.Requester) error {
	if err := q.Connect(ctx); err != nil {
		return err
	}
	if _, err := q.GetDigests(ctx); err != nil {
		return err
	}
	if _, err := q.GetCertificate(ctx, 0); err != nil {
		return err
	}
	if _, err := q.Challenge(ctx, 0, secchan.SummaryAll); err != nil {
		return err
	}
	_, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true})
	return err
}

func TestRequesterFlowAgainstResponder(t *testing.T) {
	for _, v := range []secchan.Version{secchan.V10, secchan.V11, secchan.V12, secchan.V13} {
		t.Run(v.String(), func(t *testing.T) {
			f := newFixture(t, secchan.ResponderConfig{})
			f.cfg.Versions = []secchan.Version{v}
			q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
			if err := flow(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			if q.Negotiated().Version != v {
				t.Fatalf("negotiated %v", q.Negotiated().Version)
			}
		})
	}
}

// TestRequesterChunkedResponses: with a small DataTransferSize on our side
// the responder must chunk large responses, and the requester reassembles
// them (1.2+).
func TestRequesterChunkedResponses(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{})
	f.cfg.DataTransferSize = secchan.MinDataTransferSize
	chunks := 0
	tt := &tamperTransport{rsp: f.rsp, hook: func(_ int, req, resp []byte) []byte {
		if req[1] == secchan.CodeChunkGet {
			chunks++
		}
		return resp
	}}
	q := secchan.NewRequester(tt, f.cfg)
	if err := flow(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if chunks == 0 {
		t.Fatal("no CHUNK_GET was needed: the test does not exercise chunking")
	}
}

// TestRequesterResponseNotReady: the requester waits and asks again with
// RESPOND_IF_READY, and the result verifies.
func TestRequesterResponseNotReady(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{})
	var pending []byte
	asked := false
	tt := &tamperTransport{rsp: f.rsp}
	tt.hook = func(_ int, req, resp []byte) []byte {
		switch {
		case req[1] == secchan.CodeChallenge && pending == nil:
			pending = resp // the responder's real answer, held back
			e := secchan.ErrorResponse{Version: secchan.Version(req[0]), Code: secchan.ErrCodeResponseNotReady, Ext: []byte{10, secchan.CodeChallenge, 7, 2}}
			return e.Marshal()
		case req[1] == secchan.CodeRespondIfReady:
			if req[2] != secchan.CodeChallenge || req[3] != 7 {
				t.Errorf("RESPOND_IF_READY %x does not name CHALLENGE and token 7", req)
			}
			asked = true
			return pending
		}
		return resp
	}
	// RESPOND_IF_READY reaches the responder too, which does not know it;
	// the hook answers in its place.
	if err := flow(context.Background(), secchan.NewRequester(tt, f.cfg)); err != nil {
		t.Fatal(err)
	}
	if !asked {
		t.Fatal("the requester never sent RESPOND_IF_READY")
	}
}

func TestRequesterBusyRetries(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{})
	busy := 2
	tt := &tamperTransport{rsp: f.rsp}
	tt.hook = func(_ int, req, resp []byte) []byte {
		if req[1] == secchan.CodeGetDigests && busy > 0 {
			busy--
			return (&secchan.ErrorResponse{Version: secchan.Version(req[0]), Code: secchan.ErrCodeBusy}).Marshal()
		}
		return resp
	}
	if err := flow(context.Background(), secchan.NewRequester(tt, f.cfg)); err != nil {
		t.Fatal(err)
	}
	// Busy forever gives up with the Busy error.
	f2 := newFixture(t, secchan.ResponderConfig{})
	tt2 := &tamperTransport{rsp: f2.rsp, hook: func(_ int, req, resp []byte) []byte {
		if req[1] == secchan.CodeGetDigests {
			return (&secchan.ErrorResponse{Version: secchan.Version(req[0]), Code: secchan.ErrCodeBusy}).Marshal()
		}
		return resp
	}}
	err := flow(context.Background(), secchan.NewRequester(tt2, f2.cfg))
	if !errors.Is(err, secchan.ErrCodeBusy) {
		t.Fatalf("err = %v, want ERROR(Busy) after the retries", err)
	}
}

// TestRequesterRejectsBadResponses: each kind of bad response yields a
// typed error naming the step (and, for decoding failures, the field).
func TestRequesterRejectsBadResponses(t *testing.T) {
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name     string
		code     uint8 // response to tamper with: the request code it answers
		mutate   func(resp []byte) []byte
		step     string
		want     error
		contains string
	}{
		{"truncated VERSION", secchan.CodeGetVersion, func(r []byte) []byte { return r[:5] }, "GET_VERSION", secchan.ErrMalformed, "VersionNumberEntryCount"},
		{"wrong code", secchan.CodeGetCapabilities, func(r []byte) []byte { c := append([]byte(nil), r...); c[1] = secchan.CodeDigests; return c }, "GET_CAPABILITIES", secchan.ErrUnexpectedResponse, "DIGESTS"},
		{"wrong version", secchan.CodeNegotiateAlgorithms, func(r []byte) []byte { c := append([]byte(nil), r...); c[0] = 0x11; return c }, "NEGOTIATE_ALGORITHMS", secchan.ErrUnexpectedResponse, "version 1.1"},
		{"bad ALGORITHMS length", secchan.CodeNegotiateAlgorithms, func(r []byte) []byte { return flip(r, 4) }, "NEGOTIATE_ALGORITHMS", secchan.ErrMalformed, "Length"},
		{"unoffered hash selected", secchan.CodeNegotiateAlgorithms, func(r []byte) []byte { c := append([]byte(nil), r...); c[16] = 0x20; return c }, "NEGOTIATE_ALGORITHMS", secchan.ErrNegotiation, "BaseHashSel"},
		{"trailing bytes", secchan.CodeGetDigests, func(r []byte) []byte { return append(append([]byte(nil), r...), 1, 2, 3, 4) }, "GET_DIGESTS", secchan.ErrMalformed, "unexpected bytes"},
		{"chain does not match digest", secchan.CodeGetCertificate, func(r []byte) []byte { return flip(r, len(r)-1) }, "GET_CERTIFICATE slot 0", secchan.ErrCertChain, "digest"},
		{"CHALLENGE_AUTH signature over another transcript", secchan.CodeChallenge, func(r []byte) []byte { return flip(r, 4+48) }, "CHALLENGE slot 0", secchan.ErrSignature, ""},
		{"CHALLENGE_AUTH bad cert chain hash", secchan.CodeChallenge, func(r []byte) []byte { return flip(r, 4) }, "CHALLENGE slot 0", secchan.ErrCertChain, "CertChainHash"},
		{"MEASUREMENTS signature", secchan.CodeGetMeasurements, func(r []byte) []byte { return flip(r, len(r)-1) }, "GET_MEASUREMENTS op 0xff", secchan.ErrSignature, ""},
		{"MEASUREMENTS record length", secchan.CodeGetMeasurements, func(r []byte) []byte { return flip(r, 5) }, "GET_MEASUREMENTS op 0xff", secchan.ErrMalformed, "malformed MEASUREMENTS"},
		{"ERROR instead", secchan.CodeGetDigests, func(r []byte) []byte { return []byte{r[0], secchan.CodeError, byte(secchan.ErrCodeUnspecified), 0} }, "GET_DIGESTS", secchan.ErrCodeUnspecified, "Unspecified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, secchan.ResponderConfig{})
			tampered := false
			tt := &tamperTransport{rsp: f.rsp, hook: func(_ int, req, resp []byte) []byte {
				if req[1] == tc.code && !tampered {
					tampered = true
					return tc.mutate(resp)
				}
				return resp
			}}
			err := flow(context.Background(), secchan.NewRequester(tt, f.cfg))
			if !tampered {
				t.Fatal("the flow never sent the request to tamper with")
			}
			var se *secchan.StepError
			if !errors.As(err, &se) || se.Step != tc.step {
				t.Fatalf("err = %v, want a StepError for %q", err, tc.step)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want it to match %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.contains)
			}
		})
	}
}

func TestRequesterWrongAnchor(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{})
	_, otherIDs, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := x509.ParseCertificate(otherIDs[0].Chain[0])
	f.cfg.Validator = &secchan.AnchorValidator{Roots: []*x509.Certificate{other}}
	err = flow(context.Background(), secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg))
	var se *secchan.StepError
	if !errors.As(err, &se) || se.Step != "GET_CERTIFICATE slot 0" || !errors.Is(err, secchan.ErrCertChain) {
		t.Fatalf("err = %v, want ErrCertChain at GET_CERTIFICATE", err)
	}
	f.cfg.Validator = nil
	err = flow(context.Background(), secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg))
	if !errors.Is(err, secchan.ErrNoAnchor) {
		t.Fatalf("err = %v, want ErrNoAnchor without a validator", err)
	}
}

func TestRequesterStepsOutOfOrder(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{})
	q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
	ctx := context.Background()
	if _, err := q.GetDigests(ctx); err == nil {
		t.Fatal("GET_DIGESTS before VCA succeeded")
	}
	if err := q.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetCertificate(ctx, 0); err == nil {
		t.Fatal("GET_CERTIFICATE before GET_DIGESTS succeeded")
	}
	if _, err := q.Challenge(ctx, 0, 0); !errors.Is(err, secchan.ErrCertChain) {
		t.Fatalf("CHALLENGE without a validated chain: %v", err)
	}
	if _, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true}); !errors.Is(err, secchan.ErrCertChain) {
		t.Fatalf("signed GET_MEASUREMENTS without a validated chain: %v", err)
	}
	if _, err := q.GetDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetCertificate(ctx, 3); !errors.Is(err, secchan.ErrCertChain) {
		t.Fatalf("GET_CERTIFICATE of an empty slot: %v", err)
	}
}

// TestRequesterNonceIsUsed: the configured nonce function feeds CHALLENGE
// and GET_MEASUREMENTS, so a guest can bind an owner's nonce.
func TestRequesterNonceIsUsed(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{})
	var want [secchan.NonceSize]byte
	copy(want[:], "owner nonce derived value 123456")
	f.cfg.Nonce = func() ([secchan.NonceSize]byte, error) { return want, nil }
	seen := 0
	tt := &tamperTransport{rsp: f.rsp, hook: func(_ int, req, resp []byte) []byte {
		if (req[1] == secchan.CodeChallenge || req[1] == secchan.CodeGetMeasurements) && strings.Contains(string(req), string(want[:])) {
			seen++
		}
		return resp
	}}
	q := secchan.NewRequester(tt, f.cfg)
	if err := flow(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if seen != 2 {
		t.Fatalf("the configured nonce appeared in %d requests, want 2", seen)
	}
}

// ExchangeSecured lets tamperTransport carry sessions too.
func (tt *tamperTransport) ExchangeSecured(ctx context.Context, rec []byte) ([]byte, error) {
	return tt.rsp.RespondSecured(ctx, rec)
}

// countingSecured counts the secured records a session sends.
type countingSecured struct {
	*tamperTransport
	records int
}

func (c *countingSecured) ExchangeSecured(ctx context.Context, rec []byte) ([]byte, error) {
	c.records++
	return c.tamperTransport.ExchangeSecured(ctx, rec)
}

// TestRequesterChunkedResponsesInSession: with a small DataTransferSize,
// signed MEASUREMENTS inside a session come as ERROR(LargeResponse) and
// the requester reads the chunks inside the session (the responder keeps
// them to it), and the result verifies.
func TestRequesterChunkedResponsesInSession(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{Caps: devsim.SPDMVFCaps, PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)}})
	f.cfg.DataTransferSize = secchan.MinDataTransferSize
	tt := &countingSecured{tamperTransport: &tamperTransport{rsp: f.rsp}}
	q := secchan.NewRequester(tt, f.cfg)
	ctx := context.Background()
	if err := flow(ctx, q); err != nil {
		t.Fatal(err)
	}
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := tt.records
	res, err := ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true})
	if err != nil {
		t.Fatalf("GetMeasurements in the session: %v", err)
	}
	if n := tt.records - before; n < 3 {
		t.Fatalf("signed MEASUREMENTS took %d secured records: no chunks were read in the session", n)
	}
	if len(res.Blocks) != 5 {
		t.Fatalf("%d blocks", len(res.Blocks))
	}
	if err := ss.End(ctx); err != nil {
		t.Fatal(err)
	}
}
