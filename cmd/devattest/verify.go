package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
)

// parseArgs parses flags that may come before or after the positional
// arguments ("verify REPORT --policy FILE").
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func readReport(path string) (*evidence.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return evidence.Unmarshal(b)
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("verify", "devattest verify REPORT --policy FILE [--nonce HEX] [--json]")
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "the policy file (YAML)")
	nonceHex := fs.String("nonce", "", "the nonce the report must answer, in hex (without it freshness fails)")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || *policyPath == "" {
		fs.Usage()
		return 2
	}
	var nonce []byte
	if *nonceHex != "" {
		if nonce, err = hex.DecodeString(strings.TrimSpace(*nonceHex)); err != nil || len(nonce) == 0 {
			return cli.Fail(stderr, "devattest verify", fmt.Errorf("--nonce: not a hex string"))
		}
	}
	p, err := policy.Load(*policyPath)
	if err != nil {
		return cli.Fail(stderr, "devattest verify", err)
	}
	var v policy.Verdict
	rep, err := readReport(pos[0])
	if err != nil {
		// A report that does not decode is a failing verdict, not a usage error.
		v = policy.Verdict{Results: []policy.Result{{Device: policy.SubjectReport, Check: policy.CheckFormat, Reason: err.Error()}}}
	} else {
		v = p.Verify(rep, nonce, platformVerifier(p))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return cli.Fail(stderr, "devattest verify", err)
		}
	} else {
		printVerdict(stdout, v)
	}
	if !v.OK {
		return 1
	}
	return 0
}

func printVerdict(w io.Writer, v policy.Verdict) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCHECK\tRESULT\tREASON")
	failed := 0
	for _, r := range v.Results {
		res := "pass"
		if !r.OK {
			res = "FAIL"
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Device, r.Check, res, r.Reason)
	}
	tw.Flush()
	if v.OK {
		fmt.Fprintf(w, "\nverdict: PASS (%d checks)\n", len(v.Results))
	} else {
		fmt.Fprintf(w, "\nverdict: FAIL (%d of %d checks failed)\n", failed, len(v.Results))
	}
}

func runPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, "usage: devattest policy init --from REPORT --out FILE [--devices-only] [--snp-ark FILE --snp-ask FILE] [--tdx-root FILE]")
		return 2
	}
	fs := cli.NewFlagSet("policy init", "devattest policy init --from REPORT --out FILE [--devices-only] [--snp-ark FILE --snp-ask FILE] [--tdx-root FILE]")
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the report to start from")
	out := fs.String("out", "", "the policy file to write (device roots are written next to it)")
	var o initOptions
	fs.StringVar(&o.snpARK, "snp-ark", "", "SEV-SNP ARK file to trust instead of AMD's (test platforms)")
	fs.StringVar(&o.snpASK, "snp-ask", "", "SEV-SNP ASK file to trust instead of AMD's (test platforms)")
	fs.StringVar(&o.tdxRoot, "tdx-root", "", "TDX root CA file to trust instead of Intel's (test platforms)")
	fs.BoolVar(&o.devicesOnly, "devices-only", false, "write only the device rules: the guest's own policy (devattest-guest's policy:), without platform block or guest policy digest")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return 2
	}
	if len(pos) != 0 || *from == "" || *out == "" {
		fs.Usage()
		return 2
	}
	rep, err := readReport(*from)
	if err != nil {
		return cli.Fail(stderr, "devattest policy init", err)
	}
	warnings, err := writePolicy(rep, *out, o)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "devattest policy init: %s\n", w)
	}
	if err != nil {
		return cli.Fail(stderr, "devattest policy init", err)
	}
	load := policy.Parse
	if o.devicesOnly {
		load = policy.ParseDevices
	}
	b, err := os.ReadFile(*out)
	if err == nil {
		_, err = load(b, filepath.Dir(*out))
	}
	if err != nil {
		return cli.Fail(stderr, "devattest policy init", fmt.Errorf("the written policy does not load: %w", err))
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return 0
}
