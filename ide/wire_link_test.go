package ide

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/devattest/devattest/doe"
)

func sampleTLP(h, d int) *TLP {
	t := &TLP{Stream: 7, Sub: CPL, KeySet: K1, Header: make([]byte, h), Data: make([]byte, d)}
	for i := range t.Header {
		t.Header[i] = byte(0x40 + i)
	}
	for i := range t.Data {
		t.Data[i] = byte(i*7 + 1)
	}
	return t
}

// wireSamples is one valid encoding of every shape: requests and
// responses, with and without a TLP, every padding length, the bounds.
func wireSamples(t testing.TB) (reqs []*LinkRequest, resps []*LinkResponse) {
	t.Helper()
	reqs = append(reqs, &LinkRequest{Op: LinkOpHello}, &LinkRequest{Op: LinkOpHello, Port: 255})
	for _, hd := range [][2]int{{4, MACSize}, {8, MACSize + 1}, {12, MACSize + 2}, {16, MACSize + 3}, {MaxLinkHeader, MaxLinkData + MACSize}} {
		tlp := sampleTLP(hd[0], hd[1])
		tlp.Sub, tlp.KeySet = SubStream(hd[0]/4%3), KeySet(hd[1]&1)
		reqs = append(reqs, &LinkRequest{Op: LinkOpTLP, Port: 1, TLP: tlp})
		resps = append(resps, &LinkResponse{Op: LinkOpTLP, TLP: tlp})
	}
	for s := LinkOK; s <= linkStatusMax; s++ {
		resps = append(resps, &LinkResponse{Op: LinkOpHello, Status: s})
		if s != LinkOK {
			resps = append(resps, &LinkResponse{Op: LinkOpTLP, Status: s})
		}
	}
	return reqs, resps
}

func TestLinkWireRoundTrip(t *testing.T) {
	reqs, resps := wireSamples(t)
	check := func(name string, b []byte, parse func([]byte) (any, error), want any) {
		t.Helper()
		if len(b)%4 != 0 || len(b) > MaxLinkPayload {
			t.Fatalf("%s: %d bytes", name, len(b))
		}
		got, err := parse(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: parsed %+v, %v; want %+v", name, got, err, want)
		}
		// Exact: no strict prefix and no longer buffer decodes.
		for i := range len(b) {
			if _, err := parse(b[:i]); !errors.Is(err, ErrLinkMalformed) {
				t.Fatalf("%s: the %d-byte prefix of %d: %v", name, i, len(b), err)
			}
		}
		if _, err := parse(append(bytes.Clone(b), 0, 0, 0, 0)); !errors.Is(err, ErrLinkMalformed) {
			t.Fatalf("%s: 4 extra zero bytes: %v", name, err)
		}
	}
	for i, r := range reqs {
		b, err := r.Marshal()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		check("request", b, func(b []byte) (any, error) { return ParseLinkRequest(b) }, r)
	}
	for i, r := range resps {
		b, err := r.Marshal()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		check("response", b, func(b []byte) (any, error) { return ParseLinkResponse(b) }, r)
	}
	// The layout, pinned.
	b, err := (&LinkRequest{Op: LinkOpTLP, Port: 1, TLP: &TLP{Stream: 5, Sub: NPR, KeySet: K1, Header: []byte{1, 2, 3, 4}, Data: bytes.Repeat([]byte{9}, 13)}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x02, 0x01, 0x05, 0x05, 4, 0, 13, 0, 1, 2, 3, 4}, bytes.Repeat([]byte{9}, 13)...)
	want = append(want, 0, 0, 0)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding\n got % x\nwant % x", b, want)
	}
}

func TestLinkWireBad(t *testing.T) {
	good, err := (&LinkRequest{Op: LinkOpTLP, Port: 1, TLP: sampleTLP(8, MACSize+1)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	setH := func(h int) []byte {
		return edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[4:], uint16(h)); return b })
	}
	setD := func(d int) []byte {
		return edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[6:], uint16(d)); return b })
	}
	reqCases := map[string][]byte{
		"empty":                   nil,
		"head only 7 bytes":       good[:7],
		"unknown op":              edit(func(b []byte) []byte { b[0] = 0x03; return b }),
		"op 0":                    edit(func(b []byte) []byte { b[0] = 0; return b }),
		"hello with a TLP":        edit(func(b []byte) []byte { b[0] = LinkOpHello; return b }),
		"TLP op without a TLP":    {LinkOpTLP, 1, 0, 0, 0, 0, 0, 0},
		"no TLP, stream set":      {LinkOpHello, 0, 1, 0, 0, 0, 0, 0},
		"no TLP, prefix set":      {LinkOpHello, 0, 0, 4, 0, 0, 0, 0},
		"no TLP, extra DW":        {LinkOpHello, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"reserved prefix bit 3":   edit(func(b []byte) []byte { b[3] |= 0x08; return b }),
		"reserved prefix bit 7":   edit(func(b []byte) []byte { b[3] |= 0x80; return b }),
		"sub-stream 3":            edit(func(b []byte) []byte { b[3] |= 3; return b }),
		"header 0, data set":      setH(0),
		"header not whole DWs":    setH(7),
		"header over the bound":   setH(MaxLinkHeader + 4),
		"data shorter than MAC":   setD(MACSize - 1),
		"data over the bound":     setD(MaxLinkData + MACSize + 1),
		"data longer than sent":   setD(MACSize + 5),
		"header longer than sent": setH(12),
		"non-zero padding":        edit(func(b []byte) []byte { b[len(b)-1] = 1; return b }),
		"one byte short":          good[:len(good)-1],
		"over the payload bound":  make([]byte, MaxLinkPayload+1),
	}
	for name, b := range reqCases {
		if r, err := ParseLinkRequest(b); !errors.Is(err, ErrLinkMalformed) {
			t.Errorf("request %s: %+v, %v", name, r, err)
		}
	}
	tlpResp, err := (&LinkResponse{Op: LinkOpTLP, TLP: sampleTLP(4, MACSize)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	respCases := map[string][]byte{
		"status 6":                      {LinkOpHello, 6, 0, 0, 0, 0, 0, 0},
		"TLP op, OK, no TLP":            {LinkOpTLP, 0, 0, 0, 0, 0, 0, 0},
		"TLP op, refusal with a TLP":    append([]byte{LinkOpTLP, byte(LinkIntegrity)}, tlpResp[2:]...),
		"hello with a TLP":              append([]byte{LinkOpHello, 0}, tlpResp[2:]...),
		"unknown op":                    {0x7F, 0, 0, 0, 0, 0, 0, 0},
		"TLP response one byte short":   tlpResp[:len(tlpResp)-1],
		"TLP response with an extra DW": append(bytes.Clone(tlpResp), 0, 0, 0, 0),
	}
	for name, b := range respCases {
		if r, err := ParseLinkResponse(b); !errors.Is(err, ErrLinkMalformed) {
			t.Errorf("response %s: %+v, %v", name, r, err)
		}
	}
	// Marshal refuses what it could not encode exactly.
	for name, r := range map[string]*LinkRequest{
		"unknown op":      {Op: 9},
		"TLP op, no TLP":  {Op: LinkOpTLP},
		"hello with TLP":  {Op: LinkOpHello, TLP: sampleTLP(4, MACSize)},
		"header 3 bytes":  {Op: LinkOpTLP, TLP: sampleTLP(3, MACSize)},
		"header 0 bytes":  {Op: LinkOpTLP, TLP: sampleTLP(0, MACSize)},
		"header 68 bytes": {Op: LinkOpTLP, TLP: sampleTLP(MaxLinkHeader+4, MACSize)},
		"data 11 bytes":   {Op: LinkOpTLP, TLP: sampleTLP(4, MACSize-1)},
		"data too long":   {Op: LinkOpTLP, TLP: sampleTLP(4, MaxLinkData+MACSize+1)},
		"sub-stream 3":    {Op: LinkOpTLP, TLP: &TLP{Sub: 3, Header: make([]byte, 4), Data: make([]byte, MACSize)}},
		"key set 2":       {Op: LinkOpTLP, TLP: &TLP{KeySet: 2, Header: make([]byte, 4), Data: make([]byte, MACSize)}},
	} {
		if b, err := r.Marshal(); !errors.Is(err, ErrLinkMalformed) {
			t.Errorf("marshal %s: % x, %v", name, b, err)
		}
	}
	if b, err := (&LinkResponse{Op: LinkOpHello, Status: 6}).Marshal(); !errors.Is(err, ErrLinkMalformed) {
		t.Errorf("marshal status 6: % x, %v", b, err)
	}
}

// viaDOE is a Mailbox to a DOE handler that takes every object through
// its wire form both ways, as the socket framing does.
func viaDOE(h func(context.Context, doe.Object) (doe.Object, error)) doe.Mailbox {
	return doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		b, err := req.Encode()
		if err != nil {
			return doe.Object{}, err
		}
		if req, err = doe.Decode(b); err != nil {
			return doe.Object{}, err
		}
		resp, err := h(ctx, req)
		if err != nil {
			return doe.Object{}, err
		}
		if b, err = resp.Encode(); err != nil {
			return doe.Object{}, err
		}
		return doe.Decode(b)
	})
}

// linkKinds builds the device end of a fixture's link, in process and
// over DOE: every scenario must come out the same through both.
var linkKinds = map[string]func(t *testing.T, f *fixture, port uint8) DeviceLink{
	"in-process": func(t *testing.T, f *fixture, port uint8) DeviceLink {
		ks, ok := f.dev.Port(port)
		if !ok {
			t.Fatalf("no port %d", port)
		}
		return NewLocalLink(ks)
	},
	"over DOE": func(t *testing.T, f *fixture, port uint8) DeviceLink {
		return NewRemoteLink(viaDOE(DeviceLinkHandler(f.dev)))
	},
}

func TestRemoteLinkHello(t *testing.T) {
	f := newFixture(t)
	r := NewRemoteLink(viaDOE(DeviceLinkHandler(f.dev)))
	if err := r.Hello(f.ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Hello(f.ctx, 9); !errors.Is(err, ErrNoLinkPort) {
		t.Fatalf("hello to port 9: %v", err)
	}
	if _, err := r.Exchange(f.ctx, 9, *sampleTLP(4, MACSize)); !errors.Is(err, ErrNoLinkPort) {
		t.Fatalf("a TLP to port 9: %v", err)
	}
	// A malformed request sets the device's DOE Error bit: a handler error.
	h := DeviceLinkHandler(f.dev)
	if _, err := h(f.ctx, doe.NewObject(LinkProtocol, []byte{LinkOpTLP, 1, 0, 0, 0, 0, 0, 0})); !errors.Is(err, ErrLinkMalformed) {
		t.Fatalf("malformed request: %v", err)
	}
	if _, err := h(f.ctx, doe.NewObject(doe.ProtocolCMA, []byte{LinkOpHello, 1, 0, 0, 0, 0, 0, 0})); !errors.Is(err, ErrLinkMalformed) {
		t.Fatalf("another protocol: %v", err)
	}
	// A refusal on the way (a shim) comes back as doe.ErrRefused.
	refusing := NewRemoteLink(doe.MailboxFunc(func(context.Context, doe.Object) (doe.Object, error) {
		return doe.Object{}, &doe.RemoteError{Reason: "not allowed"}
	}))
	if err := refusing.Hello(f.ctx, 1); !errors.Is(err, doe.ErrRefused) {
		t.Fatalf("refused hello: %v", err)
	}
	// A response of another protocol, or for another op, is refused.
	wrong := NewRemoteLink(doe.MailboxFunc(func(context.Context, doe.Object) (doe.Object, error) {
		return doe.NewObject(LinkProtocol, []byte{LinkOpTLP, 0, 0, 0, 0, 0, 0, 0}), nil
	}))
	if err := wrong.Hello(f.ctx, 1); !errors.Is(err, ErrLinkMalformed) {
		t.Fatalf("answer with another op: %v", err)
	}
	other := NewRemoteLink(doe.MailboxFunc(func(context.Context, doe.Object) (doe.Object, error) {
		return doe.NewObject(doe.ProtocolCMA, []byte{LinkOpHello, 0, 0, 0, 0, 0, 0, 0}), nil
	}))
	if err := other.Hello(f.ctx, 1); !errors.Is(err, doe.ErrUnexpectedResponse) {
		t.Fatalf("answer of another protocol: %v", err)
	}
}

// TestDeviceLinkScenarios: good traffic, wrong key, a stale key set after
// rotation, replay, tampering and an unkeyed stream, through the device
// end in process and over DOE, with the same typed errors.
func TestDeviceLinkScenarios(t *testing.T) {
	for kind, mk := range linkKinds {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t)
			const port, stream = 1, 3
			link := mk(t, f, port)
			rp := NewLinkEnd(f.rp)
			if err := f.q.ProgramKeySet(f.ctx, port, stream, K0); err != nil {
				t.Fatal(err)
			}
			if err := f.q.Go(f.ctx, port, stream, K0); err != nil {
				t.Fatal(err)
			}
			// Good.
			if err := CheckDeviceLink(f.ctx, link, port, rp, stream); err != nil {
				t.Fatalf("K0: %v", err)
			}
			hdr := []byte{0x40, 0, 0, 9}
			// Replay: a TLP that went through once fails the second time.
			tl, err := rp.Send(stream, NPR, hdr, []byte("once"))
			if err != nil {
				t.Fatal(err)
			}
			back, err := link.Exchange(f.ctx, port, tl)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := rp.Receive(back); err != nil || string(got) != "once" {
				t.Fatalf("echo %q %v", got, err)
			}
			if _, err := link.Exchange(f.ctx, port, tl); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("replay: %v", err)
			}
			// Tampering with the header (part of the AAD).
			tl, err = rp.Send(stream, PR, hdr, []byte("tampered"))
			if err != nil {
				t.Fatal(err)
			}
			bad := tl
			bad.Header = []byte{0x40, 0, 0, 8}
			if _, err := link.Exchange(f.ctx, port, bad); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("tampered header: %v", err)
			}
			// A stream with no keys at the device.
			nokey := tl
			nokey.Stream = stream + 1
			if _, err := link.Exchange(f.ctx, port, nokey); !errors.Is(err, ErrNoKey) {
				t.Fatalf("unkeyed stream: %v", err)
			}
			// Wrong key: a root port holding keys of its own.
			other := &SimRootPort{}
			for _, d := range Directions {
				for _, s := range SubStreams {
					var k [KeySize]byte
					k[0] = 0xEE
					if err := other.ProgramKey(f.ctx, stream, K0, d, s, &k, 1); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := other.Go(f.ctx, stream, K0); err != nil {
				t.Fatal(err)
			}
			wrong, err := NewLinkEnd(other).Send(stream, CPL, hdr, []byte("wrong key"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := link.Exchange(f.ctx, port, wrong); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("wrong key: %v", err)
			}
			// A TLP made under K0 but held back past a rotation is stale.
			held, err := rp.Send(stream, CPL, hdr, []byte("held back"))
			if err != nil {
				t.Fatal(err)
			}
			if ks, err := f.q.Rotate(f.ctx, port, stream); err != nil || ks != K1 {
				t.Fatalf("rotate: %v %v", ks, err)
			}
			if _, err := link.Exchange(f.ctx, port, held); !errors.Is(err, ErrKeySetNotInUse) {
				t.Fatalf("K0 TLP after rotation: %v", err)
			}
			// K1 traffic is good, with fresh counters.
			if err := CheckDeviceLink(f.ctx, link, port, rp, stream); err != nil {
				t.Fatalf("K1: %v", err)
			}
			// After STOP, no key at all.
			tl, err = rp.Send(stream, PR, hdr, []byte("before stop"))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.q.Stop(f.ctx, port, stream); err != nil {
				t.Fatal(err)
			}
			if _, err := link.Exchange(f.ctx, port, tl); !errors.Is(err, ErrNoKey) {
				t.Fatalf("after STOP: %v", err)
			}
		})
	}
}

// TestRunCheckRemoteLink: RunCheck's link steps run over DOE with no key
// crossing, and fail when the device end is not the one keyed.
func TestRunCheckRemoteLink(t *testing.T) {
	f := newFixture(t)
	steps, err := RunCheck(f.ctx, f.ss, f.rp, CheckOptions{Version: f.v, Port: 1, Stream: 2, Link: NewRemoteLink(viaDOE(DeviceLinkHandler(f.dev)))})
	for _, s := range steps {
		t.Log(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 9 {
		t.Fatalf("%d steps", len(steps))
	}
	for _, s := range steps {
		if s.Skipped || s.Err != nil {
			t.Errorf("step %s", s)
		}
	}

	// A device end whose keys are another device's: the first link step
	// fails with the device's verdict.
	g := newFixture(t)
	stranger, err := NewResponder(DefaultResponderConfig())
	if err != nil {
		t.Fatal(err)
	}
	steps, err = RunCheck(g.ctx, g.ss, g.rp, CheckOptions{Version: g.v, Port: 1, Link: NewRemoteLink(viaDOE(DeviceLinkHandler(stranger)))})
	if !errors.Is(err, ErrNoKey) || len(steps) != 5 || steps[4].Name != "link check K0" {
		t.Fatalf("a device end without the keys: %v, %v", err, steps)
	}

	// Neither Device nor Link: skipped, with the reason given.
	h := newFixture(t)
	steps, err = RunCheck(h.ctx, h.ss, h.rp, CheckOptions{Version: h.v, Port: 1, SkipReason: "no link here"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range steps {
		if s.Skipped {
			n++
			if s.Detail != "no link here" {
				t.Errorf("skip detail %q", s.Detail)
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d skipped: %v", n, steps)
	}
}

func FuzzLinkRequest(f *testing.F) {
	reqs, _ := wireSamples(f)
	for _, r := range reqs {
		b, _ := r.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseLinkRequest(b)
		if err != nil {
			return
		}
		got, err := r.Marshal()
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs: %v\n got % x\nwant % x", err, got, b)
		}
	})
}

func FuzzLinkResponse(f *testing.F) {
	_, resps := wireSamples(f)
	for _, r := range resps {
		b, _ := r.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseLinkResponse(b)
		if err != nil {
			return
		}
		got, err := r.Marshal()
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs: %v\n got % x\nwant % x", err, got, b)
		}
	})
}
