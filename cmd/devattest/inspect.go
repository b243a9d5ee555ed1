package main

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-sev-guest/abi"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/platform"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("inspect", "devattest inspect REPORT [--policy FILE --nonce HEX]")
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "also verify the report against this policy and print the verdict first")
	nonceHex := fs.String("nonce", "", "with --policy: the nonce the report must answer, in hex")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return cli.ParseStatus(err)
	}
	if len(pos) != 1 {
		return cli.UsageError(stderr, "devattest inspect", "give one REPORT")
	}
	b, err := evidence.ReadFile(pos[0])
	if err != nil {
		return cli.Fail(stderr, "devattest inspect", err)
	}
	rep, err := evidence.Unmarshal(b)
	if err != nil {
		return cli.Fail(stderr, "devattest inspect", err)
	}
	if *policyPath != "" {
		p, err := policy.Load(*policyPath)
		if err != nil {
			return cli.Fail(stderr, "devattest inspect", err)
		}
		nonce, err := parseNonce(*nonceHex)
		if err != nil {
			return cli.Fail(stderr, "devattest inspect", err)
		}
		v := p.Verify(rep, nonce)
		if v.OK {
			fmt.Fprintf(stdout, "verified against %s: PASS (%d checks): every field marked [signed] is vouched for\n\n", *policyPath, len(v.Results))
		} else {
			fmt.Fprintf(stdout, "verified against %s: FAIL (%d of %d checks failed): nothing below is vouched for\n\n", *policyPath, len(v.Failed()), len(v.Results))
		}
	} else {
		fmt.Fprintf(stdout, "not verified: inspect shows, verify judges (give --policy to do both)\n\n")
	}
	inspect(stdout, rep)
	return 0
}

// inspect prints rep for a person, marking where each field comes from:
// [signed] is inside the body whose digest the platform report signs (it
// is vouched for once verify has checked that signature), [unsigned] is
// outside it and vouched for by nothing, [replayed] is the unsigned event
// log that verify replays against a signed register.
func inspect(w io.Writer, rep *evidence.Report) {
	body := rep.ParsedBody()
	fmt.Fprintf(w, "report %s, body %s of %d bytes\n", rep.Version, rep.BodyType, len(rep.Body))
	fmt.Fprintf(w, "  user data            %x (SHA-512 of the body: what the platform report must sign)\n", rep.UserData())
	fmt.Fprintf(w, "  [signed] created     %s\n", body.Created.Format("2006-01-02 15:04:05.000 MST"))
	fmt.Fprintf(w, "  [signed] owner nonce %x\n", []byte(body.Nonce))
	fmt.Fprintf(w, "  [signed] guest policy digest %x\n", []byte(body.PolicyDigest))
	fmt.Fprintf(w, "\n[signed] platform %s, boot binding %q\n", body.Platform, body.BootBinding)
	if body.BootError != "" {
		fmt.Fprintf(w, "  [signed] boot error  %s\n", body.BootError)
	}
	if rep.Platform.Error != "" {
		fmt.Fprintf(w, "  [unsigned] platform error (the guest's word, outside the signed body): %s\n", rep.Platform.Error)
	}
	inspectPlatform(w, rep.Platform.Report)
	if b := body.Boot; b != nil {
		fmt.Fprintf(w, "  [signed] boot section: the register holds the boot attestation's devices, carried here (vouched for only where a register replays to them):\n")
		devs, err := b.ParseDevices()
		if err != nil {
			fmt.Fprintf(w, "    does not decode: %v\n", err)
		}
		for _, d := range devs {
			fmt.Fprintf(w, "    %-20s %s\n", d.Label, d.Status)
		}
	}
	for _, d := range body.Devices {
		inspectDevice(w, d)
	}
}

func inspectPlatform(w io.Writer, raw []byte) {
	var pr platform.Report
	if err := pr.UnmarshalBinary(raw); err != nil {
		fmt.Fprintf(w, "  signed report        does not decode: %v\n", err)
		return
	}
	fmt.Fprintf(w, "  signed report        %s, %d bytes (its signature is checked by verify)\n", pr.Kind, len(pr.Raw))
	switch pr.Kind {
	case platform.KindSNP:
		if r, err := abi.ReportToProto(pr.Raw); err == nil {
			fmt.Fprintf(w, "    launch measurement %x\n    guest policy       0x%x\n    VMPL               %d\n", r.GetMeasurement(), r.GetPolicy(), r.GetVmpl())
		}
	case platform.KindTDX:
		if q, err := tdxabi.QuoteToProto(pr.Raw); err == nil {
			if v4, ok := q.(*tdxpb.QuoteV4); ok {
				body := v4.GetTdQuoteBody()
				fmt.Fprintf(w, "    MRTD               %x\n    TD attributes      %x\n", body.GetMrTd(), body.GetTdAttributes())
				for i, r := range body.GetRtmrs() {
					fmt.Fprintf(w, "    RTMR[%d]            %x\n", i, r)
				}
			}
		}
	case platform.KindTPM:
		fmt.Fprintf(w, "    attestation key    %x\n", pr.AKPublic)
		for _, p := range pr.PCRs {
			fmt.Fprintf(w, "    PCR %-2d             %x\n", p.Index, p.Digest)
		}
	}
	for i, e := range pr.EventLog {
		fmt.Fprintf(w, "  [replayed] event %d: register %d  %x  [unsigned description] %s\n", i, e.Register, e.Digest, e.Description)
	}
}

func inspectDevice(w io.Writer, d evidence.Device) {
	fmt.Fprintf(w, "\n[signed] device %q: %s\n", d.Label, d.Status)
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
		fmt.Fprintf(w, "  SPDM nonce           %x\n", []byte(m.Nonce))
		for _, b := range m.Blocks {
			fmt.Fprintf(w, "  block %-3d            %s  %s\n", b.Index, hex.EncodeToString(b.Value), b.Type)
		}
	}
	if s := d.Session; s != nil {
		fmt.Fprintf(w, "  session              %s, %s, ended %t\n", secchan.FormatSessionID(s.ID), s.AEAD, s.Ended)
	}
	if ide := d.IDE; ide != nil {
		fmt.Fprintf(w, "  IDE                  port %d stream %d key set %q sub-streams %v (%s)\n", ide.Port, ide.Stream, ide.KeySet, ide.SubStreams, ide.RootPort)
		for _, s := range ide.Steps {
			fmt.Fprintf(w, "    %-20s %s\n", s.Name, s.Result)
		}
	}
	if t := d.TDISP; t != nil {
		fmt.Fprintf(w, "  TDISP                interface 0x%x %s, lock flags %v, default stream %d, MMIO reporting offset 0x%x\n",
			t.FunctionID, t.State, tdisp.LockFlagNames(t.LockFlags), t.DefaultStream, t.MMIOReportingOffset)
		if r, err := tdisp.ParseReport(t.InterfaceReport); err != nil {
			fmt.Fprintf(w, "    report (%d bytes) does not decode: %v\n", len(t.InterfaceReport), err)
		} else {
			fmt.Fprintf(w, "    report (%d bytes, read inside the secure session: the guest vouches for it, the device did not sign it)\n", len(t.InterfaceReport))
			printReport(w, "    ", r)
		}
	}
	for _, e := range d.Events {
		fmt.Fprintf(w, "  event                %s %s: %s\n", e.Time.Format("2006-01-02 15:04:05"), e.Kind, e.Message)
	}
}

// inspectChain shows the certificates as carried. Nothing here is
// checked against a trust anchor (verify does that); it does say whether
// a carried root is the one RootHash names.
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
		note := ""
		if i == 0 {
			dg := h.New()
			dg.Write(c.Raw)
			if hex.EncodeToString(dg.Sum(nil)) == hex.EncodeToString(chain.RootHash) {
				note = " [the root RootHash names]"
			} else if c.Subject.String() == c.Issuer.String() {
				note = " [self-issued, but NOT the root RootHash names]"
			}
		}
		fmt.Fprintf(w, "  certificate %d (as carried, not checked against an anchor) %s (issuer %s)%s\n", i, c.Subject, c.Issuer, note)
	}
	fmt.Fprintf(w, "  leaf key SHA-256     %x\n", policy.LeafPublicKeySHA256(chain.Leaf()))
	fmt.Fprintf(w, "  chain SHA-256        %x\n", sha256.Sum256(d.CertChain))
}
