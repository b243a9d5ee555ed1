package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/cmd/internal/cli"
)

// runDump decodes a capture for a person (or, with --json, for scripts).
// Exit status: 0 when every record was decoded (records left encrypted
// for lack of a key are not failures), 1 when some could not be parsed or
// decrypted, 2 for bad flags.
func runDump(args []string, stdout, stderr io.Writer) int {
	const prog = "devattest dump"
	fs := cli.NewFlagSet("dump", prog+" FILE.pcap [--keylog FILE] [--device LABEL] [--json] [--spdm-dump-args]")
	fs.SetOutput(stderr)
	keylog := fs.String("keylog", "", "decrypt the secure sessions with the secrets in this key log (devattest probe/devattest-guest --keylog, or SESSION lines written by hand)")
	device := fs.String("device", "", "use only the key-log entries of this device (default: the device the capture names)")
	asJSON := fs.Bool("json", false, "print a JSON object for scripts")
	spdmDumpArgs := fs.Bool("spdm-dump-args", false, "print only DMTF spdm_dump's --dhe_secret/--psk arguments for this capture's device, from --keylog")
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if fs.NArg() != 0 || file == "" {
		fs.Usage()
		return 2
	}
	var keys []capture.KeyLogEntry
	if *keylog != "" {
		f, err := os.Open(*keylog)
		if err != nil {
			return cli.Fail(stderr, prog, fmt.Errorf("--keylog: %w", err))
		}
		keys, err = capture.ParseKeyLog(f)
		f.Close()
		if err != nil {
			return cli.Fail(stderr, prog, fmt.Errorf("--keylog: %w", err))
		}
		defer func() {
			for i := range keys {
				keys[i].Zero()
			}
		}()
	}
	f, err := os.Open(file)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer f.Close()
	dm, err := capture.Decode(f, capture.Options{KeyLog: keys, Device: *device})
	if dm == nil {
		return cli.Fail(stderr, prog, fmt.Errorf("%s: %w", file, err))
	}
	if *spdmDumpArgs {
		dev := *device
		if dev == "" {
			dev = dm.Device
		}
		var mine []capture.KeyLogEntry
		for _, e := range keys {
			if dev == "" || e.Device == "" || e.Device == dev {
				mine = append(mine, e)
			}
		}
		fmt.Fprintln(stdout, strings.Join(append([]string{"-r", file}, capture.SpdmDumpArgs(mine)...), " "))
		return 0
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(dm)
	} else {
		capture.WriteText(stdout, dm)
	}
	if err != nil {
		return cli.Fail(stderr, prog, fmt.Errorf("%s: %w", file, err))
	}
	if dm.Problems > 0 {
		fmt.Fprintf(stderr, "%s: %d records could not be decoded\n", prog, dm.Problems)
		return 1
	}
	return 0
}
