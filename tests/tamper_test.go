package tests

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/hostshim"
	"github.com/devattest/devattest/policy"
	vplatform "github.com/devattest/devattest/policy/platform"
	"github.com/devattest/devattest/secchan"
)

const tamperLabel = "0000:01:00.1"

// lockedBuffer is a bytes.Buffer safe for the relay's logger.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tamperLane runs cases one after another in its own directory; every
// case gets a fresh VF behind a fresh shim (see stack).
type tamperLane struct {
	dir string
	seq atomic.Int64
}

// tamperEnv is what every case shares: the device identity, the platform
// attester and the policy.
type tamperEnv struct {
	ids  []secchan.Identity
	root *x509.Certificate
	att  *platform.FakeSNP
	pol  *policy.Policy
	// base is the device evidence of the pass run.
	base evidence.Device
	// tdisp makes the guest lock and start the device's TDISP interface
	// after IDE; faults are set on every fresh VF (tamper_tdisp_test.go).
	tdisp  bool
	faults devsim.Faults
}

// newTamperEnv makes a fresh device identity and fake SEV-SNP platform.
func newTamperEnv(t *testing.T) *tamperEnv {
	t.Helper()
	rootDER, ids, err := devsim.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	att, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	return &tamperEnv{ids: ids, root: root, att: att}
}

// caseOutcome is what one relayed attestation produced.
type caseOutcome struct {
	mode    doe.RelayMode
	rep     *evidence.Report
	err     error
	elapsed time.Duration
	stats   doe.RelayStats
	log     string
}

func newTamperLane(t *testing.T) *tamperLane {
	t.Helper()
	// Short paths: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "tamper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &tamperLane{dir: dir}
}

// stack starts a fresh VF with the shared identity behind a shim (a
// hostshim Mediator served by a doe.Server) and returns the shim's
// address and a function that stops both. A fresh VF per case keeps one
// case's half-programmed IDE state from leaking into the next.
func (l *tamperLane) stack(t *testing.T, env *tamperEnv, n int64) (string, func()) {
	t.Helper()
	vf, _, err := devsim.NewSPDMVF(env.ids, devsim.NewMeasurements())
	if err != nil {
		t.Fatal(err)
	}
	vf.SetFaults(env.faults)
	med := hostshim.NewMediator(vf.Driver(), hostshim.Options{VF: "devsim"})
	srv := &doe.Server{Connect: med.Connect, ExchangeTimeout: 10 * time.Second}
	addr := "unix:" + filepath.Join(l.dir, fmt.Sprintf("s%d.sock", n))
	ln, err := doe.Listen(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return addr, func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("shim Serve: %v", err)
		}
		med.Close()
	}
}

// run attests the device once through a fresh relay in mode, within
// budget, and reports what happened.
func (l *tamperLane) run(t *testing.T, env *tamperEnv, mode doe.RelayMode, budget time.Duration) caseOutcome {
	t.Helper()
	n := l.seq.Add(1)
	shim, stop := l.stack(t, env, n)
	defer stop()
	var logBuf lockedBuffer
	statsCh := make(chan doe.RelayStats, 4)
	r := &doe.Relay{Upstream: shim, Mode: mode, Timeout: 5 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(&logBuf, nil)),
		OnClose: func(s doe.RelayStats) { statsCh <- s }}
	addr := "unix:" + filepath.Join(l.dir, fmt.Sprintf("r%d.sock", n))
	ln, err := doe.Listen(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve(ln) }()

	cfg := &guest.Config{Platform: "fake-snp", IDE: true, TDISP: env.tdisp, Devices: []guest.DeviceConfig{
		{Label: tamperLabel, Shim: addr, Anchors: []*x509.Certificate{env.root}},
	}}
	nonce := []byte("tamper " + mode.String())
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	start := time.Now()
	rep, err := guest.AttestWith(ctx, cfg, env.att, nonce)
	elapsed := time.Since(start)
	cancel()
	// The guest closed its connection; the relay logs the counts and ends
	// it. Wait for that before closing the relay, so the counts are final.
	out := caseOutcome{mode: mode, rep: rep, err: err, elapsed: elapsed}
	select {
	case out.stats = <-statsCh:
	case <-time.After(5 * time.Second):
		t.Errorf("%s: the relay did not end the connection within 5s of the guest closing it", mode)
	}
	r.Close()
	if err := <-served; err != nil {
		t.Errorf("%s: relay Serve: %v", mode, err)
	}
	out.log = logBuf.String()
	return out
}

// verify judges out.rep offline against env's policy.
func (env *tamperEnv) verify(out caseOutcome) (policy.Verdict, error) {
	b, err := evidence.Marshal(out.rep)
	if err != nil {
		return policy.Verdict{}, err
	}
	rep, err := evidence.Unmarshal(b)
	if err != nil {
		return policy.Verdict{}, err
	}
	return env.pol.Verify(rep, []byte("tamper "+out.mode.String())), nil
}

// writePolicy writes and loads a policy for the device from the pass
// run's evidence (as "devattest policy init" would): the devsim root as
// trust anchor, its leaf key pinned, its measurements as reference values,
// session and IDE required, and the fake platform's launch measurement.
func writePolicy(t *testing.T, dir string, root *x509.Certificate, rep *evidence.Report, roots *vplatform.SNPRoots) *policy.Policy {
	t.Helper()
	for name, der := range map[string][]byte{"ark.der": roots.ARK, "ask.der": roots.ASK} {
		if err := os.WriteFile(filepath.Join(dir, name), der, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := rep.ParsedBody().Devices[0]
	if err := os.WriteFile(filepath.Join(dir, "root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	var pr platform.Report
	if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
		t.Fatal(err)
	}
	snp, err := abi.ReportToProto(pr.Raw)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := x509.ParseCertificates(lastCert(t, d.CertChain))
	if err != nil || len(certs) != 1 {
		t.Fatalf("leaf certificate: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "devices:\n  - label: %q\n    trust_anchors: [root.pem]\n", d.Label)
	fmt.Fprintf(&b, "    min_spdm_version: %q\n    allowed_asym: [%s]\n    allowed_hash: [%s]\n", d.SPDMVersion, d.Algorithms.BaseAsym, d.Algorithms.BaseHash)
	fmt.Fprintf(&b, "    pin:\n      leaf_public_key_sha256: %x\n", policy.LeafPublicKeySHA256(certs[0]))
	b.WriteString("    reference_measurements:\n")
	for _, blk := range d.Measurements.Blocks {
		fmt.Fprintf(&b, "      - index: %d\n        digest: [%x]\n", blk.Index, []byte(blk.Value))
	}
	b.WriteString("    require_session: true\n    require_ide: true\n    allow_simulated_root_port: true\n")
	if d.TDISP != nil {
		b.WriteString(tdispPolicy(t, d.TDISP))
	}
	fmt.Fprintf(&b, "platform:\n  kind: snp\n  allow_test_roots: true\n  snp:\n    measurement: [%s]\n    policy_debug_allowed: true\n", hex.EncodeToString(snp.GetMeasurement()))
	b.WriteString("    min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}\n")
	b.WriteString("  roots:\n    snp_ark: ark.der\n    snp_ask: ask.der\n")
	p, err := policy.Parse([]byte(b.String()), dir)
	if err != nil {
		t.Fatalf("policy: %v\n%s", err, b.String())
	}
	return p
}

// lastCert returns the DER of the last certificate of an SPDM
// certificate chain (the leaf) by parsing the concatenated DER after the
// chain header and root hash; it tries each possible root hash size.
func lastCert(t *testing.T, chain []byte) []byte {
	t.Helper()
	for _, hashLen := range []int{32, 48, 64} {
		if len(chain) < 4+hashLen {
			continue
		}
		certs, err := x509.ParseCertificates(chain[4+hashLen:])
		if err == nil && len(certs) > 0 {
			return certs[len(certs)-1].Raw
		}
	}
	t.Fatalf("cannot parse the certificate chain of %d bytes", len(chain))
	return nil
}

// sameEvidence compares what a verifier relies on in d with the pass run:
// identity, negotiation, measurements, session and IDE.
func sameEvidence(base, d evidence.Device) error {
	switch {
	case d.Status != evidence.StatusOK:
		return fmt.Errorf("status %q", d.Status)
	case !bytes.Equal(d.CertChain, base.CertChain):
		return errors.New("certificate chain differs")
	case d.SPDMVersion != base.SPDMVersion:
		return fmt.Errorf("SPDM version %s, want %s", d.SPDMVersion, base.SPDMVersion)
	case *d.Algorithms != *base.Algorithms:
		return fmt.Errorf("algorithms %+v, want %+v", *d.Algorithms, *base.Algorithms)
	case d.CapabilityFlags != base.CapabilityFlags:
		return fmt.Errorf("capabilities %#x, want %#x", d.CapabilityFlags, base.CapabilityFlags)
	case d.Measurements == nil || len(d.Measurements.Blocks) != len(base.Measurements.Blocks):
		return errors.New("measurement blocks differ in number")
	case d.Session == nil || !d.Session.Ended:
		return errors.New("no ended session")
	case d.IDE == nil || d.IDE.KeySet != base.IDE.KeySet:
		return errors.New("IDE key set differs")
	case (base.TDISP == nil) != (d.TDISP == nil) || base.TDISP != nil && (!bytes.Equal(d.TDISP.InterfaceReport, base.TDISP.InterfaceReport) || d.TDISP.State != base.TDISP.State):
		return errors.New("TDISP interface report or state differs")
	}
	for i, b := range d.Measurements.Blocks {
		w := base.Measurements.Blocks[i]
		if b.Index != w.Index || b.TypeCode != w.TypeCode || !bytes.Equal(b.Value, w.Value) {
			return fmt.Errorf("measurement block %d differs", b.Index)
		}
	}
	return nil
}

// judge checks one case's outcome against the rules of the matrix and
// returns its class: "error at STEP" or "ok".
func (env *tamperEnv) judge(t *testing.T, out caseOutcome, budget time.Duration) string {
	t.Helper()
	name := out.mode.String()
	if out.elapsed > budget+2*time.Second {
		t.Errorf("%s: ran %v, past its %v deadline", name, out.elapsed.Round(time.Millisecond), budget)
	}
	if want := fmt.Sprintf("objects up=%d down=%d", out.stats.Up, out.stats.Down); !strings.Contains(out.log, want) {
		t.Errorf("%s: relay log lacks %q:\n%s", name, want, out.log)
	}
	if out.rep == nil {
		t.Errorf("%s: no report (err %v)", name, out.err)
		return "no report"
	}
	if len(out.rep.ParsedBody().Devices) != 1 {
		t.Errorf("%s: %d devices in the report", name, len(out.rep.ParsedBody().Devices))
		return "bad report"
	}
	d := out.rep.ParsedBody().Devices[0]
	v, err := env.verify(out)
	if err != nil {
		t.Errorf("%s: report does not round-trip: %v", name, err)
		return "bad report"
	}
	if out.err != nil {
		var de *guest.DeviceError
		switch {
		case errors.Is(out.err, guest.ErrPlatform) && !errors.Is(out.err, context.DeadlineExceeded):
			// (A device that hangs until the deadline leaves the platform
			// report no time either: that is expected.)
			t.Errorf("%s: platform failure: %v", name, out.err)
		case !errors.As(out.err, &de) || de.Step == "":
			t.Errorf("%s: error names no step: %v", name, out.err)
		case d.Status != evidence.StatusFailed || d.FailedStep != de.Step:
			t.Errorf("%s: the report records status %q at %q, the error says step %q", name, d.Status, d.FailedStep, de.Step)
		case v.OK:
			t.Errorf("%s: the verifier accepts a report whose device failed at %s", name, de.Step)
		default:
			return "error at " + de.Step
		}
		return "bad failure"
	}
	if !d.OK() {
		t.Errorf("%s: no error, but the device is %q at %q", name, d.Status, d.FailedStep)
		return "bad success"
	}
	if !v.OK {
		var why []string
		for _, r := range v.Results {
			if !r.OK {
				why = append(why, r.Check+": "+r.Reason)
			}
		}
		t.Errorf("%s: the device passed, the verifier rejects the report: %s", name, strings.Join(why, "; "))
		return "bad success"
	}
	if err := sameEvidence(env.base, d); err != nil {
		t.Errorf("%s: accepted report with wrong evidence: %s", name, err)
		return "bad success"
	}
	if !slices.Equal(d.Protocols, env.base.Protocols) {
		// Discovery is unauthenticated; the verifier does not judge it.
		t.Logf("%s: harmless, but discovery lists %v (pass run: %v)", name, d.Protocols, env.base.Protocols)
		return "ok (discovery list differs)"
	}
	return "ok"
}

// TestTamperMatrix runs the whole guest flow (discovery, VCA, digests,
// certificate, challenge, session, signed measurements, IDE, END_SESSION)
// through a hostile relay between the guest and the shim: first once in
// pass mode to count the objects, then with one bit flipped in each object
// in each direction (at a few positions), and with drops, a replay, a
// reorder and a delay. Each attestation must either fail with a
// *guest.DeviceError naming its step (and the verifier must then reject
// the report), or succeed with a report the verifier accepts and whose
// evidence equals the pass run's. No case may outlive its deadline, and
// no goroutine may outlive the matrix.
func TestTamperMatrix(t *testing.T) {
	env := newTamperEnv(t)
	lanes := make([]*tamperLane, min(max(runtime.GOMAXPROCS(0), 2), 6))
	for i := range lanes {
		lanes[i] = newTamperLane(t)
	}

	// The pass run: count the objects of one full flow and build the policy.
	const budget = 4 * time.Second
	pass := lanes[0].run(t, env, doe.RelayMode{Kind: doe.RelayPass}, budget)
	if pass.err != nil {
		t.Fatalf("pass run: %v", pass.err)
	}
	env.base = pass.rep.ParsedBody().Devices[0]
	env.pol = writePolicy(t, lanes[0].dir, env.root, pass.rep, env.att.Roots())
	if got := env.judge(t, pass, budget); got != "ok" {
		t.Fatalf("pass run: %s", got)
	}
	up, down := pass.stats.Up, pass.stats.Down
	if up < 10 || up != down || len(pass.stats.UpSizes) != up || len(pass.stats.DownSizes) != down {
		t.Fatalf("pass run counted up=%d down=%d objects", up, down)
	}
	t.Logf("pass run: objects up=%d down=%d in %v", up, down, pass.elapsed.Round(time.Millisecond))

	// The matrix. Bit 0 is the top bit of the first payload byte (the SPDM
	// version, or the session ID of a secured message); the middle bit
	// lands in the body; bit 13 is in the request/response code.
	var modes []doe.RelayMode
	for _, dir := range []struct {
		name  string
		sizes []int
	}{{doe.DirUp, pass.stats.UpSizes}, {doe.DirDown, pass.stats.DownSizes}} {
		for n := 1; n <= len(dir.sizes); n++ {
			bits := []int{dir.sizes[n-1] * 8 / 2}
			if !testing.Short() {
				bits = append(bits, 0, 13)
			}
			for _, bit := range bits {
				modes = append(modes, doe.RelayMode{Kind: doe.RelayTamper, N: n, Dir: dir.name, Bit: bit})
			}
		}
	}
	timeouts := []doe.RelayMode{
		{Kind: doe.RelayDrop, N: 1, Dir: doe.DirUp},
		{Kind: doe.RelayDrop, N: down / 2, Dir: doe.DirDown},
		{Kind: doe.RelayDrop, N: down, Dir: doe.DirDown},
	}
	modes = append(modes, timeouts...)
	modes = append(modes,
		doe.RelayMode{Kind: doe.RelayReplay, N: 4},
		doe.RelayMode{Kind: doe.RelayReplay, N: up},
		doe.RelayMode{Kind: doe.RelayReorder, N: 4},
		doe.RelayMode{Kind: doe.RelayReorder, N: up - 1},
		doe.RelayMode{Kind: doe.RelayDelay, Delay: 5 * time.Millisecond},
	)

	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	start := time.Now()
	work := make(chan doe.RelayMode)
	var mu sync.Mutex
	classes := map[string]int{}
	var slowest time.Duration
	var wg sync.WaitGroup
	for _, lane := range lanes {
		wg.Go(func() {
			for m := range work {
				out := lane.run(t, env, m, budget)
				class := env.judge(t, out, budget)
				if m.Kind != doe.RelayTamper || strings.HasPrefix(class, "ok") {
					t.Logf("%s: %s in %v: %v", m, class, out.elapsed.Round(time.Millisecond), out.err)
				}
				mu.Lock()
				classes[strings.TrimSpace(string(m.Kind)+" "+m.Dir)+": "+class]++
				slowest = max(slowest, out.elapsed)
				mu.Unlock()
			}
		})
	}
	for _, m := range modes {
		work <- m
	}
	close(work)
	wg.Wait()
	total := time.Since(start)

	// No goroutine may outlive its case: allow a few for the runtime and
	// the test framework, after a short settle.
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(3 * time.Second); after > before+3 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		after = runtime.NumGoroutine()
	}
	if after > before+3 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before the matrix, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}

	keys := make([]string, 0, len(classes))
	for k := range classes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sum strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sum, "\n  %4d  %s", classes[k], k)
	}
	t.Logf("matrix: %d cases on %d lanes in %v (slowest case %v); outcomes:%s",
		len(modes), len(lanes), total.Round(time.Millisecond), slowest.Round(time.Millisecond), sum.String())
}
