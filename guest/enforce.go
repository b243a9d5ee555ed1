package guest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/secchan"
)

// chainValidator is what the device's certificate chain must satisfy: its
// policy rule (anchors, certificate rules, pin) when the guest enforces a
// policy, else its configured trust anchors.
func chainValidator(dev *DeviceConfig) (secchan.ChainValidator, error) {
	if dev.Policy != nil {
		return dev.Policy.Validator(dev.Label), nil
	}
	if len(dev.Anchors) == 0 {
		if err := dev.LoadAnchors(); err != nil {
			return nil, err
		}
		if len(dev.Anchors) == 0 {
			return nil, errors.New("no trust anchors")
		}
	}
	return &secchan.AnchorValidator{Roots: dev.Anchors}, nil
}

// enforce applies the device's policy rule, if it has one, to evidence d
// whose measurements answer ownerNonce, as the verifier will: a device
// the guest reports as attested passes its own policy. Every failed check
// is named in the error; the checks named in skip are not applied.
func enforce(dev *DeviceConfig, d evidence.Device, ownerNonce []byte, skip ...string) error {
	if dev.Policy == nil {
		return nil
	}
	d.Status = evidence.StatusOK
	var failed []string
	for _, r := range dev.Policy.CheckDevice(d, ownerNonce) {
		if r.OK || slices.Contains(skip, r.Check) {
			continue
		}
		failed = append(failed, fmt.Sprintf("%s: %s", r.Check, r.Reason))
	}
	if len(failed) > 0 {
		return fmt.Errorf("the device fails the guest's policy: %s", strings.Join(failed, "; "))
	}
	return nil
}

// beforeKeys are the checks that cannot pass before IDE is keyed and the
// session ended: enforcing the rest first keeps a device whose chain or
// measurements the policy refuses from ever getting IDE keys.
var beforeKeys = []string{policy.CheckSession, policy.CheckIDE, policy.CheckTDISP, policy.CheckTDISPInfo, policy.CheckTDISPMMIO}

// standing are the checks a daemon's evidence skips: it measures inside a
// session it keeps open for the next re-measurement, so a rule's "session
// ended cleanly" cannot hold while the session stands; that one check is
// left to the verifier of a one-shot report.
func standing(d evidence.Device) []string {
	if d.Session != nil && !d.Session.Ended && d.Measurements != nil && d.Measurements.InSession {
		return []string{policy.CheckSession}
	}
	return nil
}
