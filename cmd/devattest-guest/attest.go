package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/secchan"
)

func runAttest(args []string, stdout, stderr io.Writer) int {
	const prog = "devattest-guest attest"
	fs := cli.NewFlagSet(prog, prog+" --config FILE [--out FILE] [--nonce HEX] [--platform-roots-out DIR] [--pcap FILE [--keylog FILE]]")
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the guest configuration (YAML)")
	out := fs.String("out", "", "write the combined report (JSON) to this file")
	nonceHex := fs.String("nonce", "", "the owner's nonce in hex (default: 32 random bytes)")
	timeout := fs.Duration("timeout", 2*time.Minute, "deadline for the whole attestation")
	rootsOut := fs.String("platform-roots-out", "", "fake platforms only: write the fake's signing roots to this directory (snp-ark.der, snp-ask.der or tdx-root.der), so the report can be verified offline")
	pcap := fs.String("pcap", "", "capture each device's DOE objects to FILE with the device's label added to the name (FILE-LABEL.pcap; classic pcap as DMTF spdm-emu writes it): read them with devattest dump or spdm_dump")
	keylog := fs.String("keylog", "", "DANGER: append each session's secret to FILE (mode 0600) so that devattest dump or spdm_dump can decrypt the captures, IDE keys included; for debugging only")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	switch {
	case *cfgPath == "":
		return cli.UsageError(stderr, prog, "--config FILE is required")
	case fs.NArg() != 0:
		return cli.UsageError(stderr, prog, "unexpected arguments %q", fs.Args())
	case *timeout <= 0:
		return cli.UsageError(stderr, prog, "--timeout must be positive")
	}
	nonce, err := ownerNonce(*nonceHex)
	if err != nil {
		return cli.UsageError(stderr, prog, "%v", err)
	}
	cfg, err := guest.LoadConfig(*cfgPath)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	debug, err := cli.OpenDebug(*pcap, *keylog, capture.ViewGuest, stderr)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer debug.Close()
	for i := range cfg.Devices {
		dev := &cfg.Devices[i]
		if dev.Capture, err = debug.Capture(dev.Label, true); err != nil {
			return cli.Fail(stderr, prog, err)
		}
		dev.KeyLog = debug.KeyLog(dev.Label)
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()

	att, err := platform.New(cfg.Platform, platform.Options{})
	if err != nil {
		return cli.Fail(stderr, prog, fmt.Errorf("%w: %w", guest.ErrPlatform, err))
	}
	defer att.Close()
	if *rootsOut != "" {
		if err := writeFakeRoots(*rootsOut, att); err != nil {
			return cli.Fail(stderr, prog, fmt.Errorf("--platform-roots-out: %w", err))
		}
	}
	rep, attErr := guest.AttestWith(ctx, cfg, att, nonce)
	if rep != nil {
		printSummary(stdout, cfg, rep)
		if *out != "" {
			b, err := evidence.Marshal(rep)
			if err == nil {
				err = os.WriteFile(*out, b, 0o644)
			}
			if err != nil {
				return cli.Fail(stderr, prog, fmt.Errorf("writing the report: %w", err))
			}
			fmt.Fprintf(stdout, "report written to %s (%d bytes)\n", *out, len(b))
		} else {
			fmt.Fprintf(stderr, "%s: the report was not kept: give --out FILE to write it\n", prog)
		}
	}
	if attErr != nil {
		return cli.Fail(stderr, prog, attErr)
	}
	return 0
}

func ownerNonce(h string) ([]byte, error) {
	if h == "" {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	}
	b, err := cli.DecodeHex("--nonce", h)
	if err != nil {
		return nil, err
	}
	if len(b) > evidence.MaxNonceSize {
		return nil, fmt.Errorf("--nonce: want 1 to %d bytes, got %d", evidence.MaxNonceSize, len(b))
	}
	return b, nil
}

// printSummary writes one block per device and the platform binding.
func printSummary(w io.Writer, cfg *guest.Config, rep *evidence.Report) {
	body := rep.ParsedBody()
	fmt.Fprintf(w, "owner nonce %x\n", []byte(body.Nonce))
	for i, d := range body.Devices {
		req := "required"
		if !cfg.Devices[i].IsRequired() {
			req = "optional"
		}
		if !d.OK() {
			fmt.Fprintf(w, "device %s (%s): FAILED at %s: %s\n", d.Label, req, d.FailedStep, d.Error)
			continue
		}
		fmt.Fprintf(w, "device %s (%s): ok\n", d.Label, req)
		fmt.Fprintf(w, "  SPDM %s, %s / %s, capabilities %s\n", d.SPDMVersion, d.Algorithms.BaseAsym, d.Algorithms.BaseHash, strings.Join(d.Capabilities, " "))
		fmt.Fprintf(w, "  certificate chain validated (%d bytes), %d signed measurement blocks\n", len(d.CertChain), len(d.Measurements.Blocks))
		if s := d.Session; s != nil {
			fmt.Fprintf(w, "  session %s, %s, ended %v\n", secchan.FormatSessionID(s.ID), s.AEAD, s.Ended)
		}
		if x := d.IDE; x != nil {
			fmt.Fprintf(w, "  IDE port %d stream %d key set %s, sub-streams %s (%s)\n", x.Port, x.Stream, x.KeySet, strings.Join(x.SubStreams, " "), x.RootPort)
		}
		if x := d.TDISP; x != nil {
			fmt.Fprintf(w, "  TDISP interface 0x%x %s on stream %d, interface report %d bytes\n", x.FunctionID, x.State, x.DefaultStream, len(x.InterfaceReport))
		}
	}
	p := rep.Platform
	if len(p.Report) > 0 {
		signed := len(p.Report)
		var pr platform.Report
		if pr.UnmarshalBinary(p.Report) == nil {
			signed = len(pr.Raw)
		}
		fmt.Fprintf(w, "platform %s: a signed report of %d bytes over the evidence (%d with its certificates and event log), boot binding: %s\n",
			body.Platform, signed, len(p.Report), body.BootBinding)
	} else {
		fmt.Fprintf(w, "platform %s: NO REPORT, boot binding: %s\n", body.Platform, body.BootBinding)
	}
	if body.BootError != "" {
		fmt.Fprintf(w, "  boot binding error: %s\n", body.BootError)
	}
	if p.Error != "" {
		fmt.Fprintf(w, "  platform error: %s\n", p.Error)
	}
}

// writeFakeRoots writes a fake platform's signing roots for an offline
// verifier. A real platform's roots are the vendor's, built into the
// verification libraries; there is nothing to write.
func writeFakeRoots(dir string, att platform.Attester) error {
	files := map[string][]byte{}
	switch a := att.(type) {
	case *platform.FakeSNP:
		r := a.Roots()
		files["snp-ark.der"], files["snp-ask.der"] = r.ARK, r.ASK
	case *platform.FakeTDX:
		files["tdx-root.der"] = a.RootCertificate()
	default:
		return fmt.Errorf("platform %s is not a fake with its own roots", att.Kind())
	}
	for name, der := range files {
		if err := os.WriteFile(filepath.Join(dir, name), der, 0o644); err != nil {
			return err
		}
	}
	return nil
}
