//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/tests/vm"
)

// scenarioFaults: QEMU's silent drops end in our timeout and abort, a
// read past the end of a response sets Error, and after each the driver
// gets the mailbox back.
func scenarioFaults(ctx context.Context, e *env, r *vm.Result) error {
	if e.bdf == "" {
		return errors.New("no device (scenario 1 failed)")
	}
	if d, err := boundDriver(e.bdf); err != nil || d != "" {
		return fmt.Errorf("%s should be unbound, has %q (%v)", e.bdf, d, err)
	}
	const timeout = 300 * time.Millisecond
	cs, d, c, err := openMailbox(e.bdf, timeout)
	if err != nil {
		return err
	}
	defer cs.Close()
	discover := func(what string) error {
		protos, err := doe.Discover(ctx, d, doe.DiscoveryVersion(c.Version))
		if err != nil {
			return fmt.Errorf("discovery %s: %w", what, err)
		}
		if !slices.Equal(protos, wantProtocols) {
			return fmt.Errorf("discovery %s listed %v", what, protos)
		}
		return nil
	}
	if err := discover("before the faults"); err != nil {
		return err
	}

	// 1. A protocol the instance does not offer: QEMU discards it without
	// Ready or Error, so only our deadline and abort end the exchange.
	start := time.Now()
	_, err = d.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, []byte{0x10, 0x84, 0, 0}))
	took := time.Since(start)
	if !errors.Is(err, doe.ErrTimeout) {
		return fmt.Errorf("an unsupported protocol = %v, want ErrTimeout", err)
	}
	if took < timeout || took > timeout+5*time.Second {
		return fmt.Errorf("the unsupported request ended after %v with a %v timeout", took, timeout)
	}
	if err := idle(cs, c); err != nil {
		return fmt.Errorf("after the timeout: %w", err)
	}
	if err := discover("after the timeout"); err != nil {
		return err
	}
	r.Fact("drop_timeout_ms", took.Milliseconds())
	r.Step("a CMA request (not offered) is dropped by QEMU: ErrTimeout after %v, aborted, mailbox idle, next discovery works", took.Round(time.Millisecond))

	// 2. A length field that disagrees with the DWs written: discarded too.
	reg := func(off int) int { return c.Offset + off }
	for _, v := range []uint32{uint32(doe.VendorPCISIG), 4, 0} { // says 4 DW, writes 3
		if err := cs.WriteConfig32(reg(doe.RegWriteMailbox), v); err != nil {
			return err
		}
	}
	if err := cs.WriteConfig32(reg(doe.RegControl), doe.ControlGo); err != nil {
		return err
	}
	time.Sleep(timeout)
	st, err := cs.ReadConfig32(reg(doe.RegStatus))
	if err != nil {
		return err
	}
	if st&(doe.StatusReady|doe.StatusError) != 0 {
		return fmt.Errorf("a request with a wrong length field left status 0x%08x, want it discarded silently", st)
	}
	if err := discover("after a wrong length field"); err != nil {
		return err
	}
	r.Step("a request whose length field says 4 DW with 3 written is discarded silently (status 0x%08x); next discovery works", st)

	// 3. One pop past the end of a response sets Error. These raw
	// accesses are a second writer on the mailbox the driver left idle:
	// its next exchange finds the Error, aborts it away and fails as
	// foreign activity, unsent; the one after works.
	for _, v := range []uint32{uint32(doe.VendorPCISIG), 3, 0} {
		if err := cs.WriteConfig32(reg(doe.RegWriteMailbox), v); err != nil {
			return err
		}
	}
	if err := cs.WriteConfig32(reg(doe.RegControl), doe.ControlGo); err != nil {
		return err
	}
	if st, err = cs.ReadConfig32(reg(doe.RegStatus)); err != nil || st&doe.StatusReady == 0 {
		return fmt.Errorf("raw discovery: status 0x%08x (%v), want Data Object Ready", st, err)
	}
	for range 3 + 1 { // the response's 3 DW, and one more
		if err := cs.WriteConfig32(reg(doe.RegReadMailbox), 0); err != nil {
			return err
		}
	}
	if st, err = cs.ReadConfig32(reg(doe.RegStatus)); err != nil || st&doe.StatusError == 0 {
		return fmt.Errorf("after a read past the end: status 0x%08x (%v), want Error", st, err)
	}
	r.Fact("past_end_status", fmt.Sprintf("0x%08x", st))
	_, err = d.Exchange(ctx, doe.EncodeDiscoveryRequest(0, doe.DiscoveryVersion(c.Version)))
	if !errors.Is(err, doe.ErrForeignActivity) {
		return fmt.Errorf("the driver's exchange after another writer left Error = %v, want ErrForeignActivity", err)
	}
	if err := idle(cs, c); err != nil {
		return fmt.Errorf("after the foreign Error: %w", err)
	}
	if err := discover("after a read past the end"); err != nil {
		return err
	}
	r.Step("a read past the end of a response sets Error (status 0x%08x); the driver's next exchange reports foreign activity (%v), aborts it away, and discovery works", st, err)
	return nil
}

// idle checks that the mailbox shows neither Busy, Error nor Ready.
func idle(cs doe.ConfigSpace, c doe.ExtCap) error {
	st, err := cs.ReadConfig32(c.Offset + doe.RegStatus)
	if err != nil {
		return err
	}
	if st&(doe.StatusBusy|doe.StatusError|doe.StatusReady) != 0 {
		return fmt.Errorf("mailbox not idle: status 0x%08x", st)
	}
	return nil
}
