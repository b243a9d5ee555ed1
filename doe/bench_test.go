package doe_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
)

// benchEchoProtocol is answered by an echo handler in the benchmarks.
var benchEchoProtocol = doe.Protocol{Vendor: 0x1234, Type: 7}

func benchEchoFunction(b *testing.B) *devsim.Function {
	b.Helper()
	f := devsim.New()
	err := f.Handle(benchEchoProtocol, devsim.HandlerFunc(func(_ context.Context, req doe.Object) (doe.Object, error) {
		return doe.Object{Vendor: req.Vendor, Type: req.Type, Payload: req.Payload}, nil
	}))
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func benchExchange(b *testing.B, mb doe.Mailbox, payload int) {
	b.Helper()
	req := doe.Object{Vendor: benchEchoProtocol.Vendor, Type: benchEchoProtocol.Type, Payload: make([]byte, payload)}
	ctx := context.Background()
	b.SetBytes(int64(req.Size()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := mb.Exchange(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Payload) != payload {
			b.Fatalf("response of %d bytes, want %d", len(resp.Payload), payload)
		}
	}
}

// BenchmarkDriverExchange: the register-level driver against devsim's DOE
// state machine, one DW per config access, echo handler.
func BenchmarkDriverExchange(b *testing.B) {
	for _, tc := range []struct {
		name    string
		payload int
	}{
		{"64B", 64 - doe.HeaderSize},
		{"4KiB", 4096 - doe.HeaderSize},
		{"1MiB", doe.MaxPayload},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := benchEchoFunction(b).Driver()
			// The default 1 s bounds the whole exchange, DW transfer
			// included; under a profiler 2 × 256 Ki config accesses to an
			// emulated device can take longer than that.
			d.Timeout = 30 * time.Second
			benchExchange(b, d, tc.payload)
		})
	}
}

// benchServe serves mb on a loopback TCP listener and returns a client.
func benchServe(b *testing.B, mb doe.Mailbox) *doe.SocketClient {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &doe.Server{Mailbox: mb}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := doe.Dial(ctx, "tcp:"+ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		srv.Close()
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	return c
}

// BenchmarkSocketRoundTrip: socket framing client and server over loopback
// TCP with a trivial echo mailbox; 64-byte objects.
func BenchmarkSocketRoundTrip(b *testing.B) {
	c := benchServe(b, doe.MailboxFunc(func(_ context.Context, req doe.Object) (doe.Object, error) {
		return req, nil
	}))
	benchExchange(b, c, 64-doe.HeaderSize)
}

// BenchmarkSocketDriverDevsim: socket client -> server -> register-level
// driver -> devsim echo handler; 64-byte objects. Compared with
// BenchmarkDriverExchange/64B it gives the socket hop's overhead.
func BenchmarkSocketDriverDevsim(b *testing.B) {
	c := benchServe(b, benchEchoFunction(b).Driver())
	benchExchange(b, c, 64-doe.HeaderSize)
}
