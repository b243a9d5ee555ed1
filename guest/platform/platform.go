// Package platform produces and checks confidential-VM platform attestation:
// AMD SEV-SNP reports, Intel TDX quotes and vTPM quotes, behind one Attester
// interface.
//
// A platform report binds 64 bytes of user data chosen by the guest
// (REPORT_DATA for SNP and TDX, qualifying data for a TPM quote) and, for TDX
// and vTPM, the current value of runtime measurement registers. The guest
// service uses the first for freshness binding (user data = digest of the
// owner's nonce and the evidence bytes) and the second for boot binding
// (Extend a register with the digest of each device's evidence at boot and
// keep an event log that a verifier replays). See DESIGN.md, "Evidence and
// binding".
//
// Producers: New returns a real attester (configfs-tsm first, then the legacy
// device files) or a fake built on the libraries' own test signers:
// go-sev-guest's fake AMD-SP, a test-only Intel PCK chain that
// go-tdx-guest's verifier accepts with its test root, and the go-tpm-tools
// TPM simulator. Verifiers: VerifySNP, VerifyTPM, VerifyTDX and
// VerifyReport work offline.
//
// This package never imports hostshim, devsim or policy.
package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// Attester produces platform reports and records boot measurements.
type Attester interface {
	// Kind reports the platform.
	Kind() Kind
	// Report returns a platform report or quote whose user data
	// (REPORT_DATA, or the TPM quote's qualifying data as described in
	// TPMQualifyingData) is exactly userData. For TDX and vTPM the report
	// carries the attester's event log so far.
	Report(ctx context.Context, userData [UserDataSize]byte) (*Report, error)
	// Extend records a boot measurement (a digest and an event description)
	// in the runtime register (TDX RTMR, vTPM PCR) and appends it to the
	// event log. SEV-SNP without a vTPM has no such register and returns
	// ErrNoRuntimeRegister.
	Extend(ctx context.Context, digest []byte, event string) error
	// Close releases the device.
	Close() error
}

// Errors callers test with errors.Is.
var (
	// ErrNoRuntimeRegister: the platform has no runtime measurement register.
	ErrNoRuntimeRegister = errors.New("platform: no runtime measurement register on this platform")
	// ErrNotAvailable: the requested platform (or fake) is not available.
	ErrNotAvailable = errors.New("platform: not available")
	// ErrVerify wraps every verification failure.
	ErrVerify = errors.New("platform: verification failed")
	// ErrUserDataMismatch: the report is genuine but binds other user data.
	ErrUserDataMismatch = errors.New("platform: report user data does not match")
	// ErrEventLog: the event log does not replay to the reported register value.
	ErrEventLog = errors.New("platform: event log does not replay to the register value")
)

// Default runtime registers.
const (
	// DefaultTPMPCR is the PCR Extend uses on a vTPM. PCRs 8-15 are
	// reserved for the OS by the TCG PC Client profile and, unlike PCR 16 and
	// 23, cannot be reset from locality 0, so a workload that can talk to
	// the TPM cannot erase what the boot sequence recorded. The event log
	// replays from zero, so the register must be used by devattest alone.
	DefaultTPMPCR = 15
	// DefaultTDXRTMR is the RTMR Extend uses on TDX (RTMR[3] is left to
	// user space by firmware and the kernel).
	DefaultTDXRTMR = 3
)

// Options configures New. The zero value selects the defaults.
type Options struct {
	// TPMPath is the TPM device (default /dev/tpmrm0).
	TPMPath string
	// TPMPCR is the PCR that Extend uses (default DefaultTPMPCR).
	TPMPCR int
	// TDXRTMR is the RTMR index that Extend uses (default DefaultTDXRTMR).
	TDXRTMR int
}

func (o Options) withDefaults() Options {
	if o.TPMPath == "" {
		o.TPMPath = "/dev/tpmrm0"
	}
	if o.TPMPCR == 0 {
		o.TPMPCR = DefaultTPMPCR
	}
	if o.TDXRTMR == 0 {
		o.TDXRTMR = DefaultTDXRTMR
	}
	return o
}

// Probe paths used by "auto".
const (
	configfsTSMReport = "/sys/kernel/config/tsm/report"
	sevGuestDevice    = "/dev/sev-guest"
	tdxGuestDevice    = "/dev/tdx_guest"
)

// New returns the attester for kind: "snp", "tdx", "tpm" (real devices),
// "fake-snp", "fake-tdx", "fake-tpm" (fakes for demos and tests; never for
// production trust), or "auto", which probes configfs-tsm and the device
// files in the order SEV-SNP, TDX, vTPM.
func New(kind string, opts Options) (Attester, error) {
	opts = opts.withDefaults()
	switch kind {
	case "snp":
		return newSNP()
	case "tdx":
		return newTDX(opts)
	case "tpm":
		return newTPM(opts)
	case "fake-snp":
		return NewFakeSNP()
	case "fake-tdx":
		f, err := NewFakeTDX(opts)
		if err != nil {
			return nil, err
		}
		return f, nil
	case "fake-tpm":
		return NewFakeTPM(opts)
	case "auto":
		return newAuto(opts)
	default:
		return nil, fmt.Errorf("platform: unknown kind %q (want auto, snp, tdx, tpm, fake-snp, fake-tdx or fake-tpm)", kind)
	}
}

func newAuto(opts Options) (Attester, error) {
	var tried []error
	if a, err := newSNP(); err == nil {
		return a, nil
	} else {
		tried = append(tried, err)
	}
	if a, err := newTDX(opts); err == nil {
		return a, nil
	} else {
		tried = append(tried, err)
	}
	if a, err := newTPM(opts); err == nil {
		return a, nil
	} else {
		tried = append(tried, err)
	}
	return nil, fmt.Errorf("%w: no platform attestation found (looked for configfs-tsm %s with provider sev_guest or tdx_guest, %s, %s, %s): %w",
		ErrNotAvailable, configfsTSMReport, sevGuestDevice, tdxGuestDevice, opts.TPMPath, errors.Join(tried...))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
