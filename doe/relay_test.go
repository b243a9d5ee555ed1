package doe

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRelayMode(t *testing.T) {
	good := map[string]RelayMode{
		"pass":            {Kind: RelayPass},
		"tamper:3:up:17":  {Kind: RelayTamper, N: 3, Dir: DirUp, Bit: 17},
		"tamper:1:down:0": {Kind: RelayTamper, N: 1, Dir: DirDown},
		"drop:2:down":     {Kind: RelayDrop, N: 2, Dir: DirDown},
		"replay:2":        {Kind: RelayReplay, N: 2},
		"reorder":         {Kind: RelayReorder, N: 2},
		"reorder:7":       {Kind: RelayReorder, N: 7},
		"delay:250":       {Kind: RelayDelay, Delay: 250 * time.Millisecond},
	}
	for s, want := range good {
		got, err := ParseRelayMode(s)
		if err != nil || got != want {
			t.Errorf("ParseRelayMode(%q) = %+v, %v; want %+v", s, got, err, want)
		}
		if s != "reorder" && got.String() != s {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), s)
		}
	}
	bad := map[string]string{
		"":                "unknown mode",
		"flip":            "unknown mode",
		"pass:1":          "want pass",
		"tamper:0:up:1":   "at least 1",
		"tamper:1:left:1": "neither up",
		"tamper:1:up:-1":  "bit",
		"tamper:1:up":     "tamper:N:DIR:BIT",
		"drop:x:up":       "object index",
		"replay:1":        "at least 2",
		"reorder:1":       "at least 2",
		"delay:-5":        "milliseconds",
		"delay:99999999":  "milliseconds",
	}
	for s, want := range bad {
		if _, err := ParseRelayMode(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRelayMode(%q) = %v, want an error containing %q", s, err, want)
		}
	}
}

func TestFlipBit(t *testing.T) {
	obj := []byte{1, 0, 1, 0, 3, 0, 0, 0, 0xF0, 0x00, 0x00, 0x00}
	got := flipBit(obj, 0)
	if got[8] != 0x70 || obj[8] != 0xF0 {
		t.Fatalf("bit 0: % x (input % x)", got, obj)
	}
	if got := flipBit(obj, 32+9); got[9] != 0x40 { // modulo 32 bits: bit 9
		t.Fatalf("bit 41: % x", got)
	}
	if got := flipBit(obj[:8], 7); got[0] != 0 { // no payload: the header
		t.Fatalf("header-only object: % x", got)
	}
}

// echoMailbox answers each object with itself plus one marker DW counting
// the exchanges.
type echoMailbox struct {
	mu sync.Mutex
	n  byte
}

func (e *echoMailbox) Exchange(_ context.Context, req Object) (Object, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	return Object{Vendor: req.Vendor, Type: req.Type, Payload: append(bytes.Clone(req.Payload), e.n, 0, 0, 0)}, nil
}

func startRelay(t *testing.T, mode string) (*SocketClient, func() RelayStats) {
	t.Helper()
	dir := t.TempDir()
	up := "unix:" + filepath.Join(dir, "up.sock")
	srv := &Server{Mailbox: &echoMailbox{}}
	uln, err := Listen(context.Background(), up)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(uln)
	t.Cleanup(func() { srv.Close() })
	m, err := ParseRelayMode(mode)
	if err != nil {
		t.Fatal(err)
	}
	stats := make(chan RelayStats, 1)
	r := &Relay{Upstream: up, Mode: m, Timeout: time.Second, OnClose: func(s RelayStats) { stats <- s }}
	addr := "unix:" + filepath.Join(dir, "relay.sock")
	ln, err := Listen(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	go r.Serve(ln)
	t.Cleanup(func() { r.Close() })
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return c, func() RelayStats {
		c.Close()
		select {
		case s := <-stats:
			return s
		case <-time.After(3 * time.Second):
			t.Fatal("the relay did not end the connection")
			return RelayStats{}
		}
	}
}

func TestRelayModes(t *testing.T) {
	req := func(b byte) Object { return NewObject(ProtocolCMA, []byte{0x12, b, 0, 0}) }
	exchange := func(c *SocketClient, b byte) (Object, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return c.Exchange(ctx, req(b))
	}
	t.Run("pass", func(t *testing.T) {
		c, end := startRelay(t, "pass")
		for i := byte(1); i <= 3; i++ {
			resp, err := exchange(c, i)
			if err != nil || resp.Payload[1] != i || resp.Payload[4] != i {
				t.Fatalf("exchange %d: % x, %v", i, resp.Payload, err)
			}
		}
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s := end(); s.Up != 3 || s.Down != 3 || s.Err != nil {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("tamper down", func(t *testing.T) {
		c, end := startRelay(t, "tamper:2:down:8")
		exchange(c, 1)
		resp, err := exchange(c, 2)
		if err != nil || resp.Payload[1] != 2^0x80 {
			t.Fatalf("% x, %v", resp.Payload, err)
		}
		end()
	})
	t.Run("tamper up", func(t *testing.T) {
		c, end := startRelay(t, "tamper:1:up:15")
		resp, err := exchange(c, 4)
		if err != nil || resp.Payload[1] != 5 {
			t.Fatalf("% x, %v", resp.Payload, err)
		}
		end()
	})
	t.Run("drop", func(t *testing.T) {
		c, end := startRelay(t, "drop:1:up")
		if _, err := exchange(c, 1); !errors.Is(err, ErrTimeout) {
			t.Fatalf("dropped request: %v", err)
		}
		if s := end(); s.Up != 1 || s.Down != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("replay", func(t *testing.T) {
		c, end := startRelay(t, "replay:2")
		exchange(c, 1)
		resp, err := exchange(c, 2)
		if err != nil || resp.Payload[1] != 1 || resp.Payload[4] != 1 {
			t.Fatalf("% x, %v", resp.Payload, err)
		}
		if resp, _ := exchange(c, 3); resp.Payload[4] != 2 { // the device saw only two
			t.Fatalf("after replay: % x", resp.Payload)
		}
		end()
	})
	t.Run("reorder", func(t *testing.T) {
		c, end := startRelay(t, "reorder:2")
		var got []byte
		for i := byte(1); i <= 4; i++ {
			resp, err := exchange(c, i)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, resp.Payload[4])
		}
		if !bytes.Equal(got, []byte{1, 1, 2, 4}) {
			t.Fatalf("responses %v, want [1 1 2 4]", got)
		}
		if s := end(); s.Up != 4 || s.Down != 4 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("close with a connection open", func(t *testing.T) {
		c, _ := startRelay(t, "drop:1:down")
		if _, err := exchange(c, 1); !errors.Is(err, ErrTimeout) {
			t.Fatalf("dropped response: %v", err)
		}
		// The cleanup closes the relay with this connection still open.
	})
}
