package guest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/devattest/devattest/evidence"
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
//  1. boot binding: att.Extend(EvidenceDigest(policy bytes), "devattest
//     policy") and then, for each device in order, att.Extend(
//     evidence.EvidenceDigest(its evidence bytes), "devattest device
//     LABEL"); SEV-SNP has no runtime register, recorded as
//     evidence.BootBindingNoRegister;
//  2. freshness binding: the platform report over
//     evidence.UserData(ownerNonce, report.Evidence).
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
		wg.Go(func() { devs[i], errs[i] = AttestDevice(ctx, dc, ownerNonce) })
	}
	wg.Wait()

	var failures []error
	for i, err := range errs {
		if err != nil && cfg.Devices[i].IsRequired() {
			failures = append(failures, err)
		}
	}
	rep, err := evidence.NewReport(ownerNonce, devs)
	if err != nil {
		return nil, err
	}
	rep.PolicyDigest = PolicyDigest(cfg)
	rep.Platform = evidence.Platform{Kind: string(att.Kind()), BootBinding: evidence.BootBindingExtended}

	if err := bootBinding(ctx, att, rep); err != nil {
		rep.Platform.BootBinding = evidence.BootBindingFailed
		rep.Platform.Error = err.Error()
		failures = append(failures, fmt.Errorf("%w: boot binding: %w", ErrPlatform, err))
	}
	if err := platformReport(ctx, att, rep); err != nil {
		if rep.Platform.Error == "" {
			rep.Platform.Error = err.Error()
		} else {
			rep.Platform.Error += "; " + err.Error()
		}
		failures = append(failures, fmt.Errorf("%w: %w", ErrPlatform, err))
	}
	rep.Created = time.Now().UTC()
	return rep, errors.Join(failures...)
}

// bootBinding extends the runtime register with the policy digest and
// each device's evidence digest.
func bootBinding(ctx context.Context, att platform.Attester, rep *evidence.Report) error {
	pd := evidence.EvidenceDigest(rep.PolicyDigest)
	err := att.Extend(ctx, pd[:], "devattest policy")
	if errors.Is(err, platform.ErrNoRuntimeRegister) {
		rep.Platform.BootBinding = evidence.BootBindingNoRegister
		return nil
	}
	if err != nil {
		return err
	}
	for i, b := range rep.Evidence {
		d := evidence.EvidenceDigest(b)
		if err := att.Extend(ctx, d[:], "devattest device "+rep.Devices[i].Label); err != nil {
			return err
		}
	}
	return nil
}

// adoptBootBinding takes over the boot binding an earlier process of the
// same boot made (the one-shot attest unit, whose report is boot) instead
// of extending the runtime register again: the register already holds
// those extends, and only their event log replays to it.
func adoptBootBinding(att platform.Attester, boot *evidence.Report) (string, error) {
	if boot.Platform.Kind != string(att.Kind()) {
		return evidence.BootBindingFailed, fmt.Errorf("%w: the boot report is for platform %q, this one is %q", ErrPlatform, boot.Platform.Kind, att.Kind())
	}
	switch boot.Platform.BootBinding {
	case evidence.BootBindingNoRegister, evidence.BootBindingNone:
		return boot.Platform.BootBinding, nil
	case evidence.BootBindingExtended:
	default:
		return evidence.BootBindingFailed, fmt.Errorf("%w: the boot attestation's binding is %q", ErrPlatform, boot.Platform.BootBinding)
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

// platformReport takes the platform report over the report's user data.
func platformReport(ctx context.Context, att platform.Attester, rep *evidence.Report) error {
	pr, err := att.Report(ctx, evidence.UserData(rep.Nonce, rep.Evidence))
	if err != nil {
		return err
	}
	raw, err := pr.MarshalBinary()
	if err != nil {
		return err
	}
	rep.Platform.Report = raw
	for _, e := range pr.EventLog {
		rep.Platform.EventLog = append(rep.Platform.EventLog, evidence.Event{Register: e.Register, Digest: e.Digest, Description: e.Description})
	}
	return nil
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
