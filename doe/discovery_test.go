package doe_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/devattest/devattest/doe"
)

func TestDiscoveryVersion(t *testing.T) {
	for capVer, want := range map[int]uint8{0: 0, 1: 0, 2: 2, 3: 2, 15: 2} {
		if got := doe.DiscoveryVersion(capVer); got != want {
			t.Errorf("DiscoveryVersion(%d) = %d, want %d", capVer, got, want)
		}
	}
}

func TestDiscoveryRequest(t *testing.T) {
	for _, tc := range []struct{ index, version uint8 }{{0, 0}, {1, 2}, {0xFF, 0xFF}, {7, 0}} {
		o := doe.EncodeDiscoveryRequest(tc.index, tc.version)
		b, err := o.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want := rawObject(0x00000001, 3, []byte{tc.index, tc.version, 0, 0})
		if string(b) != string(want) {
			t.Fatalf("request(%d, %d) = % x, want % x", tc.index, tc.version, b, want)
		}
		dec, err := doe.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		index, version, err := doe.DecodeDiscoveryRequest(dec)
		if err != nil || index != tc.index || version != tc.version {
			t.Fatalf("DecodeDiscoveryRequest = %d, %d, %v; want %d, %d", index, version, err, tc.index, tc.version)
		}
	}
}

func TestDiscoveryRequestErrors(t *testing.T) {
	withDW := func(dw uint32) doe.Object {
		p := make([]byte, 4)
		binary.LittleEndian.PutUint32(p, dw)
		return doe.Object{Vendor: doe.VendorPCISIG, Type: doe.TypeDiscovery, Payload: p}
	}
	for name, o := range map[string]doe.Object{
		"reserved bit 16":     withDW(1 << 16),
		"reserved bit 31":     withDW(1<<31 | 3),
		"reserved bits 31:16": withDW(0xFFFF0000),
		"empty payload":       {Vendor: 1, Type: 0},
		"two DW":              {Vendor: 1, Type: 0, Payload: make([]byte, 8)},
		"short payload":       {Vendor: 1, Type: 0, Payload: []byte{0, 2}},
		"CMA protocol":        {Vendor: 1, Type: 1, Payload: make([]byte, 4)},
		"other vendor type 0": {Vendor: 0x1E98, Type: 0, Payload: make([]byte, 4)},
	} {
		if i, v, err := doe.DecodeDiscoveryRequest(o); !errors.Is(err, doe.ErrMalformed) {
			t.Errorf("%s: DecodeDiscoveryRequest = %d, %d, %v; want ErrMalformed", name, i, v, err)
		}
	}
}

func TestDiscoveryResponse(t *testing.T) {
	for _, tc := range []struct {
		p    doe.Protocol
		next uint8
	}{
		{doe.ProtocolDiscovery, 1}, {doe.ProtocolCMA, 2}, {doe.ProtocolSecuredCMA, 0},
		{doe.Protocol{Vendor: 0xFFFF, Type: 0xFF}, 0xFF}, {doe.ProtocolCDAT, 0x80},
	} {
		o := doe.EncodeDiscoveryResponse(tc.p, tc.next)
		b, err := o.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var want [4]byte
		binary.LittleEndian.PutUint16(want[:], tc.p.Vendor)
		want[2], want[3] = tc.p.Type, tc.next
		if string(b) != string(rawObject(1, 3, want[:])) {
			t.Fatalf("response(%v, %d) = % x", tc.p, tc.next, b)
		}
		dec, err := doe.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		p, next, err := doe.DecodeDiscoveryResponse(dec)
		if err != nil || p != tc.p || next != tc.next {
			t.Fatalf("DecodeDiscoveryResponse = %v, %d, %v; want %v, %d", p, next, err, tc.p, tc.next)
		}
	}
	// Wrong protocol is an unexpected response; wrong length is malformed.
	if _, _, err := doe.DecodeDiscoveryResponse(doe.NewObject(doe.ProtocolCMA, make([]byte, 4))); !errors.Is(err, doe.ErrUnexpectedResponse) {
		t.Errorf("CMA object as discovery response: err = %v, want ErrUnexpectedResponse", err)
	}
	for _, n := range []int{0, 2, 8} {
		o := doe.Object{Vendor: 1, Type: 0, Payload: make([]byte, n)}
		if _, _, err := doe.DecodeDiscoveryResponse(o); !errors.Is(err, doe.ErrMalformed) {
			t.Errorf("%d-byte discovery response: err = %v, want ErrMalformed", n, err)
		}
	}
}

// discoTable is a fake DOE instance answering discovery from a list of entries.
type discoTable struct {
	entries  map[uint8]uint32 // index -> response DW
	asked    []uint8
	versions []uint8
	reply    func(index uint8) (doe.Object, error) // overrides entries if set
}

func (d *discoTable) mailbox() doe.Mailbox {
	return doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		index, version, err := doe.DecodeDiscoveryRequest(req)
		if err != nil {
			return doe.Object{}, err
		}
		d.asked = append(d.asked, index)
		d.versions = append(d.versions, version)
		if d.reply != nil {
			return d.reply(index)
		}
		dw, ok := d.entries[index]
		if !ok {
			dw = 0x00FFFFFF
		}
		p := make([]byte, 4)
		binary.LittleEndian.PutUint32(p, dw)
		return doe.Object{Vendor: 1, Type: 0, Payload: p}, nil
	})
}

func entry(p doe.Protocol, next uint8) uint32 {
	return uint32(p.Vendor) | uint32(p.Type)<<16 | uint32(next)<<24
}

func TestDiscoverWalk(t *testing.T) {
	vendor := doe.Protocol{Vendor: 0x1234, Type: 7}
	d := &discoTable{entries: map[uint8]uint32{
		0: entry(doe.ProtocolDiscovery, 1),
		1: entry(doe.ProtocolCMA, 5), // indices need not be consecutive
		5: entry(doe.ProtocolSecuredCMA, 2),
		2: entry(vendor, 0),
	}}
	got, err := doe.Discover(context.Background(), d.mailbox(), 2)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	want := []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA, vendor}
	if !slices.Equal(got, want) {
		t.Fatalf("Discover = %v, want %v", got, want)
	}
	if !slices.Equal(d.asked, []uint8{0, 1, 5, 2}) {
		t.Errorf("indices asked %v", d.asked)
	}
	for _, v := range d.versions {
		if v != 2 {
			t.Errorf("request version %d, want 2", v)
		}
	}

	// A single-entry table, discovery version 0.
	d = &discoTable{entries: map[uint8]uint32{0: entry(doe.ProtocolDiscovery, 0)}}
	got, err = doe.Discover(context.Background(), d.mailbox(), 0)
	if err != nil || !slices.Equal(got, []doe.Protocol{doe.ProtocolDiscovery}) {
		t.Fatalf("one entry: %v, %v", got, err)
	}
	if !slices.Equal(d.versions, []uint8{0}) {
		t.Errorf("versions %v, want [0]", d.versions)
	}
}

func TestDiscoverLoop(t *testing.T) {
	for name, entries := range map[string]map[uint8]uint32{
		"to itself": {0: entry(doe.ProtocolDiscovery, 1), 1: entry(doe.ProtocolCMA, 1)},
		"back to 1": {0: entry(doe.ProtocolDiscovery, 1), 1: entry(doe.ProtocolCMA, 2), 2: entry(doe.ProtocolSecuredCMA, 1)},
	} {
		d := &discoTable{entries: entries}
		got, err := doe.Discover(context.Background(), d.mailbox(), 2)
		if !errors.Is(err, doe.ErrMalformed) || !strings.Contains(err.Error(), "loop") {
			t.Errorf("%s: Discover = %v, %v; want a loop error", name, got, err)
		}
		if len(d.asked) > len(entries) {
			t.Errorf("%s: asked %d times for %d entries", name, len(d.asked), len(entries))
		}
	}
	// A device that lists every index 0..255 and then points back to 1.
	d := &discoTable{reply: func(index uint8) (doe.Object, error) {
		next := index + 1
		if index == 255 {
			next = 1
		}
		return doe.EncodeDiscoveryResponse(doe.Protocol{Vendor: 0x1234, Type: index}, next), nil
	}}
	got, err := doe.Discover(context.Background(), d.mailbox(), 0)
	if !errors.Is(err, doe.ErrMalformed) {
		t.Fatalf("256-entry loop: err = %v", err)
	}
	if len(got) != 256 || len(d.asked) != 256 {
		t.Fatalf("256-entry loop: %d entries, %d requests; want 256 of each", len(got), len(d.asked))
	}
}

func TestDiscoverFullTable(t *testing.T) {
	// 256 entries (the whole 8-bit index space), last one ends with next 0.
	d := &discoTable{reply: func(index uint8) (doe.Object, error) {
		next := index + 1 // wraps to 0 after 255: end of walk
		return doe.EncodeDiscoveryResponse(doe.Protocol{Vendor: 0x1234, Type: index}, next), nil
	}}
	got, err := doe.Discover(context.Background(), d.mailbox(), 0)
	if err != nil || len(got) != 256 {
		t.Fatalf("full table: %d entries, %v", len(got), err)
	}
}

func TestDiscoverVendorFFFF(t *testing.T) {
	d := &discoTable{entries: map[uint8]uint32{
		0: entry(doe.ProtocolDiscovery, 1),
		1: entry(doe.ProtocolCMA, 2),
		// index 2 missing: the fake answers vendor 0xFFFF as QEMU does.
	}}
	got, err := doe.Discover(context.Background(), d.mailbox(), 2)
	if !errors.Is(err, doe.ErrMalformed) || !strings.Contains(err.Error(), "index 2") {
		t.Fatalf("Discover = %v, %v; want ErrMalformed naming index 2", got, err)
	}
	if !slices.Equal(got, []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCMA}) {
		t.Errorf("partial result %v", got)
	}
	// Vendor 0xFFFF at index 0.
	d = &discoTable{entries: map[uint8]uint32{}}
	if got, err := doe.Discover(context.Background(), d.mailbox(), 2); !errors.Is(err, doe.ErrMalformed) || len(got) != 0 {
		t.Fatalf("empty table: %v, %v", got, err)
	}
}

func TestDiscoverWrongResponse(t *testing.T) {
	for name, resp := range map[string]doe.Object{
		"CMA protocol":      doe.NewObject(doe.ProtocolCMA, []byte{1, 0, 1, 0}),
		"other vendor":      {Vendor: 0x1E98, Type: 0, Payload: []byte{1, 0, 1, 0}},
		"short payload":     {Vendor: 1, Type: 0},
		"two-DW payload":    {Vendor: 1, Type: 0, Payload: make([]byte, 8)},
		"secured CMA reply": doe.NewObject(doe.ProtocolSecuredCMA, nil),
	} {
		d := &discoTable{reply: func(index uint8) (doe.Object, error) {
			if index == 0 {
				return doe.EncodeDiscoveryResponse(doe.ProtocolDiscovery, 3), nil
			}
			return resp, nil
		}}
		got, err := doe.Discover(context.Background(), d.mailbox(), 2)
		if err == nil || !(errors.Is(err, doe.ErrUnexpectedResponse) || errors.Is(err, doe.ErrMalformed)) {
			t.Errorf("%s: Discover = %v, %v", name, got, err)
			continue
		}
		if !strings.Contains(err.Error(), "index 3") {
			t.Errorf("%s: error %q does not name index 3", name, err)
		}
		if resp.Vendor != 1 || resp.Type != 0 {
			if !errors.Is(err, doe.ErrUnexpectedResponse) {
				t.Errorf("%s: err = %v, want ErrUnexpectedResponse", name, err)
			}
		}
	}
}

func TestDiscoverErrorPropagation(t *testing.T) {
	sentinel := errors.New("mailbox on fire")
	d := &discoTable{reply: func(index uint8) (doe.Object, error) {
		if index == 4 {
			return doe.Object{}, fmt.Errorf("%w: %w", doe.ErrTimeout, sentinel)
		}
		return doe.EncodeDiscoveryResponse(doe.Protocol{Vendor: 1, Type: index}, index+2), nil
	}}
	got, err := doe.Discover(context.Background(), d.mailbox(), 2)
	if !errors.Is(err, sentinel) || !errors.Is(err, doe.ErrTimeout) {
		t.Fatalf("err = %v, want the mailbox error wrapped", err)
	}
	if !strings.Contains(err.Error(), "discovery index 4") {
		t.Errorf("error %q does not name index 4", err)
	}
	if !slices.Equal(got, []doe.Protocol{{Vendor: 1, Type: 0}, {Vendor: 1, Type: 2}}) {
		t.Errorf("partial result %v", got)
	}

	// The context reaches the mailbox.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mb := doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		if err := ctx.Err(); err != nil {
			return doe.Object{}, err
		}
		return doe.EncodeDiscoveryResponse(doe.ProtocolDiscovery, 0), nil
	})
	if _, err := doe.Discover(ctx, mb, 0); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "index 0") {
		t.Fatalf("cancelled context: err = %v", err)
	}
}
