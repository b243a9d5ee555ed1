package doe_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/devattest/devattest/doe"
)

// rawFrame builds frame bytes by hand (big-endian u32 fields).
func rawFrame(cmd, transport, size uint32, payload []byte) []byte {
	b := make([]byte, 12, 12+len(payload))
	binary.BigEndian.PutUint32(b[0:], cmd)
	binary.BigEndian.PutUint32(b[4:], transport)
	binary.BigEndian.PutUint32(b[8:], size)
	return append(b, payload...)
}

func TestFrameConstants(t *testing.T) {
	for _, c := range []struct {
		got, want uint32
	}{
		{doe.CommandNormal, 0x0001}, {doe.CommandContinue, 0xFFFD}, {doe.CommandShutdown, 0xFFFE},
		{doe.CommandUnknown, 0xFFFF}, {doe.CommandTest, 0xDEAD},
		{doe.TransportNone, 0}, {doe.TransportMCTP, 1}, {doe.TransportPCIDOE, 2}, {doe.TransportTCP, 3},
	} {
		if c.got != c.want {
			t.Errorf("constant %#x, want %#x", c.got, c.want)
		}
	}
	if doe.DefaultPort != 2323 {
		t.Errorf("DefaultPort = %d", doe.DefaultPort)
	}
	for c, want := range map[uint32]string{
		doe.CommandNormal: "NORMAL", doe.CommandContinue: "CONTINUE", doe.CommandShutdown: "SHUTDOWN",
		doe.CommandUnknown: "UNKNOWN", doe.CommandTest: "TEST", 0x1234: "0x1234",
	} {
		if got := doe.CommandName(c); got != want {
			t.Errorf("CommandName(%#x) = %q, want %q", c, got, want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	obj, err := doe.NewObject(doe.ProtocolCMA, []byte{0x12, 0x84, 0, 0}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	frames := []doe.Frame{
		{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: obj},
		{Command: doe.CommandTest, Transport: doe.TransportPCIDOE, Payload: []byte("Client Hello!\x00")},
		{Command: doe.CommandShutdown, Transport: doe.TransportPCIDOE},
		{Command: 0xFFFFFFFF, Transport: 0xFFFFFFFF, Payload: []byte{0}},
		{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: patterned(doe.MaxFramePayload)},
	}
	for _, f := range frames {
		var buf bytes.Buffer
		if err := doe.WriteFrame(&buf, f); err != nil {
			t.Fatalf("WriteFrame(%s, %d bytes): %v", doe.CommandName(f.Command), len(f.Payload), err)
		}
		wire := buf.Bytes()
		if want := rawFrame(f.Command, f.Transport, uint32(len(f.Payload)), f.Payload); !bytes.Equal(wire, want) {
			t.Fatalf("WriteFrame(%s) wrote % x..., want % x...", doe.CommandName(f.Command), wire[:12], want[:12])
		}
		if app := doe.AppendFrame([]byte{0xAA}, f); !bytes.Equal(app[1:], wire) || app[0] != 0xAA {
			t.Fatalf("AppendFrame differs from WriteFrame")
		}
		for _, max := range []int{len(f.Payload), doe.MaxFramePayload} {
			got, err := doe.DecodeFrame(wire, max)
			if err != nil {
				t.Fatalf("DecodeFrame(max %d): %v", max, err)
			}
			if got.Command != f.Command || got.Transport != f.Transport || !bytes.Equal(got.Payload, f.Payload) {
				t.Fatalf("DecodeFrame changed the frame")
			}
			got, err = doe.ReadFrame(bytes.NewReader(wire), max)
			if err != nil {
				t.Fatalf("ReadFrame(max %d): %v", max, err)
			}
			if got.Command != f.Command || got.Transport != f.Transport || !bytes.Equal(got.Payload, f.Payload) {
				t.Fatalf("ReadFrame changed the frame")
			}
		}
	}
}

func TestReadFrameStream(t *testing.T) {
	var buf bytes.Buffer
	for i := range 3 {
		if err := doe.WriteFrame(&buf, doe.Frame{Command: doe.CommandNormal, Transport: uint32(i), Payload: patterned(4 * i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		f, err := doe.ReadFrame(&buf, 64)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Transport != uint32(i) || !bytes.Equal(f.Payload, patterned(4*i)) {
			t.Fatalf("frame %d out of step: %+v", i, f)
		}
	}
	// A clean end of stream is io.EOF itself, not wrapped in ErrMalformed.
	if _, err := doe.ReadFrame(&buf, 64); err != io.EOF {
		t.Fatalf("at end of stream: err = %v, want io.EOF", err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	full := rawFrame(doe.CommandNormal, doe.TransportPCIDOE, 16, patterned(16))
	for _, n := range []int{1, 4, 11, 12, 13, 27} {
		_, err := doe.ReadFrame(bytes.NewReader(full[:n]), 64)
		if !errors.Is(err, doe.ErrMalformed) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d of %d bytes: err = %v, want ErrMalformed wrapping io.ErrUnexpectedEOF", n, len(full), err)
		}
		if errors.Is(err, io.EOF) {
			t.Errorf("%d bytes: a cut frame must not look like a clean io.EOF: %v", n, err)
		}
		if _, err := doe.DecodeFrame(full[:n], 64); !errors.Is(err, doe.ErrMalformed) {
			t.Errorf("DecodeFrame of %d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
	// A read error other than EOF is passed through, still as ErrMalformed.
	boom := errors.New("boom")
	_, err := doe.ReadFrame(io.MultiReader(bytes.NewReader(full[:14]), errReader{boom}), 64)
	if !errors.Is(err, boom) || !errors.Is(err, doe.ErrMalformed) {
		t.Errorf("read error mid-payload: err = %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// headerOnlyReader yields a 12-byte frame header and fails the test if
// anything reads past it: an oversize frame must be refused before its
// payload is allocated or read.
type headerOnlyReader struct {
	t   *testing.T
	hdr []byte
	off int
}

func (r *headerOnlyReader) Read(p []byte) (int, error) {
	if r.off >= len(r.hdr) {
		r.t.Errorf("ReadFrame read past the 12-byte header of an oversize frame")
		panic("read past header")
	}
	n := copy(p, r.hdr[r.off:])
	r.off += n
	return n, nil
}

func TestReadFrameOversizeBeforeAllocation(t *testing.T) {
	for _, tc := range []struct {
		size uint32
		max  int
	}{
		{65, 64},
		{0xFFFFFFFF, doe.MaxFramePayload},
		{doe.MaxFramePayload + 1, doe.MaxFramePayload},
		{1, 0},
	} {
		r := &headerOnlyReader{t: t, hdr: rawFrame(doe.CommandNormal, doe.TransportPCIDOE, tc.size, nil)}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := doe.ReadFrame(r, tc.max)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, doe.ErrTooLarge) {
			t.Errorf("size %d max %d: err = %v, want ErrTooLarge", tc.size, tc.max, err)
		}
		if r.off != 12 {
			t.Errorf("size %d: read %d bytes, want exactly the 12-byte header", tc.size, r.off)
		}
		// Only the error value may be allocated, never the announced payload.
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
			t.Errorf("size %d: %d bytes allocated for a refused frame", tc.size, d)
		}
		if _, err := doe.DecodeFrame(rawFrame(doe.CommandNormal, doe.TransportPCIDOE, tc.size, nil), tc.max); !errors.Is(err, doe.ErrTooLarge) {
			t.Errorf("DecodeFrame size %d max %d: err = %v, want ErrTooLarge", tc.size, tc.max, err)
		}
	}
	// Exactly at the bound is fine.
	f, err := doe.ReadFrame(bytes.NewReader(rawFrame(1, 2, 64, patterned(64))), 64)
	if err != nil || len(f.Payload) != 64 {
		t.Fatalf("frame at the bound: %v", err)
	}
}

func TestDecodeFrameLengthMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"payload short", rawFrame(1, 2, 8, patterned(4))},
		{"payload long", rawFrame(1, 2, 4, patterned(8))},
		{"two frames", append(rawFrame(1, 2, 0, nil), rawFrame(1, 2, 0, nil)...)},
		{"empty", nil},
	} {
		if _, err := doe.DecodeFrame(tc.b, 64); !errors.Is(err, doe.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
		}
	}
}

type countingWriter struct {
	calls int
	buf   bytes.Buffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	return w.buf.Write(p)
}

func TestWriteFrameSingleWrite(t *testing.T) {
	for _, n := range []int{0, 4, 4096, doe.MaxFramePayload} {
		var w countingWriter
		f := doe.Frame{Command: doe.CommandNormal, Transport: doe.TransportPCIDOE, Payload: patterned(n)}
		if err := doe.WriteFrame(&w, f); err != nil {
			t.Fatal(err)
		}
		if w.calls != 1 {
			t.Errorf("%d-byte payload: %d Write calls, want 1", n, w.calls)
		}
		if w.buf.Len() != 12+n {
			t.Errorf("%d-byte payload: wrote %d bytes", n, w.buf.Len())
		}
	}
	var w countingWriter
	err := doe.WriteFrame(&w, doe.Frame{Command: doe.CommandNormal, Payload: make([]byte, doe.MaxFramePayload+1)})
	if !errors.Is(err, doe.ErrTooLarge) {
		t.Errorf("oversize WriteFrame: err = %v, want ErrTooLarge", err)
	}
	if w.calls != 0 {
		t.Errorf("oversize WriteFrame wrote %d times", w.calls)
	}
	// A writer's error is returned.
	if err := doe.WriteFrame(failWriter{}, doe.Frame{}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("failing writer: err = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// TestReadFrameNamesATextPeer: a peer that answers in a text protocol
// (an HTTP server on the port) is named as not speaking the framing,
// instead of as a frame of 540291120 bytes.
func TestReadFrameNamesATextPeer(t *testing.T) {
	_, err := doe.ReadFrame(strings.NewReader("HTTP/1.1 400 Bad Request\r\n\r\n"), doe.MaxFramePayload)
	if !errors.Is(err, doe.ErrMalformed) || !strings.Contains(err.Error(), "does not speak the DOE socket framing") || !strings.Contains(err.Error(), "HTTP/1.1 400") {
		t.Fatalf("ReadFrame = %v", err)
	}
}
