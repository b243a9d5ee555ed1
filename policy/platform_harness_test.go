package policy_test

// A harness that signs bodies with the libraries' own fake platforms, so
// that the verifier's tests judge real signatures, real quotes and real
// register values, never a stand-in for the platform check.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/policy"
)

// plat is one fake platform and the policy block that trusts it.
type plat struct {
	kind string
	att  platform.Attester
	yaml string
}

// openPlatform opens a fresh fake attester of kind (its registers at
// zero) and writes its roots into dir.
func openPlatform(t testing.TB, kind, dir string) *plat {
	t.Helper()
	ctx := context.Background()
	pl := &plat{kind: kind}
	var err error
	switch kind {
	case policy.KindSNP:
		f, err := platform.NewFakeSNP()
		if err != nil {
			t.Fatal(err)
		}
		pl.att = f
		roots := f.Roots()
		writeFile(t, filepath.Join(dir, "ark.der"), roots.ARK)
		writeFile(t, filepath.Join(dir, "ask.der"), roots.ASK)
		pr, err := f.Report(ctx, [64]byte{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := abi.ReportToProto(pr.Raw)
		if err != nil {
			t.Fatal(err)
		}
		pl.yaml = fmt.Sprintf("platform:\n  kind: snp\n  allow_test_roots: true\n  snp:\n    measurement: [%x]\n    policy_debug_allowed: true\n    min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}\n  roots:\n    snp_ark: ark.der\n    snp_ask: ask.der\n", r.GetMeasurement())
	case policy.KindTDX:
		f, err := platform.NewFakeTDX(platform.Options{})
		if err != nil {
			t.Fatal(err)
		}
		pl.att = f
		writeFile(t, filepath.Join(dir, "tdx-root.der"), f.RootCertificate())
		pr, err := f.Report(ctx, [64]byte{})
		if err != nil {
			t.Fatal(err)
		}
		q, err := tdxabi.QuoteToProto(pr.Raw)
		if err != nil {
			t.Fatal(err)
		}
		pl.yaml = fmt.Sprintf("platform:\n  kind: tdx\n  allow_test_roots: true\n  tdx:\n    mrtd: [%x]\n  roots:\n    tdx_root: tdx-root.der\n", q.(*tdxpb.QuoteV4).GetTdQuoteBody().GetMrTd())
	case policy.KindTPM:
		if pl.att, err = platform.NewFakeTPM(platform.Options{}); err != nil {
			t.Fatal(err)
		}
		pr, err := pl.att.Report(ctx, [64]byte{})
		if err != nil {
			t.Fatal(err)
		}
		pl.yaml = fmt.Sprintf("platform:\n  kind: tpm\n  tpm:\n    ak_public: [%x]\n", pr.AKPublic)
	default:
		t.Fatalf("kind %q", kind)
	}
	t.Cleanup(func() { pl.att.Close() })
	return pl
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// body is the body a guest would send for devices, unbound.
func newBody(kind string, nonce []byte, devices ...evidence.Device) *evidence.Body {
	return &evidence.Body{
		Nonce: nonce, Created: time.Now().UTC().Truncate(time.Millisecond), Platform: kind,
		PolicyDigest: []byte("guest policy digest"), BootBinding: evidence.BootBindingNoRegister, Devices: devices,
	}
}

// bind does the guest's boot binding: on kinds with a register, it
// extends the policy digest and each device's bytes.
func (pl *plat) bind(t testing.TB, body *evidence.Body) {
	t.Helper()
	if pl.kind == policy.KindSNP {
		body.BootBinding = evidence.BootBindingNoRegister
		return
	}
	devBytes, err := evidence.DeviceBytes(body.Devices)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range evidence.BootLog(body.PolicyDigest, devBytes) {
		if err := pl.att.Extend(context.Background(), d, "devattest"); err != nil {
			t.Fatal(err)
		}
	}
	body.BootBinding = evidence.BootBindingExtended
}

// seal seals body and takes the platform report over it; edit, when not
// nil, changes the platform report before it is encoded (as a host or a
// report author might).
func (pl *plat) seal(t testing.TB, body *evidence.Body, edit func(*platform.Report)) []byte {
	t.Helper()
	rep, err := evidence.NewReport(body)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := pl.att.Report(context.Background(), rep.UserData())
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(pr)
	}
	if rep.Platform.Report, err = pr.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	b, err := evidence.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replaceInBody edits the body inside an encoded report as text, keeping
// the platform report: the edit a report author makes after signing.
func replaceInBody(t *testing.T, report []byte, old, new string) []byte {
	t.Helper()
	rep, err := evidence.Unmarshal(report)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rep.Body, []byte(old)) {
		t.Fatalf("%q is not in the body", old)
	}
	rep.Body = bytes.Replace(rep.Body, []byte(old), []byte(new), 1)
	out, err := evidence.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hexStr(s string) string { return fmt.Sprintf("%x", s) }

var _ = strings.Repeat
