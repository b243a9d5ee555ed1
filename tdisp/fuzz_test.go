package tdisp

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/devattest/devattest/secchan"
)

// sampleMessages is one of every message type, for seeds and unit tests.
func sampleMessages() []Message {
	h := H(0xbeef)
	caps := &Capabilities{bare: bare{h}, LockFlagsSupported: 7, DevAddrWidth: 48}
	caps.ReqMsgSupported[0] = 0xFE
	lr := &LockInterfaceResp{}
	lr.Header = h
	lr.Nonce[0] = 1
	st := &Start{}
	st.Header = h
	st.Nonce[31] = 2
	return []Message{
		&GetVersion{bare{h}}, &VersionResp{bare: bare{h}, Versions: []uint8{Version10}},
		&GetCapabilities{bare: bare{h}, TSMCaps: 1}, caps,
		&LockInterface{bare: bare{h}, LockParams: LockParams{Flags: LockNoFWUpdate | LockMSIX, DefaultStreamID: 3, MMIOReportingOffset: 0xD0000000}},
		lr, &GetReport{bare: bare{h}, Offset: 0x40, Length: 0x24},
		&ReportResp{bare: bare{h}, Portion: []byte{1, 2, 3}, Remainder: 9},
		&GetState{bare{h}}, &StateResp{bare: bare{h}, State: StateRun},
		st, &StartResp{bare{h}}, &Stop{bare{h}}, &StopResp{bare{h}},
		&ErrorResp{bare: bare{h}, Code: ErrInvalidNonce, Data: 7, Extended: []byte{0, 2, 1, 0}},
	}
}

func sampleReport() *Report {
	return &Report{
		InterfaceInfo: InfoNoUpdateAfterLock | InfoDMAWithoutPASID, MSIXMessageControl: 0x8003,
		Ranges: []MMIORange{
			{FirstPage: 0xD0000, Pages: 16, RangeID: 0},
			{FirstPage: 0xD0100, Pages: 1, Attributes: AttrMSIXTable, RangeID: 2},
			{FirstPage: 0xD0101, Pages: 1, Attributes: AttrMSIXPBA | AttrNonTEEMem, RangeID: 2},
		},
		DeviceSpecific: []byte("devsim"),
	}
}

// FuzzParse: Parse (every message decoder) accepts only whole messages,
// which re-encode exactly.
func FuzzParse(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.Marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if got := m.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("%s re-encodes differently\n got % x\nwant % x", TypeName(m.Type()), got, b)
		}
	})
}

// FuzzParseReport: a report that decodes re-encodes exactly.
func FuzzParseReport(f *testing.F) {
	f.Add(sampleReport().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		if got := r.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("report re-encodes differently\n got % x\nwant % x", got, b)
		}
	})
}

// FuzzUnwrapResponse: the VENDOR_DEFINED wrapping of a TDISP response.
func FuzzUnwrapResponse(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(WrapResponse(secchan.V12, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, body, err := UnwrapResponse(b)
		if err != nil {
			return
		}
		if got := codec.Wrap(v, body, true); !bytes.Equal(got, b) {
			t.Fatalf("re-wrapping differs\n got % x\nwant % x", got, b)
		}
	})
}

// FuzzResponder: any TDISP message into a device never panics, and every
// answer is a TDISP message for the same interface.
func FuzzResponder(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.Marshal())
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := NewResponder(ResponderConfig{FunctionID: 0xbeef, LockFlagsSupported: 7,
			Report: func(LockParams) (*Report, error) { return sampleReport(), nil }})
		if err != nil {
			t.Fatal(err)
		}
		// Lock first so that report and start paths are reachable.
		lock := &LockInterface{bare: bare{H(0xbeef)}}
		if _, err := r.Handle(context.Background(), 1, WrapRequest(secchan.V12, lock)); err != nil {
			t.Fatal(err)
		}
		resp, err := r.Handle(context.Background(), 1, codec.Wrap(secchan.V12, body, false))
		if err != nil {
			return
		}
		_, rb, err := UnwrapResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(rb); err != nil {
			t.Fatalf("answer does not parse: %v\n% x", err, rb)
		}
	})
}

func TestUnwrapErrors(t *testing.T) {
	m := WrapRequest(secchan.V12, &GetVersion{bare{H(1)}})
	if _, _, err := UnwrapRequest(append(m, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	ide := secchan.PCIPayload{VendorID: secchan.VendorIDPCISIG, Protocol: secchan.PCIProtocolIDEKM, Body: []byte{0, 0, 1}}
	if _, _, err := UnwrapRequest(ide.Request(secchan.V12).Marshal()); !errors.Is(err, ErrNotTDISP) {
		t.Errorf("IDE_KM: %v", err)
	}
	if _, _, err := UnwrapResponse(m); err == nil {
		t.Error("a request unwrapped as a response")
	}
	if v, body, err := UnwrapRequest(m); err != nil || v != secchan.V12 || len(body) != HeaderSize {
		t.Errorf("%v %d %v", v, len(body), err)
	}
}
