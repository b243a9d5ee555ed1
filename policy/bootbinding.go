package policy

// The boot binding, judged only from what a signed register vouches for.
//
// At boot the guest extends one runtime register (TDX RTMR 3, vTPM PCR
// 15) with EvidenceDigest(policy digest) and then EvidenceDigest of each
// device's bytes, and appends an event-log entry for each. The log
// travels outside the signed body, unsigned: it means something only
// because replaying it from zero gives the register value the platform
// signed. So, on kinds with a register, the register's signed value must
// equal the replay of the log's entries for it, always (an empty log
// replays to zero: stripping the log is caught), and the log must be
// exactly the digests of the body's boot evidence. A body that says "no
// runtime register" there is believed only when the register shows that
// nothing was extended. SEV-SNP has no register: the body must say so,
// carry no boot section and no log, and the policy decides.

import (
	"bytes"
	"fmt"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy/platform"
)

// checkBootBinding returns what vouched for the binding, or why it fails.
func (p *Policy) checkBootBinding(body *evidence.Body, facts *PlatformFacts) (string, error) {
	if facts == nil {
		return "", fmt.Errorf("not checked: the platform report did not verify")
	}
	if facts.BootRegister < 0 {
		return p.checkNoRegister(body, facts)
	}
	reg := uint32(facts.BootRegister)
	signed, ok := facts.Registers[reg]
	if !ok {
		return "", fmt.Errorf("the signed report does not show register %d, which carries the boot binding", reg)
	}
	var log []platform.Event
	for _, e := range facts.EventLog {
		if e.Register == reg {
			log = append(log, e)
		}
	}
	kind := platform.Kind(facts.Kind)
	if !bytes.Equal(platform.ReplayEventLog(kind, log, reg), signed) {
		return "", fmt.Errorf("the event log's %d entries for register %d do not replay to its signed value %x", len(log), reg, signed)
	}
	switch body.BootBinding {
	case evidence.BootBindingNoRegister:
		if len(log) != 0 || !allZero(signed) {
			return "", fmt.Errorf("the report says there is no runtime register, but signed register %d was extended", reg)
		}
		if body.Boot != nil {
			return "", fmt.Errorf("a boot section, but no boot binding vouches for it")
		}
		if !p.Platform.NoRuntimeRegisterAllowed() {
			return "", fmt.Errorf("nothing was bound at boot (register %d is zero) and the policy does not allow that", reg)
		}
		return fmt.Sprintf("skipped: policy allows no boot binding (register %d is zero)", reg), nil
	case evidence.BootBindingExtended:
	default:
		return "", fmt.Errorf("boot binding %q: the guest did not bind its devices at boot", body.BootBinding)
	}
	policyDigest, devices := body.PolicyDigest, body.DeviceBytes()
	if body.Boot != nil {
		policyDigest, devices = body.Boot.PolicyDigest, body.Boot.DeviceBytes()
		if err := checkSameAsBoot(body); err != nil {
			return "", err
		}
	}
	want := evidence.BootLog(policyDigest, devices)
	if len(log) != len(want) {
		return "", fmt.Errorf("register %d holds %d extends, want %d (the policy digest and one per device)", reg, len(log), len(want))
	}
	for i, e := range log {
		if !bytes.Equal(e.Digest, want[i]) {
			what := "the guest policy digest"
			if i > 0 {
				what = fmt.Sprintf("boot device %d's evidence", i-1)
			}
			return "", fmt.Errorf("extend %d of register %d is not the digest of %s", i, reg, what)
		}
	}
	src := "this report's devices"
	if body.Boot != nil {
		src = "the boot section's devices"
	}
	return fmt.Sprintf("register %d replays to the policy digest and %s", reg, src), nil
}

// checkNoRegister judges a platform without a runtime register (SEV-SNP).
func (p *Policy) checkNoRegister(body *evidence.Body, facts *PlatformFacts) (string, error) {
	switch {
	case body.BootBinding != evidence.BootBindingNoRegister:
		return "", fmt.Errorf("the report says %q, but platform %s has no runtime register", body.BootBinding, facts.Kind)
	case body.Boot != nil:
		return "", fmt.Errorf("a boot section, but platform %s has no register to vouch for it", facts.Kind)
	case len(facts.EventLog) != 0:
		return "", fmt.Errorf("%d events, but platform %s has no runtime register", len(facts.EventLog), facts.Kind)
	case !p.Platform.NoRuntimeRegisterAllowed():
		return "", fmt.Errorf("the platform has no runtime register and the policy does not allow that")
	}
	return "skipped: policy allows no runtime register (the device evidence is bound by the user data only)", nil
}

// checkSameAsBoot checks a report taken after boot against the boot
// evidence it carries: the same guest policy, the same devices in the same
// order, and each device that passes now presenting the certificate chain
// it passed with at boot. The register vouches for the boot evidence
// only; this carries that to the devices the report shows now.
func checkSameAsBoot(body *evidence.Body) error {
	b := body.Boot
	if !bytes.Equal(b.PolicyDigest, body.PolicyDigest) {
		return fmt.Errorf("the guest policy digest is %x now and was %x at boot", []byte(body.PolicyDigest), []byte(b.PolicyDigest))
	}
	boot, err := b.ParseDevices()
	if err != nil {
		return err
	}
	if len(boot) != len(body.Devices) {
		return fmt.Errorf("%d devices at boot, %d now", len(boot), len(body.Devices))
	}
	for i, d := range body.Devices {
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
