package guest

import (
	"errors"
	"fmt"
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
// is named in the error.
//
// The daemon measures inside a session it keeps open for the next
// re-measurement, so a rule's requirement that the session ended cleanly
// cannot hold while it stands; for such evidence (measured in a session
// not yet ended) that one check is left to the verifier of a report.
func enforce(dev *DeviceConfig, d evidence.Device, ownerNonce []byte) error {
	if dev.Policy == nil {
		return nil
	}
	standing := d.Session != nil && !d.Session.Ended && d.Measurements != nil && d.Measurements.InSession
	var failed []string
	for _, r := range dev.Policy.CheckDevice(d, ownerNonce) {
		if r.OK || (standing && r.Check == policy.CheckSession) {
			continue
		}
		failed = append(failed, fmt.Sprintf("%s: %s", r.Check, r.Reason))
	}
	if len(failed) > 0 {
		return fmt.Errorf("the device fails the guest's policy: %s", strings.Join(failed, "; "))
	}
	return nil
}
