package platform

import (
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	tsmrtmr "github.com/google/go-configfs-tsm/rtmr"
	tdxclient "github.com/google/go-tdx-guest/client"

	vplatform "github.com/devattest/devattest/policy/platform"
)

// tdxAttester gets TDX quotes through configfs-tsm (provider tdx_guest) or,
// failing that, the /dev/tdx_guest ioctls, and extends one RTMR.
//
// Not exercised on this machine (no TDX guest); the code follows
// go-tdx-guest's client and go-configfs-tsm's rtmr package.
type tdxAttester struct {
	mu   sync.Mutex
	rtmr int
	qp   any // *tdxclient.LinuxConfigFsQuoteProvider or tdxclient.Device
	dev  *tdxclient.LinuxDevice
	log  []Event
}

func newTDX(opts Options) (*tdxAttester, error) {
	if opts.TDXRTMR < 0 || opts.TDXRTMR > 3 {
		return nil, fmt.Errorf("platform: TDX RTMR %d out of range 0-3", opts.TDXRTMR)
	}
	a := &tdxAttester{rtmr: opts.TDXRTMR}
	if qp, err := tdxclient.GetQuoteProvider(); err == nil {
		if serr := qp.IsSupported(); serr == nil {
			a.qp = qp
			return a, nil
		}
	}
	if !exists(tdxGuestDevice) {
		return nil, fmt.Errorf("%w: TDX (configfs-tsm %s provider tdx_guest, %s)", ErrNotAvailable, configfsTSMReport, tdxGuestDevice)
	}
	dev, err := tdxclient.OpenDevice()
	if err != nil {
		return nil, fmt.Errorf("%w: TDX %s: %w", ErrNotAvailable, tdxGuestDevice, err)
	}
	a.qp, a.dev = dev, dev
	return a, nil
}

func (a *tdxAttester) Kind() Kind { return KindTDX }

func (a *tdxAttester) Report(ctx context.Context, userData [UserDataSize]byte) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	raw, err := tdxclient.GetRawQuote(a.qp, userData)
	if err != nil {
		return nil, fmt.Errorf("platform: TDX quote: %w", err)
	}
	return &Report{Kind: KindTDX, Raw: clone(raw), EventLog: slices.Clone(a.log)}, nil
}

// Extend extends RTMR[a.rtmr] with SHA-384(digest): through the kernel's
// sysfs measurement file when present (Linux 6.16+), else configfs-tsm's
// rtmrs tree.
func (a *tdxAttester) Extend(ctx context.Context, digest []byte, event string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(digest) == 0 || len(digest) > 255 {
		return fmt.Errorf("platform: TDX extend: digest of %d bytes (want 1-255)", len(digest))
	}
	m := vplatform.MeasuredDigest(KindTDX, digest)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := extendRTMR(a.rtmr, m); err != nil {
		return err
	}
	a.log = append(a.log, Event{Register: uint32(a.rtmr), Digest: clone(digest), Description: event})
	return nil
}

func extendRTMR(index int, m []byte) error {
	if len(m) != sha512.Size384 {
		return fmt.Errorf("platform: TDX extend: %d-byte digest, want %d", len(m), sha512.Size384)
	}
	path := fmt.Sprintf("/sys/class/misc/tdx_guest/measurements/rtmr%d:sha384", index)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, werr := f.Write(m)
		cerr := f.Close()
		if werr != nil || cerr != nil {
			return fmt.Errorf("platform: TDX extend RTMR[%d] via %s: %w", index, path, errors.Join(werr, cerr))
		}
		return nil
	}
	c, cerr := linuxtsm.MakeClient()
	if cerr != nil {
		return fmt.Errorf("platform: TDX extend RTMR[%d]: neither %s (%v) nor configfs-tsm (%w)", index, path, err, cerr)
	}
	if err := tsmrtmr.ExtendDigest(c, index, m); err != nil {
		return fmt.Errorf("platform: TDX extend RTMR[%d] via configfs-tsm: %w", index, err)
	}
	return nil
}

func (a *tdxAttester) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dev != nil {
		err := a.dev.Close()
		a.dev = nil
		return err
	}
	return nil
}

// AdoptEventLog implements EventLogAdopter.
func (a *tdxAttester) AdoptEventLog(log []Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return adoptLog(&a.log, log)
}
