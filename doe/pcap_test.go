package doe_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
)

// readAll reads every record of a capture.
func readAll(t *testing.T, b []byte) (*doe.PcapReader, []doe.PcapRecord) {
	t.Helper()
	r, err := doe.NewPcapReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []doe.PcapRecord
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r, out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

func TestPcapRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := doe.NewPcapWriter(&buf, doe.LinkTypePCIDOE, doe.PcapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 4, 22, 0, 0, 123456000, time.UTC)
	objs := []doe.Object{doe.EncodeDiscoveryRequest(0, 0), doe.EncodeDiscoveryResponse(doe.ProtocolCMA, 1),
		doe.NewObject(doe.ProtocolCMA, []byte{0x10, 0x84, 0, 0})}
	for i, o := range objs {
		w.WriteObject(t0.Add(time.Duration(i)*time.Millisecond), o)
	}
	big := make([]byte, doe.PcapSnapLen+100)
	w.Write(t0, big)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// The header spdm-emu writes: LE magic, 2.4, snap 64 KiB, link 292.
	if got := binary.LittleEndian.Uint32(b); got != 0xa1b2c3d4 {
		t.Fatalf("magic %x", got)
	}
	if got := binary.LittleEndian.Uint32(b[16:]); got != doe.PcapSnapLen {
		t.Fatalf("snap length %d", got)
	}
	r, recs := readAll(t, b)
	if r.LinkType != doe.LinkTypePCIDOE || len(recs) != 4 {
		t.Fatalf("link %d, %d records", r.LinkType, len(recs))
	}
	for i, o := range objs {
		o2, err := doe.Decode(recs[i].Data)
		if err != nil || o2.Protocol() != o.Protocol() || !bytes.Equal(o2.Payload, o.Payload) {
			t.Fatalf("record %d: %v %+v", i, err, o2)
		}
		if want := t0.Add(time.Duration(i) * time.Millisecond); !recs[i].Time.Equal(want) {
			t.Fatalf("record %d time %v, want %v", i, recs[i].Time, want)
		}
	}
	// A record longer than the snap length is cut there, never beyond
	// (spdm-dump's buffer is the snap length).
	if last := recs[3]; len(last.Data) != doe.PcapSnapLen || last.OrigLen != len(big) || !last.Truncated() {
		t.Fatalf("long record: %d of %d bytes", len(last.Data), last.OrigLen)
	}
}

// blockingWriter holds every write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	b.n += len(p)
	b.mu.Unlock()
	return len(p), nil
}

// A stuck disk never blocks the capturing side: records beyond the queue
// are dropped and counted.
func TestPcapWriterNeverBlocks(t *testing.T) {
	bw := &blockingWriter{release: make(chan struct{})}
	close(bw.release) // let the header through
	w, err := doe.NewPcapWriter(bw, doe.LinkTypePCIDOE, doe.PcapOptions{QueueRecords: 4})
	if err != nil {
		t.Fatal(err)
	}
	bw.release = make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			w.WriteObject(time.Now(), doe.EncodeDiscoveryRequest(0, 0))
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Write blocked on a stuck disk")
	}
	if st := w.Stats(); st.Dropped < 90 {
		t.Fatalf("dropped %d of 100 with a queue of 4 and a stuck disk", st.Dropped)
	}
	close(bw.release)
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("Close after drops: %v", err)
	}
}

// The file bound holds, and an annotation at the end says records were lost.
func TestPcapWriterFileBound(t *testing.T) {
	var buf bytes.Buffer
	w, err := doe.NewPcapWriter(&buf, doe.LinkTypePCIDOE, doe.PcapOptions{MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		w.WriteObject(time.Now(), doe.NewObject(doe.ProtocolCMA, make([]byte, 64)))
		time.Sleep(50 * time.Microsecond)
	}
	err = w.Close()
	if err == nil {
		t.Fatal("no error after the file bound was reached")
	}
	if buf.Len() > 4096 {
		t.Fatalf("file grew to %d bytes, bound 4096", buf.Len())
	}
	_, recs := readAll(t, buf.Bytes())
	if len(recs) == 0 {
		t.Fatal("nothing written")
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.n++
	if f.n > 1 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestPcapWriterWriteErrorCounted(t *testing.T) {
	w, err := doe.NewPcapWriter(&failingWriter{}, doe.LinkTypePCIDOE, doe.PcapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteObject(time.Now(), doe.EncodeDiscoveryRequest(0, 0))
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close: %v", err)
	}
}

// CaptureMailbox records a request and its response, and only the request
// when the exchange fails; the exchange itself is unchanged.
func TestCaptureMailbox(t *testing.T) {
	var buf bytes.Buffer
	w, err := doe.NewPcapWriter(&buf, doe.LinkTypePCIDOE, doe.PcapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fail := false
	mb := doe.CaptureMailbox{Capture: w, Mailbox: doe.MailboxFunc(func(ctx context.Context, req doe.Object) (doe.Object, error) {
		if fail {
			return doe.Object{}, doe.ErrTimeout
		}
		return doe.EncodeDiscoveryResponse(doe.ProtocolCMA, 0), nil
	})}
	w.Annotate(doe.AnnotationStart, "device A")
	if _, err := mb.Exchange(context.Background(), doe.EncodeDiscoveryRequest(0, 0)); err != nil {
		t.Fatal(err)
	}
	fail = true
	if _, err := mb.Exchange(context.Background(), doe.EncodeDiscoveryRequest(1, 0)); !errors.Is(err, doe.ErrTimeout) {
		t.Fatalf("error changed: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, recs := readAll(t, buf.Bytes())
	if len(recs) != 4 {
		t.Fatalf("%d records, want annotation, request, response, request", len(recs))
	}
	o, _ := doe.Decode(recs[0].Data)
	if k, text, ok := doe.DecodeAnnotation(o); !ok || k != doe.AnnotationStart || text != "device A" {
		t.Fatalf("annotation %v %q %v", k, text, ok)
	}
}

func TestCreatePcapMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.pcap")
	w, err := doe.CreatePcap(p, doe.LinkTypePCIDOE, doe.PcapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 24 {
		t.Fatalf("%v %v", fi, err)
	}
}

// Hostile headers are refused with the reason, before any allocation of
// their claimed size.
func TestPcapReaderHostile(t *testing.T) {
	hdr := func(magic uint32, major uint16, link uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, magic)
		b = binary.LittleEndian.AppendUint16(b, major)
		b = binary.LittleEndian.AppendUint16(b, 4)
		b = append(b, make([]byte, 8)...)
		b = binary.LittleEndian.AppendUint32(b, 65536)
		return binary.LittleEndian.AppendUint32(b, link)
	}
	rec := func(incl, orig, usec uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 1)
		b = binary.LittleEndian.AppendUint32(b, usec)
		b = binary.LittleEndian.AppendUint32(b, incl)
		return binary.LittleEndian.AppendUint32(b, orig)
	}
	good := hdr(0xa1b2c3d4, 2, 292)
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"pcapng":       {append([]byte{0x0a, 0x0d, 0x0d, 0x0a}, good[4:]...), "magic"},
		"version":      {hdr(0xa1b2c3d4, 1, 292), "version"},
		"ethernet":     {hdr(0xa1b2c3d4, 2, 1), "link type"},
		"short header": {good[:10], "global header"},
		"huge record":  {append(slicesClone(good), rec(0xFFFFFFF0, 0xFFFFFFF0, 0)...), "exceeds"},
		"incl > orig":  {append(slicesClone(good), rec(8, 4, 0)...), "original length"},
		"usec":         {append(slicesClone(good), rec(0, 0, 1e6)...), "sub-second"},
		"cut record":   {append(append(slicesClone(good), rec(8, 8, 0)...), 1, 2), "data"},
		"cut header":   {append(slicesClone(good), 1, 2, 3), "header"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := doe.NewPcapReader(bytes.NewReader(tc.b))
			if err == nil {
				_, err = r.Next()
			}
			if err == nil || !errors.Is(err, doe.ErrPcap) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrPcap naming %q", err, tc.want)
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// BenchmarkCaptureOverhead: an exchange through CaptureMailbox (records
// queued for a background writer to io.Discard) against the same
// exchange uncaptured, as a ratio within one run. The exchange stands in
// for the cheapest real one: it seals its 1 KiB response with
// AES-256-GCM, as a secured message is.
func BenchmarkCaptureOverhead(b *testing.B) {
	req := doe.NewObject(doe.ProtocolCMA, make([]byte, 256))
	blk, _ := aes.NewCipher(make([]byte, 32))
	gcm, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	plain := doe.MailboxFunc(func(ctx context.Context, _ doe.Object) (doe.Object, error) {
		return doe.Object{Vendor: doe.VendorPCISIG, Type: doe.TypeSecuredCMA, Payload: gcm.Seal(nil, nonce, make([]byte, 1008), nil)}, nil
	})
	w, err := doe.NewPcapWriter(io.Discard, doe.LinkTypePCIDOE, doe.PcapOptions{QueueRecords: 1 << 14, QueueBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	captured := doe.CaptureMailbox{Mailbox: plain, Capture: w}
	ctx := context.Background()
	var tPlain, tCap time.Duration
	for b.Loop() {
		t0 := time.Now()
		for range 100 {
			_, _ = plain.Exchange(ctx, req)
		}
		t1 := time.Now()
		for range 100 {
			_, _ = captured.Exchange(ctx, req)
		}
		tPlain += t1.Sub(t0)
		tCap += time.Since(t1)
	}
	b.ReportMetric(float64(tCap)/float64(tPlain), "captured/plain")
}
