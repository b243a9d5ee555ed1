package doe_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
)

// The caller's deadline bounds the whole exchange, the abort after a
// failure included. Before, a device that stayed busy or ignored the abort
// took the deadline and then AbortTimeout (1 s) more. The margins are
// generous: each bound is checked against the old time, not to the
// millisecond.
func TestDriverDeadlineBoundsTheWholeExchange(t *testing.T) {
	const deadline = 300 * time.Millisecond
	const limit = deadline + 500*time.Millisecond // the old code took deadline + 1 s
	for _, tc := range []struct {
		name   string
		faults devsim.Faults
		want   []error
	}{
		{"stays busy", devsim.Faults{StayBusy: true}, []error{doe.ErrBusy, doe.ErrAbortFailed}},
		{"silent and ignores abort", devsim.Faults{NeverRespond: true, IgnoreAbort: true}, []error{doe.ErrTimeout, doe.ErrAbortFailed}},
	} {
		for _, follow := range []bool{false, true} {
			name := tc.name
			if follow {
				name += " following the deadline"
			}
			t.Run(name, func(t *testing.T) {
				f := newEchoFunction(t)
				d := f.Driver() // the default 1 s per object and per abort
				assertWorks(t, d)
				f.SetFaults(tc.faults)
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				if follow {
					ctx = doe.FollowDeadline(ctx)
				}
				start := time.Now()
				_, err := d.Exchange(ctx, doe.NewObject(echoProtocol, []byte("x")))
				el := time.Since(start)
				for _, w := range tc.want {
					if !errors.Is(err, w) {
						t.Errorf("err = %v, want it to wrap %v", err, w)
					}
				}
				if el > limit {
					t.Errorf("exchange took %v with a %v deadline", el, deadline)
				}
				// The failed abort is retried first by the next exchange.
				f.SetFaults(devsim.Faults{})
				assertWorks(t, d)
				assertIdle(t, f)
			})
		}
	}
}

// FollowDeadline lets a slow device use the caller's whole deadline in
// place of the per-object Timeout; without it, Timeout still applies.
func TestDriverFollowDeadline(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver()
	d.Timeout = 200 * time.Millisecond // stands for PCIe's 1 s
	assertWorks(t, d)
	f.SetFaults(devsim.Faults{Delay: 400 * time.Millisecond})
	req := doe.NewObject(echoProtocol, []byte("slow"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.Exchange(ctx, req); !errors.Is(err, doe.ErrTimeout) {
		t.Fatalf("without FollowDeadline: err = %v, want the per-object ErrTimeout", err)
	}
	assertIdle(t, f)
	if _, err := d.Exchange(doe.FollowDeadline(ctx), req); err != nil {
		t.Fatalf("with FollowDeadline and 5 s: %v", err)
	}
	// No deadline: the mark changes nothing.
	if _, err := d.Exchange(doe.FollowDeadline(context.Background()), req); !errors.Is(err, doe.ErrTimeout) {
		t.Fatalf("FollowDeadline without a deadline: err = %v, want the per-object ErrTimeout", err)
	}
}

// Busy at the start is waited out for as long as the caller allows when it
// follows its deadline (a device busy on its own is no one's fault).
func TestDriverBusyAtStartFollowsDeadline(t *testing.T) {
	f := newEchoFunction(t)
	d := f.Driver()
	d.Timeout = 100 * time.Millisecond
	assertWorks(t, d)
	f.SetFaults(devsim.Faults{StayBusy: true})
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		f.SetFaults(devsim.Faults{})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := doe.NewObject(echoProtocol, []byte("after busy"))
	if _, err := d.Exchange(doe.FollowDeadline(ctx), req); err != nil {
		t.Fatalf("busy for 300ms, per-object 100ms, following a 10 s deadline: %v", err)
	}
	<-done
}
