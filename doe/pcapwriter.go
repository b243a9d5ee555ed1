package doe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Defaults of PcapOptions.
const (
	DefaultPcapMaxBytes     = 64 << 20
	DefaultPcapQueueRecords = 256
	DefaultPcapQueueBytes   = 4 << 20
	// pcapCloseWait bounds how long Close waits for the file: a capture
	// must never hold up the process that made it.
	pcapCloseWait = 5 * time.Second
)

// PcapOptions bound a capture.
type PcapOptions struct {
	// MaxBytes bounds the file (default 64 MiB); later records are
	// dropped and counted.
	MaxBytes int64
	// QueueRecords and QueueBytes bound what waits for the disk (default
	// 256 records, 4 MiB); a record that does not fit is dropped and
	// counted, never waited for.
	QueueRecords int
	QueueBytes   int
}

// PcapStats says what a capture kept and lost.
type PcapStats struct {
	Written int    // records in the file
	Dropped int    // records lost: queue full, file bound reached, or a write error
	Bytes   int64  // file size
	Err     string // the first write error, if any
}

// PcapWriter writes a capture in the background: Write copies the record
// into a bounded queue and returns at once, so a slow or failing disk
// drops records (counted in Stats) instead of slowing or failing the
// exchanges being captured. It is safe for concurrent use.
type PcapWriter struct {
	w   io.Writer
	c   io.Closer
	max int64

	mu       sync.Mutex
	queue    chan []byte
	queued   int // bytes waiting in queue
	maxQueue int
	closed   bool
	stats    PcapStats
	done     chan struct{}
}

// CreatePcap creates (or truncates) path with mode 0600 and starts a
// capture of the given link type in it.
func CreatePcap(path string, linkType uint32, opts PcapOptions) (*PcapWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("doe: creating capture: %w", err)
	}
	w, err := NewPcapWriter(f, linkType, opts)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	w.c = f
	return w, nil
}

// NewPcapWriter writes the global header to w synchronously (an error
// here is the caller's to report before anything is captured) and starts
// the background writer. Close must be called to stop it.
func NewPcapWriter(w io.Writer, linkType uint32, opts PcapOptions) (*PcapWriter, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultPcapMaxBytes
	}
	if opts.QueueRecords <= 0 {
		opts.QueueRecords = DefaultPcapQueueRecords
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultPcapQueueBytes
	}
	hdr := appendPcapHeader(nil, linkType)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("doe: writing the capture header: %w", err)
	}
	pw := &PcapWriter{w: w, max: opts.MaxBytes, queue: make(chan []byte, opts.QueueRecords),
		maxQueue: opts.QueueBytes, done: make(chan struct{})}
	pw.stats.Bytes = int64(len(hdr))
	go pw.run()
	return pw, nil
}

// Write queues one record (the bytes are copied) stamped with t. It never
// blocks on the disk; a record that cannot be queued is counted as dropped.
func (pw *PcapWriter) Write(t time.Time, data []byte) {
	rec := appendPcapRecord(make([]byte, 0, pcapRecordHead+min(len(data), PcapSnapLen)), t, data)
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.closed || pw.queued+len(rec) > pw.maxQueue {
		pw.stats.Dropped++
		return
	}
	select {
	case pw.queue <- rec:
		pw.queued += len(rec)
	default:
		pw.stats.Dropped++
	}
}

// WriteObject queues one DOE object.
func (pw *PcapWriter) WriteObject(t time.Time, o Object) {
	b, err := o.Encode()
	if err != nil {
		pw.mu.Lock()
		pw.stats.Dropped++
		pw.mu.Unlock()
		return
	}
	pw.Write(t, b)
}

// Annotate queues an annotation record (see EncodeAnnotation).
func (pw *PcapWriter) Annotate(kind uint8, text string) {
	pw.WriteObject(time.Now(), EncodeAnnotation(kind, text))
}

func (pw *PcapWriter) run() {
	defer close(pw.done)
	for rec := range pw.queue {
		pw.mu.Lock()
		pw.queued -= len(rec)
		full := pw.stats.Bytes+int64(len(rec)) > pw.max
		failed := pw.stats.Err != ""
		pw.mu.Unlock()
		var err error
		if !full && !failed {
			_, err = pw.w.Write(rec)
		}
		pw.mu.Lock()
		switch {
		case full || failed:
			pw.stats.Dropped++
		case err != nil:
			pw.stats.Dropped++
			pw.stats.Err = err.Error()
		default:
			pw.stats.Written++
			pw.stats.Bytes += int64(len(rec))
		}
		pw.mu.Unlock()
	}
}

// Stats returns what the capture kept and lost so far.
func (pw *PcapWriter) Stats() PcapStats {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.stats
}

// Close writes what is queued, notes lost records in an annotation when
// there is room, and closes the file. It waits for the disk at most a few
// seconds; the error says if the capture lost records or could not be
// finished.
func (pw *PcapWriter) Close() error {
	pw.mu.Lock()
	if pw.closed {
		pw.mu.Unlock()
		return nil
	}
	dropped := pw.stats.Dropped
	pw.mu.Unlock()
	if dropped > 0 {
		pw.Annotate(AnnotationDropped, fmt.Sprintf("%d records dropped", dropped))
	}
	pw.mu.Lock()
	pw.closed = true
	close(pw.queue)
	pw.mu.Unlock()
	t := time.NewTimer(pcapCloseWait)
	defer t.Stop()
	select {
	case <-pw.done:
	case <-t.C:
		return errors.New("doe: capture file did not take the last records in time")
	}
	var err error
	if pw.c != nil {
		err = pw.c.Close()
	}
	st := pw.Stats()
	switch {
	case st.Err != "":
		return fmt.Errorf("doe: capture: %d records written, %d dropped, write error: %s", st.Written, st.Dropped, st.Err)
	case st.Dropped > 0:
		return fmt.Errorf("doe: capture: %d records written, %d dropped (queue full or file bound reached)", st.Written, st.Dropped)
	}
	return err
}

// CaptureMailbox passes every exchange to Mailbox and records the request
// when it is sent and the response when it arrives, each with its own
// timestamp. Capturing never changes or fails an exchange. A request
// without a response (an error, a timeout) is recorded alone.
type CaptureMailbox struct {
	Mailbox
	Capture *PcapWriter
}

// Exchange implements Mailbox.
func (c CaptureMailbox) Exchange(ctx context.Context, req Object) (Object, error) {
	if c.Capture == nil {
		return c.Mailbox.Exchange(ctx, req)
	}
	c.Capture.WriteObject(time.Now(), req)
	resp, err := c.Mailbox.Exchange(ctx, req)
	if err == nil {
		c.Capture.WriteObject(time.Now(), resp)
	}
	return resp, err
}
