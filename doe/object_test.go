package doe_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/devattest/devattest/doe"
)

// rawObject builds object bytes by hand, independently of Encode, so that
// tests do not check Encode against itself.
func rawObject(dw0, dw1 uint32, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(b[0:], dw0)
	binary.LittleEndian.PutUint32(b[4:], dw1)
	return append(b, payload...)
}

func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8 + 1)
	}
	return b
}

func TestObjectConstants(t *testing.T) {
	if doe.MaxObjectSize != 1<<20 {
		t.Errorf("MaxObjectSize = %d, want 1 MiB", doe.MaxObjectSize)
	}
	if doe.MaxPayload != 1<<20-8 {
		t.Errorf("MaxPayload = %d, want 1 MiB - 8", doe.MaxPayload)
	}
	if doe.ProtocolCMA != (doe.Protocol{Vendor: 1, Type: 1}) || doe.ProtocolSecuredCMA != (doe.Protocol{Vendor: 1, Type: 2}) || doe.ProtocolDiscovery != (doe.Protocol{Vendor: 1, Type: 0}) {
		t.Errorf("PCI-SIG protocols wrong: %v %v %v", doe.ProtocolDiscovery, doe.ProtocolCMA, doe.ProtocolSecuredCMA)
	}
}

func TestObjectRoundTrip(t *testing.T) {
	cases := []struct {
		name    string
		obj     doe.Object
		wantDW1 uint32
	}{
		{"header only", doe.Object{Vendor: 0x0001, Type: 0}, 2},
		{"one DW", doe.Object{Vendor: 0x0001, Type: 1, Payload: []byte{0x10, 0x84, 0, 0}}, 3},
		{"4KiB", doe.Object{Vendor: 0x1E98, Type: 2, Payload: patterned(4096)}, 2 + 1024},
		{"vendor ffff type ff", doe.Object{Vendor: 0xFFFF, Type: 0xFF, Payload: patterned(12)}, 5},
		{"max", doe.Object{Vendor: 0x0001, Type: 2, Payload: patterned(doe.MaxPayload)}, 0},
		{"max minus one DW", doe.Object{Vendor: 0x0001, Type: 2, Payload: patterned(doe.MaxPayload - 4)}, 1<<18 - 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.obj.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(b) != 8+len(tc.obj.Payload) || len(b) != tc.obj.Size() || tc.obj.DWCount() != len(b)/4 {
				t.Fatalf("encoded %d bytes; Size %d DWCount %d, payload %d", len(b), tc.obj.Size(), tc.obj.DWCount(), len(tc.obj.Payload))
			}
			wantDW0 := uint32(tc.obj.Vendor) | uint32(tc.obj.Type)<<16
			if got := binary.LittleEndian.Uint32(b); got != wantDW0 {
				t.Errorf("DW0 = %#08x, want %#08x", got, wantDW0)
			}
			if got := binary.LittleEndian.Uint32(b[4:]); got != tc.wantDW1 {
				t.Errorf("DW1 = %#08x, want %#08x", got, tc.wantDW1)
			}
			if !bytes.Equal(b[8:], tc.obj.Payload) {
				t.Errorf("payload not copied verbatim")
			}
			// Independently built bytes decode to the same object.
			if !bytes.Equal(b, rawObject(wantDW0, tc.wantDW1, tc.obj.Payload)) {
				t.Errorf("Encode differs from the hand-built object")
			}
			got, err := doe.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got.Vendor != tc.obj.Vendor || got.Type != tc.obj.Type || !bytes.Equal(got.Payload, tc.obj.Payload) {
				t.Fatalf("round trip changed the object: %v/%d bytes", got.Protocol(), len(got.Payload))
			}
			if got.Protocol() != tc.obj.Protocol() {
				t.Errorf("Protocol() = %v", got.Protocol())
			}
			// Decode must copy: changing the input must not change the object.
			if len(b) > 8 {
				b[8] ^= 0xFF
				if got.Payload[0] == b[8] {
					t.Errorf("Decode aliases its input")
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	p3 := patterned(12) // 3 DW of payload; total 5 DW
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, doe.ErrMalformed},
		{"one byte", []byte{1}, doe.ErrMalformed},
		{"7 bytes", rawObject(1, 2, nil)[:7], doe.ErrMalformed},
		{"one DW", rawObject(1, 2, nil)[:4], doe.ErrMalformed},
		{"not DW multiple", rawObject(1, 3, []byte{1, 2, 3}), doe.ErrMalformed},
		{"not DW multiple +1", rawObject(1, 2, []byte{1}), doe.ErrMalformed},
		{"length field too large", rawObject(1, 6, p3), doe.ErrMalformed},
		{"length field too small", rawObject(1, 4, p3), doe.ErrMalformed},
		{"length field 2 with payload", rawObject(1, 2, p3), doe.ErrMalformed},
		{"length field 0 with short object", rawObject(1, 0, p3), doe.ErrMalformed},
		{"length field 1", rawObject(1, 1, nil), doe.ErrMalformed},
		{"length field 1 with payload", rawObject(1, 1, p3), doe.ErrMalformed},
		{"length field 0 header only", rawObject(1, 0, nil), doe.ErrMalformed},
		{"DW0 bit 24", rawObject(1|1<<24, 5, p3), doe.ErrMalformed},
		{"DW0 bit 31", rawObject(1|1<<31, 5, p3), doe.ErrMalformed},
		{"DW0 bits 31:24 all", rawObject(0xFF000001, 2, nil), doe.ErrMalformed},
		{"DW1 bit 18", rawObject(1, 5|1<<18, p3), doe.ErrMalformed},
		{"DW1 bit 31", rawObject(1, 5|1<<31, p3), doe.ErrMalformed},
		{"DW1 bits 31:18 all", rawObject(1, 0xFFFC0002, nil), doe.ErrMalformed},
		{"over 1 MiB by one DW", rawObject(1, 0, make([]byte, doe.MaxPayload+4)), doe.ErrTooLarge},
		{"over 1 MiB by one byte", rawObject(1, 0, make([]byte, doe.MaxPayload+1)), doe.ErrTooLarge},
		{"far over 1 MiB", rawObject(1, 0, make([]byte, 3<<20)), doe.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := doe.Decode(tc.in)
			if err == nil {
				t.Fatalf("Decode accepted %d bytes as %v with %d payload bytes", len(tc.in), o.Protocol(), len(o.Payload))
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error %q does not wrap %q", err, tc.want)
			}
			other := doe.ErrTooLarge
			if tc.want == doe.ErrTooLarge {
				other = doe.ErrMalformed
			}
			if errors.Is(err, other) {
				t.Errorf("Decode error %q wraps both ErrMalformed and ErrTooLarge", err)
			}
		})
	}
}

func TestDecodeHeader(t *testing.T) {
	cases := []struct {
		dw0, dw1 uint32
		p        doe.Protocol
		n        int
		ok       bool
	}{
		{0x00000001, 2, doe.ProtocolDiscovery, 2, true},
		{0x00010001, 3, doe.ProtocolCMA, 3, true},
		{0x00021E98, 0x3FFFF, doe.ProtocolCDAT, 1<<18 - 1, true},
		{0x00FFFFFF, 0, doe.Protocol{Vendor: 0xFFFF, Type: 0xFF}, 1 << 18, true},
		{0x00000001, 1, doe.Protocol{}, 0, false},
		{0x01000001, 2, doe.Protocol{}, 0, false},
		{0x80000001, 2, doe.Protocol{}, 0, false},
		{0x00000001, 1 << 18, doe.Protocol{}, 0, false},
		{0x00000001, 1<<31 | 2, doe.Protocol{}, 0, false},
	}
	for _, tc := range cases {
		p, n, err := doe.DecodeHeader(tc.dw0, tc.dw1)
		if !tc.ok {
			if err == nil || !errors.Is(err, doe.ErrMalformed) {
				t.Errorf("DecodeHeader(%#08x, %#08x) = %v, %d, %v; want ErrMalformed", tc.dw0, tc.dw1, p, n, err)
			}
			if n != 0 {
				t.Errorf("DecodeHeader(%#08x, %#08x) returned length %d with an error", tc.dw0, tc.dw1, n)
			}
			continue
		}
		if err != nil || p != tc.p || n != tc.n {
			t.Errorf("DecodeHeader(%#08x, %#08x) = %v, %d, %v; want %v, %d", tc.dw0, tc.dw1, p, n, err, tc.p, tc.n)
		}
	}
}

// No strict prefix of a valid object decodes: the length field is always
// checked against what was received.
func TestDecodeRejectsEveryPrefix(t *testing.T) {
	objs := []doe.Object{
		{Vendor: 1, Type: 0, Payload: []byte{0, 2, 0, 0}},
		{Vendor: 1, Type: 1, Payload: patterned(64)},
		{Vendor: 1, Type: 2, Payload: patterned(4096)},
	}
	for _, o := range objs {
		b, err := o.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(b); n++ {
			if got, err := doe.Decode(b[:n]); err == nil {
				t.Fatalf("prefix of %d of %d bytes decoded as %v (%d payload bytes)", n, len(b), got.Protocol(), len(got.Payload))
			} else if !errors.Is(err, doe.ErrMalformed) {
				t.Fatalf("prefix of %d bytes: error %v does not wrap ErrMalformed", n, err)
			}
		}
		// Nor does the object with trailing bytes appended.
		for _, extra := range [][]byte{{0}, {0, 0, 0, 0}, patterned(8)} {
			if _, err := doe.Decode(append(append([]byte(nil), b...), extra...)); !errors.Is(err, doe.ErrMalformed) {
				t.Fatalf("object plus %d trailing bytes: err = %v, want ErrMalformed", len(extra), err)
			}
		}
	}
	// The maximal object: every DW-aligned prefix length is rejected too
	// (the length field 0 means exactly 2^18 DW). Check a sample.
	max, err := doe.Object{Vendor: 1, Type: 1, Payload: make([]byte, doe.MaxPayload)}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{8, 12, 4096, doe.MaxObjectSize - 4} {
		if _, err := doe.Decode(max[:n]); !errors.Is(err, doe.ErrMalformed) {
			t.Fatalf("prefix of %d bytes of the maximal object: err = %v, want ErrMalformed", n, err)
		}
	}
}

func TestNewObjectPadding(t *testing.T) {
	for n := 0; n <= 9; n++ {
		in := patterned(n)
		o := doe.NewObject(doe.ProtocolCMA, in)
		want := (n + 3) / 4 * 4
		if len(o.Payload) != want {
			t.Fatalf("NewObject(%d bytes) payload %d bytes, want %d", n, len(o.Payload), want)
		}
		if !bytes.Equal(o.Payload[:n], in) {
			t.Fatalf("NewObject(%d bytes) changed the payload", n)
		}
		for i := n; i < want; i++ {
			if o.Payload[i] != 0 {
				t.Fatalf("NewObject(%d bytes) pad byte %d is %#x", n, i, o.Payload[i])
			}
		}
		if o.Protocol() != doe.ProtocolCMA {
			t.Fatalf("protocol %v", o.Protocol())
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("NewObject result fails Validate: %v", err)
		}
		if n > 0 {
			in[0] ^= 0xFF
			if o.Payload[0] == in[0] {
				t.Fatalf("NewObject aliases its input")
			}
		}
	}
}

func TestValidateAndEncodeErrors(t *testing.T) {
	cases := []struct {
		name string
		obj  doe.Object
		want error
	}{
		{"unpadded", doe.Object{Vendor: 1, Type: 1, Payload: []byte{1, 2, 3}}, doe.ErrMalformed},
		{"over max by one DW", doe.Object{Vendor: 1, Type: 1, Payload: make([]byte, doe.MaxPayload+4)}, doe.ErrTooLarge},
	}
	for _, tc := range cases {
		if err := tc.obj.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate = %v, want %v", tc.name, err, tc.want)
		}
		if b, err := tc.obj.Encode(); !errors.Is(err, tc.want) || b != nil {
			t.Errorf("%s: Encode = %d bytes, %v; want nil, %v", tc.name, len(b), err, tc.want)
		}
	}
}

func TestProtocolNames(t *testing.T) {
	for p, want := range map[doe.Protocol]string{
		doe.ProtocolDiscovery:            "DOE Discovery",
		doe.ProtocolCMA:                  "CMA/SPDM",
		doe.ProtocolSecuredCMA:           "Secured CMA/SPDM",
		doe.ProtocolCDAT:                 "CXL Table Access",
		{Vendor: 0x1234, Type: 7}:        "unknown protocol",
		{Vendor: doe.VendorCXL, Type: 0}: "unknown protocol",
	} {
		if got := p.Name(); got != want {
			t.Errorf("%#v.Name() = %q, want %q", p, got, want)
		}
	}
	if got := doe.ProtocolCMA.String(); got != "0001:01 (CMA/SPDM)" {
		t.Errorf("String() = %q", got)
	}
}

func TestCheckResponse(t *testing.T) {
	req := doe.NewObject(doe.ProtocolCMA, []byte{0x10, 0x84, 0, 0})
	if err := doe.CheckResponse(req, doe.NewObject(doe.ProtocolCMA, nil)); err != nil {
		t.Errorf("same protocol: %v", err)
	}
	for _, p := range []doe.Protocol{doe.ProtocolSecuredCMA, doe.ProtocolDiscovery, {Vendor: 2, Type: 1}} {
		if err := doe.CheckResponse(req, doe.NewObject(p, nil)); !errors.Is(err, doe.ErrUnexpectedResponse) {
			t.Errorf("response %v: err = %v, want ErrUnexpectedResponse", p, err)
		}
	}
}
