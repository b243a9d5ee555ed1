package doe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
)

// foreignSend is a second writer on the function's DOE registers, as a
// guest reaching them through vfio-pci's raw config access would be: it
// writes words into the write mailbox and, if goBit, sets Go.
func foreignSend(t testing.TB, cs doe.ConfigSpace, words []uint32, goBit bool) {
	t.Helper()
	for _, w := range words {
		if err := cs.WriteConfig32(devsim.DOEOffset+doe.RegWriteMailbox, w); err != nil {
			t.Error(err)
			return
		}
	}
	if goBit {
		if err := cs.WriteConfig32(devsim.DOEOffset+doe.RegControl, doe.ControlGo); err != nil {
			t.Error(err)
		}
	}
}

// objectWords is obj as mailbox words.
func objectWords(t testing.TB, obj doe.Object) []uint32 {
	t.Helper()
	b, err := obj.Encode()
	if err != nil {
		t.Fatal(err)
	}
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
	}
	return w
}

// waitStatus polls the device until its status has all of bits.
func waitStatus(t *testing.T, f *devsim.Function, bits uint32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := f.ReadConfig32(devsim.DOEOffset + doe.RegStatus)
		if st&bits == bits {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never had 0x%08x (last 0x%08x)", bits, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// Foreign state found at the start of an exchange on a mailbox the driver
// left idle: the exchange fails with ErrForeignActivity, unsent, the
// mailbox is aborted to idle, and the next exchange works.
func TestDriverForeignActivityAtStart(t *testing.T) {
	discovery := objectWords(t, doe.NewObject(doe.ProtocolDiscovery, []byte{0, 0, 0, 0}))
	for _, tc := range []struct {
		name   string
		delay  time.Duration // the device's, while the foreign request runs
		writes []uint32
		wait   uint32 // status to wait for before the driver's exchange
	}{
		// A foreign request answered, its response left unread.
		{"data object ready", 0, discovery, doe.StatusReady},
		// A foreign object whose header announces 10 DW but has 3.
		{"error", 0, []uint32{uint32(echoProtocol.Vendor) | uint32(echoProtocol.Type)<<16, 10, 0}, doe.StatusError},
		// A foreign request still running: Busy is waited out and turns
		// into Data Object Ready, which the driver did not ask for.
		{"busy turning into ready", 200 * time.Millisecond, discovery, doe.StatusBusy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newEchoFunction(t)
			d := f.Driver()
			assertWorks(t, d)
			f.SetFaults(devsim.Faults{Delay: tc.delay})
			foreignSend(t, f, tc.writes, true)
			waitStatus(t, f, tc.wait)
			before := f.Stats()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := d.Exchange(ctx, doe.NewObject(echoProtocol, []byte("mine")))
			if !errors.Is(err, doe.ErrForeignActivity) {
				t.Fatalf("err = %v, want ErrForeignActivity", err)
			}
			after := f.Stats()
			if after.Requests != before.Requests {
				t.Errorf("the driver sent its request into a mailbox in foreign hands (%+v -> %+v)", before, after)
			}
			if after.Aborts <= before.Aborts {
				t.Errorf("the foreign state was not aborted (%+v -> %+v)", before, after)
			}
			assertIdle(t, f)
			f.SetFaults(devsim.Faults{})
			assertWorks(t, d)
		})
	}
}

// hijackedSpace lets a second writer take the mailbox the moment the
// driver sets Go: it aborts the driver's request and sends its own, of
// another protocol, whose answer the driver then finds in the read
// mailbox.
type hijackedSpace struct {
	*devsim.Function
	t       testing.TB
	foreign []uint32
	armed   atomic.Bool
}

func (h *hijackedSpace) WriteConfig32(off int, v uint32) error {
	if err := h.Function.WriteConfig32(off, v); err != nil {
		return err
	}
	if off == devsim.DOEOffset+doe.RegControl && v&doe.ControlGo != 0 && h.armed.CompareAndSwap(true, false) {
		_ = h.Function.WriteConfig32(devsim.DOEOffset+doe.RegControl, doe.ControlAbort)
		foreignSend(h.t, h.Function, h.foreign, true)
	}
	return nil
}

func TestDriverForeignResponseProtocol(t *testing.T) {
	f := newEchoFunction(t)
	h := &hijackedSpace{Function: f, t: t, foreign: objectWords(t, doe.NewObject(doe.ProtocolDiscovery, []byte{1, 0, 0, 0}))}
	d := doe.NewDriver(h, f.DOECap())
	assertWorks(t, d)
	h.armed.Store(true)
	_, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, []byte("mine")))
	if !errors.Is(err, doe.ErrForeignActivity) || !errors.Is(err, doe.ErrUnexpectedResponse) {
		t.Fatalf("err = %v, want ErrForeignActivity and ErrUnexpectedResponse", err)
	}
	assertIdle(t, f)
	assertWorks(t, d)
}

// A device busy on its own for a while, with nothing to show for it when
// Busy clears, is not foreign activity: the exchange goes ahead.
func TestDriverBusyClearingToIdleIsNotForeign(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver()
	assertWorks(t, d)
	f.SetFaults(devsim.Faults{StayBusy: true})
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.SetFaults(devsim.Faults{})
	}()
	assertWorks(t, d)
}

// A second writer drives the registers of the same function concurrently
// with the driver's exchanges, bounded in count. Whatever interleaving
// happens, every answer the driver returns is of its request's protocol
// (the foreign requests are of another), every failure is of a DOE-level
// kind, interference is detected as foreign activity, and once the writer
// stops the mailbox recovers within two exchanges. The content of an
// answer is not vouched for: foreign DWs written between the driver's own
// can garble a request the device still accepts (the echo device then
// echoes the garbled object), which DOE cannot see; SPDM's signatures and
// the secure session's AEAD are what catch it.
func TestDriverSecondWriterConcurrently(t *testing.T) {
	const exchanges, foreignRequests = 300, 300
	f := newEchoFunction(t)
	d := f.Driver()
	assertWorks(t, d)
	foreign := objectWords(t, doe.NewObject(doe.ProtocolDiscovery, []byte{0, 0, 0, 0}))

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range foreignRequests {
			select {
			case <-stop:
				return
			default:
			}
			foreignSend(t, f, foreign, true)
			time.Sleep(time.Duration(50+i%7*30) * time.Microsecond)
		}
	}()

	counts := map[string]int{}
	for i := range exchanges {
		req := doe.NewObject(echoProtocol, pattern(4*(1+i%9), byte(i)))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := d.Exchange(doe.FollowDeadline(ctx), req)
		cancel()
		switch {
		case err == nil:
			if resp.Protocol() != echoProtocol {
				t.Fatalf("exchange %d returned an answer of another protocol: %v % x", i, resp.Protocol(), resp.Payload)
			}
			if bytes.Equal(resp.Payload, req.Payload) {
				counts["ok"]++
			} else {
				counts["garbled"]++ // interleaved DWs the device accepted
			}
		case errors.Is(err, doe.ErrAbortFailed):
			t.Fatalf("exchange %d: an abort failed on a device that honours aborts: %v", i, err)
		case errors.Is(err, doe.ErrForeignActivity):
			counts["foreign"]++
		case errors.Is(err, doe.ErrDeviceError):
			counts["device_error"]++ // the writes interleaved into one garbled object
		case errors.Is(err, doe.ErrMalformed):
			counts["malformed"]++ // a foreign Go dropped the response being read
		case errors.Is(err, doe.ErrBusy), errors.Is(err, doe.ErrTimeout):
			counts["busy_or_timeout"]++
		default:
			t.Fatalf("exchange %d: unexpected error kind: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("with a second writer: %v; device %+v", counts, f.Stats())
	if counts["foreign"] == 0 {
		t.Errorf("no foreign activity detected among %d exchanges against %d foreign requests: %v", exchanges, foreignRequests, counts)
	}
	if counts["ok"] == 0 {
		t.Errorf("no exchange succeeded alongside the second writer: %v", counts)
	}

	// Recovery: the writer's last request may still be answered and left
	// in the mailbox; at most that one exchange fails.
	start := time.Now()
	recovered := -1
	for i := range 2 {
		if _, err := d.Exchange(context.Background(), doe.NewObject(echoProtocol, []byte("after"))); err == nil {
			recovered = i
			break
		} else if !errors.Is(err, doe.ErrForeignActivity) {
			t.Fatalf("after the writer stopped: %v", err)
		}
	}
	if recovered < 0 {
		t.Fatal("the mailbox did not recover within two exchanges after the writer stopped")
	}
	t.Logf("recovered after %d failed exchange(s), in %v", recovered, time.Since(start))
	assertIdle(t, f)
	assertWorks(t, d)
}

func ExampleFollowDeadline() {
	f := devsim.NewVF()
	d := f.Driver()
	// A mediator that allows 2 s per exchange lets a slow device use them.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	protos, err := doe.Discover(doe.FollowDeadline(ctx), d, doe.DiscoveryVersion(d.CapVersion()))
	fmt.Println(len(protos), err)
	// Output: 3 <nil>
}
