// Command devattest is the developer's and workload owner's tool: run an
// emulated device (devsim), probe a DOE mailbox through any
// socket-framing peer, and verify combined reports against a policy.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/devattest/devattest/cmd/internal/cli"
)

const usage = `usage: devattest <command> [flags]

commands:
  devsim   serve an emulated VF (DOE mailbox, SPDM responder) over the socket framing
  probe    talk to a DOE mailbox (devsim, the shim, libspdm's spdm_responder_emu)
  verify   verify a combined report against a policy: devattest verify REPORT --policy FILE [--nonce HEX] [--json] [--ear FILE --ear-key KEY]
  inspect  show a combined report for a person: devattest inspect REPORT
  export   write a report's EAT-DA claims set: devattest export --eat-da REPORT [--out FILE]
  policy   write a starting policy from a report: devattest policy init --from REPORT --out FILE
  dump     decode a capture (--pcap): devattest dump FILE.pcap [--keylog FILE] [--json]
  relay    stand in for a hostile host between guest and shim: devattest relay --listen ADDR --upstream ADDR --mode MODE

Run "devattest <command> -h" for a command's flags, "devattest --version" for the version.
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
		fmt.Fprintln(stdout, cli.Version("devattest"))
		return 0
	}
	switch args[0] {
	case "devsim":
		return runDevsim(args[1:], stdout, stderr)
	case "probe":
		return runProbe(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "inspect":
		return runInspect(args[1:], stdout, stderr)
	case "export":
		return runExport(args[1:], stdout, stderr)
	case "policy":
		return runPolicy(args[1:], stdout, stderr)
	case "relay":
		return runRelay(args[1:], stdout, stderr)
	case "dump":
		return runDump(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "devattest: unknown command %q\n\n%s", args[0], usage)
	return 2
}
