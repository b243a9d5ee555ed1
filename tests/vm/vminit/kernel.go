//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/devattest/devattest/doe"
)

// env is what the scenarios share.
type env struct {
	bdf  string // the CXL type-3 device
	cdat []byte // its CDAT as our driver read it in scenario 1
	// endpoint is the kernel's endpoint port that read the CDAT first.
	endpoint string
}

const (
	pciDevices  = "/sys/bus/pci/devices"
	cxlPCIDrv   = "/sys/bus/pci/drivers/cxl_pci"
	cxlDevices  = "/sys/bus/cxl/devices"
	moduleDir   = "/modules"
	cxlMemClass = "0x050210" // CXL memory device (PCI class 05, sub 02, prog-if 10)
)

// findCXLDevice returns the BDF of the one function of the CXL memory
// device class.
func findCXLDevice() (string, error) {
	ents, err := os.ReadDir(pciDevices)
	if err != nil {
		return "", err
	}
	var found []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(pciDevices, e.Name(), "class"))
		if err == nil && strings.TrimSpace(string(b)) == cxlMemClass {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("want one PCI function of class %s, found %v", cxlMemClass, found)
	}
	return found[0], nil
}

// boundDriver is the name of the driver bound to bdf, "" for none.
func boundDriver(bdf string) (string, error) {
	t, err := os.Readlink(filepath.Join(pciDevices, bdf, "driver"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(t), nil
}

// waitDriver waits until bdf's driver is want ("" for none).
func waitDriver(ctx context.Context, bdf, want string) error {
	return poll(ctx, fmt.Sprintf("driver of %s to be %q", bdf, want), func() (bool, error) {
		d, err := boundDriver(bdf)
		return d == want, err
	})
}

// loadModule loads /modules/<name>.ko with finit_module; a module already
// loaded is fine.
func loadModule(name string) error {
	f, err := os.Open(filepath.Join(moduleDir, name+".ko"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("loading %s: %w", name, err)
	}
	return nil
}

// writeSysfs writes s to a sysfs attribute in one write, as the kernel's
// bind and unbind files need.
func writeSysfs(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(s))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("writing %q to %s: %w", s, path, werr)
	}
	return cerr
}

// kernelCDAT waits for an endpoint port of the kernel's CXL bus whose
// CDAT attribute is not empty, other than skip, and returns its name and
// the table.
func kernelCDAT(ctx context.Context, skip string) (name string, table []byte, err error) {
	err = poll(ctx, "an endpoint port with a CDAT attribute", func() (bool, error) {
		paths, _ := filepath.Glob(filepath.Join(cxlDevices, "endpoint*", "CDAT"))
		for _, p := range paths {
			ep := filepath.Base(filepath.Dir(p))
			if ep == skip {
				continue
			}
			b, err := os.ReadFile(p)
			if err == nil && len(b) > 0 {
				name, table = ep, b
				return true, nil
			}
		}
		return false, nil
	})
	return name, table, err
}

// poll calls done every 50 ms until it reports true, fails, or ctx ends.
func poll(ctx context.Context, what string, done func() (bool, error)) error {
	for {
		ok, err := done()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// openMailbox opens bdf's config space and a driver on its first DOE
// capability, with the per-object timeout given.
func openMailbox(bdf string, timeout time.Duration) (*doe.SysfsConfigSpace, *doe.Driver, doe.ExtCap, error) {
	cs, err := doe.OpenSysfs(doe.SysfsRoot, bdf)
	if err != nil {
		return nil, nil, doe.ExtCap{}, err
	}
	caps, err := doe.FindDOE(cs)
	if err != nil {
		cs.Close()
		return nil, nil, doe.ExtCap{}, err
	}
	d := doe.NewDriver(cs, caps[0])
	d.Timeout = timeout
	return cs, d, caps[0], nil
}

// kernelMessage matches kernel log lines about CXL and DOE.
var kernelMessage = regexp.MustCompile(`(?i)cxl|doe|cdat`)

// kernelLog returns what the kernel has logged about CXL and DOE so far,
// one line per record, without the record's header.
func kernelLog() []string {
	// A raw non-blocking fd: an os.File would park in the poller at the
	// end of the log instead of returning EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return []string{"(cannot read /dev/kmsg: " + err.Error() + ")"}
	}
	defer unix.Close(fd)
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE || err == unix.EINTR {
			continue // EPIPE: records were overwritten; go on with the next
		}
		if err != nil || n <= 0 {
			return out
		}
		rec := buf[:n]
		if i := bytes.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		if i := bytes.IndexByte(rec, '\n'); i >= 0 {
			rec = rec[:i]
		}
		if kernelMessage.Match(rec) {
			out = append(out, string(rec))
		}
	}
}

// kernelFailure matches the log lines that report a failure.
var kernelFailure = regexp.MustCompile(`(?i)error|fail|timeout|timed out|abort`)

// kernelErrors returns the kernel's CXL and DOE log lines that report a
// failure.
func kernelErrors() []string {
	var bad []string
	for _, l := range kernelLog() {
		if kernelFailure.MatchString(l) {
			bad = append(bad, l)
		}
	}
	return bad
}
