package policy

import (
	"bytes"
	"fmt"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy/platform"
)

// CheckEventLogCopy is the line PlatformVerifier adds: the report's JSON
// event log is the one the platform report carries.
const CheckEventLogCopy = "event log copy"

// PlatformVerifier adapts CheckPlatform to Verify's PlatformVerifier
// parameter: CheckPlatform's lines for the report's platform report, and
// CheckEventLogCopy, since Verify judges the boot binding from the
// report's JSON copy of the event log (rep.Platform.EventLog). It is a
// bridge until Verify calls CheckPlatform itself.
func (p *Policy) PlatformVerifier() PlatformVerifier {
	return func(rep *evidence.Report, wantUserData [64]byte) []Result {
		facts, out := p.CheckPlatform(rep.Platform.Report, wantUserData)
		r := Result{Device: SubjectPlatform, Check: CheckEventLogCopy, OK: true}
		switch {
		case facts == nil:
			r.OK, r.Reason = false, "not checked: the platform report did not verify"
		default:
			if err := sameLog(rep.Platform.EventLog, facts.EventLog); err != nil {
				r.OK, r.Reason = false, err.Error()
			} else {
				r.Reason = fmt.Sprintf("the report's %d events are those of the platform report", len(facts.EventLog))
			}
		}
		return append(out, r)
	}
}

func sameLog(json []evidence.Event, signed []platform.Event) error {
	if len(json) != len(signed) {
		return fmt.Errorf("the report lists %d events, the platform report %d", len(json), len(signed))
	}
	for i := range json {
		if json[i].Register != signed[i].Register || !bytes.Equal(json[i].Digest, signed[i].Digest) {
			return fmt.Errorf("event %d differs from the platform report's", i)
		}
	}
	return nil
}
