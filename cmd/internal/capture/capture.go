package capture

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/devattest/devattest/doe"
)

// Views a capture can be taken from.
const (
	ViewProbe = "probe" // devattest probe: the requester's side
	ViewGuest = "guest" // devattest-guest: the requester's side
	ViewShim  = "shim"  // devattest-shim: the host's side, sessions stay encrypted
)

// Create starts a DOE capture at path (mode 0600) whose first record is
// an annotation naming the device and the view, so that `devattest dump`
// picks that device's key-log entries.
func Create(path, device, view string) (*doe.PcapWriter, error) {
	w, err := doe.CreatePcap(path, doe.LinkTypePCIDOE, doe.PcapOptions{})
	if err != nil {
		return nil, err
	}
	w.Annotate(doe.AnnotationStart, "device="+url.QueryEscape(device)+" view="+url.QueryEscape(view))
	return w, nil
}

func parseStart(text string) (device, view string) {
	for _, f := range strings.Fields(text) {
		k, v, _ := strings.Cut(f, "=")
		v, _ = url.QueryUnescape(v)
		switch k {
		case "device":
			device = v
		case "view":
			view = v
		}
	}
	return device, view
}

// PathFor names one device's capture when a command captures several:
// spdm-dump keeps one connection's state per file (its direction
// tracking, negotiated algorithms and sessions are global), so devices
// never share a file. "out/guest.pcap" and "0000:01:00.1" give
// "out/guest-0000_01_00.1.pcap".
func PathFor(path, device string) string {
	ext := filepath.Ext(path)
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, device)
	return strings.TrimSuffix(path, ext) + "-" + safe + ext
}

// WriteText prints a dump for people: one line per record, then a summary.
func WriteText(w io.Writer, dm *Dump) {
	if dm.Device != "" {
		fmt.Fprintf(w, "capture of device %q (%s view)\n", dm.Device, dm.View)
	}
	for _, r := range dm.Records {
		fmt.Fprintf(w, "%4d %s %-3s %s", r.Index, r.Time.Format("15:04:05.000000"), r.Dir, r.Protocol)
		if r.Session != "" && r.Protocol != "SPDM" {
			fmt.Fprintf(w, " %s", r.Session)
			if r.Decrypted {
				fmt.Fprint(w, " (decrypted)")
			}
		}
		if r.Message != "" {
			if r.Version != "" && r.Protocol == "SPDM" {
				fmt.Fprintf(w, " %s", r.Version)
			} else if r.Version != "" {
				fmt.Fprintf(w, " SPDM %s", r.Version)
			}
			fmt.Fprintf(w, " %s", r.Message)
		}
		if r.Detail != "" {
			fmt.Fprintf(w, " (%s)", r.Detail)
		}
		if r.App != "" {
			fmt.Fprintf(w, " %s", r.App)
		}
		if r.Encrypted != "" {
			fmt.Fprintf(w, " [encrypted: %s]", r.Encrypted)
		}
		if r.Problem != "" {
			fmt.Fprintf(w, " [PROBLEM: %s]", r.Problem)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d records, %d problems, %d left encrypted\n", len(dm.Records), dm.Problems, dm.Encrypted)
}
