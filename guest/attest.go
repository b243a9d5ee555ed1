package guest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/evidence/eatda"
	"github.com/devattest/devattest/guest/platform"
)

// ErrPlatform wraps a failure of the platform report or the boot binding.
var ErrPlatform = errors.New("guest: platform attestation failed")

// ErrNonce: the owner's nonce is empty or too long.
var ErrNonce = errors.New("guest: owner nonce must be 1 to 1024 bytes")

func randomNonce() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

// Attest opens the configured platform attester and runs AttestWith.
func Attest(ctx context.Context, cfg *Config, ownerNonce []byte) (*evidence.Report, error) {
	att, err := platform.New(cfg.Platform, platform.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlatform, err)
	}
	defer att.Close()
	return AttestWith(ctx, cfg, att, ownerNonce)
}

// AttestWith attests every device of cfg concurrently (one failing device
// does not stop the others), then binds the evidence with att:
//
//  1. boot binding: att.Extend(EvidenceDigest(policy digest), "devattest
//     policy") and then, for each device in order, att.Extend(
//     evidence.EvidenceDigest(its bytes in the body), "devattest device
//     LABEL"); SEV-SNP has no runtime register, recorded as
//     evidence.BootBindingNoRegister;
//  2. freshness binding: the body is sealed and the platform report
//     taken over its user data (evidence.Report.UserData).
//
// The report is returned even on error, with every failure recorded. The
// error names each required device that failed and its step (a
// *DeviceError for each, joined), and any platform failure (ErrPlatform).
func AttestWith(ctx context.Context, cfg *Config, att platform.Attester, ownerNonce []byte) (*evidence.Report, error) {
	if len(ownerNonce) == 0 || len(ownerNonce) > evidence.MaxNonceSize {
		return nil, ErrNonce
	}
	devs := make([]evidence.Device, len(cfg.Devices))
	errs := make([]error, len(cfg.Devices))
	var wg sync.WaitGroup
	for i := range cfg.Devices {
		dc := cfg.Devices[i]
		dc.IDE = dc.IDE || cfg.IDE
		dc.TDISP = dc.TDISP || cfg.TDISP
		wg.Go(func() { devs[i], errs[i] = AttestDevice(ctx, dc, ownerNonce) })
	}
	wg.Wait()

	var failures []error
	for i, err := range errs {
		if err != nil && cfg.Devices[i].IsRequired() {
			failures = append(failures, err)
		}
	}
	body := newBody(att, ownerNonce, PolicyDigest(cfg), devs)
	if err := bootBinding(ctx, att, body); err != nil {
		body.BootBinding, body.BootError = evidence.BootBindingFailed, err.Error()
		failures = append(failures, fmt.Errorf("%w: boot binding: %w", ErrPlatform, err))
	}
	rep, err := sealReport(ctx, att, body)
	if err != nil {
		failures = append(failures, err)
	}
	return rep, errors.Join(failures...)
}

// newBody starts a body for att's platform.
func newBody(att platform.Attester, ownerNonce, policyDigest []byte, devs []evidence.Device) *evidence.Body {
	return &evidence.Body{
		Nonce: append([]byte(nil), ownerNonce...), Platform: string(att.Kind()),
		PolicyDigest: policyDigest, BootBinding: evidence.BootBindingExtended, Devices: devs,
	}
}

// bootBinding extends the runtime register with the policy digest and
// each device's bytes as the body will carry them, and records the
// outcome in body.BootBinding.
func bootBinding(ctx context.Context, att platform.Attester, body *evidence.Body) error {
	devBytes, err := evidence.DeviceBytes(body.Devices)
	if err != nil {
		return err
	}
	for i, d := range evidence.BootLog(body.PolicyDigest, devBytes) {
		what := "devattest policy"
		if i > 0 {
			what = "devattest device " + body.Devices[i-1].Label
		}
		err := att.Extend(ctx, d, what)
		if i == 0 && errors.Is(err, platform.ErrNoRuntimeRegister) {
			body.BootBinding = evidence.BootBindingNoRegister
			return nil
		}
		if err != nil {
			return err
		}
	}
	body.BootBinding = evidence.BootBindingExtended
	return nil
}

// adoptBootBinding takes over the boot binding an earlier process of the
// same boot made (the one-shot attest unit, whose report is boot) instead
// of extending the runtime register again: the register already holds
// those extends, and only their event log replays to it.
func adoptBootBinding(att platform.Attester, boot *evidence.Report) (string, error) {
	body := boot.ParsedBody()
	if body == nil {
		return evidence.BootBindingFailed, fmt.Errorf("%w: the boot report was not decoded", ErrPlatform)
	}
	if body.Platform != string(att.Kind()) {
		return evidence.BootBindingFailed, fmt.Errorf("%w: the boot report is for platform %q, this one is %q", ErrPlatform, body.Platform, att.Kind())
	}
	switch body.BootBinding {
	case evidence.BootBindingNoRegister, evidence.BootBindingNone:
		return body.BootBinding, nil
	case evidence.BootBindingExtended:
	default:
		return evidence.BootBindingFailed, fmt.Errorf("%w: the boot attestation's binding is %q", ErrPlatform, body.BootBinding)
	}
	var pr platform.Report
	if err := pr.UnmarshalBinary(boot.Platform.Report); err != nil {
		return evidence.BootBindingFailed, fmt.Errorf("%w: boot report: %w", ErrPlatform, err)
	}
	ad, ok := att.(platform.EventLogAdopter)
	if !ok {
		return evidence.BootBindingFailed, fmt.Errorf("%w: platform %s cannot take over a boot event log", ErrPlatform, att.Kind())
	}
	if err := ad.AdoptEventLog(pr.EventLog); err != nil {
		return evidence.BootBindingFailed, fmt.Errorf("%w: %w", ErrPlatform, err)
	}
	return evidence.BootBindingExtended, nil
}

// bootOf is what the report bound into the runtime register: its body's
// boot section if it carries one (it was itself taken after boot), else
// its own policy digest and devices.
func bootOf(rep *evidence.Report) *evidence.Boot {
	body := rep.ParsedBody()
	if body.Boot != nil {
		return body.Boot
	}
	b := &evidence.Boot{PolicyDigest: body.PolicyDigest}
	for _, d := range body.DeviceBytes() {
		b.Devices = append(b.Devices, d)
	}
	return b
}

// sealReport dates and seals body and takes the platform report over its
// user data. On a platform failure the report is returned with the
// failure in Platform.Error (outside the signed body) and an ErrPlatform.
func sealReport(ctx context.Context, att platform.Attester, body *evidence.Body) (*evidence.Report, error) {
	body.Created = time.Now().UTC()
	body.EATDA = nil
	if t, err := eatda.EncodeBody(body); err == nil {
		body.EATDA = t // sealed with the body, so the platform report covers it
	} else {
		slog.Warn("the report carries no EAT-DA claims set", "err", err)
	}
	rep, err := evidence.NewReport(body)
	if err != nil {
		return nil, err
	}
	pr, err := att.Report(ctx, rep.UserData())
	if err == nil {
		rep.Platform.Report, err = pr.MarshalBinary()
	}
	if err != nil {
		rep.Platform.Error = err.Error()
		return rep, fmt.Errorf("%w: %w", ErrPlatform, err)
	}
	return rep, nil
}

// PolicyDigest is the digest of what the guest enforces: for each device
// in order, its label, whether it is required and its trust anchors, and
// the SHA-256 of the policy file it enforces, if any:
//
//	SHA-256( "devattest policy/1" 0x00 ‖ u32be(count) ‖ for each device:
//	         u16be(len(label)) ‖ label ‖ u8(required) ‖ u32be(anchors) ‖
//	         for each anchor: u32be(len(DER)) ‖ DER
//	         [‖ "policy file" 0x00 ‖ SHA-256(policy file)] )
//
// With a policy file the devices' anchors are the policy's, so their
// count in the configuration is 0 and the file's digest covers them.
func PolicyDigest(cfg *Config) []byte {
	h := sha256.New()
	h.Write([]byte("devattest policy/1\x00"))
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(cfg.Devices))))
	for _, d := range cfg.Devices {
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(d.Label))))
		h.Write([]byte(d.Label))
		req := byte(0)
		if d.IsRequired() {
			req = 1
		}
		h.Write([]byte{req})
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(d.Anchors))))
		for _, a := range d.Anchors {
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(a.Raw))))
			h.Write(a.Raw)
		}
	}
	if cfg.PolicySHA256 != nil {
		h.Write([]byte("policy file\x00"))
		h.Write(cfg.PolicySHA256)
	}
	return h.Sum(nil)
}
