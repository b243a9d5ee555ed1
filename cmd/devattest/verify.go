package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
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
	b, err := evidence.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return evidence.Unmarshal(b)
}

// failJSON reports err as {"ok": false, "error": ...} for --json.
func failJSON(stdout, stderr io.Writer, err error) int {
	b, merr := json.Marshal(struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}{false, err.Error()})
	if merr != nil {
		return cli.Fail(stderr, "devattest verify", err)
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return cli.ExitFailure
}

// parseNonce reads --nonce: empty gives nil (freshness then fails).
func parseNonce(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return cli.DecodeHex("--nonce", s)
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("verify", "devattest verify REPORT --policy FILE [--nonce HEX] [--json] [--ear FILE --ear-key KEY]")
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "the policy file (YAML)")
	nonceHex := fs.String("nonce", "", "the nonce the report must answer, in hex (without it freshness fails)")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	earOut := fs.String("ear", "", "also write the verdict as an EAR (signed JWT) to this file")
	earKey := fs.String("ear-key", "", "the EAR signing key (ECDSA P-256 for ES256, P-384 for ES384; PEM)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return cli.ParseStatus(err)
	}
	switch {
	case len(pos) == 0:
		return cli.UsageError(stderr, "devattest verify", "which report? give REPORT")
	case len(pos) > 1:
		return cli.UsageError(stderr, "devattest verify", "one REPORT at a time, got %q", pos)
	case *policyPath == "":
		return cli.UsageError(stderr, "devattest verify", "--policy FILE is required")
	}
	nonce, err := parseNonce(*nonceHex)
	if err != nil {
		return cli.UsageError(stderr, "devattest verify", "%v", err)
	}
	p, err := policy.Load(*policyPath)
	if err != nil {
		if *asJSON {
			// A tool reading --json output gets JSON, failures included.
			return failJSON(stdout, stderr, err)
		}
		return cli.Fail(stderr, "devattest verify", err)
	}
	var v policy.Verdict
	if b, err := evidence.ReadFile(pos[0]); err != nil {
		// A report that cannot be read is a failing verdict, not a usage error.
		v = policy.Verdict{Results: []policy.Result{{Device: policy.SubjectReport, Check: policy.CheckFormat, Reason: err.Error()}}}
	} else {
		v = policy.VerifyReport(b, p, nonce)
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
	if *earOut != "" {
		if err := writeEAR(stderr, v, p, nonce, *earOut, *earKey); err != nil {
			return cli.Fail(stderr, "devattest verify", err)
		}
	}
	if !v.OK {
		return 1
	}
	return 0
}

// printVerdict prints every check with its reason or what matched, the
// verdict, then the failed checks again and any warnings, so that the
// end of the output says what to fix.
func printVerdict(w io.Writer, v policy.Verdict) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCHECK\tRESULT\tREASON")
	for _, r := range v.Results {
		res := "pass"
		if !r.OK {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Device, r.Check, res, r.Reason)
	}
	tw.Flush()
	failed := v.Failed()
	if v.OK {
		fmt.Fprintf(w, "\nverdict: PASS (%d checks)\n", len(v.Results))
	} else {
		fmt.Fprintf(w, "\nverdict: FAIL (%d of %d checks failed)\n", len(failed), len(v.Results))
		for _, r := range failed {
			fmt.Fprintf(w, "  FAIL %s / %s: %s\n", r.Device, r.Check, r.Reason)
		}
	}
	for _, warn := range v.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func runPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stdout, "usage: devattest policy init --from REPORT --out FILE [--devices-only] [--snp-ark FILE --snp-ask FILE] [--tdx-root FILE] [--force] [--corim FILE (--corim-key KEY --corim-cert CERT | --corim-unsigned)]")
			return cli.ExitOK
		}
		what := "missing"
		if len(args) > 0 {
			what = fmt.Sprintf("%q is not one", args[0])
		}
		return cli.UsageError(stderr, "devattest policy", "the subcommand is %s: the only one is init", what)
	}
	fs := cli.NewFlagSet("policy init", "devattest policy init --from REPORT --out FILE [--devices-only] [--snp-ark FILE --snp-ask FILE] [--tdx-root FILE] [--force] [--corim FILE (--corim-key KEY --corim-cert CERT | --corim-unsigned)]")
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the report to start from")
	out := fs.String("out", "", "the policy file to write (device roots are written next to it)")
	var o initOptions
	fs.StringVar(&o.snpARK, "snp-ark", "", "SEV-SNP ARK file to trust instead of AMD's (test platforms)")
	fs.StringVar(&o.snpASK, "snp-ask", "", "SEV-SNP ASK file to trust instead of AMD's (test platforms)")
	fs.StringVar(&o.tdxRoot, "tdx-root", "", "TDX root CA file to trust instead of Intel's (test platforms)")
	force := fs.Bool("force", false, "write a policy from a report that does not verify, and overwrite existing files")
	fs.BoolVar(&o.devicesOnly, "devices-only", false, "write only the device rules: the guest's own policy (devattest-guest's policy:), without platform block or guest policy digest")
	var co corimOptions
	fs.StringVar(&co.out, "corim", "", "also write the devices' reference values as a CoRIM to this file")
	fs.StringVar(&co.key, "corim-key", "", "the CoRIM signer's private key (PEM)")
	fs.StringVar(&co.cert, "corim-cert", "", "the CoRIM signer's certificate, then its chain (PEM)")
	fs.BoolVar(&co.unsigned, "corim-unsigned", false, "write the CoRIM unsigned (a verifier reads it only with allow_unsigned_reference_values)")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return cli.ParseStatus(err)
	}
	if err := co.check(); err != nil {
		return cli.UsageError(stderr, "devattest policy init", "%v", err)
	}
	switch {
	case len(pos) != 0:
		return cli.UsageError(stderr, "devattest policy init", "unexpected arguments %q", pos)
	case *from == "":
		return cli.UsageError(stderr, "devattest policy init", "--from REPORT is required")
	case *out == "":
		return cli.UsageError(stderr, "devattest policy init", "--out FILE is required")
	}
	rep, err := readReport(*from)
	if err != nil {
		return cli.Fail(stderr, "devattest policy init", err)
	}
	d, err := draftPolicy(rep, *out, o)
	if err != nil {
		return cli.Fail(stderr, "devattest policy init", err)
	}
	for _, w := range d.warnings {
		fmt.Fprintf(stderr, "devattest policy init: %s\n", w)
	}
	warnings, err := writeDraft(d, rep, *out, o.devicesOnly, *force)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "devattest policy init: %s\n", w)
	}
	if err != nil {
		return cli.Fail(stderr, "devattest policy init", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	if co.out != "" {
		line, err := writeCoRIM(rep, co, *force)
		if err != nil {
			return cli.Fail(stderr, "devattest policy init", err)
		}
		fmt.Fprintln(stdout, line)
	}
	return 0
}
