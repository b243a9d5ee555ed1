package doe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
)

// echoProtocol is a test protocol whose handler returns the request payload.
var echoProtocol = doe.Protocol{Vendor: 0x1234, Type: 7}

func newEchoFunction(t testing.TB, opts ...devsim.Option) *devsim.Function {
	t.Helper()
	f := devsim.New(opts...)
	if err := f.Handle(echoProtocol, devsim.HandlerFunc(func(_ context.Context, req doe.Object) (doe.Object, error) {
		return doe.Object{Vendor: req.Vendor, Type: req.Type, Payload: append([]byte(nil), req.Payload...)}, nil
	})); err != nil {
		t.Fatal(err)
	}
	return f
}

// fastDriver shortens the deadlines so fault tests finish quickly.
func fastDriver(f *devsim.Function) *doe.Driver {
	d := f.Driver()
	d.Timeout = 200 * time.Millisecond
	d.AbortTimeout = 200 * time.Millisecond
	return d
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// assertIdle checks at the device that the mailbox is idle.
func assertIdle(t *testing.T, f *devsim.Function) {
	t.Helper()
	st, err := f.ReadConfig32(devsim.DOEOffset + doe.RegStatus)
	if err != nil {
		t.Fatal(err)
	}
	if st&(doe.StatusBusy|doe.StatusError|doe.StatusReady) != 0 {
		t.Fatalf("mailbox not idle: status 0x%08x", st)
	}
}

// assertWorks runs one echo exchange and checks the answer.
func assertWorks(t *testing.T, d *doe.Driver) {
	t.Helper()
	req := doe.NewObject(echoProtocol, []byte("still works"))
	resp, err := d.Exchange(context.Background(), req)
	if err != nil {
		t.Fatalf("exchange after recovery: %v", err)
	}
	if !bytes.Equal(resp.Payload, req.Payload) {
		t.Fatalf("echo mismatch after recovery")
	}
}

func TestDriverFindsDOEByWalkingCapabilities(t *testing.T) {
	f := devsim.NewVF()
	caps, err := doe.FindDOE(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 1 || caps[0].Offset != devsim.DOEOffset || caps[0].Version != devsim.DOEVersion {
		t.Fatalf("FindDOE = %+v, want one capability at 0x%x version %d", caps, devsim.DOEOffset, devsim.DOEVersion)
	}
	all, err := doe.WalkExtCaps(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Offset != devsim.DSNOffset {
		t.Fatalf("WalkExtCaps = %+v, want DSN then DOE", all)
	}
	d := doe.NewDriver(f, caps[0])
	protos, err := doe.Discover(context.Background(), d, doe.DiscoveryVersion(d.CapVersion()))
	if err != nil {
		t.Fatal(err)
	}
	want := []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA}
	if fmt.Sprint(protos) != fmt.Sprint(want) {
		t.Fatalf("discovery = %v, want %v", protos, want)
	}
}

func TestDriverExchangeSizes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload int
	}{
		{"8B", 0}, // header only
		{"4KiB", 4096 - doe.HeaderSize},
		{"1MiB", doe.MaxPayload}, // length field 0 on the wire
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newEchoFunction(t)
			d := f.Driver()
			d.Timeout = 30 * time.Second // 1 MiB is 2^18 register accesses each way under -race
			req := doe.Object{Vendor: echoProtocol.Vendor, Type: echoProtocol.Type, Payload: pattern(tc.payload, 0x5a)}
			resp, err := d.Exchange(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Protocol() != echoProtocol || !bytes.Equal(resp.Payload, req.Payload) {
				t.Fatalf("response differs from request (%d vs %d bytes)", len(resp.Payload), len(req.Payload))
			}
			if got := f.Stats(); got.Requests != 1 || got.Responses != 1 || got.Errors != 0 {
				t.Fatalf("device stats %+v, want exactly one request and response", got)
			}
			assertIdle(t, f)
		})
	}
}

func TestDriverTimeoutAborts(t *testing.T) {
	f := newEchoFunction(t)
	d := fastDriver(f)
	assertWorks(t, d)
	f.SetFaults(devsim.Faults{NeverRespond: true})
	start := time.Now()
	_, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, []byte("x")))
	if !errors.Is(err, doe.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("timeout took %v, want about %v", el, d.Timeout)
	}
	if f.Stats().Aborts < 2 { // the first-use abort, then the timeout's
		t.Fatalf("device saw %d aborts, want the timeout to abort", f.Stats().Aborts)
	}
	assertIdle(t, f)
	f.SetFaults(devsim.Faults{})
	assertWorks(t, d)
}

func TestDriverCallerDeadlineShorterThanTimeout(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver() // default 1 s
	f.SetFaults(devsim.Faults{NeverRespond: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := d.Exchange(ctx, doe.NewObject(echoProtocol, nil)); !errors.Is(err, doe.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("exchange ignored the caller's 50ms deadline: took %v", el)
	}
	assertIdle(t, f)
}

func TestDriverErrorBit(t *testing.T) {
	f := newEchoFunction(t)
	d := fastDriver(f)
	f.SetFaults(devsim.Faults{ErrorOnGo: true})
	_, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, []byte("x")))
	if !errors.Is(err, doe.ErrDeviceError) {
		t.Fatalf("err = %v, want ErrDeviceError", err)
	}
	assertIdle(t, f)
	f.SetFaults(devsim.Faults{})
	assertWorks(t, d)
}

func TestDriverUnsupportedProtocolSetsError(t *testing.T) {
	f := devsim.New()
	d := fastDriver(f)
	_, err := d.Exchange(context.Background(), doe.NewObject(doe.Protocol{Vendor: 0x1E98, Type: 2}, []byte{0, 0, 0, 0}))
	if !errors.Is(err, doe.ErrDeviceError) {
		t.Fatalf("err = %v, want ErrDeviceError", err)
	}
	assertIdle(t, f)
}

func TestDriverBusyAtStart(t *testing.T) {
	t.Run("clears within the deadline", func(t *testing.T) {
		f := newEchoFunction(t)
		d := f.Driver()
		assertWorks(t, d)
		f.SetFaults(devsim.Faults{StayBusy: true})
		go func() {
			time.Sleep(100 * time.Millisecond)
			f.SetFaults(devsim.Faults{})
		}()
		assertWorks(t, d)
	})
	t.Run("stays busy", func(t *testing.T) {
		f := newEchoFunction(t)
		d := fastDriver(f)
		assertWorks(t, d)
		f.SetFaults(devsim.Faults{StayBusy: true})
		_, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, nil))
		if !errors.Is(err, doe.ErrBusy) {
			t.Fatalf("err = %v, want ErrBusy", err)
		}
		if f.Stats().Requests != 1 {
			t.Fatalf("a busy device took a request")
		}
		f.SetFaults(devsim.Faults{})
		assertWorks(t, d)
	})
}

func TestDriverAbortFailure(t *testing.T) {
	f := newEchoFunction(t)
	d := fastDriver(f)
	assertWorks(t, d)
	f.SetFaults(devsim.Faults{NeverRespond: true, IgnoreAbort: true})
	_, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, nil))
	if !errors.Is(err, doe.ErrTimeout) || !errors.Is(err, doe.ErrAbortFailed) {
		t.Fatalf("err = %v, want ErrTimeout joined with ErrAbortFailed", err)
	}
	// Once the device honours abort again, the driver recovers.
	f.SetFaults(devsim.Faults{})
	if err := d.Abort(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertWorks(t, d)
}

func TestDriverAbortMidTransfer(t *testing.T) {
	t.Run("half-written request left by another user", func(t *testing.T) {
		f := newEchoFunction(t)
		// Someone wrote a header announcing 10 DW and three DWs of it.
		for _, v := range []uint32{uint32(echoProtocol.Vendor) | uint32(echoProtocol.Type)<<16, 10, 0xdeadbeef} {
			if err := f.WriteConfig32(devsim.DOEOffset+doe.RegWriteMailbox, v); err != nil {
				t.Fatal(err)
			}
		}
		d := fastDriver(f)
		assertWorks(t, d) // the driver's first-use abort drops the leftovers
		if f.Stats().Errors != 0 {
			t.Fatalf("device saw a malformed object: %+v", f.Stats())
		}
	})
	t.Run("response half read", func(t *testing.T) {
		f := newEchoFunction(t)
		d := fastDriver(f)
		assertWorks(t, d)
		// Send a request by hand and pop only part of the response.
		req, _ := doe.NewObject(echoProtocol, pattern(64, 1)).Encode()
		for i := 0; i < len(req); i += 4 {
			v := uint32(req[i]) | uint32(req[i+1])<<8 | uint32(req[i+2])<<16 | uint32(req[i+3])<<24
			_ = f.WriteConfig32(devsim.DOEOffset+doe.RegWriteMailbox, v)
		}
		_ = f.WriteConfig32(devsim.DOEOffset+doe.RegControl, doe.ControlGo)
		deadline := time.Now().Add(time.Second)
		for {
			st, _ := f.ReadConfig32(devsim.DOEOffset + doe.RegStatus)
			if st&doe.StatusReady != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("hand-sent request never answered")
			}
			time.Sleep(time.Millisecond)
		}
		for range 3 {
			_ = f.WriteConfig32(devsim.DOEOffset+doe.RegReadMailbox, 0)
		}
		// The driver finds Data Object Ready it did not cause: foreign
		// activity, aborted away; the next exchange works.
		if _, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, nil)); !errors.Is(err, doe.ErrForeignActivity) {
			t.Fatalf("err = %v, want ErrForeignActivity", err)
		}
		assertIdle(t, f)
		assertWorks(t, d)
	})
	t.Run("cancelled while the device works", func(t *testing.T) {
		f := newEchoFunction(t)
		d := f.Driver()
		assertWorks(t, d)
		f.SetFaults(devsim.Faults{Delay: 5 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(30 * time.Millisecond)
			cancel()
		}()
		if _, err := d.Exchange(ctx, doe.NewObject(echoProtocol, nil)); !errors.Is(err, doe.ErrTimeout) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrTimeout wrapping context.Canceled", err)
		}
		assertIdle(t, f)
		f.SetFaults(devsim.Faults{})
		assertWorks(t, d)
		if got := f.Stats().Responses; got != 2 {
			t.Fatalf("device delivered %d responses, want 2 (the cancelled one dropped)", got)
		}
	})
}

func TestDriverSlowDeviceWithinDeadline(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver() // the default 1 s per object
	f.SetFaults(devsim.Faults{Delay: 900 * time.Millisecond})
	start := time.Now()
	assertWorks(t, d)
	el := time.Since(start)
	if el < 900*time.Millisecond {
		t.Fatalf("answer after %v, before the device's 900ms delay", el)
	}
	if el > 990*time.Millisecond {
		t.Logf("note: the back-off noticed the answer %v after it was ready", el-900*time.Millisecond)
	}
}

func TestDriverResponseBound(t *testing.T) {
	f := newEchoFunction(t)
	d := fastDriver(f)
	d.MaxResponseDW = 16
	_, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, pattern(100, 2)))
	if !errors.Is(err, doe.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	assertIdle(t, f)
	d.MaxResponseDW = doe.MaxObjectDW
	assertWorks(t, d)
}

func TestDriverRejectsInvalidRequest(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver()
	_, err := d.Exchange(context.Background(), doe.Object{Vendor: 1, Type: 1, Payload: []byte{1, 2, 3}})
	if !errors.Is(err, doe.ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if f.Stats().Requests != 0 {
		t.Fatal("a malformed request reached the device")
	}
}

func TestDriverSharedByGoroutines(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver()
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				req := doe.NewObject(echoProtocol, pattern(4*(1+i%17), byte(w)))
				resp, err := d.Exchange(context.Background(), req)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(resp.Payload, req.Payload) {
					errs <- fmt.Errorf("worker %d exchange %d got another caller's response", w, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.Stats(); got.Requests != workers*each || got.Errors != 0 {
		t.Fatalf("device stats %+v, want %d clean requests", got, workers*each)
	}
}

func TestDriverLockHonoursContext(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver()
	f.SetFaults(devsim.Faults{Delay: 300 * time.Millisecond})
	go func() { _, _ = d.Exchange(context.Background(), doe.NewObject(echoProtocol, nil)) }()
	time.Sleep(50 * time.Millisecond) // let the first caller take the mailbox
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := d.Exchange(ctx, doe.NewObject(echoProtocol, nil)); !errors.Is(err, doe.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy while another caller holds the mailbox", err)
	}
}
