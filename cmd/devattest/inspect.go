package main

import (
	"crypto"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-sev-guest/abi"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/platform"
	"github.com/devattest/devattest/secchan"
)

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("inspect", "devattest inspect REPORT")
	fs.SetOutput(stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	rep, err := readReport(pos[0])
	if err != nil {
		return cli.Fail(stderr, "devattest inspect", err)
	}
	inspect(stdout, rep)
	return 0
}

// inspect prints rep for a person. It judges nothing: see verify.
func inspect(w io.Writer, rep *evidence.Report) {
	fmt.Fprintf(w, "report %s, created %s\n", rep.Version, rep.Created.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "  owner nonce          %x\n", rep.Nonce)
	fmt.Fprintf(w, "  guest policy digest  %x\n", rep.PolicyDigest)
	fmt.Fprintf(w, "  user data            %x\n", evidence.UserData(rep.Nonce, rep.Evidence))
	fmt.Fprintf(w, "\nplatform %s, boot binding %q\n", rep.Platform.Kind, rep.Platform.BootBinding)
	if rep.Platform.Error != "" {
		fmt.Fprintf(w, "  error                %s\n", rep.Platform.Error)
	}
	var pr platform.Report
	if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
		fmt.Fprintf(w, "  signed report        does not decode: %v\n", err)
	} else {
		fmt.Fprintf(w, "  signed report        %d bytes\n", len(pr.Raw))
		switch pr.Kind {
		case platform.KindSNP:
			if r, err := abi.ReportToProto(pr.Raw); err == nil {
				fmt.Fprintf(w, "  launch measurement   %x\n  guest policy         0x%x\n", r.GetMeasurement(), r.GetPolicy())
			}
		case platform.KindTDX:
			if body, err := tdxBody(pr.Raw); err == nil {
				fmt.Fprintf(w, "  MRTD                 %x\n", body.GetMrTd())
			}
		case platform.KindTPM:
			fmt.Fprintf(w, "  attestation key      %x\n", pr.AKPublic)
			for _, p := range pr.PCRs {
				fmt.Fprintf(w, "  PCR %-2d               %x\n", p.Index, p.Digest)
			}
		}
	}
	for i, e := range rep.Platform.EventLog {
		fmt.Fprintf(w, "  event %d: register %d  %x  %s\n", i, e.Register, e.Digest, e.Description)
	}
	if b := rep.Boot; b != nil {
		fmt.Fprintf(w, "  boot evidence        the events are of the boot attestation's evidence, carried in the report:\n")
		devs, err := b.Devices()
		if err != nil {
			fmt.Fprintf(w, "    does not decode: %v\n", err)
		}
		for _, d := range devs {
			fmt.Fprintf(w, "    %-20s %s\n", d.Label, d.Status)
		}
	}
	for _, d := range rep.Devices {
		fmt.Fprintf(w, "\ndevice %q: %s\n", d.Label, d.Status)
		if !d.OK() {
			fmt.Fprintf(w, "  failed at            %s: %s\n", d.FailedStep, d.Error)
		}
		if len(d.Protocols) > 0 {
			fmt.Fprintf(w, "  DOE protocols        %s (as the host relayed them: discovery is not authenticated)\n", strings.Join(d.Protocols, ", "))
		}
		if d.SPDMVersion != "" {
			fmt.Fprintf(w, "  SPDM                 %s\n", d.SPDMVersion)
		}
		if a := d.Algorithms; a != nil {
			fmt.Fprintf(w, "  algorithms           %s, %s, measurements %s, %s, %s\n", a.BaseAsym, a.BaseHash, a.MeasurementHash, a.DHE, a.AEAD)
			inspectChain(w, d, a.BaseHashBits)
		}
		if m := d.Measurements; m != nil {
			fmt.Fprintf(w, "  SPDM nonce           %x\n", m.Nonce)
			for _, b := range m.Blocks {
				fmt.Fprintf(w, "  block %-3d            %s  %s\n", b.Index, b.Value, b.Type)
			}
		}
		if s := d.Session; s != nil {
			fmt.Fprintf(w, "  session              0x%08x %s, ended %t\n", s.ID, s.AEAD, s.Ended)
		}
		if ide := d.IDE; ide != nil {
			fmt.Fprintf(w, "  IDE                  port %d stream %d key set %q sub-streams %v (%s)\n", ide.Port, ide.Stream, ide.KeySet, ide.SubStreams, ide.RootPort)
			for _, s := range ide.Steps {
				fmt.Fprintf(w, "    %-20s %s\n", s.Name, s.Result)
			}
		}
	}
}

func inspectChain(w io.Writer, d evidence.Device, hashBits uint32) {
	h := map[uint32]crypto.Hash{secchan.HashSHA256: crypto.SHA256, secchan.HashSHA384: crypto.SHA384, secchan.HashSHA512: crypto.SHA512}[hashBits]
	if h == 0 || len(d.CertChain) == 0 {
		return
	}
	chain, err := secchan.ParseCertChain(d.CertChain, h)
	if err != nil {
		fmt.Fprintf(w, "  certificate chain    does not parse: %v\n", err)
		return
	}
	for i, c := range chain.Certs {
		fmt.Fprintf(w, "  certificate %d        %s (issuer %s)\n", i, c.Subject, c.Issuer)
	}
	fmt.Fprintf(w, "  leaf key SHA-256     %x\n", policy.LeafPublicKeySHA256(chain.Leaf()))
	fmt.Fprintf(w, "  chain SHA-256        %x\n", sha256.Sum256(d.CertChain))
}
