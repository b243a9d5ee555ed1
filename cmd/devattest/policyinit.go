package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-sev-guest/abi"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/platform"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

type initOptions struct {
	snpARK, snpASK, tdxRoot string
	// devicesOnly writes the device rules alone, for a guest to enforce.
	devicesOnly bool
}

// draft is a policy "policy init" is about to write: the YAML and the
// device roots it names, by file name in the policy's directory.
type draft struct {
	yaml     string
	files    map[string][]byte
	warnings []string
}

// draftPolicy drafts a starting policy for rep to be written at path: one
// rule per passed device (its chain's root, a leaf-key pin, its
// negotiated version and algorithms as the minimum and the allowlist, its
// blocks as reference measurements, the certificate profile, session and
// IDE as seen), the platform rule, and the guest policy digest (the
// device rules alone with o.devicesOnly). Failed devices are left out
// with a warning.
func draftPolicy(rep *evidence.Report, path string, o initOptions) (*draft, error) {
	dir := filepath.Dir(path)
	body := rep.ParsedBody()
	d := &draft{files: map[string][]byte{}}
	var b strings.Builder
	b.WriteString("# Written by devattest policy init from a report. Review every value:\n")
	b.WriteString("# it trusts what this one report showed.\n")
	if len(body.PolicyDigest) > 0 && !o.devicesOnly {
		fmt.Fprintf(&b, "guest_policy_digest: %s\n", hex.EncodeToString(body.PolicyDigest))
	}
	b.WriteString("devices:\n")
	n := 0
	for _, dev := range body.Devices {
		if !dev.OK() || dev.Algorithms == nil || dev.Measurements == nil {
			d.warnings = append(d.warnings, fmt.Sprintf("device %q failed (%s); no rule written", dev.Label, dev.FailedStep))
			continue
		}
		rule, err := deviceRule(dev, dir, d.files)
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", dev.Label, err)
		}
		b.WriteString(rule)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("the report has no passed device")
	}
	if !o.devicesOnly {
		pl, err := platformRule(rep, o, dir)
		if err != nil {
			return nil, err
		}
		b.WriteString(pl)
	}
	d.yaml = b.String()
	return d, nil
}

// existingCopy names a PEM file in dir whose bytes are exactly b, so
// that a root already next to the policy (the vendor's, as a device or
// devsim wrote it) is named rather than written again; "" if none.
func existingCopy(dir string, b []byte) string {
	names, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	for _, n := range names {
		if c, err := os.ReadFile(n); err == nil && bytes.Equal(c, b) {
			return filepath.Base(n)
		}
	}
	return ""
}

// rel spells path relative to dir when it can, so that a policy and its
// files move together.
func rel(dir, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if r, err := filepath.Rel(absDir, abs); err == nil {
		return r, nil
	}
	return abs, nil
}

func deviceRule(d evidence.Device, dir string, files map[string][]byte) (string, error) {
	var h crypto.Hash
	switch d.Algorithms.BaseHashBits {
	case secchan.HashSHA256:
		h = crypto.SHA256
	case secchan.HashSHA384:
		h = crypto.SHA384
	case secchan.HashSHA512:
		h = crypto.SHA512
	default:
		return "", fmt.Errorf("unsupported hash %s", d.Algorithms.BaseHash)
	}
	chain, err := secchan.ParseCertChain(d.CertChain, h)
	if err != nil {
		return "", err
	}
	root := chain.Certs[0]
	rh := h.New()
	rh.Write(root.Raw)
	if !bytes.Equal(rh.Sum(nil), chain.RootHash) {
		return "", fmt.Errorf("the chain does not carry its root certificate; write the trust anchor by hand")
	}
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	anchor := existingCopy(dir, rootPEM)
	if anchor == "" {
		anchor = sanitize(d.Label) + "-root.pem"
		files[anchor] = rootPEM
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  - label: %s\n", strconv.Quote(d.Label))
	fmt.Fprintf(&b, "    trust_anchors: [%s]  # %s\n", anchor, root.Subject)
	fmt.Fprintf(&b, "    min_spdm_version: %q\n", d.SPDMVersion)
	fmt.Fprintf(&b, "    allowed_asym: [%s]\n", d.Algorithms.BaseAsym)
	fmt.Fprintf(&b, "    allowed_hash: [%s]\n", d.Algorithms.BaseHash)
	fmt.Fprintf(&b, "    pin:\n      leaf_public_key_sha256: %x\n", policy.LeafPublicKeySHA256(chain.Leaf()))
	b.WriteString("    reference_measurements:\n")
	for _, blk := range d.Measurements.Blocks {
		fmt.Fprintf(&b, "      - index: %d  # %s\n        digest: [%x]\n", blk.Index, blk.Type, []byte(blk.Value))
	}
	b.WriteString("    certificates:\n      leaf_not_ca: true\n      leaf_key_usage_digital_signature: true\n")
	if len(chain.Certs) > 2 {
		b.WriteString("      intermediates_ca: true\n")
	}
	fmt.Fprintf(&b, "      max_chain_length: %d\n", len(chain.Certs))
	fmt.Fprintf(&b, "    require_session: %t\n", d.Session != nil && d.Session.Ended)
	ide := d.IDE != nil && d.IDE.KeySet != ""
	fmt.Fprintf(&b, "    require_ide: %t\n", ide)
	if ide && d.IDE.RootPort == evidence.RootPortSimulated {
		b.WriteString("    # The root port's half of this stream was the simulated link (a test\n    # setup): remove this line for a real platform.\n    allow_simulated_root_port: true\n")
	}
	if t := d.TDISP; t != nil && t.State == tdisp.StateRun.String() {
		state, info, ranges, err := policy.TDISPRules(t)
		if err != nil {
			return "", fmt.Errorf("TDISP interface report: %w", err)
		}
		fmt.Fprintf(&b, "    require_tdisp: true\n    tdisp_state: %s\n", state)
		fmt.Fprintf(&b, "    tdisp_interface_info: [%s]\n", strings.Join(info, ", "))
		b.WriteString("    tdisp_mmio_ranges:  # sizes and attributes as reported; addresses are the host's\n")
		for _, m := range ranges {
			fmt.Fprintf(&b, "      - pages: %d\n        attributes: [%s]\n        range_id: %d\n", m.Pages, strings.Join(m.Attributes, ", "), *m.RangeID)
		}
	}
	return b.String(), nil
}

func platformRule(rep *evidence.Report, o initOptions, dir string) (string, error) {
	var pr platform.Report
	if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
		return "", fmt.Errorf("platform report: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "platform:\n  kind: %s\n", pr.Kind)
	testRoot, err := testRootOf(pr.Kind, o)
	if err != nil {
		return "", err
	}
	if testRoot != "" {
		fmt.Fprintf(&b, "  # WARNING: the roots given chain to a test root (%s):\n", testRoot)
		b.WriteString("  # anyone can make such reports. Never use this policy in production.\n  allow_test_roots: true\n")
	}
	switch pr.Kind {
	case platform.KindSNP:
		r, err := abi.ReportToProto(pr.Raw)
		if err != nil {
			return "", fmt.Errorf("SEV-SNP report: %w", err)
		}
		pol, err := abi.ParseSnpPolicy(r.GetPolicy())
		if err != nil {
			return "", fmt.Errorf("SEV-SNP guest policy: %w", err)
		}
		fmt.Fprintf(&b, "  snp:\n    measurement: [%x]\n", r.GetMeasurement())
		if pol.Debug {
			b.WriteString("    # The report's guest policy allows debugging (a test platform?): set\n    # policy_debug_allowed to false for production guests.\n")
		}
		fmt.Fprintf(&b, "    policy_debug_allowed: %t\n", pol.Debug)
		if pol.MigrateMA {
			b.WriteString("    # The report's guest policy allows a migration agent, which can export\n    # the guest's memory.\n    allow_migrate_ma: true\n")
		}
		rt, ct := policy.SNPTCBOf(r.GetReportedTcb()), policy.SNPTCBOf(r.GetCurrentTcb())
		b.WriteString("    # The lowest of this report's reported and current TCB: raise it as AMD\n    # publishes fixes.\n")
		fmt.Fprintf(&b, "    min_tcb: {bootloader: %d, tee: %d, snp: %d, microcode: %d}\n",
			min(rt.Bootloader, ct.Bootloader), min(rt.TEE, ct.TEE), min(rt.SNP, ct.SNP), min(rt.Microcode, ct.Microcode))
		fmt.Fprintf(&b, "    vmpl: [%d]\n", r.GetVmpl())
		fmt.Fprintf(&b, "    min_report_version: %d\n", max(r.GetVersion(), policy.DefaultSNPMinReportVersion))
	case platform.KindTDX:
		body, err := platform.TDXQuoteBody(pr.Raw)
		if err != nil {
			return "", fmt.Errorf("TDX quote: %w", err)
		}
		fmt.Fprintf(&b, "  tdx:\n    mrtd: [%x]\n", body.GetMrTd())
		if len(body.GetTdAttributes()) == 8 && body.GetTdAttributes()[0]&1 != 0 {
			b.WriteString("    # The report is from a debug TD (a test platform?): remove allow_debug\n    # for production guests.\n    allow_debug: true\n")
		}
		b.WriteString("    # The TDX module of this report: raise min_tee_tcb_svn as Intel\n    # publishes fixes; list other modules as they are deployed.\n")
		fmt.Fprintf(&b, "    mrseam: [%x]\n    mrsigner_seam: [%x]\n    min_tee_tcb_svn: %x\n", body.GetMrSeam(), body.GetMrSignerSeam(), body.GetTeeTcbSvn())
		fmt.Fprintf(&b, "    td_attributes: %x\n    xfam: %x\n", body.GetTdAttributes(), body.GetXfam())
		b.WriteString("    # The RTMRs of this report (firmware, kernel and command line): pin\n    # them once the values are known to be the intended boot.\n")
		b.WriteString("    # rtmrs:\n")
		for i, v := range body.GetRtmrs() {
			if i == policy.DefaultTDXRTMR {
				fmt.Fprintf(&b, "    #   RTMR %d carries the boot binding (replayed from the event log): not pinned\n", i)
				continue
			}
			fmt.Fprintf(&b, "    #   %d: [%x]\n", i, v)
		}
	case platform.KindTPM:
		fmt.Fprintf(&b, "  tpm:\n    # TPMT_PUBLIC of the attestation key; trust it only after checking it\n    # (EK certificate, credential activation).\n    ak_public: [%x]\n", pr.AKPublic)
		var quoted []string
		for _, v := range pr.PCRs {
			if v.Index != policy.DefaultTPMPCR {
				quoted = append(quoted, strconv.Itoa(int(v.Index)))
			}
		}
		fmt.Fprintf(&b, "    # The PCRs this report's quote covers besides PCR %d (always required).\n    quoted_pcrs: [%s]\n", policy.DefaultTPMPCR, strings.Join(quoted, ", "))
		b.WriteString("    # The quoted PCRs of this report (SHA-256 bank): pin them once the\n    # values are known to be the intended boot.\n")
		b.WriteString("    # pcrs:\n")
		for _, v := range pr.PCRs {
			if v.Index == policy.DefaultTPMPCR {
				fmt.Fprintf(&b, "    #   PCR %d carries the boot binding (replayed from the event log): not pinned\n", v.Index)
				continue
			}
			fmt.Fprintf(&b, "    #   %d: [%x]\n", v.Index, v.Digest)
		}
	}
	if o.snpARK != "" || o.snpASK != "" || o.tdxRoot != "" {
		b.WriteString("  roots:\n")
		for _, f := range []struct{ key, path string }{{"snp_ark", o.snpARK}, {"snp_ask", o.snpASK}, {"tdx_root", o.tdxRoot}} {
			if f.path == "" {
				continue
			}
			p, err := rel(dir, f.path)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "    %s: %s\n", f.key, strconv.Quote(p))
		}
	}
	return b.String(), nil
}

// testRootOf names a test root among the roots files given for kind
// (platform.TestRoot), "" when there is none.
func testRootOf(kind platform.Kind, o initOptions) (string, error) {
	var files []string
	switch kind {
	case platform.KindSNP:
		files = []string{o.snpARK, o.snpASK}
	case platform.KindTDX:
		files = []string{o.tdxRoot}
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		certs, err := secchan.LoadCertificates(f)
		if err != nil {
			return "", err
		}
		for _, c := range certs {
			if name, ok := platform.TestRoot(c); ok {
				return name, nil
			}
		}
	}
	return "", nil
}

// sanitize turns a label into a file name.
func sanitize(label string) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, label)
	if s == "" || s[0] == '.' {
		d := sha256.Sum256([]byte(label))
		s = "device-" + hex.EncodeToString(d[:4]) + s
	}
	return s
}

// writeDraft writes d as the policy at path, but only once the report it
// came from verifies against it: the platform signature and rules (a
// whole policy) and every device's chain and signature. A policy written
// from a report that does not verify would trust whatever the report
// showed; force writes it anyway, with the failures as warnings. Existing
// files are not overwritten without force, and nothing is left behind
// when the report is refused.
func writeDraft(d *draft, rep *evidence.Report, path string, devicesOnly, force bool) (warnings []string, err error) {
	dir := filepath.Dir(path)
	if !force {
		if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("%s exists (give --force to overwrite it)", path)
		}
	}
	var created []string
	defer func() {
		if err != nil {
			for _, f := range created {
				os.Remove(f)
			}
		}
	}()
	for _, name := range slices.Sorted(maps.Keys(d.files)) {
		f := filepath.Join(dir, name)
		if old, rerr := os.ReadFile(f); rerr == nil {
			if bytes.Equal(old, d.files[name]) {
				continue
			}
			if !force {
				return nil, fmt.Errorf("%s exists with another certificate (give --force to overwrite it)", f)
			}
		}
		if err := os.WriteFile(f, d.files[name], 0o644); err != nil {
			return nil, err
		}
		created = append(created, f)
	}
	tmp, err := os.CreateTemp(dir, ".policy-init-*.yaml")
	if err != nil {
		return nil, err
	}
	created = append(created, tmp.Name())
	if _, err := tmp.WriteString(d.yaml); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	load := policy.Parse
	if devicesOnly {
		load = policy.ParseDevices
	}
	p, err := load([]byte(d.yaml), dir)
	if err != nil {
		return nil, fmt.Errorf("the drafted policy does not load: %w", err)
	}
	var failed []policy.Result
	body := rep.ParsedBody()
	if devicesOnly {
		for _, dev := range body.Devices {
			if !dev.OK() {
				continue
			}
			for _, r := range p.CheckDevice(dev, body.Nonce) {
				if !r.OK {
					failed = append(failed, r)
				}
			}
		}
	} else {
		v := p.Verify(rep, body.Nonce)
		failed = v.Failed()
		warnings = append(warnings, v.Warnings...)
	}
	for _, r := range failed {
		// A failed device has no rule; its own failure is expected.
		if r.Check == policy.CheckStatus || r.Check == policy.CheckRule {
			continue
		}
		msg := fmt.Sprintf("the report does not verify against the drafted policy: %s / %s: %s", r.Device, r.Check, r.Reason)
		if !force {
			return warnings, fmt.Errorf("%s (a policy must not trust a report that does not verify; give --force to write it anyway)", msg)
		}
		warnings = append(warnings, msg)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return warnings, err
	}
	return warnings, nil
}
