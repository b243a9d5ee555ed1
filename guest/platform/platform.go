// Package platform produces confidential-VM platform attestation: AMD
// SEV-SNP reports, Intel TDX quotes and vTPM quotes, behind one Attester
// interface.
//
// The guest service uses a report's 64 bytes of user data for freshness
// binding (user data = digest of the owner's nonce and the evidence bytes)
// and, on TDX and vTPM, a runtime register for boot binding (Extend a
// register with the digest of each device's evidence at boot and keep an
// event log that a verifier replays). See DESIGN.md, "Evidence and
// binding".
//
// Producers: New returns a real attester (configfs-tsm first, then the
// legacy device files) or a fake built on the libraries' own test signers:
// go-sev-guest's fake AMD-SP, a test-only Intel PCK chain that
// go-tdx-guest's verifier accepts with its test root, and the go-tpm-tools
// TPM simulator. The report format and its verification (VerifyReport and
// friends) live in policy/platform, which the verifier uses too.
//
// This package never imports hostshim, devsim or policy's rules.
package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
)

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

// clone returns a copy of b, nil when b is empty.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// EventLogAdopter is an attester whose runtime register was extended by
// an earlier process of the same boot (the one-shot attest unit): it takes
// that process's event log as its own instead of extending again, so its
// reports replay to the register value. Attesters without a runtime
// register (SEV-SNP) do not implement it.
type EventLogAdopter interface {
	AdoptEventLog(log []Event) error
}

// adoptLog installs log as the attester's event log if it has none yet.
func adoptLog(dst *[]Event, log []Event) error {
	if len(*dst) != 0 {
		return fmt.Errorf("platform: this attester already extended its register %d times; cannot adopt another event log", len(*dst))
	}
	*dst = slices.Clone(log)
	return nil
}
