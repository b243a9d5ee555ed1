//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/devattest/devattest/hostshim"
)

// shimCheck runs `devattest-shim check --config cfg` (with --json, or as
// text) and returns its exit status, its report (JSON only) and what it
// printed.
func shimCheck(ctx context.Context, cfg string, asJSON bool) (int, *hostshim.CheckReport, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args := []string{"check", "--config", cfg}
	if asJSON {
		args = append(args, "--json")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, shimBinary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		return -1, nil, stdout.String(), err
	}
	if code != 0 && code != 1 {
		return code, nil, stdout.String(), fmt.Errorf("devattest-shim check exited %d: %s", code, stderr.String())
	}
	if !asJSON {
		return code, nil, stdout.String(), nil
	}
	var rep hostshim.CheckReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return code, nil, stdout.String(), fmt.Errorf("devattest-shim check --json: %w\n%s", err, stdout.String())
	}
	if len(rep.VFs) != 1 || rep.VFs[0].Sysfs == nil {
		return code, nil, stdout.String(), fmt.Errorf("devattest-shim check --json: want one sysfs VF:\n%s", stdout.String())
	}
	return code, &rep, stdout.String(), nil
}

// checkBound: with cxl_pci bound, check says the VF is unusable, names
// the driver among the mailbox's other users, lists the DOE instance from
// the capability walk and does not run discovery on the driver's mailbox.
func checkBound(ctx context.Context, cfg string) (string, error) {
	code, rep, out, err := shimCheck(ctx, cfg, true)
	if err != nil {
		return "", err
	}
	v := rep.VFs[0]
	s := v.Sysfs
	switch {
	case code != 1 || rep.OK || v.Usable:
		return "", fmt.Errorf("check with cxl_pci bound: exit %d, want 1 and the VF unusable:\n%s", code, out)
	case s.Driver != "cxl_pci" || !slices.ContainsFunc(v.Problems, func(p string) bool { return strings.Contains(p, `"cxl_pci"`) }):
		return "", fmt.Errorf("check with cxl_pci bound does not name it: driver %q, problems %q", s.Driver, v.Problems)
	case len(s.DOE) == 0 || len(s.DOE[0].Protocols) != 0:
		return "", fmt.Errorf("check with cxl_pci bound: DOE instances %+v, want the walk's instance, not probed", s.DOE)
	case !slices.ContainsFunc(s.OtherUsers, func(u string) bool { return strings.Contains(u, "cxl_pci") }):
		return "", fmt.Errorf("check with cxl_pci bound: other DOE users %q lack cxl_pci", s.OtherUsers)
	}
	return fmt.Sprintf("exit %d, driver %s, problems %q", code, s.Driver, v.Problems), nil
}

// checkUnbound: with no driver, check finds the VF usable: root reads all
// of config space and may write it, lockdown is off, and discovery on the
// DOE instance lists CXL Table Access, which the listener allows. It
// returns the text report.
func checkUnbound(ctx context.Context, cfg string) (*hostshim.CheckReport, string, error) {
	code, rep, out, err := shimCheck(ctx, cfg, true)
	if err != nil {
		return nil, "", err
	}
	v := rep.VFs[0]
	s := v.Sysfs
	switch {
	case code != 0 || !rep.OK || !v.Usable:
		return nil, "", fmt.Errorf("check with no driver: exit %d, want 0 and the VF usable:\n%s", code, out)
	case rep.Lockdown != "none":
		return nil, "", fmt.Errorf("check: lockdown %q, want none", rep.Lockdown)
	case s.Driver != "" || s.ConfigReadable != 4096 || !s.ConfigWritable:
		return nil, "", fmt.Errorf("check: driver %q, %d bytes readable, writable %v", s.Driver, s.ConfigReadable, s.ConfigWritable)
	case len(s.DOE) != 1 || !s.DOE[0].Served || !slices.ContainsFunc(s.DOE[0].Protocols, func(p string) bool { return strings.HasPrefix(p, "1e98:02") }):
		return nil, "", fmt.Errorf("check: DOE instances %+v, want one serving CXL Table Access", s.DOE)
	case len(s.DirectAccess.Ranges) != 1 || !strings.HasPrefix(s.DirectAccess.Risk, "none while no VFIO driver"):
		return nil, "", fmt.Errorf("check: direct access %+v", s.DirectAccess)
	case v.Claim != "free":
		return nil, "", fmt.Errorf("check: claim %q, want free", v.Claim)
	}
	_, _, text, err := shimCheck(ctx, cfg, false)
	return rep, text, err
}

// checkServing: while the shim serves the VF, check finds its claim held,
// names the holder and leaves the mailbox alone.
func checkServing(ctx context.Context, cfg string, pid int) (string, error) {
	code, rep, out, err := shimCheck(ctx, cfg, true)
	if err != nil {
		return "", err
	}
	v := rep.VFs[0]
	if code != 0 || !strings.Contains(v.Claim, fmt.Sprintf("pid %d", pid)) || len(v.Sysfs.DOE) == 0 || len(v.Sysfs.DOE[0].Protocols) != 0 {
		return "", fmt.Errorf("check while the shim (pid %d) serves: exit %d, claim %q, DOE %+v:\n%s", pid, code, v.Claim, v.Sysfs.DOE, out)
	}
	return v.Claim, nil
}
