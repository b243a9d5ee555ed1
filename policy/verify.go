package policy

import (
	"bytes"
	"crypto/subtle"
	"fmt"

	"github.com/devattest/devattest/evidence"
)

// Subjects of the checks that are not about one device.
const (
	SubjectReport   = "report"
	SubjectPlatform = "platform"
)

// Names of the report and platform checks Verify runs itself.
const (
	CheckFormat        = "format"
	CheckOwnerNonce    = "nonce"
	CheckKind          = "kind"
	CheckPlatform      = "platform report"
	CheckBootBinding   = "boot binding"
	CheckGuestPolicy   = "guest policy digest"
	CheckDevicePresent = "present"
)

// PlatformVerifier checks the report's platform report for the user data
// wantUserData and against the policy's platform rule (roots, launch
// measurement, MRTD or attestation key). It must also check that the
// report's JSON event log (rep.Platform.EventLog) is exactly the log the
// signed platform report replays to its register, since Verify judges the
// boot binding from that log. The caller (cmd) supplies it so that this
// package never imports the platform code of the guest.
type PlatformVerifier func(rep *evidence.Report, wantUserData [64]byte) []Result

// Verdict is the outcome of Verify: OK only when every result is OK.
type Verdict struct {
	OK      bool     `json:"ok"`
	Results []Result `json:"results"`
}

// Verify judges a combined report against p. nonce is the owner's nonce
// the report must answer (nil: freshness cannot be established, which
// fails). pv checks the platform report.
//
// The checks: the report's format and carried evidence bytes; the nonce;
// the platform kind; the platform report over evidence.UserData(nonce,
// carried evidence bytes) (pv); the boot binding (the event log is the
// guest policy digest then each device's evidence digest, in order, on one
// register; "no runtime register" only when the policy allows it); the
// guest policy digest when the policy names one; every device against its
// rule (CheckDevice); and every labelled rule's device present.
func (p *Policy) Verify(rep *evidence.Report, nonce []byte, pv PlatformVerifier) Verdict {
	var out []Result
	add := func(subject, check string, err error) bool {
		r := Result{Device: subject, Check: check, OK: err == nil}
		if err != nil {
			r.Reason = err.Error()
		}
		out = append(out, r)
		return err == nil
	}
	if !add(SubjectReport, CheckFormat, checkFormat(rep)) {
		return verdict(out)
	}
	switch {
	case nonce == nil:
		add(SubjectReport, CheckOwnerNonce, fmt.Errorf("no nonce given: freshness is not established"))
	case subtle.ConstantTimeCompare(nonce, rep.Nonce) != 1:
		add(SubjectReport, CheckOwnerNonce, fmt.Errorf("the report answers nonce %x, not %x", rep.Nonce, nonce))
	default:
		add(SubjectReport, CheckOwnerNonce, nil)
	}
	kindOK := add(SubjectPlatform, CheckKind, func() error {
		if rep.Platform.Kind != p.Platform.Kind {
			return fmt.Errorf("the report is from platform %q, the policy requires %q", rep.Platform.Kind, p.Platform.Kind)
		}
		return nil
	}())
	switch {
	case !kindOK:
		add(SubjectPlatform, CheckPlatform, fmt.Errorf("not checked: wrong platform kind"))
	case pv == nil:
		add(SubjectPlatform, CheckPlatform, fmt.Errorf("no platform verifier"))
	default:
		ud := evidence.UserData(rep.Nonce, rep.Evidence)
		res := pv(rep, ud)
		if len(res) == 0 {
			add(SubjectPlatform, CheckPlatform, fmt.Errorf("the platform verifier returned no result"))
		}
		out = append(out, res...)
	}
	add(SubjectPlatform, CheckBootBinding, p.checkBootBinding(rep))
	if p.GuestPolicyDigest != nil {
		add(SubjectReport, CheckGuestPolicy, func() error {
			if !bytes.Equal(rep.PolicyDigest, p.GuestPolicyDigest) {
				return fmt.Errorf("the guest enforced policy %x, not %x", rep.PolicyDigest, []byte(p.GuestPolicyDigest))
			}
			return nil
		}())
	}
	present := map[string]bool{}
	for _, d := range rep.Devices {
		present[d.Label] = true
		out = append(out, p.CheckDevice(d, rep.Nonce)...)
	}
	for _, r := range p.Devices {
		if !r.Default && !present[r.Label] {
			add(r.Label, CheckDevicePresent, fmt.Errorf("the policy names this device, the report does not carry it"))
		}
	}
	return verdict(out)
}

func verdict(rs []Result) Verdict {
	v := Verdict{OK: len(rs) > 0, Results: rs}
	for _, r := range rs {
		if !r.OK {
			v.OK = false
		}
	}
	return v
}

func checkFormat(rep *evidence.Report) error {
	if rep == nil {
		return fmt.Errorf("no report")
	}
	if err := rep.Validate(); err != nil {
		return err
	}
	return rep.CheckEvidence()
}

// BootLog is the event log digests the boot binding must show for rep:
// EvidenceDigest(policy digest), then EvidenceDigest of each device's
// evidence bytes, in order; those of rep.Boot when the report carries the
// boot evidence (a report taken after boot), else its own.
func BootLog(rep *evidence.Report) [][]byte {
	policyDigest, ev := rep.PolicyDigest, rep.Evidence
	if rep.Boot != nil {
		policyDigest, ev = rep.Boot.PolicyDigest, rep.Boot.Evidence
	}
	pd := evidence.EvidenceDigest(policyDigest)
	out := [][]byte{pd[:]}
	for _, b := range ev {
		d := evidence.EvidenceDigest(b)
		out = append(out, d[:])
	}
	return out
}

// checkSameAsBoot checks a report taken after boot against the boot
// evidence it carries: the same guest policy, the same devices in the same
// order, and each device that passes now presenting the certificate chain
// it passed with at boot. The register vouches for the boot evidence
// only; this carries that to the devices the report shows now.
func checkSameAsBoot(rep *evidence.Report) error {
	b := rep.Boot
	if !bytes.Equal(b.PolicyDigest, rep.PolicyDigest) {
		return fmt.Errorf("the guest policy digest is %x now and was %x at boot", rep.PolicyDigest, b.PolicyDigest)
	}
	boot, err := b.Devices()
	if err != nil {
		return err
	}
	if len(boot) != len(rep.Devices) {
		return fmt.Errorf("%d devices at boot, %d now", len(boot), len(rep.Devices))
	}
	for i, d := range rep.Devices {
		bd := boot[i]
		switch {
		case bd.Label != d.Label:
			return fmt.Errorf("device %d is %q now and was %q at boot", i, d.Label, bd.Label)
		case !d.OK():
			// A failed device is judged by its own checks.
		case !bd.OK():
			return fmt.Errorf("device %q passes now but failed at boot (%s), so the boot binding does not vouch for it", d.Label, bd.FailedStep)
		case !bytes.Equal(bd.CertChain, d.CertChain):
			return fmt.Errorf("device %q presents another certificate chain than at boot", d.Label)
		}
	}
	return nil
}

func (p *Policy) checkBootBinding(rep *evidence.Report) error {
	pl := rep.Platform
	switch pl.BootBinding {
	case evidence.BootBindingNoRegister:
		if !p.Platform.NoRuntimeRegisterAllowed() {
			return fmt.Errorf("the platform has no runtime register and the policy does not allow that")
		}
		if len(pl.EventLog) != 0 {
			return fmt.Errorf("no runtime register, yet %d events", len(pl.EventLog))
		}
		return nil
	case evidence.BootBindingExtended:
	default:
		return fmt.Errorf("boot binding %q", pl.BootBinding)
	}
	if rep.Boot != nil {
		if err := checkSameAsBoot(rep); err != nil {
			return err
		}
	}
	want := BootLog(rep)
	if len(pl.EventLog) != len(want) {
		return fmt.Errorf("the event log has %d entries, want %d (the policy digest and one per device)", len(pl.EventLog), len(want))
	}
	reg := pl.EventLog[0].Register
	for i, e := range pl.EventLog {
		if e.Register != reg {
			return fmt.Errorf("event %d extends register %d, the first extends %d", i, e.Register, reg)
		}
		if !bytes.Equal(e.Digest, want[i]) {
			what := "the guest policy digest"
			if i > 0 {
				what = fmt.Sprintf("the evidence of device %q", rep.Devices[i-1].Label)
			}
			return fmt.Errorf("event %d is not the digest of %s", i, what)
		}
	}
	return nil
}
