package ide

// RunCheck is the whole IDE_KM exercise a probe runs against a device:
// QUERY, program K0, GO, link check, rotate to K1, link check again (and
// the old key set refused), STOP. Each step is reported by name.

import (
	"context"
	"errors"
	"fmt"

	"github.com/devattest/devattest/secchan"
)

// Step is one named step of RunCheck.
type Step struct {
	Name    string
	Err     error // nil: passed
	Skipped bool  // not run (e.g. no device end for the link check)
	Detail  string
}

func (s Step) String() string {
	switch {
	case s.Skipped:
		return fmt.Sprintf("%-28s skipped: %s", s.Name, s.Detail)
	case s.Err != nil:
		return fmt.Sprintf("%-28s FAIL: %v", s.Name, s.Err)
	case s.Detail != "":
		return fmt.Sprintf("%-28s ok (%s)", s.Name, s.Detail)
	}
	return fmt.Sprintf("%-28s ok", s.Name)
}

// CheckOptions selects the port and stream RunCheck programs and the
// device end of the simulated link.
type CheckOptions struct {
	Version secchan.Version // the connection's SPDM version
	Port    uint8
	Stream  uint8
	// Device is the device's keys for the link check (an in-process
	// devsim: Responder.Port), used through NewLocalLink.
	Device KeySource
	// Link is the device end of the simulated link reached some other way
	// (NewRemoteLink: over DOE to devsim, only protected TLPs crossing). If
	// set, it is used instead of Device. With neither, the link steps are
	// skipped: a real device's keys are not readable, which is the point,
	// and a real link is checked by hardware.
	Link DeviceLink
	// SkipReason is the Detail of skipped link steps (default: "no device
	// end of the simulated link").
	SkipReason string
	// KeepKeys leaves K1 in use at the end instead of stopping it, for a
	// caller that binds the stream next (TDISP's LOCK_INTERFACE binds its
	// default stream, which must be keyed).
	KeepKeys bool
}

// RunCheck runs the IDE_KM check over sess with root port rp (normally a
// *SimRootPort, which also serves as the link's root-port end). It stops
// at the first failure and returns every step so far; err is that step's
// error.
func RunCheck(ctx context.Context, sess Session, rp RootPort, o CheckOptions) (steps []Step, err error) {
	run := func(name string, f func() (string, error)) bool {
		detail, e := f()
		steps = append(steps, Step{Name: name, Err: e, Detail: detail})
		if e != nil {
			err = fmt.Errorf("%s: %w", name, e)
			return false
		}
		return true
	}
	q, e := NewRequester(sess, o.Version, rp)
	if !run("open IDE_KM requester", func() (string, error) { return "", e }) {
		return steps, err
	}
	link := o.Link
	if link == nil && o.Device != nil {
		link = NewLocalLink(o.Device)
	}
	host, _ := rp.(KeySource)
	var hostEnd *LinkEnd
	skip := o.SkipReason
	switch {
	case host == nil:
		skip = "the root port's keys are not a key source in this process"
	case link == nil && skip == "":
		skip = "no device end of the simulated link"
	default:
		hostEnd = NewLinkEnd(host)
	}
	linkStep := func(name string, f func() (string, error)) bool {
		if link == nil || hostEnd == nil {
			steps = append(steps, Step{Name: name, Skipped: true, Detail: skip})
			return true
		}
		return run(name, f)
	}
	ok := run("QUERY", func() (string, error) {
		r, err := q.Query(ctx, o.Port)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("port %d of max %d, capability 0x%08x", r.PortIndex, r.MaxPortIndex, r.Cap), nil
	}) &&
		run("KEY_PROG K0 (6 keys)", func() (string, error) { return "", q.ProgramKeySet(ctx, o.Port, o.Stream, K0) }) &&
		run("K_SET_GO K0", func() (string, error) { return "", q.Go(ctx, o.Port, o.Stream, K0) }) &&
		linkStep("link check K0", func() (string, error) { return "", CheckDeviceLink(ctx, link, o.Port, hostEnd, o.Stream) }) &&
		run("rotate to K1", func() (string, error) {
			ks, err := q.Rotate(ctx, o.Port, o.Stream)
			if err == nil && ks != K1 {
				err = fmt.Errorf("rotated to %v", ks)
			}
			return "", err
		}) &&
		linkStep("link check K1", func() (string, error) { return "", CheckDeviceLink(ctx, link, o.Port, hostEnd, o.Stream) }) &&
		linkStep("K0 refused after rotation", func() (string, error) {
			// A TLP the root port protected under K1, its prefix rewritten
			// to K0: the device refuses the stale key set before it opens
			// anything. The same TLP under K1 then goes through, which
			// also keeps both ends' K1 counters in step.
			hdr, data := []byte{0x40, 0, 0, 1}, []byte("probe")
			t, err := hostEnd.Send(o.Stream, PR, hdr, data)
			if err != nil {
				return "", err
			}
			stale := t
			stale.KeySet = K0
			if _, err := link.Exchange(ctx, o.Port, stale); !errors.Is(err, ErrKeySetNotInUse) {
				return "", fmt.Errorf("a TLP marked K0 after rotation: %v", err)
			}
			back, err := link.Exchange(ctx, o.Port, t)
			if err != nil {
				return "", fmt.Errorf("the same TLP under K1: %w", err)
			}
			if got, err := hostEnd.Receive(back); err != nil || string(got) != string(data) {
				return "", fmt.Errorf("the answer under K1: %q, %v", got, err)
			}
			return "", nil
		}) &&
		stopK1(ctx, q, o, &steps, run)
	_ = ok
	return steps, err
}

func stopK1(ctx context.Context, q *Requester, o CheckOptions, steps *[]Step, run func(string, func() (string, error)) bool) bool {
	if o.KeepKeys {
		*steps = append(*steps, Step{Name: "K_SET_STOP K1", Skipped: true, Detail: "K1 kept in use for the TDISP interface"})
		return true
	}
	return run("K_SET_STOP K1", func() (string, error) { return "", q.Stop(ctx, o.Port, o.Stream) })
}
