package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/doe"
)

type abortable struct {
	doe.MailboxFunc
	aborted bool
}

func (a *abortable) Abort(context.Context) error { a.aborted = true; return nil }

// A captured mailbox that could abort still can (the shim aborts a
// wedged VF through it); one that could not does not pretend to.
func TestWrapKeepsAbort(t *testing.T) {
	var stderr bytes.Buffer
	d, err := OpenDebug(filepath.Join(t.TempDir(), "c.pcap"), "", "shim", &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := d.Capture("vf0", true)
	if err != nil || !strings.Contains(stderr.String(), "c-vf0.pcap") {
		t.Fatalf("%v %q", err, stderr.String())
	}
	a := &abortable{}
	wrapped, ok := Wrap(a, w).(aborter)
	if !ok {
		t.Fatal("the wrapper hides Abort")
	}
	_ = wrapped.Abort(context.Background())
	if !a.aborted {
		t.Fatal("Abort not forwarded")
	}
	if _, ok := Wrap(doe.MailboxFunc(nil), w).(aborter); ok {
		t.Fatal("a mailbox without Abort gained one")
	}
	if Wrap(a, nil) != doe.Mailbox(a) {
		t.Fatal("no capture: the mailbox should be returned as it is")
	}
}
