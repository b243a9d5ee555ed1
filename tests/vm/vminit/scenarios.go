//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/tests/vm"
)

// wantProtocols is what QEMU's CXL type-3 DOE instance lists.
var wantProtocols = []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCDAT}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func protoNames(ps []doe.Protocol) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%04x:%02x", p.Vendor, p.Type))
	}
	return out
}

// scenarioRawDriver: with no driver bound, our driver finds the DOE
// capability, runs discovery, reads the whole CDAT; then the kernel's CXL
// drivers load and read the CDAT themselves, and the two tables must be
// the same bytes.
func scenarioRawDriver(ctx context.Context, e *env, r *vm.Result) error {
	bdf, err := findCXLDevice()
	if err != nil {
		return err
	}
	e.bdf = bdf
	r.Fact("bdf", bdf)
	if d, err := boundDriver(bdf); err != nil || d != "" {
		return fmt.Errorf("%s should have no driver yet, has %q (%v)", bdf, d, err)
	}
	r.Step("%s (class %s) has no driver bound", bdf, cxlMemClass)

	cs, err := doe.OpenSysfs(doe.SysfsRoot, bdf)
	if err != nil {
		return err
	}
	defer cs.Close()
	caps, err := doe.WalkExtCaps(cs)
	if err != nil {
		return err
	}
	var list []string
	for _, c := range caps {
		list = append(list, fmt.Sprintf("0x%03x:id 0x%04x v%d", c.Offset, c.ID, c.Version))
	}
	r.Step("extended capabilities: %s", strings.Join(list, ", "))
	does, err := doe.FindDOE(cs)
	if err != nil {
		return err
	}
	if len(does) != 1 {
		return fmt.Errorf("want one DOE capability, found %d", len(does))
	}
	r.Fact("doe_offset", fmt.Sprintf("0x%x", does[0].Offset))
	d := doe.NewDriver(cs, does[0])

	protos, err := doe.Discover(ctx, d, doe.DiscoveryVersion(does[0].Version))
	if err != nil {
		return err
	}
	r.Fact("protocols", protoNames(protos))
	if !slices.Equal(protos, wantProtocols) {
		return fmt.Errorf("discovery listed %v, want %v", protos, wantProtocols)
	}
	r.Step("discovery at 0x%x lists %v", does[0].Offset, protos)

	table, err := doe.ReadCDAT(ctx, d)
	if err != nil {
		return err
	}
	h, entries, err := doe.ParseCDAT(table)
	if err != nil {
		return err
	}
	var types []string
	for _, en := range entries {
		types = append(types, doe.CDATTypeName(en.Type))
	}
	e.cdat = table
	r.Fact("cdat_bytes", len(table))
	r.Fact("cdat_sha256", sum(table))
	r.Fact("cdat_entries", types)
	r.Step("CDAT read by our driver: %d bytes, revision %d, checksum ok, %d structures (%s)", len(table), h.Revision, len(entries), strings.Join(types, " "))

	for _, m := range []string{"cxl_acpi", "cxl_pci", "cxl_mem"} {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	if err := waitDriver(ctx, bdf, "cxl_pci"); err != nil {
		return err
	}
	r.Step("loaded cxl_acpi, cxl_pci, cxl_mem; cxl_pci bound to %s", bdf)
	ep, kernel, err := kernelCDAT(ctx, "")
	if err != nil {
		return err
	}
	e.endpoint = ep
	r.Fact("kernel_endpoint", ep)
	r.Fact("kernel_cdat_sha256", sum(kernel))
	if !bytes.Equal(kernel, table) {
		return fmt.Errorf("the kernel's %s/CDAT (%d bytes, sha256 %s) differs from ours (%d bytes, sha256 %s)",
			ep, len(kernel), sum(kernel), len(table), sum(table))
	}
	r.Step("the kernel's %s/%s/CDAT is the same %d bytes", cxlDevices, ep, len(kernel))
	return nil
}

// scenarioRebind: after everything above, the mailbox is idle and
// cxl_pci binds again, and the kernel reads the same CDAT through it.
func scenarioRebind(ctx context.Context, e *env, r *vm.Result) error {
	if e.bdf == "" {
		return errors.New("no device (scenario 1 failed)")
	}
	cs, _, c, err := openMailbox(e.bdf, doe.DefaultTimeout)
	if err != nil {
		return err
	}
	err = idle(cs, c)
	cs.Close()
	if err != nil {
		return err
	}
	r.Step("the mailbox is idle before the rebind")
	before := len(kernelErrors())
	if err := writeSysfs(cxlPCIDrv+"/bind", e.bdf); err != nil {
		return err
	}
	if err := waitDriver(ctx, e.bdf, "cxl_pci"); err != nil {
		return err
	}
	r.Step("cxl_pci binds %s again", e.bdf)
	ep, kernel, err := kernelCDAT(ctx, "")
	if err != nil {
		return err
	}
	r.Fact("kernel_endpoint", ep)
	r.Fact("kernel_cdat_sha256", sum(kernel))
	if !bytes.Equal(kernel, e.cdat) {
		return fmt.Errorf("the kernel's CDAT after the rebind (%s, sha256 %s) differs from ours (%s)", ep, sum(kernel), sum(e.cdat))
	}
	r.Step("the kernel reads its CDAT again: %s/CDAT is the same %d bytes", ep, len(kernel))
	if errs := kernelErrors(); len(errs) > before {
		return fmt.Errorf("the kernel reported CXL/DOE errors after the rebind: %q", errs[before:])
	}
	r.Step("the kernel logged no CXL/DOE error")
	return nil
}
