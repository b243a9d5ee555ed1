package tests

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
	"github.com/devattest/devattest/secchan"
)

// spdmFlow runs Connect, GetDigests, GetCertificate, Challenge and signed
// GetMeasurements over mb, returning the first failure.
func spdmFlow(ctx context.Context, mb doe.Mailbox, cfg secchan.RequesterConfig) error {
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: mb}, cfg)
	if err := q.Connect(ctx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if _, err := q.GetDigests(ctx); err != nil {
		return fmt.Errorf("get digests: %w", err)
	}
	if _, err := q.GetCertificate(ctx, 0); err != nil {
		return fmt.Errorf("get certificate: %w", err)
	}
	if _, err := q.Challenge(ctx, 0, secchan.SummaryAll); err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	res, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true})
	if err != nil {
		return fmt.Errorf("get measurements: %w", err)
	}
	if len(res.Blocks) == 0 || !res.Signed {
		return fmt.Errorf("measurements: %d blocks, signed %v", len(res.Blocks), res.Signed)
	}
	return nil
}

// TestShimSPDMFlowsNeverInterleave runs two full SPDM flows at once
// through one Mediator in front of one devsim VF. A GET_VERSION from one
// requester in the middle of the other's flow would reset the device's
// connection state and break the other's transcript, so both succeeding
// is itself evidence; the exchange log shows one flow entirely before the
// other.
func TestShimSPDMFlowsNeverInterleave(t *testing.T) {
	vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	med := hostshim.NewMediator(vf.Driver(), hostshim.Options{VF: "devsim", Wait: 60 * time.Second, ExchangeTimeout: 10 * time.Second})

	// Record, at the shim, which connection each exchange belonged to.
	var (
		mu    sync.Mutex
		trace []int
		next  int
	)
	srv := &doe.Server{
		ExchangeTimeout: 10 * time.Second,
		Connect: func(ctx context.Context, conn net.Conn) (doe.Mailbox, func(), error) {
			mb, release, err := med.Connect(ctx, conn)
			if err != nil {
				return nil, nil, err
			}
			mu.Lock()
			next++
			id := next
			mu.Unlock()
			return doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
				mu.Lock()
				trace = append(trace, id)
				mu.Unlock()
				return mb.Exchange(ctx, req)
			}), release, nil
		},
	}
	addr := "unix:" + filepath.Join(t.TempDir(), "shim.sock")
	serve(t, srv, addr)

	clients := []*doe.SocketClient{dialT(t, addr), dialT(t, addr)}
	errs := make(chan error, len(clients))
	start := make(chan struct{})
	for i, c := range clients {
		go func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := spdmFlow(ctx, c, trusting(root))
			c.Close() // releases the VF for the other
			if err != nil {
				err = fmt.Errorf("client %d: %w", i+1, err)
			}
			errs <- err
		}()
	}
	close(start)
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if next != 2 {
		t.Fatalf("%d connections held the VF, want 2", next)
	}
	switches := 0
	for i := 1; i < len(trace); i++ {
		if trace[i] != trace[i-1] {
			switches++
		}
	}
	if switches != 1 {
		t.Errorf("exchanges by connection %v: want one flow entirely before the other (1 switch), got %d switches", trace, switches)
	}
	t.Logf("%d exchanges, connection %d first", len(trace), trace[0])
}
