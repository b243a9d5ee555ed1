package ide

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/devattest/devattest/secchan"
)

// The AES-GCM key and IV of Intel's tee-io-validator key-byte-order
// document (PCIe Base 6.2 Appendix L style, most significant byte first).
const (
	vectorKey  = "df254152056e02e0ef8b7feb9739d4d96a4eb80103241df7cd5e24b49ccd2720"
	vectorWire = "524125dfe0026e05eb7f8befd9d43997" + "01b84e6af71d2403b4245ecd2027cd9c" // the 8 key DWs as KEY_PROG carries them
)

func sampleKeyProg() *KeyProg {
	m := &KeyProg{StreamID: 7, KSS: KSS(K1, TX, CPL), PortIndex: 1, IFV: 1}
	k, _ := hex.DecodeString(vectorKey)
	copy(m.Key[:], k)
	return m
}

func sampleQueryResp() *QueryResp {
	return &QueryResp{PortIndex: 1, DevFunc: 0x08, Bus: 3, Segment: 0, MaxPortIndex: 1,
		Cap:     CapLinkIDE | CapSelectiveIDE | CapIDEKM | 1<<capNumTCsShift | 1<<capNumSelShift, // 2 TCs, 2 selective streams
		Control: 0,
		Link:    []LinkStream{{1, 2}, {3, 4}},
		Selective: []SelectiveStream{
			{Cap: 2, Control: 5, Status: 6, RID1: 7, RID2: 8, Addr: [][3]uint32{{9, 10, 11}, {12, 13, 14}}},
			{Cap: 0, Control: 15, Status: 16, RID1: 17, RID2: 18},
		},
	}
}

func sampleMessages() []Message {
	ref := KeyRef{StreamID: 3, KSS: KSS(K0, RX, NPR), PortIndex: 1}
	return []Message{
		&Query{PortIndex: 1}, sampleQueryResp(), sampleKeyProg(),
		&KPAck{StreamID: 7, Status: KPSuccess, KSS: KSS(K1, TX, CPL), PortIndex: 1},
		&KSetGo{ref}, &KSetStop{ref}, &KGoStopAck{ref},
	}
}

// Golden encodings, from pci_idekm.h's packed layouts.
func TestGoldenEncodings(t *testing.T) {
	ref := KeyRef{StreamID: 3, KSS: KSS(K0, RX, NPR), PortIndex: 1}
	for _, c := range []struct {
		m    Message
		want string
	}{
		{&Query{PortIndex: 1}, "000001"},
		{&KPAck{StreamID: 7, Status: KPUnsupportedValue, KSS: KSS(K1, TX, CPL), PortIndex: 2}, "03000007032302"},
		{&KSetGo{ref}, "04000003001001"},
		{&KSetStop{ref}, "05000003001001"},
		{&KGoStopAck{ref}, "06000003001001"},
		{sampleKeyProg(), "02000007002301" + vectorWire + "0000000001000000"},
		{&QueryResp{PortIndex: 1, DevFunc: 2, Bus: 3, Segment: 4, MaxPortIndex: 7, Cap: CapIDEKM, Control: 0x01020304, ZeroDWs: 1},
			"01000102030407" + "40000000" + "04030201" + "00000000"},
	} {
		got := hex.EncodeToString(c.m.Marshal())
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", ObjectName(c.m.ObjectID()), got, c.want)
		}
	}
}

func TestRoundTripAndExactness(t *testing.T) {
	for _, m := range sampleMessages() {
		name := ObjectName(m.ObjectID())
		b := m.Marshal()
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Marshal(), b) {
			t.Errorf("%s: round trip differs", name)
		}
		// No strict prefix parses.
		for i := range len(b) {
			if _, err := Parse(b[:i]); err == nil {
				t.Errorf("%s: the %d-byte prefix parses", name, i)
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: prefix error %v is not ErrMalformed", name, err)
			}
		}
		// Trailing bytes are refused (QUERY_RESP: a DW that is not zero).
		extra := []byte{0xFF}
		if m.ObjectID() == ObjQueryResp {
			extra = []byte{1, 0, 0, 0}
		}
		if _, err := Parse(append(b[:len(b):len(b)], extra...)); err == nil {
			t.Errorf("%s: trailing bytes accepted", name)
		}
	}
}

// Every reserved byte must be zero, and the error names the object.
func TestReservedBytes(t *testing.T) {
	reserved := map[uint8][]int{
		ObjQuery: {1}, ObjQueryResp: {1}, ObjKeyProg: {1, 2, 4}, ObjKPAck: {1, 2},
		ObjKSetGo: {1, 2, 4}, ObjKSetStop: {1, 2, 4}, ObjKGoStopAck: {1, 2, 4},
	}
	for _, m := range sampleMessages() {
		for _, off := range reserved[m.ObjectID()] {
			b := m.Marshal()
			b[off] = 0x80
			_, err := Parse(b)
			var de *DecodeError
			if !errors.As(err, &de) || de.Object != ObjectName(m.ObjectID()) {
				t.Errorf("%s reserved byte %d set: %v", ObjectName(m.ObjectID()), off, err)
			}
		}
	}
	// key_sub_stream: reserved bits 3:2 and sub-streams above CPL.
	for _, kss := range []uint8{0x04, 0x08, 0x30, 0xF0} {
		for _, m := range []Message{sampleKeyProg(), &KSetGo{}, &KSetStop{}, &KGoStopAck{}} {
			b := m.Marshal()
			b[5] = kss
			if _, err := Parse(b); err == nil {
				t.Errorf("%s with key_sub_stream 0x%02x parsed", ObjectName(m.ObjectID()), kss)
			}
		}
	}
}

func TestKeySubStream(t *testing.T) {
	for _, ks := range []KeySet{K0, K1} {
		for _, d := range Directions {
			for _, s := range SubStreams {
				k := KSS(ks, d, s)
				if k.KeySet() != ks || k.Direction() != d || k.SubStream() != s || !k.Valid() {
					t.Errorf("%v %v %v -> 0x%02x -> %v", ks, d, s, uint8(k), k)
				}
			}
		}
	}
	// pci_idekm.h: K1 = 0x01, TX = 0x02, NPR = 0x10, CPL = 0x20.
	if KSS(K1, TX, CPL) != 0x23 || KSS(K0, RX, NPR) != 0x10 {
		t.Fatal("key_sub_stream bits differ from pci_idekm.h")
	}
}

func TestKeyByteOrder(t *testing.T) {
	m := sampleKeyProg()
	b := m.Marshal()
	if got := hex.EncodeToString(b[keyProgHdr : keyProgHdr+KeySize]); got != vectorWire {
		t.Fatalf("wire key %s, want %s", got, vectorWire)
	}
	if got := hex.EncodeToString(b[keyProgHdr+KeySize:]); got != "0000000001000000" {
		t.Fatalf("wire IFV 1 = %s", got)
	}
	var back KeyProg
	if _, err := back.Decode(b); err != nil || back.Key != m.Key || back.IFV != 1 {
		t.Fatalf("decode: %v %x %d", err, back.Key, back.IFV)
	}
	PutWireIFV(b[:8], 0x0102030405060708)
	if hex.EncodeToString(b[:8]) != "0403020108070605" || WireIFV(b[:8]) != 0x0102030405060708 {
		t.Fatalf("IFV DWs: % x", b[:8])
	}
}

func TestQueryRespBlocks(t *testing.T) {
	q := sampleQueryResp()
	b := q.Marshal()
	if want := 7 + 4*(2+2*2+(5+6)+5); len(b) != want {
		t.Fatalf("QUERY_RESP %d bytes, want %d", len(b), want)
	}
	var got QueryResp
	if _, err := got.Decode(b); err != nil {
		t.Fatal(err)
	}
	if len(got.Link) != 2 || len(got.Selective) != 2 || len(got.Selective[0].Addr) != 2 || got.Selective[1].RID2 != 18 {
		t.Fatalf("%+v", got)
	}
	// A capability register announcing more blocks than sent.
	b[7+2] |= 0x10 // NumSel 1 -> 17
	if _, err := got.Decode(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short selective blocks: %v", err)
	}
	// Not whole DWs.
	if _, err := got.Decode(append(q.Marshal(), 0)); err == nil {
		t.Fatal("a partial DW parsed")
	}
}

func TestKPStatusErrors(t *testing.T) {
	for _, s := range []KPStatus{KPIncorrectLength, KPUnsupportedPortIndex, KPUnsupportedValue, KPUnspecifiedFailure, 0x7F} {
		err := fmt.Errorf("wrapped: %w", s.Err())
		if !errors.Is(err, s) {
			t.Errorf("%v not errors.Is", s)
		}
		for _, o := range []KPStatus{KPIncorrectLength, KPUnsupportedPortIndex, KPUnsupportedValue, KPUnspecifiedFailure} {
			if o != s && errors.Is(err, o) {
				t.Errorf("%v matches %v", s, o)
			}
		}
	}
	if KPSuccess.Err() != nil {
		t.Fatal("Success is an error")
	}
}

func TestWrapUnwrap(t *testing.T) {
	m := &Query{PortIndex: 2}
	req := WrapRequest(secchan.V12, m)
	// VENDOR_DEFINED_REQUEST, PCI-SIG, vendor 0x0001, length 4, protocol 0.
	if got := hex.EncodeToString(req); got != "12fe0000"+"0300"+"02"+"0100"+"0400"+"00"+"000002" {
		t.Fatalf("request %s", got)
	}
	v, body, err := UnwrapRequest(req)
	if err != nil || v != secchan.V12 || !bytes.Equal(body, m.Marshal()) {
		t.Fatalf("%v %v % x", err, v, body)
	}
	if _, _, err := UnwrapResponse(req); err == nil {
		t.Fatal("a request unwrapped as a response")
	}
	tdisp := secchan.PCIPayload{VendorID: secchan.VendorIDPCISIG, Protocol: secchan.PCIProtocolTDISP, Body: []byte{0x10, 0x81}}
	cxl := secchan.PCIPayload{VendorID: secchan.VendorIDCXL, Protocol: 0, Body: []byte{0}}
	for _, p := range []secchan.PCIPayload{tdisp, cxl} {
		if _, _, err := UnwrapRequest(p.Request(secchan.V12).Marshal()); !errors.Is(err, ErrNotIDEKM) {
			t.Errorf("%v: %v", p, err)
		}
	}
	if _, _, err := UnwrapRequest(append(req, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}
