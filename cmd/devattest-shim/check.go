package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/hostshim"
)

// runCheck is `devattest-shim check --config FILE [--json]`: the host
// operator's preflight. It exits 0 when every configured VF is usable, 1
// when one is not, 2 on bad usage or configuration.
func runCheck(args []string, stdout, stderr io.Writer) int {
	const name = prog + " check"
	fs := cli.NewFlagSet(name, name+" --config FILE [--json]")
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the daemon's YAML configuration file")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	sys := fs.String("sys", "/sys", "where sysfs is mounted (kernel lockdown, TSMs); the VFs are under the configuration's sysfs_root")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	if fs.NArg() != 0 {
		return cli.UsageError(stderr, name, "unexpected arguments %q", fs.Args())
	}
	if *config == "" {
		return cli.UsageError(stderr, name, "--config FILE is required")
	}
	cfg, err := hostshim.LoadConfig(*config)
	if err != nil {
		cli.Fail(stderr, name, err)
		return 2
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	rep := hostshim.Check(ctx, cfg, hostshim.CheckEnv{Sys: *sys, Open: opener})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return cli.Fail(stderr, name, err)
		}
	} else {
		writeCheck(stdout, *config, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// writeCheck prints the report for a person.
func writeCheck(w io.Writer, config string, rep *hostshim.CheckReport) {
	fmt.Fprintf(w, "devattest-shim check: %s\n", config)
	if rep.Lockdown != "" {
		fmt.Fprintf(w, "kernel lockdown: %s\n", rep.Lockdown)
	}
	usable := 0
	for _, v := range rep.VFs {
		state := "UNUSABLE"
		if v.Usable {
			state, usable = "usable", usable+1
		}
		fmt.Fprintf(w, "\nlistener %s (guest %s): %s, %s backend: %s\n", v.Listener, v.Guest, v.VF, v.Backend, state)
		line := func(k, format string, args ...any) {
			fmt.Fprintf(w, "  %-16s %s\n", k+":", fmt.Sprintf(format, args...))
		}
		if s := v.Sysfs; s != nil {
			drv := s.Driver
			if drv == "" {
				drv = "none"
			}
			if s.PhysFn != "" {
				drv += fmt.Sprintf(" (VF of %s, bound to %s)", s.PhysFn, orNone(s.PhysFnDriver))
			}
			line("driver", "%s", drv)
			access := "read-only"
			if s.ConfigWritable {
				access = "writable"
			}
			line("config space", "%d bytes readable, %s", s.ConfigReadable, access)
			for i, d := range s.DOE {
				k := ""
				if i == 0 {
					k = "DOE instances:"
				}
				text := fmt.Sprintf("0x%03x v%d: %s", d.Offset, d.Version, orNone(strings.Join(d.Protocols, ", ")))
				if len(d.Protocols) == 0 {
					text = fmt.Sprintf("0x%03x v%d: discovery not run", d.Offset, d.Version)
				}
				if d.Error != "" {
					text = fmt.Sprintf("0x%03x v%d: discovery failed: %s", d.Offset, d.Version, d.Error)
				}
				if d.Served {
					text += "  <- served"
				}
				fmt.Fprintf(w, "  %-16s %s\n", k, text)
			}
		} else if len(v.Protocols) > 0 {
			line("protocols", "%s", strings.Join(v.Protocols, ", "))
		}
		line("claim", "%s", v.Claim)
		if s := v.Sysfs; s != nil {
			list(w, "other DOE users", s.OtherUsers)
			if da := s.DirectAccess; len(da.Ranges) == 0 {
				line("direct access", "%s", da.Risk)
			} else {
				line("direct access", "%s; DOE registers at %s", da.Risk, strings.Join(da.Ranges, ", "))
				fmt.Fprintf(w, "  %-16s %s\n", "", "why: "+da.Why)
				fmt.Fprintf(w, "  %-16s %s\n", "", "mitigation: "+da.Mitigation)
			}
		}
		list(w, "problems", v.Problems)
		list(w, "warnings", v.Warnings)
	}
	fmt.Fprintf(w, "\n%d of %d VFs usable\n", usable, len(rep.VFs))
}

func list(w io.Writer, key string, items []string) {
	for i, s := range items {
		k := ""
		if i == 0 {
			k = key + ":"
		}
		fmt.Fprintf(w, "  %-16s - %s\n", k, s)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
