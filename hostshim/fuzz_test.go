package hostshim_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

// FuzzGuestStream feeds a guest's byte stream to a doe.Server with a
// Mediator in front of devsim, as the daemon wires them (the Mediator's
// FrameGuard sees every frame the server answers itself): whatever the
// guest sends, nothing panics, every frame gets an answer or the
// connection ends, and the server returns.
func FuzzGuestStream(f *testing.F) {
	frame := func(cmd, transport uint32, payload []byte) []byte {
		var b writeBuf
		_ = doe.WriteFrame(&b, doe.Frame{Command: cmd, Transport: transport, Payload: payload})
		return b
	}
	disc, _ := doe.EncodeDiscoveryRequest(0, 2).Encode()
	f.Add(frame(doe.CommandNormal, doe.TransportPCIDOE, disc))
	f.Add(append(frame(doe.CommandTest, doe.TransportPCIDOE, nil), frame(doe.CommandNormal, doe.TransportPCIDOE, disc)...))
	f.Add(frame(doe.CommandNormal, doe.TransportPCIDOE, []byte{1, 2, 3}))
	f.Add(frame(doe.CommandNormal, doe.TransportMCTP, disc))
	f.Add(frame(0x4242, doe.TransportPCIDOE, nil))
	f.Add(frame(doe.CommandNormal, doe.TransportPCIDOE, []byte{1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0xff, 0xff}))
	f.Add(frame(doe.CommandShutdown, doe.TransportPCIDOE, nil))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, stream []byte) {
		vf := devsim.NewVF()
		med := hostshim.NewMediator(vf.Driver(), hostshim.Options{VF: "fuzz", Rate: 1000, Burst: 4, ExchangeTimeout: time.Second})
		defer med.Close()
		srv := &doe.Server{Connect: med.Connect, ExchangeTimeout: 2 * time.Second, IdleTimeout: time.Second, Audited: true}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() { srv.ServeConn(context.Background(), server); close(done) }()
		_ = client.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			_, _ = client.Write(stream)
			time.Sleep(10 * time.Millisecond)
			_ = client.Close()
		}()
		_, _ = io.Copy(io.Discard, client)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not end the connection")
		}
	})
}

type writeBuf []byte

func (b *writeBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }
