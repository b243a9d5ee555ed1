// Command devattest-guest runs inside the confidential VM. It reaches each
// assigned VF's DOE mailbox only through the host shim's socket framing.
//
// attest runs the one-shot boot attestation (package guest): every
// configured device through its shim, the platform report binding the
// evidence, and the combined report (package evidence) as JSON. It exits 0
// only if every required device passed and the platform report was made.
// serve runs the daemon: it keeps a secure session with every device,
// re-measures periodically and answers report requests over an HTTP API
// (package guest, Service). discover lists a VF's DOE protocols through
// the shim.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/doe"
)

const usage = `usage: devattest-guest <command> [flags]

commands:
  attest     attest every configured device and write the combined report
  serve      run the daemon: periodic re-measurement and the report API
  discover   list the DOE protocols of the VF behind a shim address
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if cli.IsVersion(args) {
		fmt.Fprintln(stdout, cli.Version("devattest-guest"))
		return 0
	}
	switch args[0] {
	case "attest":
		return runAttest(args[1:], stdout, stderr)
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "discover":
		return runDiscover(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "devattest-guest: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func runDiscover(args []string, stdout, stderr io.Writer) int {
	const prog = "devattest-guest discover"
	fs := cli.NewFlagSet(prog, prog+" --shim ADDR")
	fs.SetOutput(stderr)
	shim := fs.String("shim", "", "the shim's address for this VF: HOST:PORT or unix:PATH")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline for the whole walk")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	switch {
	case *shim == "":
		return cli.UsageError(stderr, prog, "--shim ADDR is required")
	case fs.NArg() != 0:
		return cli.UsageError(stderr, prog, "unexpected arguments %q", fs.Args())
	case *timeout <= 0:
		return cli.UsageError(stderr, prog, "--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := doe.Dial(ctx, *shim)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer c.Close()
	protos, err := doe.Discover(ctx, c, 0)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	for _, p := range protos {
		fmt.Fprintf(stdout, "%04x:%02x %s\n", p.Vendor, p.Type, p.Name())
	}
	return 0
}
