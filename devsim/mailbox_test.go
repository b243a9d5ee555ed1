package devsim

import (
	"context"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
)

// regs drives the DOE registers directly, as a driver would, so the state
// machine is checked without the doe driver's own recovery in the way.
type regs struct {
	t *testing.T
	f *Function
}

func (r regs) read(reg int) uint32 {
	r.t.Helper()
	v, err := r.f.ReadConfig32(DOEOffset + reg)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func (r regs) write(reg int, v uint32) {
	r.t.Helper()
	if err := r.f.WriteConfig32(DOEOffset+reg, v); err != nil {
		r.t.Fatal(err)
	}
}

func (r regs) send(words ...uint32) {
	for _, w := range words {
		r.write(doe.RegWriteMailbox, w)
	}
	r.write(doe.RegControl, doe.ControlGo)
}

// waitStatus waits for any bit of mask to be set.
func (r regs) waitStatus(mask uint32) uint32 {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := r.read(doe.RegStatus)
		if st&mask != 0 {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("status 0x%08x never showed 0x%08x", st, mask)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (r regs) drain() []uint32 {
	var out []uint32
	for r.read(doe.RegStatus)&doe.StatusReady != 0 {
		out = append(out, r.read(doe.RegReadMailbox))
		r.write(doe.RegReadMailbox, 0)
		if len(out) > doe.MaxObjectDW {
			r.t.Fatal("read mailbox never ran dry")
		}
	}
	return out
}

const discoveryHeader = uint32(doe.VendorPCISIG) | uint32(doe.TypeDiscovery)<<16

func TestDiscoveryThroughRegisters(t *testing.T) {
	r := regs{t, NewVF()}
	var got []doe.Protocol
	for index := uint32(0); ; {
		r.send(discoveryHeader, 3, index)
		if st := r.waitStatus(doe.StatusReady | doe.StatusError); st&doe.StatusError != 0 {
			t.Fatalf("error bit on discovery index %d", index)
		}
		resp := r.drain()
		if len(resp) != 3 || resp[0] != discoveryHeader || resp[1] != 3 {
			t.Fatalf("discovery response %x", resp)
		}
		got = append(got, doe.Protocol{Vendor: uint16(resp[2]), Type: uint8(resp[2] >> 16)})
		next := resp[2] >> 24
		if next == 0 {
			break
		}
		index = next
	}
	want := []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA}
	if len(got) != len(want) {
		t.Fatalf("discovery listed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("discovery listed %v, want %v", got, want)
		}
	}
	// Past the end: vendor 0xFFFF, as QEMU answers.
	r.send(discoveryHeader, 3, 9)
	r.waitStatus(doe.StatusReady)
	if resp := r.drain(); uint16(resp[2]) != 0xFFFF {
		t.Fatalf("index past the end answered %x", resp)
	}
}

func TestMalformedRequestsSetError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		words []uint32
	}{
		{"no header", nil},
		{"one DW", []uint32{discoveryHeader}},
		{"length says 4, 3 written", []uint32{discoveryHeader, 4, 0}},
		{"length says 2, 3 written", []uint32{discoveryHeader, 2, 0}},
		{"reserved header bits", []uint32{discoveryHeader | 1<<24, 3, 0}},
		{"unsupported protocol", []uint32{0x1E98 | 2<<16, 3, 0}},
		{"bad discovery payload", []uint32{discoveryHeader, 3, 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewVF()
			r := regs{t, f}
			r.send(tc.words...)
			st := r.waitStatus(doe.StatusError | doe.StatusReady)
			if st&doe.StatusError == 0 || st&doe.StatusReady != 0 {
				t.Fatalf("status 0x%08x, want Error and no response", st)
			}
			// Error blocks new requests until abort.
			r.send(discoveryHeader, 3, 0)
			if st := r.read(doe.RegStatus); st&doe.StatusReady != 0 || st&doe.StatusBusy != 0 {
				t.Fatalf("device took a request while in Error: 0x%08x", st)
			}
			r.write(doe.RegControl, doe.ControlAbort)
			if st := r.read(doe.RegStatus); st != 0 {
				t.Fatalf("status after abort 0x%08x, want 0", st)
			}
			r.send(discoveryHeader, 3, 0)
			r.waitStatus(doe.StatusReady)
		})
	}
}

func TestOversizeRequestSetsError(t *testing.T) {
	f := New(WithMaxRequestDW(4))
	r := regs{t, f}
	for range 5 {
		r.write(doe.RegWriteMailbox, 0)
	}
	if st := r.read(doe.RegStatus); st&doe.StatusError == 0 {
		t.Fatalf("status 0x%08x after overfilling the write mailbox, want Error", st)
	}
	if f.Stats().Errors != 1 {
		t.Fatalf("stats %+v", f.Stats())
	}
}

func TestInterruptStatusIsRW1C(t *testing.T) {
	r := regs{t, NewVF()}
	r.write(doe.RegControl, doe.ControlIntEnable)
	if r.read(doe.RegControl) != doe.ControlIntEnable {
		t.Fatal("interrupt enable did not stick")
	}
	for _, w := range []uint32{discoveryHeader, 3, 0} {
		r.write(doe.RegWriteMailbox, w)
	}
	r.write(doe.RegControl, doe.ControlGo|doe.ControlIntEnable)
	st := r.waitStatus(doe.StatusReady)
	if st&doe.StatusIntStatus == 0 {
		t.Fatalf("status 0x%08x: ready without interrupt status while enabled", st)
	}
	r.write(doe.RegStatus, doe.StatusIntStatus)
	if st := r.read(doe.RegStatus); st&doe.StatusIntStatus != 0 || st&doe.StatusReady == 0 {
		t.Fatalf("status 0x%08x after clearing interrupt status", st)
	}
}

func TestReadMailboxWhenEmptyReadsZero(t *testing.T) {
	r := regs{t, NewVF()}
	if v := r.read(doe.RegReadMailbox); v != 0 {
		t.Fatalf("empty read mailbox reads 0x%x", v)
	}
	r.write(doe.RegReadMailbox, 0) // popping nothing is harmless
	if st := r.read(doe.RegStatus); st != 0 {
		t.Fatalf("status 0x%08x", st)
	}
}

func TestAbortAndResetDropInFlightWork(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(f *Function, r regs)
	}{
		{"abort", func(_ *Function, r regs) { r.write(doe.RegControl, doe.ControlAbort) }},
		{"reset", func(f *Function, _ regs) { f.Reset() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewVF()
			r := regs{t, f}
			f.SetFaults(Faults{Delay: 50 * time.Millisecond})
			r.send(discoveryHeader, 3, 0)
			if st := r.read(doe.RegStatus); st&doe.StatusBusy == 0 {
				t.Fatalf("status 0x%08x, want Busy while the device works", st)
			}
			tc.stop(f, r)
			time.Sleep(100 * time.Millisecond) // past the delay
			if st := r.read(doe.RegStatus); st != 0 {
				t.Fatalf("status 0x%08x: a stale response arrived after %s", st, tc.name)
			}
			if f.Stats().Responses != 0 {
				t.Fatalf("stats %+v", f.Stats())
			}
		})
	}
}

func TestNewRequestDropsUnreadResponse(t *testing.T) {
	r := regs{t, NewVF()}
	r.send(discoveryHeader, 3, 0)
	r.waitStatus(doe.StatusReady)
	r.send(discoveryHeader, 3, 1)
	r.waitStatus(doe.StatusReady)
	resp := r.drain()
	if len(resp) != 3 || resp[2]>>24 != 2 { // index 1's entry points at 2
		t.Fatalf("got %x, want the answer to the second request", resp)
	}
}

func TestHandlerErrorAndWrongProtocolSetError(t *testing.T) {
	f := New()
	p := doe.Protocol{Vendor: 0x1234, Type: 9}
	_ = f.Handle(p, HandlerFunc(func(context.Context, doe.Object) (doe.Object, error) {
		return doe.NewObject(doe.ProtocolCMA, nil), nil // answers as another protocol
	}))
	r := regs{t, f}
	r.send(uint32(p.Vendor)|uint32(p.Type)<<16, 2)
	if st := r.waitStatus(doe.StatusError | doe.StatusReady); st&doe.StatusError == 0 {
		t.Fatalf("status 0x%08x, want Error for a response of the wrong protocol", st)
	}
}

func TestHandleRejectsDiscovery(t *testing.T) {
	if err := New().Handle(doe.ProtocolDiscovery, nil); err == nil {
		t.Fatal("discovery handler replaced")
	}
}

func TestUnsupportedSPDMAnswersError(t *testing.T) {
	resp, err := unsupportedSPDM(context.Background(), doe.NewObject(doe.ProtocolCMA, []byte{0x12, 0x84, 0, 0}))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x12, spdmCodeError, spdmErrUnsupportedRequest, 0x84}
	if string(resp.Payload) != string(want) {
		t.Fatalf("payload %x, want %x", resp.Payload, want)
	}
}

func TestConfigSpaceBounds(t *testing.T) {
	f := New()
	for _, off := range []int{-4, 2, doe.ConfigSpaceSize, doe.ConfigSpaceSize - 2} {
		if _, err := f.ReadConfig32(off); err == nil {
			t.Errorf("read at %d accepted", off)
		}
		if err := f.WriteConfig32(off, 0); err == nil {
			t.Errorf("write at %d accepted", off)
		}
	}
	v, _ := f.ReadConfig32(0)
	if v != VendorID|DeviceID<<16 {
		t.Fatalf("ID register 0x%08x", v)
	}
}
