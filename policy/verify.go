package policy

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"strings"

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

// Verdict is the outcome of Verify: OK only when every result is OK.
type Verdict struct {
	OK      bool     `json:"ok"`
	Results []Result `json:"results"`
	// Warnings are results that pass but that a person must read (a
	// test root of trust was accepted); they are also in Results.
	Warnings []string `json:"warnings,omitempty"`
}

// Failed returns the results that failed, in order.
func (v *Verdict) Failed() []Result {
	var out []Result
	for _, r := range v.Results {
		if !r.OK {
			out = append(out, r)
		}
	}
	return out
}

// VerifyReport is the whole verification of an encoded combined report:
// it decodes the bytes strictly (package evidence), then runs Verify. A
// report that does not decode is a failing verdict, not an error. This
// is the one call a verifier service embeds.
func VerifyReport(report []byte, p *Policy, nonce []byte) Verdict {
	rep, err := evidence.Unmarshal(report)
	if err != nil {
		return verdict([]Result{{Device: SubjectReport, Check: CheckFormat, Reason: err.Error()}})
	}
	return p.Verify(rep, nonce)
}

// Verify judges a decoded combined report against p. nonce is the
// owner's nonce the report must answer (nil: freshness cannot be
// established, which fails).
//
// A verdict rests only on signed or hashed bytes: the platform report,
// verified by CheckPlatform over the digest of the body's exact bytes,
// and the body, parsed from those bytes. The checks: the body's format;
// the nonce; the platform kind (body, policy and signed report agree);
// the platform report and rules (CheckPlatform); the boot binding
// (checkBootBinding); the guest policy digest; the EAT-DA claims set
// (checkEATDA); every device against its
// rule (CheckDevice); every labelled rule's device present.
func (p *Policy) Verify(rep *evidence.Report, nonce []byte) Verdict {
	var out []Result
	add := func(subject, check string, err error, passReason string) bool {
		r := Result{Device: subject, Check: check, OK: err == nil, Reason: passReason}
		if err != nil {
			r.Reason = err.Error()
		}
		out = append(out, r)
		return err == nil
	}
	var body *evidence.Body
	if rep != nil {
		body = rep.ParsedBody()
	}
	if body == nil {
		add(SubjectReport, CheckFormat, fmt.Errorf("no decoded report"), "")
		return verdict(out)
	}
	// Hash the exact body bytes: everything below reads body, which was
	// parsed from them.
	ud := rep.UserData()
	add(SubjectReport, CheckFormat, nil, fmt.Sprintf("%s, body of %d bytes", rep.Version, len(rep.Body)))
	switch {
	case nonce == nil:
		add(SubjectReport, CheckOwnerNonce, fmt.Errorf("no nonce given: freshness is not established"), "")
	case subtle.ConstantTimeCompare(nonce, body.Nonce) != 1:
		add(SubjectReport, CheckOwnerNonce, fmt.Errorf("the report answers nonce %x, not %x", []byte(body.Nonce), nonce), "")
	default:
		add(SubjectReport, CheckOwnerNonce, nil, fmt.Sprintf("%x", nonce))
	}
	kindOK := add(SubjectPlatform, CheckKind, func() error {
		if body.Platform != p.Platform.Kind {
			return fmt.Errorf("the report is from platform %q, the policy requires %q", body.Platform, p.Platform.Kind)
		}
		return nil
	}(), body.Platform)
	var facts *PlatformFacts
	if kindOK {
		var res []Result
		facts, res = p.CheckPlatform(rep.Platform.Report, ud)
		out = append(out, res...)
		if facts != nil && facts.Kind != body.Platform {
			add(SubjectPlatform, CheckPlatform, fmt.Errorf("the signed report is from %q, the body says %q", facts.Kind, body.Platform), "")
			facts = nil
		}
	} else {
		add(SubjectPlatform, CheckPlatform, fmt.Errorf("not checked: wrong platform kind"), "")
	}
	why, err := p.checkBootBinding(body, facts)
	add(SubjectPlatform, CheckBootBinding, err, why)
	add(SubjectReport, CheckGuestPolicy, p.checkGuestPolicy(body), guestPolicyPass(p, body))
	eatWhy, eatErr := checkEATDA(body)
	add(SubjectReport, CheckEATDA, eatErr, eatWhy)
	present := map[string]bool{}
	for _, d := range body.Devices {
		present[d.Label] = true
		out = append(out, p.CheckDevice(d, body.Nonce)...)
	}
	for _, r := range p.Devices {
		if !r.Default {
			var err error
			if !present[r.Label] {
				err = fmt.Errorf("the policy names this device, the report does not carry it")
			}
			add(r.Label, CheckDevicePresent, err, "")
		}
	}
	return verdict(out)
}

func (p *Policy) checkGuestPolicy(body *evidence.Body) error {
	if p.GuestPolicyDigest != nil && !bytes.Equal(body.PolicyDigest, p.GuestPolicyDigest) {
		return fmt.Errorf("the guest enforced policy %x, not %x", []byte(body.PolicyDigest), []byte(p.GuestPolicyDigest))
	}
	return nil
}

func guestPolicyPass(p *Policy, body *evidence.Body) string {
	if p.GuestPolicyDigest == nil {
		return fmt.Sprintf("skipped: the policy names no guest policy digest (the guest enforced %x)", []byte(body.PolicyDigest))
	}
	return fmt.Sprintf("%x", []byte(body.PolicyDigest))
}

func verdict(rs []Result) Verdict {
	v := Verdict{OK: len(rs) > 0, Results: rs}
	for _, r := range rs {
		if !r.OK {
			v.OK = false
		}
		if r.OK && strings.HasPrefix(r.Reason, "WARNING") {
			v.Warnings = append(v.Warnings, r.Device+": "+r.Check+": "+r.Reason)
		}
	}
	return v
}
