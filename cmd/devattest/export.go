package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/evidence/eatda"
)

const exportUsage = "devattest export --eat-da REPORT [--out FILE]"

// runExport writes the EAT-DA claims set a report carries, for an EAT
// verifier, and prints the media type to send it with. It refuses a
// claims set that is not the encoding of the report's body (what
// devattest verify checks), but it does not verify the platform report:
// the claims set is bound to the platform only through the report.
func runExport(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("export", exportUsage)
	fs.SetOutput(stderr)
	report := fs.String("eat-da", "", "the combined report whose EAT-DA claims set to write")
	out := fs.String("out", "", "the file to write (default: standard output, with the media type on standard error)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 || *report == "" {
		fs.Usage()
		return 2
	}
	tok, err := exportEATDA(*report)
	if err != nil {
		return cli.Fail(stderr, "devattest export", err)
	}
	info := stdout
	if *out == "" {
		info = stderr
		if _, err := stdout.Write(tok); err != nil {
			return cli.Fail(stderr, "devattest export", err)
		}
	} else if err := os.WriteFile(*out, tok, 0o644); err != nil {
		return cli.Fail(stderr, "devattest export", err)
	}
	fmt.Fprintf(info, "media type: %s\n", eatda.MediaTypeUCCS)
	fmt.Fprintf(info, "Veraison da-spdm registers: %s (the content is this CBOR)\n", eatda.MediaTypeVeraisonDA)
	fmt.Fprintf(info, "profile %s, %d bytes; verify the report (devattest verify) before trusting it\n", eatda.DraftRevision, len(tok))
	if dec, err := eatda.Decode(tok); err == nil {
		if p := dec.VeraisonProblems(); len(p) != 0 {
			fmt.Fprintf(info, "note: %s departs from the draft where this token needs it (README, Where the draft and Veraison's da-spdm differ):\n", eatda.VeraisonScheme)
			for _, l := range p {
				fmt.Fprintf(info, "  %s\n", l)
			}
		}
	}
	return 0
}

// exportEATDA reads a report strictly and returns its claims set, checked
// to decode and to be the encoding of the report's body.
func exportEATDA(path string) ([]byte, error) {
	rep, err := readReport(path)
	if err != nil {
		return nil, err
	}
	body := rep.ParsedBody()
	if len(body.EATDA) == 0 {
		if _, err := eatda.EncodeBody(body); err != nil {
			return nil, fmt.Errorf("%s carries no EAT-DA claims set: %w", path, err)
		}
		return nil, fmt.Errorf("%s carries no EAT-DA claims set (a guest older than the eat_da field?)", path)
	}
	if _, err := eatda.Decode(body.EATDA); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	want, err := eatda.EncodeBody(body)
	if err != nil || !bytes.Equal(want, body.EATDA) {
		return nil, errors.Join(fmt.Errorf("%s: the EAT-DA claims set is not the encoding of the report's body", path), err)
	}
	return bytes.Clone(body.EATDA), nil
}
