package tdisp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

const fid = 0x0100

var psk, pskHint = []byte("tdisp test psk"), []byte("tdisp test hint")

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newSession opens a PSK session with an in-process SPDM responder whose
// vendor-defined requests go to h.
func newSession(t *testing.T, h secchan.VendorHandler) (*secchan.SecureSession, secchan.Version) {
	t.Helper()
	q := newConn(t, h)
	return openSession(t, q), q.Negotiated().Version
}

func openSession(t *testing.T, q *secchan.Requester) *secchan.SecureSession {
	t.Helper()
	ss, err := q.PSKExchange(ctxT(t), secchan.SessionOptions{PSK: psk, PSKHint: pskHint})
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// newConn connects to an in-process SPDM responder whose vendor-defined
// requests go to h.
func newConn(t *testing.T, h secchan.VendorHandler) *secchan.Requester {
	t.Helper()
	_, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := secchan.NewResponder(secchan.ResponderConfig{
		Caps:       secchan.CapCert | secchan.CapPSKWithContext | secchan.CapEncrypt | secchan.CapMAC,
		Identities: ids, PSKs: map[string][]byte{string(pskHint): psk}, VendorHandler: h,
	})
	if err != nil {
		t.Fatal(err)
	}
	mb := doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		if req.Protocol() == doe.ProtocolSecuredCMA {
			return rsp.HandleSecuredDOE(ctx, req)
		}
		return rsp.HandleDOE(ctx, req)
	})
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: mb}, secchan.DefaultRequesterConfig())
	if err := q.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return q
}

func testReport() *tdisp.Report {
	r := &tdisp.Report{InterfaceInfo: tdisp.InfoDMAWithoutPASID, MSIXMessageControl: 3, DeviceSpecific: []byte("tdisp unit test device")}
	for i := range 5 {
		r.Ranges = append(r.Ranges, tdisp.MMIORange{FirstPage: uint64(0x1000 + 16*i), Pages: 4, RangeID: uint16(i)})
	}
	return r
}

func newPair(t *testing.T) (*tdisp.Responder, *tdisp.Requester) {
	dev, q, _ := newPairConn(t)
	return dev, q
}

func newPairConn(t *testing.T) (*tdisp.Responder, *tdisp.Requester, *secchan.Requester) {
	t.Helper()
	dev, err := tdisp.NewResponder(tdisp.ResponderConfig{
		FunctionID: fid, LockFlagsSupported: tdisp.LockNoFWUpdate | tdisp.LockMSIX, MaxPortion: 0x20,
		Report: func(p tdisp.LockParams) (*tdisp.Report, error) {
			r := testReport()
			if p.Flags&tdisp.LockNoFWUpdate != 0 {
				r.InterfaceInfo |= tdisp.InfoNoUpdateAfterLock
			}
			return r, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := newConn(t, dev.Handle)
	q, err := tdisp.NewRequester(openSession(t, conn), conn.Negotiated().Version, fid)
	if err != nil {
		t.Fatal(err)
	}
	return dev, q, conn
}

func TestBindLifecycle(t *testing.T) {
	dev, q := newPair(t)
	ctx := ctxT(t)
	var steps []string
	b, err := q.Bind(ctx, tdisp.LockParams{Flags: tdisp.LockNoFWUpdate}, nil, func(n, _ string) { steps = append(steps, n) })
	if err != nil {
		t.Fatal(err)
	}
	want := testReport()
	want.InterfaceInfo |= tdisp.InfoNoUpdateAfterLock
	if string(b.ReportBytes) != string(want.Marshal()) || b.State != tdisp.StateRun || dev.State() != tdisp.StateRun {
		t.Fatalf("bound %+v, device %v", b, dev.State())
	}
	if len(b.ReportBytes) <= 0x20 {
		t.Fatalf("report of %d bytes does not exercise portions", len(b.ReportBytes))
	}
	t.Logf("steps %v", steps)
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.ExpectState(ctx, tdisp.StateConfigUnlocked); err != nil {
		t.Fatal(err)
	}
	// A TDI left running is stopped first by the next Bind.
	if _, err := q.Bind(ctx, tdisp.LockParams{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Bind(ctx, tdisp.LockParams{}, nil, func(n, _ string) { steps = append(steps, n) }); err != nil {
		t.Fatal(err)
	}
	if steps[len(steps)-1] != "START_INTERFACE" {
		t.Fatalf("steps %v", steps)
	}
}

func TestBindRefusesCheckAndUnsupportedFlags(t *testing.T) {
	dev, q := newPair(t)
	ctx := ctxT(t)
	_, err := q.Bind(ctx, tdisp.LockParams{Flags: tdisp.LockBindP2P}, nil, nil)
	var se *tdisp.StepError
	if !errors.As(err, &se) || se.Step != "GET_TDISP_CAPABILITIES" {
		t.Fatalf("unsupported flag: %v", err)
	}
	// The device refuses it too.
	if _, err := q.Lock(ctx, tdisp.LockParams{Flags: tdisp.LockBindP2P}); !errors.Is(err, tdisp.ErrInvalidRequest) {
		t.Fatalf("lock with unsupported flag: %v", err)
	}
	_, err = q.Bind(ctx, tdisp.LockParams{}, func(*tdisp.Report) error { return errors.New("no") }, nil)
	if !errors.As(err, &se) || se.Step != "check report" || dev.State() != tdisp.StateConfigLocked {
		t.Fatalf("refused report: %v, state %v", err, dev.State())
	}
}

// TestConfigChangeMovesToError: a change while locked or running puts
// the TDI in ERROR, where START and the report are refused; STOP unlocks.
func TestConfigChangeMovesToError(t *testing.T) {
	for _, running := range []bool{false, true} {
		dev, q := newPair(t)
		ctx := ctxT(t)
		if dev.ConfigChanged("while unlocked") {
			t.Fatal("a change while unlocked moved the TDI")
		}
		nonce, err := q.Lock(ctx, tdisp.LockParams{})
		if err != nil {
			t.Fatal(err)
		}
		if running {
			if err := q.Start(ctx, &nonce); err != nil {
				t.Fatal(err)
			}
		}
		if !dev.ConfigChanged("BAR0 moved") {
			t.Fatal("no ERROR")
		}
		if err := q.ExpectState(ctx, tdisp.StateError); err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx, &nonce); !errors.Is(err, tdisp.ErrInvalidInterfaceState) {
			t.Fatalf("START in ERROR: %v", err)
		}
		if _, _, err := q.Report(ctx); !errors.Is(err, tdisp.ErrInvalidInterfaceState) {
			t.Fatalf("report in ERROR: %v", err)
		}
		if err := q.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := q.ExpectState(ctx, tdisp.StateConfigUnlocked); err != nil {
			t.Fatal(err)
		}
		if ev := dev.Events(); len(ev) != 1 {
			t.Fatalf("events %v", ev)
		}
	}
}

// TestStartNonce: START needs the nonce of the current lock, once.
func TestStartNonce(t *testing.T) {
	_, q := newPair(t)
	ctx := ctxT(t)
	old, err := q.Lock(ctx, tdisp.LockParams{})
	if err != nil {
		t.Fatal(err)
	}
	var wrong [tdisp.NonceSize]byte
	if err := q.Start(ctx, &wrong); !errors.Is(err, tdisp.ErrInvalidNonce) {
		t.Fatalf("wrong nonce: %v", err)
	}
	if err := q.Start(ctx, &old); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx, &old); !errors.Is(err, tdisp.ErrInvalidInterfaceState) {
		t.Fatalf("replayed START while running: %v", err)
	}
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Lock(ctx, tdisp.LockParams{}); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx, &old); !errors.Is(err, tdisp.ErrInvalidNonce) {
		t.Fatalf("START with the previous lock's nonce: %v", err)
	}
	if err := q.ExpectState(ctx, tdisp.StateConfigLocked); err != nil {
		t.Fatal(err)
	}
}

func TestWrongInterfaceAndSession(t *testing.T) {
	_, q, conn := newPairConn(t)
	ctx := ctxT(t)
	ss, v := openSession(t, conn), conn.Negotiated().Version
	other, _ := tdisp.NewRequester(ss, v, fid+1)
	if _, err := other.State(ctx); !errors.Is(err, tdisp.ErrInvalidInterface) {
		t.Fatalf("another function ID: %v", err)
	}
	// The report and START belong to the session that locked.
	nonce, err := q.Lock(ctx, tdisp.LockParams{})
	if err != nil {
		t.Fatal(err)
	}
	second, _ := tdisp.NewRequester(ss, v, fid)
	if err := second.Start(ctx, &nonce); !errors.Is(err, tdisp.ErrInvalidInterfaceState) {
		t.Fatalf("START from another session: %v", err)
	}
	if _, _, err := second.Report(ctx); !errors.Is(err, tdisp.ErrInvalidInterfaceState) {
		t.Fatalf("report from another session: %v", err)
	}
	if _, err := tdisp.NewRequester(nil, v, fid); !errors.Is(err, tdisp.ErrNotSecure) {
		t.Fatalf("no session: %v", err)
	}
}

// TestHostileReportPortions: the requester refuses portions that do not
// add up, overrun what it asked, or make no progress.
func TestHostileReportPortions(t *testing.T) {
	cases := map[string]func(req *tdisp.GetReport) *tdisp.ReportResp{
		"empty with remainder": func(req *tdisp.GetReport) *tdisp.ReportResp {
			return &tdisp.ReportResp{Remainder: 10}
		},
		"longer than asked": func(req *tdisp.GetReport) *tdisp.ReportResp {
			return &tdisp.ReportResp{Portion: make([]byte, int(req.Length)+1)}
		},
		"total changes": func(req *tdisp.GetReport) *tdisp.ReportResp {
			return &tdisp.ReportResp{Portion: make([]byte, 8), Remainder: 100 - req.Offset}
		},
		"garbage report": func(req *tdisp.GetReport) *tdisp.ReportResp {
			return &tdisp.ReportResp{Portion: make([]byte, 8)}
		},
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			h := func(_ context.Context, _ uint32, raw []byte) ([]byte, error) {
				v, body, err := tdisp.UnwrapRequest(raw)
				if err != nil {
					return nil, err
				}
				var req tdisp.GetReport
				if err := req.Decode(body); err != nil {
					return nil, err
				}
				resp := answer(&req)
				resp.Header = tdisp.H(fid)
				return tdisp.WrapResponse(v, resp), nil
			}
			ss, v := newSession(t, h)
			q, _ := tdisp.NewRequester(ss, v, fid)
			q.Chunk = 0x10
			if _, _, err := q.Report(ctxT(t)); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
		})
	}
}
