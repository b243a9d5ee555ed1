// Package platform checks confidential-VM platform attestation offline:
// AMD SEV-SNP attestation reports, Intel TDX quotes and vTPM quotes, and
// the wire form (Report) in which a guest carries one of them to a
// verifier.
//
// It is the one owner of platform report verification: the guest's
// attesters (guest/platform) produce Reports and use MeasuredDigest and
// TPMQualifyingData from here, and the verifier (package policy) judges
// them with VerifyReport and the per-kind functions. It imports no guest
// code, so a verifier that embeds package policy does not pull the guest's
// device drivers in.
//
// A platform report binds 64 bytes of user data chosen by the guest
// (REPORT_DATA for SNP and TDX, qualifying data for a TPM quote) and, for
// TDX and vTPM, the current value of runtime measurement registers. The
// event log a Report carries is not signed: it is trusted only after it is
// replayed against a signed register value (ReplayEventLog).
package platform

import (
	"crypto/sha256"
	"errors"
)

// Kind names an attestation platform.
type Kind string

// Platform kinds.
const (
	KindSNP Kind = "snp"
	KindTDX Kind = "tdx"
	KindTPM Kind = "tpm"
)

// UserDataSize is the size of the user data every report binds.
const UserDataSize = 64

// Default runtime registers: where devattest's boot binding lives. Guest
// and verifier both use these.
const (
	// DefaultTPMPCR is the vTPM PCR the guest extends. PCRs 8-15 are
	// reserved for the OS by the TCG PC Client profile and, unlike PCR 16
	// and 23, cannot be reset from locality 0, so a workload that can talk
	// to the TPM cannot erase what the boot sequence recorded. The event
	// log replays from zero, so the register must be used by devattest
	// alone.
	DefaultTPMPCR = 15
	// DefaultTDXRTMR is the RTMR the guest extends on TDX (RTMR[3] is left
	// to user space by firmware and the kernel).
	DefaultTDXRTMR = 3
)

// Errors callers test with errors.Is.
var (
	// ErrVerify wraps every verification failure.
	ErrVerify = errors.New("platform: verification failed")
	// ErrUserDataMismatch: the report is genuine but binds other user data.
	ErrUserDataMismatch = errors.New("platform: report user data does not match")
	// ErrEventLog: the event log does not replay to the register value.
	ErrEventLog = errors.New("platform: event log does not replay to the register value")
	// ErrMalformedReport is returned by UnmarshalBinary.
	ErrMalformedReport = errors.New("platform: malformed report encoding")
)

// TPMQualifyingData returns the qualifying data (extraData) a TPM quote
// carries for userData: SHA-256(userData). A quote's qualifying data is a
// TPM2B_DATA, at most the size of the largest digest the TPM implements
// (48 bytes on the reference simulator, which has no SHA-512), so the 64
// bytes of user data do not fit; producer and verifier both hash.
func TPMQualifyingData(userData [UserDataSize]byte) []byte {
	d := sha256.Sum256(userData[:])
	return d[:]
}

// clone returns a copy of b, nil when b is empty.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
