package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

// loadResult is what one load run measured.
type loadResult struct {
	exchanges int
	wall      time.Duration
	latencies []time.Duration // per exchange, the first of each client excluded
	waits     []time.Duration // each client's first exchange: includes its wait for the VF
}

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

// runLoad dials every address with clientsPerAddr clients at once; each
// client does n discovery exchanges, walking indices 0, 1, 2, 0, ... and
// checking every answer, so a lost, duplicated or crossed response is an
// error. With turns, an address's clients take turns as the shim makes
// them (same concurrency as through the shim, for a fair latency
// comparison).
func runLoad(ctx context.Context, addrs []string, clientsPerAddr, n int, turns bool) (loadResult, error) {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	errs := make(chan error, len(addrs)*clientsPerAddr)
	start := time.Now()
	for _, addr := range addrs {
		var turn sync.Mutex
		for range clientsPerAddr {
			wg.Go(func() {
				if turns {
					turn.Lock()
					defer turn.Unlock()
				}
				lat, wait, err := loadClient(ctx, addr, n)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", addr, err)
					return
				}
				mu.Lock()
				res.latencies = append(res.latencies, lat...)
				res.waits = append(res.waits, wait)
				res.exchanges += n
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	res.wall = time.Since(start)
	close(errs)
	for err := range errs {
		return res, err
	}
	slices.Sort(res.latencies)
	slices.Sort(res.waits)
	return res, nil
}

func loadClient(ctx context.Context, addr string, n int) (lat []time.Duration, wait time.Duration, err error) {
	c, err := doe.Dial(ctx, addr)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	lat = make([]time.Duration, 0, n)
	for i := range n {
		index := uint8(i % 3)
		t0 := time.Now()
		resp, err := c.Exchange(ctx, doe.EncodeDiscoveryRequest(index, doe.DiscoveryVersion(devsim.DOEVersion)))
		d := time.Since(t0)
		if err != nil {
			return nil, 0, fmt.Errorf("exchange %d: %w", i, err)
		}
		p, next, err := doe.DecodeDiscoveryResponse(resp)
		if err != nil {
			return nil, 0, fmt.Errorf("exchange %d: %w", i, err)
		}
		if p != wantProtocols[index] || next != (index+1)%3 {
			return nil, 0, fmt.Errorf("exchange %d: index %d answered %v next %d, want %v next %d", i, index, p, next, wantProtocols[index], (index+1)%3)
		}
		if i == 0 {
			wait = d
		} else {
			lat = append(lat, d)
		}
	}
	return lat, wait, nil
}

// TestShimLoad puts 8 VFs behind 8 Mediators and drives 4 clients per VF
// through them, then the same clients directly at the VFs, and reports
// the latency the shim adds. Through the shim a VF's clients take turns
// (each holds the VF for its connection); directly they interleave per
// exchange on the driver's lock.
func TestShimLoad(t *testing.T) {
	const vfs, clientsPerVF = 8, 4
	n := 200
	if testing.Short() {
		n = 50
	}
	dir := t.TempDir()
	var shimAddrs, directAddrs []string
	var meds []*hostshim.Mediator
	for i := range vfs {
		vf := devsim.NewVF()
		d := vf.Driver()
		med := hostshim.NewMediator(d, hostshim.Options{VF: fmt.Sprintf("vf%d", i), Wait: 30 * time.Second, ExchangeTimeout: 10 * time.Second})
		meds = append(meds, med)
		shimAddr := "unix:" + filepath.Join(dir, fmt.Sprintf("shim%d.sock", i))
		serve(t, &doe.Server{Connect: med.Connect, ExchangeTimeout: 10 * time.Second}, shimAddr)
		directAddr := "unix:" + filepath.Join(dir, fmt.Sprintf("direct%d.sock", i))
		serve(t, &doe.Server{Mailbox: d, ExchangeTimeout: 10 * time.Second}, directAddr)
		shimAddrs = append(shimAddrs, shimAddr)
		directAddrs = append(directAddrs, directAddr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct, err := runLoad(ctx, directAddrs, clientsPerVF, n, false)
	if err != nil {
		t.Fatalf("direct: %v", err)
	}
	turns, err := runLoad(ctx, directAddrs, clientsPerVF, n, true)
	if err != nil {
		t.Fatalf("direct, clients taking turns: %v", err)
	}
	shim, err := runLoad(ctx, shimAddrs, clientsPerVF, n, false)
	if err != nil {
		t.Fatalf("through the shim: %v", err)
	}
	if want := vfs * clientsPerVF * n; shim.exchanges != want || direct.exchanges != want || turns.exchanges != want {
		t.Fatalf("exchanges: shim %d, direct %d/%d, want %d each", shim.exchanges, direct.exchanges, turns.exchanges, want)
	}
	for _, m := range meds {
		if err := m.Health(); err != nil {
			t.Errorf("after the load: %v", err)
		}
	}
	for _, r := range []struct {
		name string
		loadResult
	}{{"direct (4 clients/VF at once)", direct}, {"direct (4 clients/VF in turn)", turns}, {"shim (4 clients/VF, in turn)", shim}} {
		t.Logf("%-30s %5d exchanges in %7v: %7.0f/s; latency p50 %8v p99 %8v; first exchange (VF wait) max %v",
			r.name, r.exchanges, r.wall.Round(time.Millisecond), float64(r.exchanges)/r.wall.Seconds(),
			r.percentile(0.50).Round(time.Microsecond), r.percentile(0.99).Round(time.Microsecond), r.waits[len(r.waits)-1].Round(time.Millisecond))
	}
	t.Logf("added by the shim (vs direct in turn, same concurrency): p50 %v, p99 %v",
		(shim.percentile(0.50) - turns.percentile(0.50)).Round(time.Microsecond),
		(shim.percentile(0.99) - turns.percentile(0.99)).Round(time.Microsecond))
}

// benchCMAFunction is a VF whose CMA handler echoes the request.
func benchCMAFunction(b *testing.B) *devsim.Function {
	b.Helper()
	f := devsim.New()
	err := f.Handle(doe.ProtocolCMA, devsim.HandlerFunc(func(_ context.Context, req doe.Object) (doe.Object, error) {
		return doe.Object{Vendor: req.Vendor, Type: req.Type, Payload: req.Payload}, nil
	}))
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkShimVsDirectExchange exchanges a 64-byte CMA object through a
// doe.Server with a Mediator and through a plain doe.Server on the same
// driver, both over unix sockets, alternating in one loop so that both
// see the same machine state. ns/op is one shim and one direct exchange;
// shim/direct is the ratio of their times.
func BenchmarkShimVsDirectExchange(b *testing.B) {
	f := benchCMAFunction(b)
	d := f.Driver()
	dir := b.TempDir()
	med := hostshim.NewMediator(d, hostshim.Options{VF: "bench"})
	var shimSrv, directSrv doe.Server
	shimSrv.Connect = med.Connect
	directSrv.Mailbox = d
	dial := func(srv *doe.Server, name string) *doe.SocketClient {
		addr := "unix:" + filepath.Join(dir, name)
		ln, err := doe.Listen(context.Background(), addr)
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := doe.Dial(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	shimC, directC := dial(&shimSrv, "shim.sock"), dial(&directSrv, "direct.sock")
	req := doe.NewObject(doe.ProtocolCMA, make([]byte, 64-doe.HeaderSize))
	ctx := context.Background()
	one := func(c *doe.SocketClient) time.Duration {
		t0 := time.Now()
		resp, err := c.Exchange(ctx, req)
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if resp.Size() != 64 {
			b.Fatalf("response of %d bytes, want 64", resp.Size())
		}
		return d
	}
	one(shimC) // take the VF
	one(directC)
	var shimT, directT time.Duration
	var n int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		shimT += one(shimC)
		directT += one(directC)
		n++
	}
	b.ReportMetric(float64(shimT.Nanoseconds())/float64(n), "shim-ns/exchange")
	b.ReportMetric(float64(directT.Nanoseconds())/float64(n), "direct-ns/exchange")
	b.ReportMetric(float64(shimT)/float64(directT), "shim/direct")
}
