package hostshim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/devattest/devattest/doe"
)

// Linux facts the sysfs checks rest on:
//   - /sys/bus/pci/devices/<BDF>/config shows a reader without
//     CAP_SYS_ADMIN only the first 64 bytes; every DOE capability lies
//     beyond them, in extended config space.
//   - With kernel lockdown (integrity or confidentiality) writes to that
//     file are refused (LOCKDOWN_PCI_ACCESS).
//   - vfio-pci virtualizes the capabilities it knows; the DOE capability
//     is not among them, so its bytes fall into the range vfio-pci passes
//     through raw, and QEMU forwards a guest's config accesses to it.
//   - The PCI core itself aborts each DOE mailbox and runs discovery when
//     it enumerates a function and again when it removes it.

// readLockdown returns the active lockdown mode from the lockdown file
// ("none [integrity] confidentiality": the bracketed one).
func readLockdown(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "unknown: " + path + " does not exist (securityfs not mounted, or no lockdown LSM)"
		}
		return "unknown: " + err.Error()
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return "unknown: " + path + " says " + strings.TrimSpace(s)
	}
	return s[i+1 : j]
}

// driverOf is the base name of dir's driver link, "" when none.
func driverOf(dir string) (string, error) {
	target, err := os.Readlink(filepath.Join(dir, "driver"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(target), nil
}

// isVFIOVariant: a VFIO variant driver (mlx5_vfio_pci, hisi_acc_vfio_pci,
// ...), which may virtualize more of config space than vfio-pci does.
func isVFIOVariant(driver string) bool {
	return driver != "vfio-pci" && strings.Contains(strings.ReplaceAll(driver, "-", "_"), "vfio_pci")
}

// checkSysfs fills in the sysfs side of r and says whether discovery may
// run (the mailbox is reachable and no kernel driver may be using it).
func checkSysfs(r *VFReport, vf VFConfig, env CheckEnv, lockdown string) (*SysfsReport, bool) {
	s := &SysfsReport{DOE: []DOEInstance{}, OtherUsers: []string{}}
	bad := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...)) }
	probe := true

	dir := filepath.Join(vf.SysfsRoot, r.VF)
	if _, err := os.Stat(dir); err != nil {
		bad("no such PCI function: %v", err)
		return s, false
	}
	driver, err := driverOf(dir)
	if err != nil {
		bad("reading the driver link: %v", err)
		probe = false
	}
	s.Driver = driver
	switch {
	case driver == "" || slices.Contains(DefaultAllowedDrivers, driver) || isVFIOVariant(driver):
	case vf.AllowKernelDriver:
		warn("bound to %q, allowed by allow_kernel_driver: the driver may drive the same mailbox, interleaving with the shim; discovery skipped", driver)
		probe = false
	default:
		bad("bound to the kernel driver %q, which may use the DOE mailbox itself: the shim refuses it (unbind it and bind vfio-pci, or set allow_kernel_driver); discovery skipped", driver)
		probe = false
	}
	if pf, err := os.Readlink(filepath.Join(dir, "physfn")); err == nil {
		s.PhysFn = filepath.Base(pf)
		s.PhysFnDriver, _ = driverOf(filepath.Join(vf.SysfsRoot, s.PhysFn))
	}

	switch lockdown {
	case "integrity", "confidentiality":
		bad("kernel lockdown is %q: writes to config space through sysfs are refused, so the sysfs backend cannot drive the mailbox", lockdown)
		probe = false
	case "none", "":
	default:
		warn("kernel lockdown: %s", lockdown)
	}

	if !checkConfigAccess(s, filepath.Join(dir, "config"), bad) {
		probe = false
	}
	s.OtherUsers = otherDOEUsers(dir, s, env)

	// The capability walk only reads config space; it is safe whoever
	// uses the mailbox.
	cs, closer, err := env.OpenConfig(vf.SysfsRoot, r.VF)
	if err != nil {
		if probe {
			bad("opening config space: %v", err)
		}
		return s, false
	}
	defer closer.Close()
	caps, err := doe.FindDOE(cs)
	switch {
	case errors.Is(err, doe.ErrNoCapability):
		bad("the function has no DOE capability")
		probe = false
	case err != nil:
		bad("walking the extended capabilities: %v", err)
		probe = false
	}
	for _, c := range caps {
		s.DOE = append(s.DOE, DOEInstance{Offset: c.Offset, Version: c.Version, Protocols: []string{}})
		s.DirectAccess.Ranges = append(s.DirectAccess.Ranges, fmt.Sprintf("0x%03x-0x%03x", c.Offset, c.Offset+doe.CapabilitySize-1))
	}
	s.DirectAccess = directAccess(driver, s.DirectAccess.Ranges)
	return s, probe
}

// checkConfigAccess reads past the first 64 bytes (CAP_SYS_ADMIN) and
// opens the file for writing, as the shim will.
func checkConfigAccess(s *SysfsReport, path string, bad func(string, ...any)) bool {
	f, err := os.Open(path)
	if err != nil {
		bad("config space cannot be read: %v", err)
		return false
	}
	defer f.Close()
	var b [4]byte
	for _, off := range []int{doe.ConfigSpaceSize - 4, 0xfc, 0x3c} {
		if n, _ := f.ReadAt(b[:], int64(off)); n == 4 {
			s.ConfigReadable = off + 4
			break
		}
	}
	ok := true
	if s.ConfigReadable <= 256 {
		bad("only the first %d bytes of config space are readable: the DOE capabilities lie in extended config space (0x100 on), which Linux shows only to a process with CAP_SYS_ADMIN (or the function has no extended config space)", s.ConfigReadable)
		ok = false
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		bad("config space cannot be opened for writing (the shim's user needs write access to %s, e.g. by a udev rule): %v", path, err)
		return false
	}
	w.Close()
	s.ConfigWritable = true
	return ok
}

// otherDOEUsers lists what else may drive the function's DOE mailboxes.
func otherDOEUsers(dir string, s *SysfsReport, env CheckEnv) []string {
	users := []string{"the PCI core: it aborts each DOE mailbox and runs discovery when it enumerates the function and when it removes it (sriov_numvfs changes, rescans, hot-plug), not in between"}
	if s.Driver != "" && !slices.Contains(DefaultAllowedDrivers, s.Driver) {
		u := fmt.Sprintf("the bound driver %q", s.Driver)
		if strings.HasPrefix(s.Driver, "cxl") {
			u += ", which reads the CDAT through the mailbox (CXL Table Access)"
		}
		users = append(users, u)
	}
	if _, err := os.Stat(filepath.Join(dir, "authenticated")); err == nil {
		users = append(users, "in-kernel CMA-SPDM (the function has an authenticated attribute): the kernel runs SPDM on the mailbox at enumeration, on resume and when that attribute is written")
	}
	tsms, _ := filepath.Glob(filepath.Join(env.Sys, "class", "tsm", "*"))
	if _, err := os.Stat(filepath.Join(dir, "tsm")); err == nil || len(tsms) > 0 {
		pf0 := "this function"
		if s.PhysFn != "" {
			pf0 = "its physical function " + s.PhysFn
		}
		users = append(users, fmt.Sprintf("a platform TSM (%d under %s): it runs SPDM and IDE key programming over the DOE mailbox of the device's function 0, that is %s", len(tsms), filepath.Join(env.Sys, "class", "tsm"), pf0))
	}
	if s.PhysFnDriver != "" {
		users = append(users, fmt.Sprintf("the physical function %s is bound to %q, which drives the PF's own mailboxes, not this VF's", s.PhysFn, s.PhysFnDriver))
	}
	return users
}

// directAccess is the residual risk of a guest driving the DOE registers
// without the shim.
func directAccess(driver string, ranges []string) DirectAccess {
	d := DirectAccess{
		Ranges: ranges,
		Why: "vfio-pci hides the DOE capability from the capability list it shows the VMM, but passes its registers through as raw config space, " +
			"and QEMU forwards the guest's config accesses; a guest that knows or scans the offset drives the mailbox itself, past the shim's " +
			"allowlist and audit log, and can disturb the shim's exchanges for it (the shim reports what it notices as foreign_activity)",
		Mitigation: "a VFIO variant driver that blocks config accesses to these ranges, or a VMM option that drops guest config reads and writes to them",
	}
	switch {
	case driver == "vfio-pci":
		d.Risk = "present"
	case isVFIOVariant(driver):
		d.Risk = "depends on the variant driver: check that " + driver + " blocks these ranges"
	default:
		d.Risk = "none while no VFIO driver is bound; present once the VF is passed to a guest with vfio-pci"
	}
	if len(ranges) == 0 {
		d.Risk = "none: no DOE capability"
	}
	return d
}

// discoverSysfs runs discovery on every DOE instance and marks the one the
// shim would serve; it returns that instance's protocols (nil if none).
func discoverSysfs(ctx context.Context, r *VFReport, vf VFConfig, want []doe.Protocol, env CheckEnv) []doe.Protocol {
	cs, closer, err := env.OpenConfig(vf.SysfsRoot, r.VF)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("opening config space: %v", err))
		return nil
	}
	defer closer.Close()
	var served []doe.Protocol
	for i := range r.Sysfs.DOE {
		inst := &r.Sysfs.DOE[i]
		d := doe.NewDriver(cs, doe.ExtCap{Offset: inst.Offset, ID: doe.ExtCapIDDOE, Version: inst.Version})
		protos, err := doe.Discover(ctx, d, doe.DiscoveryVersion(inst.Version))
		if err != nil {
			inst.Error = err.Error()
			r.Warnings = append(r.Warnings, fmt.Sprintf("discovery on the DOE instance at 0x%x: %v", inst.Offset, err))
			continue
		}
		for _, p := range protos {
			inst.Protocols = append(inst.Protocols, p.String())
		}
		if served == nil && servesAny(protos, want) {
			inst.Served, served = true, protos
		}
	}
	if served == nil {
		var all []string
		for _, inst := range r.Sysfs.DOE {
			all = append(all, inst.Protocols...)
		}
		r.Problems = append(r.Problems, fmt.Sprintf("no DOE instance offers one of the listener's allowed types (found %v)", all))
		return nil
	}
	return served
}
