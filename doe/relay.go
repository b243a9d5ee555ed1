package doe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Relay stands in for a hostile host between a guest and the shim: it
// serves the socket framing on a listener and, per client connection,
// dials Upstream and forwards frames both ways, one exchange at a time
// (the framing is strictly request/response, as one DOE mailbox is).
//
// NORMAL frames carry DOE objects and are what Mode acts on; TEST,
// SHUTDOWN, CONTINUE and UNKNOWN frames pass through as they are, and are
// not counted. After a SHUTDOWN or CONTINUE has been answered, the
// connection ends. Objects are counted per connection and per direction as
// they arrive at the relay, from 1: "up" travels from the guest towards
// the device, "down" from the device towards the guest. An object the mode
// drops or replaces is still counted, so the indices of one mode match
// the counts of a pass run. When a connection ends the relay logs a line
// containing "objects up=U down=D" and calls OnClose.
type Relay struct {
	// Upstream is the shim's (or a device's) address, ParseAddr syntax.
	Upstream string
	// Mode is what the relay does to the objects it forwards.
	Mode RelayMode
	// Logger receives one line per connection event; nil discards.
	Logger *slog.Logger
	// Timeout bounds dialing upstream, every frame write and the wait for
	// the device's response (default 10 s).
	Timeout time.Duration
	// IdleTimeout bounds the wait for the guest's next frame (default 10 min).
	IdleTimeout time.Duration
	// OnClose, if set, receives each connection's statistics when it ends.
	OnClose func(RelayStats)

	acc acceptor
}

// RelayStats describes one relayed connection.
type RelayStats struct {
	// Up and Down count the objects that arrived in each direction.
	Up, Down int
	// UpSizes and DownSizes are those objects' payload sizes in bytes
	// (after the 8-byte DOE header), in order.
	UpSizes, DownSizes []int
	// Err is why the connection ended (nil: the guest closed it cleanly).
	Err error
}

// RelayModeKind names a relay mode.
type RelayModeKind string

// Relay modes.
const (
	RelayPass    RelayModeKind = "pass"
	RelayTamper  RelayModeKind = "tamper"
	RelayDrop    RelayModeKind = "drop"
	RelayReplay  RelayModeKind = "replay"
	RelayReorder RelayModeKind = "reorder"
	RelayDelay   RelayModeKind = "delay"
)

// Relay directions.
const (
	DirUp   = "up"   // guest → device
	DirDown = "down" // device → guest
)

// RelayMode is a parsed relay mode (ParseRelayMode documents the syntax
// and the exact semantics). The zero value is pass.
type RelayMode struct {
	Kind RelayModeKind
	// N is the 1-based index of the object acted on (tamper, drop: in
	// Dir; replay, reorder: of the request).
	N int
	// Dir is DirUp or DirDown (tamper, drop).
	Dir string
	// Bit is the bit to flip (tamper).
	Bit int
	// Delay is the hold-back per object (delay).
	Delay time.Duration
}

// String is the mode in ParseRelayMode's syntax.
func (m RelayMode) String() string {
	switch m.Kind {
	case "", RelayPass:
		return string(RelayPass)
	case RelayTamper:
		return fmt.Sprintf("tamper:%d:%s:%d", m.N, m.Dir, m.Bit)
	case RelayDrop:
		return fmt.Sprintf("drop:%d:%s", m.N, m.Dir)
	case RelayReplay, RelayReorder:
		return fmt.Sprintf("%s:%d", m.Kind, m.N)
	case RelayDelay:
		return fmt.Sprintf("delay:%d", m.Delay.Milliseconds())
	}
	return string(m.Kind)
}

// maxRelayDelay bounds delay:MS.
const maxRelayDelay = 60 * time.Second

// ParseRelayMode parses a relay mode. "N" counts objects from 1 per
// connection and per direction; a request is an up object.
//
//	pass           forward everything unchanged.
//	tamper:N:DIR:BIT
//	               flip bit BIT of the Nth object in DIR (up or down).
//	               Bits count from the first payload byte after the 8-byte
//	               DOE header, most significant bit first (bit 0 is 0x80 of
//	               payload byte 0), modulo the payload's bit length. An
//	               object without payload has the bit flipped in its
//	               header instead (modulo the header's 64 bits).
//	drop:N:DIR     do not deliver the Nth object in DIR. Dropping a request
//	               means the device never sees it; dropping a response
//	               means the device answered but the guest never hears it.
//	               The connection stays open: the guest must time out.
//	replay:N       (N ≥ 2) do not forward request N; answer it with the
//	               response delivered to request N-1, byte for byte.
//	reorder[:N]    (N ≥ 2, default 2) forward requests N and N+1 to the
//	               device; answer request N with the response delivered to
//	               request N-1 and hold the device's response to N; answer
//	               request N+1 with that held response and discard the
//	               device's response to N+1. From then on, pass. (With one
//	               mailbox, shifting the responses by one is the reordering
//	               a host can do.)
//	delay:MS       hold every object, both ways, MS milliseconds (0 to
//	               60000) before forwarding it.
func ParseRelayMode(s string) (RelayMode, error) {
	parts := strings.Split(s, ":")
	bad := func(format string, a ...any) (RelayMode, error) {
		return RelayMode{}, fmt.Errorf("doe: relay mode %q: %s", s, fmt.Sprintf(format, a...))
	}
	index := func(p string, min int) (int, error) {
		n, err := strconv.Atoi(p)
		if err != nil || n < min {
			return 0, fmt.Errorf("object index %q is not a whole number of at least %d", p, min)
		}
		return n, nil
	}
	dir := func(p string) (string, error) {
		if p != DirUp && p != DirDown {
			return "", fmt.Errorf("direction %q is neither up (towards the device) nor down (towards the guest)", p)
		}
		return p, nil
	}
	want := func(n int, syntax string) error {
		if len(parts) != n {
			return fmt.Errorf("want %s", syntax)
		}
		return nil
	}
	m := RelayMode{Kind: RelayModeKind(parts[0])}
	var err error
	switch m.Kind {
	case RelayPass:
		err = want(1, "pass")
	case RelayTamper:
		if err = want(4, "tamper:N:DIR:BIT"); err != nil {
			break
		}
		if m.N, err = index(parts[1], 1); err != nil {
			break
		}
		if m.Dir, err = dir(parts[2]); err != nil {
			break
		}
		m.Bit, err = strconv.Atoi(parts[3])
		if err != nil || m.Bit < 0 {
			err = fmt.Errorf("bit %q is not a whole number of at least 0", parts[3])
		}
	case RelayDrop:
		if err = want(3, "drop:N:DIR"); err != nil {
			break
		}
		if m.N, err = index(parts[1], 1); err != nil {
			break
		}
		m.Dir, err = dir(parts[2])
	case RelayReplay:
		if err = want(2, "replay:N with N ≥ 2"); err != nil {
			break
		}
		m.N, err = index(parts[1], 2)
	case RelayReorder:
		if len(parts) == 1 {
			m.N = 2
			break
		}
		if err = want(2, "reorder or reorder:N with N ≥ 2"); err != nil {
			break
		}
		m.N, err = index(parts[1], 2)
	case RelayDelay:
		if err = want(2, "delay:MS"); err != nil {
			break
		}
		ms, perr := strconv.Atoi(parts[1])
		if perr != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxRelayDelay {
			err = fmt.Errorf("delay %q is not a whole number of milliseconds from 0 to %d", parts[1], maxRelayDelay.Milliseconds())
			break
		}
		m.Delay = time.Duration(ms) * time.Millisecond
	default:
		return bad("unknown mode %q (want pass, tamper:N:DIR:BIT, drop:N:DIR, replay:N, reorder[:N] or delay:MS)", parts[0])
	}
	if err != nil {
		return bad("%v", err)
	}
	return m, nil
}

func (r *Relay) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// Serve accepts connections on ln until Close is called or ln fails.
func (r *Relay) Serve(ln net.Listener) error {
	if _, _, err := ParseAddr(r.Upstream); err != nil {
		_ = ln.Close()
		return err
	}
	return r.acc.serve(ln, "relay", r.serveConn)
}

// Close stops accepting, ends every connection (and its upstream
// connection) and waits for their handlers to return.
func (r *Relay) Close() error {
	r.acc.close()
	return nil
}

// relayConn is the state of one relayed connection.
type relayConn struct {
	r          *Relay
	mode       RelayMode
	guest, dev net.Conn
	timeout    time.Duration
	stats      RelayStats
	// last is the last response frame delivered to the guest (replay,
	// reorder); held is the device's response held back by reorder.
	last, held *Frame
}

// errStop ends a connection without an error worth reporting.
var errStop = errors.New("connection ended by the guest")

func (r *Relay) serveConn(ctx context.Context, guest net.Conn) {
	defer guest.Close()
	log := r.logger().With("remote", guest.RemoteAddr().String(), "mode", r.Mode.String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timeout := withDefault(r.Timeout, 10*time.Second)
	c := &relayConn{r: r, mode: r.Mode, guest: guest, timeout: timeout}
	err := c.run(ctx)
	if errors.Is(err, errStop) {
		err = nil
	}
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("relay shut down: %w", err)
	}
	c.stats.Err = err
	msg := fmt.Sprintf("connection ended: objects up=%d down=%d", c.stats.Up, c.stats.Down)
	if err != nil {
		log.Info(msg, "err", err)
	} else {
		log.Info(msg)
	}
	if r.OnClose != nil {
		r.OnClose(c.stats)
	}
}

func (c *relayConn) run(ctx context.Context) error {
	network, address, err := ParseAddr(c.r.Upstream)
	if err != nil {
		return err
	}
	dctx, dcancel := context.WithTimeout(ctx, c.timeout)
	var d net.Dialer
	dev, err := d.DialContext(dctx, network, address)
	dcancel()
	if err != nil {
		return fmt.Errorf("doe: relay connecting to %s: %w", c.r.Upstream, err)
	}
	defer dev.Close()
	c.dev = dev
	// Cancellation (Close) reaches blocked reads and writes on both sides.
	stop := context.AfterFunc(ctx, func() {
		_ = c.guest.SetDeadline(time.Unix(1, 0))
		_ = dev.SetDeadline(time.Unix(1, 0))
	})
	defer stop()

	for ctx.Err() == nil {
		if err := c.guest.SetReadDeadline(time.Now().Add(withDefault(c.r.IdleTimeout, 10*time.Minute))); err != nil {
			return err
		}
		f, err := ReadFrame(c.guest, MaxFramePayload)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errStop
			}
			return fmt.Errorf("reading from the guest: %w", err)
		}
		if f.Command != CommandNormal {
			resp, err := c.exchange(f)
			if err != nil {
				return err
			}
			if err := c.write(c.guest, resp, "guest"); err != nil {
				return err
			}
			if f.Command == CommandShutdown || f.Command == CommandContinue {
				return errStop
			}
			continue
		}
		if err := c.request(ctx, f); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// request handles one NORMAL frame from the guest according to the mode.
func (c *relayConn) request(ctx context.Context, f Frame) error {
	c.stats.Up++
	c.stats.UpSizes = append(c.stats.UpSizes, max(len(f.Payload)-HeaderSize, 0))
	n, m := c.stats.Up, c.mode
	if err := c.sleep(ctx); err != nil {
		return err
	}
	switch {
	case m.Kind == RelayTamper && m.Dir == DirUp && m.N == n:
		f.Payload = flipBit(f.Payload, m.Bit)
	case m.Kind == RelayDrop && m.Dir == DirUp && m.N == n:
		return nil // the device never sees it; the guest waits in vain
	case m.Kind == RelayReplay && m.N == n:
		if c.last == nil {
			return fmt.Errorf("replay:%d: no earlier response to replay", n)
		}
		return c.deliver(ctx, *c.last)
	case m.Kind == RelayReorder && m.N == n:
		if c.last == nil {
			return fmt.Errorf("reorder:%d: no earlier response to answer with", n)
		}
		resp, err := c.exchangeCounted(f)
		if err != nil {
			return err
		}
		c.held = &resp
		return c.deliver(ctx, *c.last)
	case m.Kind == RelayReorder && m.N+1 == n && c.held != nil:
		if _, err := c.exchangeCounted(f); err != nil {
			return err
		}
		held := *c.held
		c.held = nil
		return c.deliver(ctx, held)
	}
	resp, err := c.exchangeCounted(f)
	if err != nil {
		return err
	}
	if resp.Command == CommandNormal {
		switch {
		case m.Kind == RelayTamper && m.Dir == DirDown && m.N == c.stats.Down:
			resp.Payload = flipBit(resp.Payload, m.Bit)
		case m.Kind == RelayDrop && m.Dir == DirDown && m.N == c.stats.Down:
			return nil // the device answered; the guest never hears it
		}
	}
	return c.deliver(ctx, resp)
}

// exchangeCounted forwards f to the device and counts a NORMAL response.
func (c *relayConn) exchangeCounted(f Frame) (Frame, error) {
	resp, err := c.exchange(f)
	if err != nil {
		return Frame{}, err
	}
	if resp.Command == CommandNormal {
		c.stats.Down++
		c.stats.DownSizes = append(c.stats.DownSizes, max(len(resp.Payload)-HeaderSize, 0))
	}
	return resp, nil
}

// exchange writes f to the device and reads its answer, within Timeout.
func (c *relayConn) exchange(f Frame) (Frame, error) {
	if err := c.write(c.dev, f, "device"); err != nil {
		return Frame{}, err
	}
	if err := c.dev.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return Frame{}, err
	}
	resp, err := ReadFrame(c.dev, MaxFramePayload)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Frame{}, fmt.Errorf("the device side closed the connection")
		}
		return Frame{}, fmt.Errorf("reading from the device side: %w", err)
	}
	return resp, nil
}

// deliver sends a response to the guest (after the mode's delay) and
// remembers it.
func (c *relayConn) deliver(ctx context.Context, resp Frame) error {
	if resp.Command == CommandNormal {
		if err := c.sleep(ctx); err != nil {
			return err
		}
	}
	c.last = &resp
	return c.write(c.guest, resp, "guest")
}

func (c *relayConn) write(conn net.Conn, f Frame, who string) error {
	if err := conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if err := WriteFrame(conn, f); err != nil {
		return fmt.Errorf("writing to the %s side: %w", who, err)
	}
	return nil
}

// sleep waits the mode's delay (delay mode only), or until ctx ends.
func (c *relayConn) sleep(ctx context.Context) error {
	if c.mode.Kind != RelayDelay || c.mode.Delay <= 0 {
		return nil
	}
	t := time.NewTimer(c.mode.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flipBit returns a copy of the object bytes b with one bit flipped (see
// ParseRelayMode, tamper).
func flipBit(b []byte, bit int) []byte {
	out := append([]byte(nil), b...)
	region := out
	if len(out) > HeaderSize {
		region = out[HeaderSize:]
	}
	if len(region) == 0 {
		return out
	}
	i := bit % (len(region) * 8)
	region[i/8] ^= 0x80 >> (i % 8)
	return out
}
