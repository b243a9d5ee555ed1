package hostshim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/devattest/devattest/doe"
)

// ErrDriverBound: the VF is bound to a kernel driver that may use its DOE
// mailbox itself (Linux's PCI core and drivers such as nvme or cxl do
// DOE discovery and CMA), so the shim's exchanges and the kernel's would
// interleave. The error names the driver.
var ErrDriverBound = errors.New("hostshim: VF is bound to a kernel driver that may use its DOE mailbox")

// DefaultAllowedDrivers are the drivers that leave a function's DOE
// mailbox alone: vfio-pci (the VF is being passed to a guest) and
// pci-stub (held, unused).
var DefaultAllowedDrivers = []string{"vfio-pci", "pci-stub"}

// CheckDriver refuses a VF bound to a kernel driver other than the
// allowed ones (nil: DefaultAllowedDrivers). The driver is the base name
// of the <sysfsRoot>/<bdf>/driver symlink; no symlink means no driver,
// which is fine.
func CheckDriver(sysfsRoot, bdf string, allowed []string) error {
	canon, err := doe.ParseBDF(bdf)
	if err != nil {
		return fmt.Errorf("hostshim: %w", err)
	}
	if allowed == nil {
		allowed = DefaultAllowedDrivers
	}
	target, err := os.Readlink(filepath.Join(sysfsRoot, canon, "driver"))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(sysfsRoot, canon)); serr != nil {
			return fmt.Errorf("hostshim: %s: %w", canon, serr)
		}
		return nil // no driver bound
	}
	if err != nil {
		return fmt.Errorf("hostshim: %s: reading its driver link: %w", canon, err)
	}
	driver := filepath.Base(target)
	if slices.Contains(allowed, driver) {
		return nil
	}
	return fmt.Errorf("%w: %s is bound to %q (allowed: %v); the kernel driver may use the DOE mailbox itself, so the shim would interleave with it; unbind it and bind vfio-pci, or allow %q explicitly",
		ErrDriverBound, canon, driver, allowed, driver)
}
