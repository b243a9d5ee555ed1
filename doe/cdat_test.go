package doe_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
)

// cdatTable builds a CDAT (revision 1, sequence 7) around structures.
func cdatTable(structs ...[]byte) []byte { return devsim.BuildCDAT(1, 7, structs...) }

// cdatStruct is a structure of type typ and n bytes (n ≥ 4) with some
// content.
func cdatStruct(typ uint8, n int) []byte {
	body := make([]byte, n-4)
	for i := range body {
		body[i] = byte((i + 4) * int(typ+3))
	}
	return devsim.CDATStructure(typ, body)
}

// cdatResponder serves table's entries with devsim's CDAT handler,
// counting requests.
func cdatResponder(t *testing.T, table []byte, calls *int) doe.Mailbox {
	h, err := devsim.NewCDATHandler(table)
	if err != nil {
		t.Fatal(err)
	}
	return doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		*calls++
		return h.HandleDOE(ctx, req)
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
