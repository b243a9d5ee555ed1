package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/policy"
)

// startVF serves an emulated VF on a unix socket and returns its address
// and root certificate; meas nil means devsim's default five blocks.
func startVF(t *testing.T, dir, name string, meas *devsim.Measurements) (string, *x509.Certificate) {
	t.Helper()
	if meas == nil {
		meas = devsim.NewMeasurements()
	}
	rootDER, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	vf, _, err := devsim.NewSPDMVF(ids, meas)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	return serveMailbox(t, dir, name, vf.Driver()), root
}

// serveMailbox serves mb on a unix socket in dir until the test ends and
// returns its address.
func serveMailbox(t *testing.T, dir, name string, mb doe.Mailbox) string {
	t.Helper()
	path := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &doe.Server{Mailbox: mb, ExchangeTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix:" + path
}

type e2e struct {
	dir, report, policy, nonceHex string
	rep                           *evidence.Report
}

// attestOn attests two default emulated VFs with IDE and TDISP on the
// platform name, writes the report and a policy from it (policy init with
// the platform's roots) and returns their paths.
func attestOn(t *testing.T, name string, att platform.Attester, roots func(dir string) []string) e2e {
	t.Helper()
	return attestSpec(t, attestOptions{platform: name, att: att, roots: roots, nonce: []byte("owner nonce " + name)})
}

// snpRoots writes the fake SEV-SNP platform's roots into dir and returns
// policy init's flags naming them.
func snpRoots(t *testing.T, att *platform.FakeSNP) func(dir string) []string {
	return func(dir string) []string {
		r := att.Roots()
		return []string{"--snp-ark", writeFile(t, filepath.Join(dir, "ark.der"), r.ARK),
			"--snp-ask", writeFile(t, filepath.Join(dir, "ask.der"), r.ASK)}
	}
}

// attestOptions say what attestSpec attests: which platform, the owner's
// nonce, and each VF's measurement store (nil: two default VFs).
type attestOptions struct {
	platform string
	att      platform.Attester
	roots    func(dir string) []string
	nonce    []byte
	vfs      []*devsim.Measurements
}

func attestSpec(t *testing.T, o attestOptions) e2e {
	t.Helper()
	dir := t.TempDir()
	cfg := &guest.Config{Platform: o.platform, IDE: true, TDISP: true}
	if o.vfs == nil {
		o.vfs = []*devsim.Measurements{nil, nil}
	}
	for i, meas := range o.vfs {
		l := fmt.Sprintf("0000:%02x:00.1", i+1)
		addr, root := startVF(t, dir, l[5:7], meas)
		cfg.Devices = append(cfg.Devices, guest.DeviceConfig{Label: l, Shim: addr, Anchors: []*x509.Certificate{root}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := guest.AttestWith(ctx, cfg, o.att, o.nonce)
	if err != nil {
		t.Fatalf("AttestWith: %v", err)
	}
	b, err := evidence.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	e := e2e{dir: dir, report: filepath.Join(dir, "report.json"), policy: filepath.Join(dir, "policy", "policy.yaml"),
		nonceHex: hex.EncodeToString(o.nonce), rep: rep}
	if err := os.WriteFile(e.report, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Dir(e.policy), 0o700); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"policy", "init", "--from", e.report, "--out", e.policy}, o.roots(dir)...)
	if code, out, errOut := runCmd(args...); code != 0 {
		t.Fatalf("policy init: %d\n%s%s", code, out, errOut)
	}
	return e
}

func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVerifyEndToEnd attests with each fake platform, writes a policy with
// "policy init" and verifies the report with "verify"; then refuses a wrong
// nonce, another platform kind, a changed reference measurement and
// flipped bytes in the platform report and in the evidence.
func TestVerifyEndToEnd(t *testing.T) {
	cases := []struct {
		name  string
		open  func(t *testing.T) platform.Attester
		roots func(t *testing.T, a platform.Attester) func(dir string) []string
		other string // a platform section of another kind
	}{
		{"fake-snp", func(t *testing.T) platform.Attester {
			a, err := platform.NewFakeSNP()
			if err != nil {
				t.Fatal(err)
			}
			return a
		}, func(t *testing.T, a platform.Attester) func(string) []string {
			return snpRoots(t, a.(*platform.FakeSNP))
		}, "platform:\n  kind: tpm\n  tpm:\n    ak_public: [00]\n"},
		{"fake-tdx", func(t *testing.T) platform.Attester {
			a, err := platform.NewFakeTDX(platform.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}, func(t *testing.T, a platform.Attester) func(string) []string {
			return func(dir string) []string {
				pemRoot := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.(*platform.FakeTDX).RootCertificate()})
				return []string{"--tdx-root", writeFile(t, filepath.Join(dir, "tdx-root.pem"), pemRoot)}
			}
		}, "platform:\n  kind: snp\n  snp:\n    measurement: [" + strings.Repeat("00", 48) + "]\n"},
		{"fake-tpm", func(t *testing.T) platform.Attester {
			a, err := platform.NewFakeTPM(platform.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			return a
		}, func(*testing.T, platform.Attester) func(string) []string {
			return func(string) []string { return nil }
		}, "platform:\n  kind: tdx\n  tdx:\n    mrtd: [" + strings.Repeat("00", 48) + "]\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			att := tc.open(t)
			e := attestOn(t, tc.name, att, tc.roots(t, att))

			code, out, errOut := runCmd("verify", e.report, "--policy", e.policy, "--nonce", e.nonceHex)
			if code != 0 || !strings.Contains(out, "verdict: PASS") {
				t.Fatalf("verify: %d\n%s%s", code, out, errOut)
			}
			for _, want := range []string{"0000:01:00.1", "measurement signature", "boot binding", "platform report"} {
				if !strings.Contains(out, want) {
					t.Errorf("verify output lacks %q:\n%s", want, out)
				}
			}
			code, out, _ = runCmd("verify", "--json", "--policy", e.policy, "--nonce", e.nonceHex, e.report)
			var v policy.Verdict
			if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || !v.OK || len(v.Results) < 20 {
				t.Fatalf("verify --json: %d %v\n%s", code, err, out)
			}
			if code, out, _ := runCmd("inspect", e.report); code != 0 || !strings.Contains(out, "0000:02:00.1") ||
				!strings.Contains(out, "CMA/SPDM") || !strings.Contains(out, "not authenticated") {
				t.Fatalf("inspect (want the devices, and their DOE protocols marked as unauthenticated): %d\n%s", code, out)
			}

			refuse := func(t *testing.T, report, pol, nonce, check string) {
				t.Helper()
				code, out, errOut := runCmd("verify", report, "--policy", pol, "--nonce", nonce, "--json")
				var v policy.Verdict
				if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 || v.OK {
					t.Fatalf("verify: %d %v\n%s%s", code, err, out, errOut)
				}
				if f := failed(v.Results); f[check] == "" {
					t.Fatalf("check %q not refused with a reason: %+v", check, v.Results)
				}
			}
			t.Run("wrong nonce", func(t *testing.T) {
				refuse(t, e.report, e.policy, "00"+e.nonceHex, policy.CheckOwnerNonce)
			})
			t.Run("no nonce", func(t *testing.T) {
				if code, _, _ := runCmd("verify", e.report, "--policy", e.policy); code != 1 {
					t.Fatalf("verify without a nonce: exit %d", code)
				}
			})
			pol, err := os.ReadFile(e.policy)
			if err != nil {
				t.Fatal(err)
			}
			t.Run("other platform kind", func(t *testing.T) {
				i := bytes.Index(pol, []byte("platform:\n"))
				p := writeFile(t, filepath.Join(filepath.Dir(e.policy), "other.yaml"), append(bytes.Clone(pol[:i]), tc.other...))
				refuse(t, e.report, p, e.nonceHex, policy.CheckKind)
			})
			t.Run("reference measurement changed", func(t *testing.T) {
				v := e.rep.ParsedBody().Devices[1].Measurements.Blocks[1].Value
				bad := strings.Replace(string(pol), v.String(), strings.Repeat("11", len(v)), 1)
				p := writeFile(t, filepath.Join(filepath.Dir(e.policy), "wrong.yaml"), []byte(bad))
				refuse(t, e.report, p, e.nonceHex, policy.CheckReference)
			})
			mutate := func(t *testing.T, f func(r *evidence.Report), check string) {
				t.Helper()
				b, _ := os.ReadFile(e.report)
				var r evidence.Report
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatal(err)
				}
				f(&r)
				b, err := json.Marshal(&r)
				if err != nil {
					t.Fatal(err)
				}
				refuse(t, writeFile(t, filepath.Join(e.dir, "mutated.json"), b), e.policy, e.nonceHex, check)
			}
			t.Run("platform report byte", func(t *testing.T) {
				// Inside the signed object: version, kind, raw's u24 length
				// take 8 bytes, then 0x30 is inside the SEV-SNP report body, the TDX
				// quote and the TPM's TPMS_ATTEST.
				mutate(t, func(r *evidence.Report) { r.Platform.Report[8+0x30] ^= 1 }, policy.CheckPlatform)
			})
			t.Run("body byte", func(t *testing.T) {
				// A hex digit of the first measurement block's value: the
				// body stays well-formed, but is not what was signed.
				v := e.rep.ParsedBody().Devices[0].Measurements.Blocks[0].Value.String()
				mutate(t, func(r *evidence.Report) {
					r.Body = bytes.Replace(r.Body, []byte(v), []byte(strings.Repeat("22", len(v)/2)), 1)
				}, policy.CheckPlatform)
			})
			t.Run("body not canonical", func(t *testing.T) {
				mutate(t, func(r *evidence.Report) { r.Body = append([]byte(" "), r.Body...) }, policy.CheckFormat)
			})
			t.Run("nonce field", func(t *testing.T) {
				mutate(t, func(r *evidence.Report) {
					r.Body = bytes.Replace(r.Body, []byte(`"nonce":"`), []byte(`"nonce":"00`), 1)
				}, policy.CheckOwnerNonce)
			})
			if tc.name != "fake-snp" {
				t.Run("event log", func(t *testing.T) {
					mutate(t, func(r *evidence.Report) {
						var pr platform.Report
						if err := pr.UnmarshalBinary(r.Platform.Report); err != nil {
							t.Fatal(err)
						}
						pr.EventLog[1].Digest[0] ^= 1
						r.Platform.Report, _ = pr.MarshalBinary()
					}, policy.CheckBootBinding)
				})
			}
			platformRuleCases(t, tc.name, e, string(pol), refuse)
		})
	}
}

// platformRuleCases runs each platform rule of kind name against the
// report, once with the values "policy init" wrote (or suggested in
// comments), once with a value the report does not have.
func platformRuleCases(t *testing.T, name string, e e2e, pol string, refuse func(t *testing.T, report, pol, nonce, check string)) {
	write := func(t *testing.T, yml string) string {
		t.Helper()
		return writeFile(t, filepath.Join(filepath.Dir(e.policy), "rules.yaml"), []byte(yml))
	}
	pass := func(t *testing.T, yml, check string) {
		t.Helper()
		code, out, errOut := runCmd("verify", e.report, "--policy", write(t, yml), "--nonce", e.nonceHex, "--json")
		var v policy.Verdict
		if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || !v.OK {
			t.Fatalf("verify: %d %v\n%s%s\n%s", code, err, out, errOut, yml)
		}
		for _, r := range v.Results {
			if r.Check == check && r.OK {
				return
			}
		}
		t.Fatalf("check %q not run: %+v", check, v.Results)
	}
	fail := func(t *testing.T, yml, check, reason string) {
		t.Helper()
		p := write(t, yml)
		refuse(t, e.report, p, e.nonceHex, check)
		_, out, _ := runCmd("verify", e.report, "--policy", p, "--nonce", e.nonceHex, "--json")
		var v policy.Verdict
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		if got := failed(v.Results)[check]; !strings.Contains(got, reason) {
			t.Fatalf("check %q refused with %q, want it to say %q", check, got, reason)
		}
	}
	sub := func(yml, pattern, repl string) string {
		t.Helper()
		re := regexp.MustCompile(pattern)
		if !re.MatchString(yml) {
			t.Fatalf("no %q in the policy:\n%s", pattern, yml)
		}
		return re.ReplaceAllString(yml, repl)
	}
	// uncomment turns the commented register values "policy init" wrote
	// into rules.
	uncomment := func(key string) string {
		s := sub(pol, `(?m)^    # `+key+`:$`, "    "+key+":")
		return sub(s, `(?m)^    #   (\d+): \[`, "      $1: [")
	}
	hex48 := strings.Repeat("11", 48)
	switch name {
	case "fake-snp":
		t.Run("min_tcb", func(t *testing.T) {
			pass(t, pol, policy.CheckSNPTCB)
			fail(t, sub(pol, `min_tcb: \{[^}]*\}`, "min_tcb: {bootloader: 255, tee: 255, snp: 255, microcode: 255}"),
				policy.CheckSNPTCB, "min_tcb: reported TCB: bootloader SVN")
		})
		t.Run("vmpl", func(t *testing.T) {
			pass(t, pol, policy.CheckSNPVMPL)
			m := regexp.MustCompile(`vmpl: \[(\d)\]`).FindStringSubmatch(pol)
			if m == nil {
				t.Fatalf("no vmpl in the policy:\n%s", pol)
			}
			other := map[string]string{"0": "1", "1": "0", "2": "0", "3": "0"}[m[1]]
			fail(t, sub(pol, `vmpl: \[\d\]`, "vmpl: ["+other+", 3]"), policy.CheckSNPVMPL, "vmpl: the report is from VMPL "+m[1])
		})
	case "fake-tdx":
		t.Run("rtmrs", func(t *testing.T) {
			pinned := uncomment("rtmrs")
			pass(t, pinned, policy.CheckTDXRTMRs)
			fail(t, sub(pinned, `(?m)^      1: \[[0-9a-f]+\]`, "      1: ["+hex48+"]"), policy.CheckTDXRTMRs, "rtmrs: RTMR 1 is ")
			code, _, errOut := runCmd("verify", e.report, "--policy",
				write(t, sub(pinned, `(?m)^    rtmrs:$`, "    rtmrs:\n      3: ["+hex48+"]")), "--nonce", e.nonceHex)
			if code == 0 || !strings.Contains(errOut, "RTMR 3 carries the boot binding") {
				t.Fatalf("a policy pinning RTMR 3: exit %d, %s", code, errOut)
			}
		})
		t.Run("td_attributes", func(t *testing.T) {
			pass(t, pol, policy.CheckTDXAttribute)
			fail(t, sub(pol, `td_attributes: [0-9a-f]+`, "td_attributes: 0102030405060708"), policy.CheckTDXAttribute, "td_attributes: the quote has")
		})
		t.Run("xfam", func(t *testing.T) {
			pass(t, pol, policy.CheckTDXXFAM)
			fail(t, sub(pol, `xfam: [0-9a-f]+`, "xfam: 0102030405060708"), policy.CheckTDXXFAM, "xfam: the quote has")
		})
	case "fake-tpm":
		t.Run("pcrs", func(t *testing.T) {
			pinned := uncomment("pcrs")
			pass(t, pinned, policy.CheckTPMPCRs)
			fail(t, sub(pinned, `(?m)^      0: \[[0-9a-f]+\]`, "      0: ["+strings.Repeat("11", 32)+"]"), policy.CheckTPMPCRs, "pcrs: PCR 0 is ")
			code, _, errOut := runCmd("verify", e.report, "--policy",
				write(t, sub(pinned, `(?m)^    pcrs:$`, "    pcrs:\n      15: ["+strings.Repeat("11", 32)+"]")), "--nonce", e.nonceHex)
			if code == 0 || !strings.Contains(errOut, "PCR 15 carries the boot binding") {
				t.Fatalf("a policy pinning PCR 15: exit %d, %s", code, errOut)
			}
		})
	}
}

func failed(rs []policy.Result) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		if !r.OK {
			out[r.Check] = r.Reason
		}
	}
	return out
}

func TestVerifyUsage(t *testing.T) {
	if code, _, _ := runCmd("verify"); code != 2 {
		t.Errorf("verify without arguments: exit %d, want 2", code)
	}
	if code, _, _ := runCmd("policy"); code != 2 {
		t.Errorf("policy without init: exit %d, want 2", code)
	}
	if code, _, _ := runCmd("inspect"); code != 2 {
		t.Errorf("inspect without a report: exit %d, want 2", code)
	}
}

// TestPolicyInitDevicesOnly: --devices-only writes the device rules alone,
// which policy.ParseDevices (the guest's loader) accepts and a whole
// policy's parser refuses for want of a platform.
func TestPolicyInitDevicesOnly(t *testing.T) {
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	e := attestOn(t, "fake-snp", att, snpRoots(t, att))
	out := filepath.Join(e.dir, "guest", "devices.yaml")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	if code, o, errOut := runCmd("policy", "init", "--devices-only", "--from", e.report, "--out", out); code != 0 {
		t.Fatalf("policy init --devices-only: %d\n%s%s", code, o, errOut)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "platform:") || strings.Contains(string(b), "guest_policy_digest") {
		t.Fatalf("a devices-only policy carries platform or digest:\n%s", b)
	}
	p, err := policy.ParseDevices(b, filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"0000:01:00.1", "0000:02:00.1"} {
		if r, ok := p.Rule(l); !ok || len(r.ReferenceMeasurements) == 0 || len(r.Anchors()) != 1 {
			t.Errorf("rule for %s: %+v", l, r)
		}
	}
	if _, err := policy.Parse(b, filepath.Dir(out)); err == nil {
		t.Error("a devices-only policy parses as a whole policy")
	}
}

// TestVerifyDaemonReport: a report the guest daemon takes after boot on a
// vTPM (a runtime register) verifies with devattest verify, its boot
// binding replayed against the boot evidence it carries; the same report
// without that boot section fails the boot binding.
func TestVerifyDaemonReport(t *testing.T) {
	att, err := platform.NewFakeTPM(platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { att.Close() })
	dir := t.TempDir()
	cfg := &guest.Config{Platform: "fake-tpm", RemeasureInterval: time.Hour}
	for _, l := range []string{"0000:01:00.1", "0000:02:00.1"} {
		addr, root := startVF(t, dir, l[5:7], nil)
		cfg.Devices = append(cfg.Devices, guest.DeviceConfig{Label: l, Shim: addr, Anchors: []*x509.Certificate{root}})
	}
	svc, err := guest.NewService(cfg, guest.ServiceOptions{Attester: att, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := svc.Start(ctx, []byte("boot")); err != nil {
		t.Fatal(err)
	}
	nonce := []byte("the owner's later nonce")
	rep, err := svc.Report(ctx, nonce)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, r *evidence.Report) string {
		b, err := evidence.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, filepath.Join(dir, name), b)
	}
	report := write("daemon-report.json", rep)
	pol := filepath.Join(dir, "policy", "policy.yaml")
	if err := os.Mkdir(filepath.Dir(pol), 0o700); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCmd("policy", "init", "--from", report, "--out", pol); code != 0 {
		t.Fatalf("policy init: %d\n%s%s", code, out, errOut)
	}
	nonceHex := hex.EncodeToString(nonce)
	if code, out, errOut := runCmd("verify", report, "--policy", pol, "--nonce", nonceHex); code != 0 {
		t.Fatalf("verify of the daemon's report: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCmd("inspect", report); code != 0 || !strings.Contains(out, "boot section") {
		t.Errorf("inspect does not show the boot section: %d\n%s", code, out)
	}
	body := rep.ParsedBody()
	body.Boot = nil
	noBoot, err := evidence.NewReport(body)
	if err != nil {
		t.Fatal(err)
	}
	noBoot.Platform = rep.Platform
	code, out, _ := runCmd("verify", write("no-boot.json", noBoot), "--policy", pol, "--nonce", nonceHex, "--json")
	var v policy.Verdict
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 || failed(v.Results)[policy.CheckBootBinding] == "" {
		t.Fatalf("verify without the boot section: %d %v\n%s", code, err, out)
	}
}

// TestVerifyPlatformDefaults: devattest verify applies the platform
// rules' secure defaults end to end (issue 14, findings 5 and 9): a debug
// TD fails a policy whose tdx rule has only mrtd, and a fake SEV-SNP
// report is refused without allow_test_roots and accepted with it, with a
// WARNING line in text and JSON.
func TestVerifyPlatformDefaults(t *testing.T) {
	t.Run("debug TD with only mrtd", func(t *testing.T) {
		att, err := platform.NewFakeTDX(platform.Options{})
		if err != nil {
			t.Fatal(err)
		}
		att.EditQuotes(func(b *tdxpb.TDQuoteBody) { b.TdAttributes[0] |= 1 })
		rootFile := ""
		e := attestOn(t, "fake-tdx", att, func(dir string) []string {
			rootFile = writeFile(t, filepath.Join(dir, "tdx-root.der"), att.RootCertificate())
			return []string{"--tdx-root", rootFile}
		})
		pol, err := os.ReadFile(e.policy)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(pol), "allow_debug: true") {
			t.Fatalf("policy init did not write allow_debug for a debug TD:\n%s", pol)
		}
		i := bytes.Index(pol, []byte("platform:\n"))
		only := append(bytes.Clone(pol[:i]), fmt.Sprintf("platform:\n  kind: tdx\n  allow_test_roots: true\n  roots: {tdx_root: %q}\n  tdx:\n    mrtd: [%s]\n",
			rootFile, strings.Repeat("00", 48))...)
		p := writeFile(t, filepath.Join(filepath.Dir(e.policy), "mrtd-only.yaml"), only)
		code, out, errOut := runCmd("verify", e.report, "--policy", p, "--nonce", e.nonceHex, "--json")
		var v policy.Verdict
		if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 {
			t.Fatalf("verify: %d %v\n%s%s", code, err, out, errOut)
		}
		if f := failed(v.Results); !strings.Contains(f[policy.CheckTDXDebug], "a debug TD") || len(f) != 1 {
			t.Fatalf("want only %q refused: %v", policy.CheckTDXDebug, f)
		}
	})
	t.Run("fake-snp test roots", func(t *testing.T) {
		att, err := platform.NewFakeSNP()
		if err != nil {
			t.Fatal(err)
		}
		e := attestOn(t, "fake-snp", att, snpRoots(t, att))
		code, out, errOut := runCmd("verify", e.report, "--policy", e.policy, "--nonce", e.nonceHex)
		if code != 0 || !regexp.MustCompile(`platform +test roots +pass +WARNING: the report chains to a test root, go-sev-guest's fake ARK`).MatchString(out) {
			t.Fatalf("verify with allow_test_roots: %d, want PASS with a WARNING line\n%s%s", code, out, errOut)
		}
		code, out, _ = runCmd("verify", e.report, "--policy", e.policy, "--nonce", e.nonceHex, "--json")
		var v policy.Verdict
		if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
			t.Fatalf("verify --json: %d %v\n%s", code, err, out)
		}
		warned := false
		for _, r := range v.Results {
			warned = warned || r.Check == policy.CheckTestRoots && r.OK && strings.HasPrefix(r.Reason, "WARNING: ")
		}
		if !warned {
			t.Fatalf("verify --json has no test roots warning: %+v", v.Results)
		}
		pol, err := os.ReadFile(e.policy)
		if err != nil {
			t.Fatal(err)
		}
		strict := regexp.MustCompile(`(?m)^  allow_test_roots: true\n`).ReplaceAll(pol, nil)
		if bytes.Equal(strict, pol) {
			t.Fatalf("policy init did not write allow_test_roots for a fake SEV-SNP report:\n%s", pol)
		}
		p := writeFile(t, filepath.Join(filepath.Dir(e.policy), "strict.yaml"), strict)
		code, out, _ = runCmd("verify", e.report, "--policy", p, "--nonce", e.nonceHex, "--json")
		v = policy.Verdict{}
		if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 {
			t.Fatalf("verify without allow_test_roots: %d %v\n%s", code, err, out)
		}
		if got := failed(v.Results)[policy.CheckTestRoots]; !strings.Contains(got, "go-sev-guest's fake ARK") {
			t.Fatalf("test roots refused with %q", got)
		}
	})
}
