package hostshim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/devattest/devattest/doe"
)

// SocketBackend forwards to a responder that speaks the socket framing
// (libspdm's spdm_responder_emu, a devsim process). It keeps one upstream
// connection across guest connections, dials lazily and again after a
// transport failure. It never sends SHUTDOWN upstream: spdm_responder_emu
// exits on SHUTDOWN, and a guest's SHUTDOWN ends only the guest's own
// connection.
type SocketBackend struct {
	Addr string

	mu     sync.Mutex
	client *doe.SocketClient
}

// Exchange implements doe.Mailbox.
func (b *SocketBackend) Exchange(ctx context.Context, req doe.Object) (doe.Object, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil {
		c, err := doe.Dial(ctx, b.Addr)
		if err != nil {
			return doe.Object{}, err
		}
		b.client = c
	}
	resp, err := b.client.Exchange(ctx, req)
	var remote *doe.RemoteError
	if err != nil && !errors.As(err, &remote) && !errors.Is(err, doe.ErrUnexpectedResponse) {
		// The stream may be out of step: start afresh next time.
		_ = b.client.Release()
		b.client = nil
	}
	return resp, err
}

// Close ends the upstream connection with CONTINUE, which leaves an
// spdm-emu responder serving its next client.
func (b *SocketBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil {
		return nil
	}
	err := b.client.Release()
	b.client = nil
	return err
}

// SysfsBackend is a VF's DOE mailbox on a Linux host: the driver over
// /sys/bus/pci/devices/<BDF>/config, on the DOE instance whose discovery
// lists a protocol the listener serves.
type SysfsBackend struct {
	*doe.Driver
	cs *doe.SysfsConfigSpace
}

// OpenSysfsBackend opens the function at bdf under root (doe.SysfsRoot on
// a host) and finds the first DOE instance whose discovery lists one of
// want other than discovery itself (nil want: CMA/SPDM). One backend is
// one mailbox: a function that offers the wanted protocols on different
// instances is served on the first only.
func OpenSysfsBackend(ctx context.Context, root, bdf string, want []doe.Protocol) (*SysfsBackend, error) {
	if want == nil {
		want = []doe.Protocol{doe.ProtocolCMA}
	}
	want = slices.DeleteFunc(slices.Clone(want), func(p doe.Protocol) bool { return p == doe.ProtocolDiscovery })
	if len(want) == 0 {
		return nil, fmt.Errorf("hostshim: %s: no protocol but discovery to serve", bdf)
	}
	cs, err := doe.OpenSysfs(root, bdf)
	if err != nil {
		return nil, err
	}
	caps, err := doe.FindDOE(cs)
	if err != nil {
		cs.Close()
		return nil, fmt.Errorf("hostshim: %s: %w", bdf, err)
	}
	var tried []string
	for _, c := range caps {
		d := doe.NewDriver(cs, c)
		protos, err := doe.Discover(ctx, d, doe.DiscoveryVersion(c.Version))
		if err != nil {
			tried = append(tried, fmt.Sprintf("0x%x: %v", c.Offset, err))
			continue
		}
		if servesAny(protos, want) {
			return &SysfsBackend{Driver: d, cs: cs}, nil
		}
		tried = append(tried, fmt.Sprintf("0x%x: offers %v", c.Offset, protos))
	}
	cs.Close()
	return nil, fmt.Errorf("hostshim: %s has no DOE instance offering any of %v (%v)", bdf, want, tried)
}

// Close closes the config-space file.
func (b *SysfsBackend) Close() error { return b.cs.Close() }
