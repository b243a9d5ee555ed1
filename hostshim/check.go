package hostshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/devattest/devattest/doe"
)

// Check is the host operator's preflight (devattest-shim check): for each
// configured VF it finds out, without serving anything, whether the shim
// could serve it and what else may touch its DOE mailbox. It reads sysfs
// and runs DOE discovery on each VF whose claim it can take (so never on a
// mailbox a running shim or a kernel driver is using), and changes
// nothing.

// CheckEnv is what Check looks at besides the configuration.
type CheckEnv struct {
	// Sys is where sysfs is mounted (default /sys): lockdown is read at
	// kernel/security/lockdown, TSMs are listed under class/tsm. The VFs
	// themselves are under the configuration's sysfs_root.
	Sys string
	// Open opens the backends other than sysfs as the daemon does (nil:
	// OpenBackend).
	Open BackendOpener
	// OpenConfig opens a sysfs VF's config space for the capability walk
	// and discovery (nil: doe.OpenSysfs under root). Tests put an
	// emulated function behind a fake sysfs tree with it.
	OpenConfig func(root, bdf string) (doe.ConfigSpace, io.Closer, error)
	// Timeout bounds the discovery of each VF (default 10s).
	Timeout time.Duration
}

// CheckReport is Check's answer.
type CheckReport struct {
	// Lockdown is the kernel lockdown mode (none, integrity,
	// confidentiality), "unknown: REASON", or "" without sysfs VFs.
	Lockdown string     `json:"lockdown,omitempty"`
	VFs      []VFReport `json:"vfs"`
	// OK: every VF is usable.
	OK bool `json:"ok"`
}

// VFReport is what Check found about one listener's VF.
type VFReport struct {
	Listener string `json:"listener"`
	Guest    string `json:"guest"`
	VF       string `json:"vf"`
	Backend  string `json:"backend"`
	// Usable: nothing found stops the shim from serving the VF. Problems
	// say why not; warnings are what the operator should know anyway.
	Usable   bool     `json:"usable"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	// Claim is "free" (Check took and released it) or who holds it.
	Claim string `json:"claim"`
	// Protocols are what discovery listed on the instance the shim would
	// serve (every backend); empty when discovery did not run.
	Protocols []string `json:"protocols"`

	// For sysfs VFs only.
	Sysfs *SysfsReport `json:"sysfs,omitempty"`
}

// SysfsReport is the sysfs side of a VF: binding, config-space access,
// DOE instances, other users of the mailbox and what a guest can do past
// the shim.
type SysfsReport struct {
	// Driver is the bound kernel driver ("" for none).
	Driver string `json:"driver"`
	// PhysFn is the VF's physical function ("" for a function that is
	// not a VF), PhysFnDriver its driver.
	PhysFn       string `json:"physfn,omitempty"`
	PhysFnDriver string `json:"physfn_driver,omitempty"`
	// ConfigReadable is how many bytes of config space this process can
	// read: 4096 (or 256) with CAP_SYS_ADMIN, 64 without.
	ConfigReadable int  `json:"config_readable_bytes"`
	ConfigWritable bool `json:"config_writable"`
	// DOE lists the function's DOE instances.
	DOE []DOEInstance `json:"doe"`
	// OtherUsers are what else may drive this function's DOE mailboxes.
	OtherUsers []string `json:"other_doe_users"`
	// DirectAccess is the residual risk of a guest reaching the DOE
	// registers past the shim (through vfio-pci's raw config access).
	DirectAccess DirectAccess `json:"direct_access"`
}

// DOEInstance is one DOE capability of a function.
type DOEInstance struct {
	Offset    int      `json:"offset"`
	Version   int      `json:"version"`
	Protocols []string `json:"protocols"`
	// Served: the instance the shim would serve (the first whose
	// discovery lists a protocol the listener allows).
	Served bool   `json:"served"`
	Error  string `json:"error,omitempty"`
}

// DirectAccess describes whether a guest can drive the VF's DOE registers
// without the shim, and what would stop it.
type DirectAccess struct {
	// Risk is "present" (vfio-pci passes the DOE registers through),
	// "depends on the variant driver", or "none while no VFIO driver is
	// bound".
	Risk string `json:"risk"`
	// Ranges are the config-space ranges of the DOE registers, "0x150-0x167".
	Ranges     []string `json:"ranges"`
	Why        string   `json:"why"`
	Mitigation string   `json:"mitigation"`
}

// defaultCheckTimeout bounds one VF's discovery in Check.
const defaultCheckTimeout = 10 * time.Second

// Check runs the preflight over every listener of cfg, which must have
// passed Validate.
func Check(ctx context.Context, cfg *Config, env CheckEnv) *CheckReport {
	if env.Sys == "" {
		env.Sys = "/sys"
	}
	if env.Open == nil {
		env.Open = OpenBackend
	}
	if env.OpenConfig == nil {
		env.OpenConfig = func(root, bdf string) (doe.ConfigSpace, io.Closer, error) {
			cs, err := doe.OpenSysfs(root, bdf)
			if err != nil {
				return nil, nil, err
			}
			return cs, cs, nil
		}
	}
	if env.Timeout <= 0 {
		env.Timeout = defaultCheckTimeout
	}
	rep := &CheckReport{OK: true}
	for _, lc := range cfg.Listeners {
		if lc.VF.Backend == BackendSysfs && rep.Lockdown == "" {
			rep.Lockdown = readLockdown(filepath.Join(env.Sys, "kernel", "security", "lockdown"))
		}
	}
	for _, lc := range cfg.Listeners {
		vctx, cancel := context.WithTimeout(ctx, env.Timeout)
		r := checkListener(vctx, cfg, lc, env, rep.Lockdown)
		cancel()
		r.Usable = len(r.Problems) == 0
		rep.OK = rep.OK && r.Usable
		rep.VFs = append(rep.VFs, r)
	}
	return rep
}

func checkListener(ctx context.Context, cfg *Config, lc ListenerConfig, env CheckEnv, lockdown string) VFReport {
	r := VFReport{Listener: lc.Name, Guest: lc.Guest, VF: lc.VF.ID(), Backend: lc.VF.Backend, Problems: []string{}, Warnings: []string{}, Protocols: []string{}}
	if r.Guest == "" {
		r.Guest = lc.Name
	}
	want := make([]doe.Protocol, 0, len(lc.AllowedTypes))
	for _, t := range lc.AllowedTypes {
		if p, err := ParseProtocol(t); err == nil {
			want = append(want, p)
		}
	}
	canProbe := true
	if lc.VF.Backend == BackendSysfs {
		s, ok := checkSysfs(&r, lc.VF, env, lockdown)
		r.Sysfs = s
		canProbe = ok
	}
	// Discovery touches the mailbox: only under the VF's claim, as the
	// daemon would hold it.
	claim, err := ClaimVF(cfg.RunDir, r.VF)
	switch {
	case errors.Is(err, ErrClaimed):
		r.Claim = err.Error()
		r.Warnings = append(r.Warnings, "the VF is claimed (a running shim, or a tool holding its lock): a new shim could not serve it now, and discovery was skipped")
		return r
	case err != nil:
		r.Claim = "unknown"
		r.Problems = append(r.Problems, fmt.Sprintf("the claim cannot be taken, so the shim could not take it either: %v", err))
		return r
	}
	defer claim.Release()
	r.Claim = "free"
	if !canProbe {
		return r
	}
	var protos []doe.Protocol
	if lc.VF.Backend == BackendSysfs {
		protos = discoverSysfs(ctx, &r, lc.VF, want, env)
	} else {
		protos = discoverBackend(ctx, &r, lc.VF, want, env)
	}
	if protos == nil {
		return r
	}
	for _, p := range protos {
		r.Protocols = append(r.Protocols, p.String())
	}
	if !servesAny(protos, want) {
		r.Problems = append(r.Problems, fmt.Sprintf("discovery lists %v, none of the listener's allowed_types %v", protos, lc.AllowedTypes))
	}
	return r
}

// discoverBackend opens a devsim or socket backend as the daemon would
// and runs discovery through it.
func discoverBackend(ctx context.Context, r *VFReport, vf VFConfig, want []doe.Protocol, env CheckEnv) []doe.Protocol {
	vf.CAOut = "" // a preflight writes nothing
	mb, closer, err := env.Open(ctx, vf, want)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("opening the backend: %v", err))
		return nil
	}
	if closer != nil {
		defer closer.Close()
	}
	protos, err := doe.Discover(ctx, mb, 0)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("discovery: %v", err))
		return nil
	}
	return protos
}

// servesAny is the shim's rule for the instance it serves: discovery
// lists one of the allowed protocols other than discovery itself (none
// allowed but discovery: CMA/SPDM).
func servesAny(protos, want []doe.Protocol) bool {
	for _, p := range protos {
		for _, w := range want {
			if p == w && p != doe.ProtocolDiscovery {
				return true
			}
		}
	}
	return false
}
