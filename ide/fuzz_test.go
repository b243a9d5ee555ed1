package ide

import (
	"bytes"
	"context"
	"testing"

	"github.com/devattest/devattest/secchan"
)

// fuzzDecoder checks one decoder: no panic, a success consumes at most
// the input, and re-encoding gives exactly the bytes consumed.
func fuzzDecoder(f *testing.F, newMsg func() Message, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMsg()
		n, err := m.Decode(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if got := m.Marshal(); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs\n got % x\nwant % x", got, b[:n])
		}
	})
}

func FuzzQuery(f *testing.F) {
	fuzzDecoder(f, func() Message { return &Query{} }, (&Query{PortIndex: 1}).Marshal())
}

func FuzzQueryResp(f *testing.F) {
	fuzzDecoder(f, func() Message { return &QueryResp{} }, sampleQueryResp().Marshal())
}

func FuzzKeyProg(f *testing.F) {
	fuzzDecoder(f, func() Message { return &KeyProg{} }, sampleKeyProg().Marshal())
}

func FuzzKPAck(f *testing.F) {
	fuzzDecoder(f, func() Message { return &KPAck{} }, (&KPAck{StreamID: 1, Status: KPUnsupportedValue, KSS: 0x22, PortIndex: 1}).Marshal())
}

func FuzzKSetGo(f *testing.F) {
	fuzzDecoder(f, func() Message { return &KSetGo{} }, (&KSetGo{KeyRef{1, 0x12, 1}}).Marshal())
}

func FuzzKSetStop(f *testing.F) {
	fuzzDecoder(f, func() Message { return &KSetStop{} }, (&KSetStop{KeyRef{1, 0x12, 1}}).Marshal())
}

func FuzzKGoStopAck(f *testing.F) {
	fuzzDecoder(f, func() Message { return &KGoStopAck{} }, (&KGoStopAck{KeyRef{1, 0x12, 1}}).Marshal())
}

// FuzzParse: Parse accepts only whole objects, which re-encode exactly.
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
			t.Fatalf("re-encoding differs\n got % x\nwant % x", got, b)
		}
	})
}

// FuzzResponder: any vendor-defined request inside a session gets a
// well-formed response or an error, never a panic.
func FuzzResponder(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(WrapRequest(secchan.V12, m))
	}
	r, err := NewResponder(DefaultResponderConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := r.Handle(context.Background(), 0xFFFFFFFF, b)
		if err != nil {
			return
		}
		_, body, err := UnwrapResponse(resp)
		if err != nil {
			t.Fatalf("response does not unwrap: %v", err)
		}
		if _, err := Parse(body); err != nil {
			t.Fatalf("response does not parse: %v", err)
		}
	})
}
