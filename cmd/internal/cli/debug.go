package cli

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// Debug holds a command's --pcap and --keylog outputs. Neither ever fails
// or slows an attestation: capture records that cannot be written are
// dropped and counted, lost key-log lines are counted, and Close reports
// both on stderr.
type Debug struct {
	pcap   string
	view   string
	stderr io.Writer
	keys   *capture.KeyLogFile

	mu      sync.Mutex
	writers map[string]*doe.PcapWriter
}

// OpenDebug prepares the outputs; keylog (when set) is opened at once,
// with a warning on stderr, and refused unless it is a 0600 file.
func OpenDebug(pcap, keylog, view string, stderr io.Writer) (*Debug, error) {
	d := &Debug{pcap: pcap, view: view, stderr: stderr, writers: map[string]*doe.PcapWriter{}}
	if keylog != "" {
		k, err := capture.CreateKeyLog(keylog)
		if err != nil {
			return nil, fmt.Errorf("--keylog: %w", err)
		}
		fmt.Fprintf(stderr, capture.KeyLogWarning+"\n", keylog)
		d.keys = k
	}
	return d, nil
}

// Capture returns the capture of one device (nil without --pcap): the
// --pcap file itself, or with perDevice one file per device
// (capture.PathFor). A device asked for twice shares its file.
func (d *Debug) Capture(device string, perDevice bool) (*doe.PcapWriter, error) {
	if d == nil || d.pcap == "" {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.writers[device]; w != nil {
		return w, nil
	}
	path := d.pcap
	if perDevice {
		path = capture.PathFor(d.pcap, device)
	}
	w, err := capture.Create(path, device, d.view)
	if err != nil {
		return nil, fmt.Errorf("--pcap: %w", err)
	}
	fmt.Fprintf(d.stderr, "capturing %s to %s\n", device, path)
	d.writers[device] = w
	return w, nil
}

// Wrap returns mb capturing into w (mb itself when w is nil). A mailbox
// that can abort (the register-level driver, which the shim aborts when
// a device wedges) keeps that ability through the wrapper.
func Wrap(mb doe.Mailbox, w *doe.PcapWriter) doe.Mailbox {
	if w == nil {
		return mb
	}
	c := doe.CaptureMailbox{Mailbox: mb, Capture: w}
	if a, ok := mb.(aborter); ok {
		return abortingCapture{CaptureMailbox: c, a: a}
	}
	return c
}

type aborter interface {
	Abort(ctx context.Context) error
}

type abortingCapture struct {
	doe.CaptureMailbox
	a aborter
}

func (c abortingCapture) Abort(ctx context.Context) error { return c.a.Abort(ctx) }

// KeyLog returns the secchan key-log callback of one device (nil without
// --keylog).
func (d *Debug) KeyLog(device string) func(secchan.SessionSecrets) {
	if d == nil || d.keys == nil {
		return nil
	}
	return d.keys.For(device)
}

// Close finishes every output and says on stderr what was lost.
func (d *Debug) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for dev, w := range d.writers {
		if err := w.Close(); err != nil {
			fmt.Fprintf(d.stderr, "capture of %s: %v\n", dev, err)
		}
	}
	d.writers = map[string]*doe.PcapWriter{}
	if d.keys != nil {
		if err := d.keys.Close(); err != nil {
			fmt.Fprintf(d.stderr, "key log: %v\n", err)
		}
	}
}
