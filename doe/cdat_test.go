package doe_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/devattest/devattest/doe"
)

// cdatTable builds a CDAT with a correct header (length, checksum) around
// the given structures.
func cdatTable(structs ...[]byte) []byte {
	t := make([]byte, doe.CDATHeaderSize)
	t[4] = 1 // revision
	binary.LittleEndian.PutUint32(t[12:], 7)
	for _, s := range structs {
		t = append(t, s...)
	}
	binary.LittleEndian.PutUint32(t, uint32(len(t)))
	var sum byte
	for _, b := range t {
		sum += b
	}
	t[5] = -sum
	return t
}

// cdatStruct is a structure of type typ and n bytes (n ≥ 4).
func cdatStruct(typ uint8, n int) []byte {
	s := make([]byte, n)
	s[0] = typ
	binary.LittleEndian.PutUint16(s[2:], uint16(n))
	for i := 4; i < n; i++ {
		s[i] = byte(i * int(typ+3))
	}
	return s
}

// cdatResponder serves table's entries (header first, then each
// structure) the way QEMU's CXL type-3 model does, counting requests.
func cdatResponder(t *testing.T, table []byte, calls *int) doe.Mailbox {
	entries := [][]byte{table[:doe.CDATHeaderSize]}
	for off := doe.CDATHeaderSize; off < len(table); {
		n := int(binary.LittleEndian.Uint16(table[off+2:]))
		entries = append(entries, table[off:off+n])
		off += n
	}
	return doe.MailboxFunc(func(_ context.Context, req doe.Object) (doe.Object, error) {
		*calls++
		h, err := doe.DecodeCDATRequest(req)
		if err != nil {
			t.Errorf("responder got a bad request: %v", err)
			return doe.Object{}, err
		}
		if int(h) >= len(entries) {
			t.Errorf("responder asked for handle %d of %d", h, len(entries))
			return doe.Object{}, doe.ErrMalformed
		}
		next := uint16(h + 1)
		if int(next) == len(entries) {
			next = doe.CDATLastHandle
		}
		return doe.EncodeCDATResponse(next, entries[h]), nil
	})
}

func TestCDATRequestWire(t *testing.T) {
	b, err := doe.EncodeCDATRequest(0x1234).Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Vendor 0x1E98 type 2, 3 DW; code 0, table type 0, handle 0x1234.
	want := []byte{0x98, 0x1e, 0x02, 0x00, 0x03, 0, 0, 0, 0x00, 0x00, 0x34, 0x12}
	if !bytes.Equal(b, want) {
		t.Fatalf("request = % x, want % x", b, want)
	}
}

func TestReadCDAT(t *testing.T) {
	table := cdatTable(cdatStruct(0, 24), cdatStruct(1, 24), cdatStruct(1, 24), cdatStruct(4, 24))
	calls := 0
	got, err := doe.ReadCDAT(context.Background(), cdatResponder(t, table, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, table) {
		t.Fatalf("ReadCDAT = % x\nwant % x", got, table)
	}
	if calls != 5 {
		t.Errorf("ReadCDAT made %d requests for 5 entries", calls)
	}
	h, entries, err := doe.ParseCDAT(got)
	if err != nil {
		t.Fatal(err)
	}
	if h.Length != uint32(len(table)) || h.Revision != 1 || h.Sequence != 7 {
		t.Errorf("header = %+v", h)
	}
	var names []string
	for _, e := range entries {
		names = append(names, doe.CDATTypeName(e.Type))
	}
	if strings.Join(names, " ") != "DSMAS DSLBIS DSLBIS DSEMTS" {
		t.Errorf("entries = %v", names)
	}
}

func TestReadCDATErrors(t *testing.T) {
	ctx := context.Background()
	header := cdatTable()
	respond := func(f func(h uint16) (doe.Object, error)) doe.Mailbox {
		return doe.MailboxFunc(func(_ context.Context, req doe.Object) (doe.Object, error) {
			h, err := doe.DecodeCDATRequest(req)
			if err != nil {
				return doe.Object{}, err
			}
			return f(h)
		})
	}
	cases := []struct {
		name string
		mb   doe.Mailbox
		want error
		text string
	}{
		{"mailbox fails", respond(func(uint16) (doe.Object, error) { return doe.Object{}, doe.ErrTimeout }), doe.ErrTimeout, "CDAT entry 0"},
		{"loop", respond(func(h uint16) (doe.Object, error) {
			return doe.EncodeCDATResponse(1, cdatStruct(0, 24)), nil
		}), doe.ErrMalformed, "handle 1 comes round again"},
		{"wrong protocol", respond(func(uint16) (doe.Object, error) {
			return doe.EncodeDiscoveryResponse(doe.ProtocolCDAT, 0), nil
		}), doe.ErrUnexpectedResponse, "protocol"},
		{"short response", respond(func(uint16) (doe.Object, error) {
			return doe.Object{Vendor: doe.VendorCXL, Type: doe.TypeCXLTableAcc}, nil
		}), doe.ErrMalformed, "at least 4"},
		{"response code", respond(func(uint16) (doe.Object, error) {
			o := doe.EncodeCDATResponse(doe.CDATLastHandle, header)
			o.Payload[0] = 1
			return o, nil
		}), doe.ErrMalformed, "response code is 1"},
		{"table type", respond(func(uint16) (doe.Object, error) {
			o := doe.EncodeCDATResponse(doe.CDATLastHandle, header)
			o.Payload[1] = 3
			return o, nil
		}), doe.ErrMalformed, "table type 3"},
		{"too large", respond(func(h uint16) (doe.Object, error) {
			return doe.EncodeCDATResponse(h+1, make([]byte, 64<<10)), nil
		}), doe.ErrTooLarge, "past"},
		{"bad table", respond(func(uint16) (doe.Object, error) {
			return doe.EncodeCDATResponse(doe.CDATLastHandle, make([]byte, 8)), nil
		}), doe.ErrMalformed, "shorter than its 16-byte header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := doe.ReadCDAT(ctx, c.mb)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("ReadCDAT = %v, want %v mentioning %q", err, c.want, c.text)
			}
		})
	}
}

func TestParseCDATErrors(t *testing.T) {
	good := cdatTable(cdatStruct(0, 24), cdatStruct(2, 20))
	if _, _, err := doe.ParseCDAT(good); err != nil {
		t.Fatalf("good table: %v", err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name  string
		table []byte
		text  string
	}{
		{"short", good[:15], "shorter than its 16-byte header"},
		{"length", mutate(func(b []byte) []byte { b[0]++; b[5]--; return b }), "header says"},
		{"checksum", mutate(func(b []byte) []byte { b[20]++; return b }), "sum to 0x01"},
		{"structure overruns", mutate(func(b []byte) []byte { b[16+24+2] += 4; b[5] -= 4; return b }), "says 24 bytes; 20 remain"},
		{"structure too short", mutate(func(b []byte) []byte { b[16+24+2] = 2; b[5] += 18; return b }), "says 2 bytes"},
		{"trailing bytes", cdatTable(cdatStruct(0, 24), []byte{1, 2}), "less than its 4-byte header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := doe.ParseCDAT(c.table)
			if !errors.Is(err, doe.ErrMalformed) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("ParseCDAT = %v, want ErrMalformed mentioning %q", err, c.text)
			}
		})
	}
}

func TestDecodeCDATRequestErrors(t *testing.T) {
	for name, o := range map[string]doe.Object{
		"protocol": doe.EncodeDiscoveryRequest(0, 0),
		"length":   doe.NewObject(doe.ProtocolCDAT, make([]byte, 8)),
		"code":     doe.NewObject(doe.ProtocolCDAT, []byte{1, 0, 0, 0}),
		"type":     doe.NewObject(doe.ProtocolCDAT, []byte{0, 1, 0, 0}),
	} {
		if _, err := doe.DecodeCDATRequest(o); !errors.Is(err, doe.ErrMalformed) {
			t.Errorf("%s: DecodeCDATRequest = %v, want ErrMalformed", name, err)
		}
	}
}
