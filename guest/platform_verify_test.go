package guest

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	vplatform "github.com/devattest/devattest/policy/platform"
)

// platformCase is one fake platform with the offline check a verifier runs
// on its report, using the fake's own roots (or, for the vTPM, its AK).
type platformCase struct {
	name string
	kind platform.Kind
	open func(t *testing.T) platform.Attester
	// register is the runtime register the boot binding extends (none for SNP).
	register uint32
	// verify checks the report with the kind's own Verify helper and
	// returns the signed value of the boot-binding register (nil for SNP).
	verify func(pr *platform.Report, ud [platform.UserDataSize]byte) ([]byte, error)
	// anchors are the same roots for VerifyReport.
	anchors vplatform.TrustAnchors
}

func platformCases(t *testing.T) []platformCase {
	snp := fakeSNP(t)
	tdx, err := platform.NewFakeTDX(platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return []platformCase{
		{
			name: "fake-snp", kind: platform.KindSNP,
			open: func(*testing.T) platform.Attester { return snp },
			verify: func(pr *platform.Report, ud [platform.UserDataSize]byte) ([]byte, error) {
				return nil, vplatform.VerifySNP(pr.Raw, pr.Certs, snp.Roots(), ud)
			},
			anchors: vplatform.TrustAnchors{SNP: snp.Roots()},
		},
		{
			name: "fake-tdx", kind: platform.KindTDX, register: platform.DefaultTDXRTMR,
			open: func(*testing.T) platform.Attester { return tdx },
			verify: func(pr *platform.Report, ud [platform.UserDataSize]byte) ([]byte, error) {
				q, err := vplatform.VerifyTDX(pr.Raw, tdx.Roots(), ud)
				if err != nil {
					return nil, err
				}
				return q.GetTdQuoteBody().GetRtmrs()[platform.DefaultTDXRTMR], nil
			},
			anchors: vplatform.TrustAnchors{TDX: tdx.Roots()},
		},
		{
			name: "fake-tpm", kind: platform.KindTPM, register: platform.DefaultTPMPCR,
			open: func(t *testing.T) platform.Attester {
				a, err := platform.NewFakeTPM(platform.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { a.Close() })
				return a
			},
			verify: func(pr *platform.Report, ud [platform.UserDataSize]byte) ([]byte, error) {
				if err := vplatform.VerifyTPM(pr.Raw, pr.Signature, pr.AKPublic, pr.PCRs, ud); err != nil {
					return nil, err
				}
				for _, p := range pr.PCRs {
					if p.Index == platform.DefaultTPMPCR {
						return p.Digest, nil
					}
				}
				return nil, errors.New("PCR not quoted")
			},
		},
	}
}

// TestAttestVerifyEachPlatform attests two emulated VFs with each fake
// platform and verifies the result offline, as a workload owner would:
// the platform report with the fake's roots over the user data recomputed
// from the nonce and the carried evidence bytes, and the boot binding
// replayed from the policy digest and the evidence.
func TestAttestVerifyEachPlatform(t *testing.T) {
	for _, pc := range platformCases(t) {
		t.Run(pc.name, func(t *testing.T) {
			cfg, _ := twoDevices(t, false)
			cfg.Platform = pc.name
			att := pc.open(t)
			nonce := []byte("owner nonce for " + pc.name)
			rep, err := AttestWith(ctxT(t), cfg, att, nonce)
			if err != nil {
				t.Fatalf("AttestWith: %v", err)
			}
			for _, d := range rep.ParsedBody().Devices {
				if !d.OK() {
					t.Fatalf("device %s: %+v", d.Label, d)
				}
			}
			// From the JSON alone.
			b, err := evidence.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			got, err := evidence.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.ParsedBody().Platform != string(pc.kind) {
				t.Fatalf("platform kind %q, want %q", got.ParsedBody().Platform, pc.kind)
			}
			var pr platform.Report
			if err := pr.UnmarshalBinary(got.Platform.Report); err != nil {
				t.Fatal(err)
			}
			if pc.kind == platform.KindTPM {
				// The AK is trusted out of band; here it is the fake's.
				pc.anchors = vplatform.TrustAnchors{TPMAKPublic: pr.AKPublic}
			}
			ud := got.UserData()
			reg, err := pc.verify(&pr, ud)
			if err != nil {
				t.Fatalf("platform verification: %v", err)
			}
			if err := vplatform.VerifyReport(&pr, pc.anchors, ud); err != nil {
				t.Fatalf("VerifyReport: %v", err)
			}

			// Boot binding: the log is the policy digest then each device's
			// evidence digest, and replays to the signed register.
			want := wantBootLog(got.ParsedBody().PolicyDigest, got.ParsedBody().DeviceBytes())
			if pc.kind == platform.KindSNP {
				if got.ParsedBody().BootBinding != evidence.BootBindingNoRegister || len(pr.EventLog) != 0 {
					t.Fatalf("SEV-SNP boot binding %q with %d events", got.ParsedBody().BootBinding, len(pr.EventLog))
				}
			} else {
				if got.ParsedBody().BootBinding != evidence.BootBindingExtended {
					t.Fatalf("boot binding %q", got.ParsedBody().BootBinding)
				}
				if len(pr.EventLog) != len(want) {
					t.Fatalf("event log has %d entries, want %d", len(pr.EventLog), len(want))
				}
				for i, e := range pr.EventLog {
					if e.Register != pc.register || !bytes.Equal(e.Digest, want[i]) {
						t.Fatalf("event %d: %+v, want register %d digest %x", i, e, pc.register, want[i])
					}
				}
				if r := replay(pc.kind, pc.register, want); !bytes.Equal(r, reg) {
					t.Fatalf("register %d = %x, replay of the policy and evidence = %x", pc.register, reg, r)
				}
			}

			// A flipped body byte: the user data no longer matches, and the
			// boot log recomputed from a flipped device no longer replays.
			body := bytes.Clone(got.Body)
			body[len(body)/3] ^= 0x01
			bad := evidence.UserData(got.BodyType, body)
			ev := slices.Clone(got.ParsedBody().DeviceBytes())
			ev[1] = bytes.Clone(ev[1])
			ev[1][len(ev[1])/3] ^= 0x01
			if _, err := pc.verify(&pr, bad); !errors.Is(err, vplatform.ErrUserDataMismatch) {
				t.Fatalf("altered evidence: platform check = %v, want ErrUserDataMismatch", err)
			}
			if err := vplatform.VerifyReport(&pr, pc.anchors, bad); err == nil {
				t.Fatal("altered evidence: VerifyReport passed")
			}
			if pc.kind != platform.KindSNP {
				if r := replay(pc.kind, pc.register, wantBootLog(got.ParsedBody().PolicyDigest, ev)); bytes.Equal(r, reg) {
					t.Fatal("altered evidence: boot log still replays to the register")
				}
			}
		})
	}
}

// wantBootLog is what AttestWith extends: the policy digest's evidence
// digest, then each device's evidence digest, in order.
func wantBootLog(policyDigest []byte, ev [][]byte) [][]byte {
	pd := evidence.EvidenceDigest(policyDigest)
	out := [][]byte{pd[:]}
	for _, e := range ev {
		d := evidence.EvidenceDigest(e)
		out = append(out, d[:])
	}
	return out
}

func replay(kind platform.Kind, reg uint32, digests [][]byte) []byte {
	log := make([]platform.Event, len(digests))
	for i, d := range digests {
		log[i] = platform.Event{Register: reg, Digest: d}
	}
	return vplatform.ReplayEventLog(kind, log, reg)
}

// TestServiceReportBootBinding: a report the daemon takes after boot, on a
// platform with a runtime register, carries the boot evidence the
// register holds; the event log replays against it, and the verifier's
// boot-binding check passes. Without the boot section it cannot.
func TestServiceReportBootBinding(t *testing.T) {
	for _, pc := range platformCases(t) {
		if pc.kind == platform.KindSNP {
			continue
		}
		t.Run(pc.name, func(t *testing.T) {
			cfg, _ := twoDevices(t, false)
			cfg.Platform = pc.name
			cfg.RemeasureInterval = time.Hour
			att := pc.open(t)
			svc, err := NewService(cfg, ServiceOptions{Attester: att})
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			boot, err := svc.Start(ctxT(t), []byte("boot nonce"))
			if err != nil {
				t.Fatal(err)
			}
			if boot.ParsedBody().Boot != nil {
				t.Error("the boot report carries a boot section: its own evidence is what was bound")
			}
			nonce := []byte("owner nonce, later 0123")
			rep, err := svc.Report(ctxT(t), nonce)
			if err != nil {
				t.Fatal(err)
			}
			b, err := evidence.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			got, err := evidence.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			bootDevs := got.ParsedBody().Boot.DeviceBytes()
			if !slices.EqualFunc(bootDevs, boot.ParsedBody().DeviceBytes(), bytes.Equal) || !bytes.Equal(got.ParsedBody().Boot.PolicyDigest, boot.ParsedBody().PolicyDigest) {
				t.Fatalf("the later report's boot section is not the boot evidence: %+v", got.ParsedBody().Boot)
			}
			var pr platform.Report
			if err := pr.UnmarshalBinary(got.Platform.Report); err != nil {
				t.Fatal(err)
			}
			reg, err := pc.verify(&pr, got.UserData())
			if err != nil {
				t.Fatalf("platform verification: %v", err)
			}
			if r := replay(pc.kind, pc.register, wantBootLog(got.ParsedBody().Boot.PolicyDigest, bootDevs)); !bytes.Equal(r, reg) {
				t.Fatalf("register %x, replay of the boot evidence %x", reg, r)
			}
			// The later report's own devices (fresh nonces) are not what
			// the register holds: only the boot section replays.
			if r := replay(pc.kind, pc.register, wantBootLog(got.ParsedBody().PolicyDigest, got.ParsedBody().DeviceBytes())); bytes.Equal(r, reg) {
				t.Fatal("the later report's fresh evidence replays to the boot register")
			}
		})
	}
}
