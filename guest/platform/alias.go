package platform

import vplatform "github.com/devattest/devattest/policy/platform"

// The report types and constants are policy/platform's, where the
// verifier checks them; they are named here too so that the attesters and
// their callers read simply. Verification itself lives only there.
type (
	// Kind names an attestation platform.
	Kind = vplatform.Kind
	// Report is one platform report in its wire form.
	Report = vplatform.Report
	// Event is one boot measurement of the event log.
	Event = vplatform.Event
	// PCRValue is one PCR of the SHA-256 bank.
	PCRValue = vplatform.PCRValue
	// SNPRoots are an AMD root of trust (ARK, ASK, ASVK).
	SNPRoots = vplatform.SNPRoots
)

// Platform kinds.
const (
	KindSNP = vplatform.KindSNP
	KindTDX = vplatform.KindTDX
	KindTPM = vplatform.KindTPM
)

// UserDataSize is the size of the user data every report binds.
const UserDataSize = vplatform.UserDataSize

// Default runtime registers (see policy/platform).
const (
	DefaultTPMPCR  = vplatform.DefaultTPMPCR
	DefaultTDXRTMR = vplatform.DefaultTDXRTMR
)
