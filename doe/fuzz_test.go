package doe_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/devattest/devattest/doe"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

// FuzzDecode: Decode never panics, fails only with ErrMalformed or
// ErrTooLarge, and whatever it accepts encodes back to the exact input.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := doe.Decode(data)
		if err != nil {
			if !errors.Is(err, doe.ErrMalformed) && !errors.Is(err, doe.ErrTooLarge) {
				t.Fatalf("Decode error %v is neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		if len(data) < doe.HeaderSize || len(data) > doe.MaxObjectSize || len(data)%4 != 0 {
			t.Fatalf("Decode accepted %d bytes", len(data))
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("decoded object fails Validate: %v", err)
		}
		enc, err := o.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded object: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("Encode(Decode(x)) != x\n x = % x\n y = % x", data, enc)
		}
		// The header agrees with DecodeHeader.
		p, n, err := doe.DecodeHeader(binary.LittleEndian.Uint32(data), binary.LittleEndian.Uint32(data[4:]))
		if err != nil || p != o.Protocol() || n != o.DWCount() {
			t.Fatalf("DecodeHeader = %v, %d, %v; object %v, %d DW", p, n, err, o.Protocol(), o.DWCount())
		}
	})
}

// FuzzDecodeDiscoveryResponse: discovery parsing of arbitrary objects never
// panics, and an accepted request or response re-encodes to the input.
func FuzzDecodeDiscoveryResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := doe.Decode(data)
		if err != nil {
			return
		}
		if p, next, err := doe.DecodeDiscoveryResponse(o); err == nil {
			enc, err := doe.EncodeDiscoveryResponse(p, next).Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("discovery response %v next %d re-encodes as % x, input % x", p, next, enc, data)
			}
		} else if !errors.Is(err, doe.ErrMalformed) && !errors.Is(err, doe.ErrUnexpectedResponse) {
			t.Fatalf("DecodeDiscoveryResponse error %v", err)
		}
		if index, version, err := doe.DecodeDiscoveryRequest(o); err == nil {
			enc, err := doe.EncodeDiscoveryRequest(index, version).Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("discovery request %d/%d re-encodes as % x, input % x", index, version, enc, data)
			}
		} else if !errors.Is(err, doe.ErrMalformed) {
			t.Fatalf("DecodeDiscoveryRequest error %v", err)
		}
	})
}

// fuzzFrameMax is the small bound ReadFrame and DecodeFrame are compared at.
const fuzzFrameMax = 256

func sameFrame(a, b doe.Frame) bool {
	return a.Command == b.Command && a.Transport == b.Transport && bytes.Equal(a.Payload, b.Payload)
}

// FuzzDecodeFrame: DecodeFrame never panics and re-encodes what it accepts;
// ReadFrame on the same bytes agrees with it whenever the input is exactly
// one frame, and reading a stream of frames never panics or over-reads.
func FuzzDecodeFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		big, bigErr := doe.DecodeFrame(data, doe.MaxFramePayload)
		if bigErr == nil {
			if enc := doe.AppendFrame(nil, big); !bytes.Equal(enc, data) {
				t.Fatalf("AppendFrame(DecodeFrame(x)) != x")
			}
		} else if !errors.Is(bigErr, doe.ErrMalformed) && !errors.Is(bigErr, doe.ErrTooLarge) {
			t.Fatalf("DecodeFrame error %v", bigErr)
		}

		small, smallErr := doe.DecodeFrame(data, fuzzFrameMax)
		r := bytes.NewReader(data)
		rf, rerr := doe.ReadFrame(r, fuzzFrameMax)
		switch {
		case smallErr == nil:
			// One whole frame: ReadFrame must read exactly it.
			if rerr != nil {
				t.Fatalf("DecodeFrame accepted the input, ReadFrame: %v", rerr)
			}
			if !sameFrame(rf, small) {
				t.Fatalf("ReadFrame and DecodeFrame disagree: %+v vs %+v", rf, small)
			}
			if r.Len() != 0 {
				t.Fatalf("ReadFrame left %d bytes of a single frame", r.Len())
			}
			if bigErr != nil || !sameFrame(big, small) {
				t.Fatalf("DecodeFrame depends on the bound for a frame within both: %v", bigErr)
			}
		case errors.Is(smallErr, doe.ErrTooLarge):
			if !errors.Is(rerr, doe.ErrTooLarge) {
				t.Fatalf("DecodeFrame: %v; ReadFrame: %v", smallErr, rerr)
			}
			if consumed := len(data) - r.Len(); consumed != 12 {
				t.Fatalf("ReadFrame consumed %d bytes of an oversize frame, want the 12-byte header", consumed)
			}
		default:
			// Malformed for DecodeFrame: short, or payload length mismatch.
			if rerr == nil {
				// Only possible when more bytes follow the first frame.
				if r.Len() == 0 {
					t.Fatalf("ReadFrame accepted the whole input that DecodeFrame refused: %v", smallErr)
				}
				if consumed := len(data) - r.Len(); consumed != 12+len(rf.Payload) {
					t.Fatalf("ReadFrame consumed %d bytes for a %d-byte payload", consumed, len(rf.Payload))
				}
				if one, err := doe.DecodeFrame(data[:12+len(rf.Payload)], fuzzFrameMax); err != nil || !sameFrame(one, rf) {
					t.Fatalf("the first frame alone does not decode the same: %v", err)
				}
			} else if len(data) == 0 {
				if rerr != io.EOF {
					t.Fatalf("empty input: ReadFrame = %v, want io.EOF", rerr)
				}
			} else if !errors.Is(rerr, doe.ErrMalformed) || !errors.Is(rerr, io.ErrUnexpectedEOF) {
				t.Fatalf("cut frame: ReadFrame = %v, want ErrMalformed wrapping io.ErrUnexpectedEOF", rerr)
			}
		}

		// A stream of frames: every byte is accounted for.
		r = bytes.NewReader(data)
		total := 0
		for {
			before := r.Len()
			fr, err := doe.ReadFrame(r, fuzzFrameMax)
			if err != nil {
				break
			}
			if got := before - r.Len(); got != 12+len(fr.Payload) {
				t.Fatalf("frame consumed %d bytes for %d payload bytes", got, len(fr.Payload))
			}
			total += before - r.Len()
		}
		if total > len(data) {
			t.Fatalf("read %d bytes from %d", total, len(data))
		}
	})
}

// FuzzDecodeHeader: DecodeHeader accepts exactly the headers with clear
// reserved bits and a length of at least 2 DW, and Encode produces the same
// header for an object of that length.
func FuzzDecodeHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, dw0, dw1 uint32) {
		p, n, err := doe.DecodeHeader(dw0, dw1)
		length := int(dw1 & 0x3FFFF)
		if length == 0 {
			length = 1 << 18
		}
		wantOK := dw0>>24 == 0 && dw1>>18 == 0 && length >= 2
		if (err == nil) != wantOK {
			t.Fatalf("DecodeHeader(%#08x, %#08x) = %v, %d, %v; want ok=%v", dw0, dw1, p, n, err, wantOK)
		}
		if err != nil {
			if !errors.Is(err, doe.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if n != length || p.Vendor != uint16(dw0) || p.Type != uint8(dw0>>16) {
			t.Fatalf("DecodeHeader(%#08x, %#08x) = %v, %d", dw0, dw1, p, n)
		}
		o := doe.Object{Vendor: p.Vendor, Type: p.Type, Payload: make([]byte, (n-2)*4)}
		enc, err := o.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if binary.LittleEndian.Uint32(enc) != dw0 || binary.LittleEndian.Uint32(enc[4:]) != dw1 {
			t.Fatalf("Encode of a %d-DW object gives header %#08x %#08x, want %#08x %#08x",
				n, binary.LittleEndian.Uint32(enc), binary.LittleEndian.Uint32(enc[4:]), dw0, dw1)
		}
	})
}

// FuzzParseCDAT: ParseCDAT never panics, fails only with ErrMalformed, and
// what it accepts is a table whose header length is its length, whose
// bytes sum to 0, and whose structures tile everything after the header.
func FuzzParseCDAT(f *testing.F) {
	f.Fuzz(func(t *testing.T, table []byte) {
		h, entries, err := doe.ParseCDAT(table)
		if err != nil {
			if !errors.Is(err, doe.ErrMalformed) {
				t.Fatalf("ParseCDAT error %v is not ErrMalformed", err)
			}
			return
		}
		if int(h.Length) != len(table) {
			t.Fatalf("accepted header length %d for %d bytes", h.Length, len(table))
		}
		var sum byte
		for _, b := range table {
			sum += b
		}
		if sum != 0 {
			t.Fatalf("accepted a table summing to 0x%02x", sum)
		}
		off := doe.CDATHeaderSize
		for _, e := range entries {
			if len(e.Data) < 4 || !bytes.Equal(e.Data, table[off:off+len(e.Data)]) || e.Type != table[off] {
				t.Fatalf("entry at %d does not match the table", off)
			}
			off += len(e.Data)
		}
		if off != len(table) {
			t.Fatalf("entries cover %d of %d bytes", off, len(table))
		}
	})
}

// FuzzDecodeCDATResponse: Table Access parsing of arbitrary objects never
// panics, and an accepted request or response re-encodes to the input.
func FuzzDecodeCDATResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := doe.Decode(data)
		if err != nil {
			return
		}
		if next, entry, err := doe.DecodeCDATResponse(o); err == nil {
			enc, err := doe.EncodeCDATResponse(next, entry).Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("response re-encodes to % x, want % x", enc, data)
			}
		}
		if h, err := doe.DecodeCDATRequest(o); err == nil {
			enc, err := doe.EncodeCDATRequest(h).Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("request re-encodes to % x, want % x", enc, data)
			}
		}
	})
}
