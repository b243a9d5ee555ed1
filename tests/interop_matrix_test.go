package tests

// The SPDM interop matrix (issue 16): versions 1.0-1.3 x signature
// algorithms x AEAD/DHE x session kinds (none, KEY_EXCHANGE, PSK) x slot,
// plus long certificate chains and a 256-byte DataTransferSize, in three
// directions:
//
//   - ours: our requester against libspdm's spdm_responder_emu;
//   - theirs: libspdm's spdm_requester_emu against devsim;
//   - devsim: our requester against devsim, with identities made here, so
//     that CI covers the same flows without libspdm.
//
// libspdm's builds come from LIBSPDM_EMU_BIN (mbedtls), LIBSPDM_EMU_BIN_SMALL
// (both emulators built with a 256-byte DataTransferSize) and
// LIBSPDM_EMU_BIN_OPENSSL (OpenSSL, which has Ed25519); a case whose build
// is not given is skipped, saying so. A case that fails against libspdm is
// run again between libspdm's own requester and responder: if that fails
// too, the case is skipped as one libspdm cannot do, with its output as
// the evidence; otherwise it fails.
//
// The mutual-authentication column (mCase.mutAuth) holds only "none" here;
// the modes with encapsulated requests are added to matrixMutAuthModes.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// matrixAlg is one signature algorithm as libspdm's emulators name it.
type matrixAlg struct {
	asym, hash, dir  string
	asymBit, hashBit uint32
	minV             secchan.Version
	variant          string // the libspdm build that has it
}

var matrixAlgs = []matrixAlg{
	{"ECDSA_P256", "SHA_256", "ecp256", secchan.AsymECDSAP256, secchan.HashSHA256, secchan.V10, "normal"},
	{"ECDSA_P384", "SHA_384", "ecp384", secchan.AsymECDSAP384, secchan.HashSHA384, secchan.V10, "normal"},
	{"ECDSA_P521", "SHA_512", "ecp521", secchan.AsymECDSAP521, secchan.HashSHA512, secchan.V10, "normal"},
	{"RSASSA_2048", "SHA_256", "rsa2048", secchan.AsymRSASSA2048, secchan.HashSHA256, secchan.V10, "normal"},
	{"RSASSA_3072", "SHA_384", "rsa3072", secchan.AsymRSASSA3072, secchan.HashSHA384, secchan.V10, "normal"},
	{"RSASSA_4096", "SHA_512", "rsa4096", secchan.AsymRSASSA4096, secchan.HashSHA512, secchan.V10, "normal"},
	{"RSAPSS_2048", "SHA_256", "rsa2048", secchan.AsymRSAPSS2048, secchan.HashSHA256, secchan.V10, "normal"},
	{"RSAPSS_3072", "SHA_384", "rsa3072", secchan.AsymRSAPSS3072, secchan.HashSHA384, secchan.V10, "normal"},
	{"RSAPSS_4096", "SHA_512", "rsa4096", secchan.AsymRSAPSS4096, secchan.HashSHA512, secchan.V10, "normal"},
	{"EDDSA_25519", "SHA_512", "ed25519", secchan.AsymEd25519, secchan.HashSHA512, secchan.V12, "openssl"},
}

// matrixSuites pairs each AEAD with a DHE group, so that three sessions
// cover every AEAD and every group.
var (
	matrixAEAD = map[string]uint16{"AES_128_GCM": secchan.AEADAES128GCM, "AES_256_GCM": secchan.AEADAES256GCM, "CHACHA20_POLY1305": secchan.AEADChaCha20Poly1305}
	matrixDHE  = map[string]uint16{"SECP_256_R1": secchan.DHESECP256R1, "SECP_384_R1": secchan.DHESECP384R1, "SECP_521_R1": secchan.DHESECP521R1}
)

var matrixSuites = [][2]string{{"AES_128_GCM", "SECP_256_R1"}, {"AES_256_GCM", "SECP_384_R1"}, {"CHACHA20_POLY1305", "SECP_521_R1"}}

// matrixMutAuthModes is the mutual-authentication column. "none": the
// responder does not ask (libspdm's responder runs with --mut_auth NO
// --basic_mut_auth NO). Modes with encapsulated requests go here.
var matrixMutAuthModes = []string{"none"}

// matrixLongChains are libspdm's long sample chains (RSA-2048, SHA-256):
// about 32 KB and 64 KB.
var matrixLongChains = map[string]string{"long32k": "ShorterMAXINT16", "long64k": "ShorterMAXUINT16"}

type mCase struct {
	variant   string // libspdm build: normal, small, openssl
	v         secchan.Version
	alg       matrixAlg
	session   string // none, KEY_EX, PSK
	aead, dhe string
	slot      uint8
	chain     string // "" (the sample chain), long32k, long64k
	inClear   bool   // libspdm's requester sets HANDSHAKE_IN_THE_CLEAR_CAP
	mutAuth   string
}

func (c mCase) name() string {
	s := fmt.Sprintf("%s/%s/%s/%s", c.variant, c.v, c.alg.asym, c.session)
	if c.session != "none" {
		s += "/" + c.aead + "+" + c.dhe
	}
	if c.slot != 0 {
		s += fmt.Sprintf("/slot%d", c.slot)
	}
	if c.chain != "" {
		s += "/" + c.chain
	}
	if c.inClear {
		s += "/in_clear"
	}
	if c.mutAuth != "none" {
		s += "/mut_" + c.mutAuth
	}
	return s
}

func algByName(name string) matrixAlg {
	for _, a := range matrixAlgs {
		if a.asym == name {
			return a
		}
	}
	panic("no algorithm " + name)
}

// matrixCases lists the matrix.
func matrixCases() []mCase {
	var cs []mCase
	p384 := algByName("ECDSA_P384")
	def := func(c mCase) mCase {
		if c.aead == "" {
			c.aead, c.dhe = "AES_256_GCM", "SECP_384_R1"
		}
		if c.mutAuth == "" {
			c.mutAuth = "none"
		}
		if c.variant == "" {
			c.variant = c.alg.variant
		}
		return c
	}
	for _, mut := range matrixMutAuthModes {
		// Authentication: every version and algorithm.
		for _, v := range []secchan.Version{secchan.V10, secchan.V11, secchan.V12, secchan.V13} {
			for _, a := range matrixAlgs {
				if v >= a.minV {
					cs = append(cs, def(mCase{v: v, alg: a, session: "none", mutAuth: mut}))
				}
			}
		}
		// Sessions: every version, AEAD and group, both kinds.
		for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
			for _, s := range matrixSuites {
				for _, kind := range []string{"KEY_EX", "PSK"} {
					cs = append(cs, def(mCase{v: v, alg: p384, session: kind, aead: s[0], dhe: s[1], mutAuth: mut}))
				}
			}
		}
		// A KEY_EXCHANGE session signed with each other algorithm.
		for _, a := range matrixAlgs {
			if a.asym != p384.asym {
				cs = append(cs, def(mCase{v: max(secchan.V12, a.minV), alg: a, session: "KEY_EX", mutAuth: mut}))
			}
		}
		// Slot 1, and a handshake in the clear (libspdm's requester asks;
		// ours does not implement it, so there the case is a plain one).
		for _, v := range []secchan.Version{secchan.V12, secchan.V13} {
			cs = append(cs, def(mCase{v: v, alg: p384, session: "KEY_EX", slot: 1, mutAuth: mut}))
			cs = append(cs, def(mCase{v: v, alg: p384, session: "KEY_EX", inClear: true, mutAuth: mut}))
		}
	}
	// Long chains, read in portions (1.1) or whole with CHUNK (1.2+).
	for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
		for _, ch := range []string{"long32k", "long64k"} {
			cs = append(cs, def(mCase{v: v, alg: algByName("RSASSA_2048"), session: "none", chain: ch}))
		}
	}
	// A 256-byte DataTransferSize. 1.1 has no CHUNK: only tried, to show
	// that libspdm cannot do it either.
	for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
		for _, kind := range []string{"none", "KEY_EX", "PSK"} {
			if v == secchan.V11 && kind != "none" {
				continue
			}
			cs = append(cs, def(mCase{variant: "small", v: v, alg: p384, session: kind}))
		}
	}
	return cs
}

// matrixBin returns the libspdm build for a variant, or "" with the
// reason it is missing.
func matrixBin(variant string) (string, string) {
	env := map[string]string{"normal": "LIBSPDM_EMU_BIN", "small": "LIBSPDM_EMU_BIN_SMALL", "openssl": "LIBSPDM_EMU_BIN_OPENSSL"}[variant]
	bin := os.Getenv(env)
	if bin == "" {
		return "", env + " not set: skipping the " + variant + " libspdm build's cases (see README, Interop tests)"
	}
	return bin, ""
}

// matrixTally counts outcomes per direction for the summary line.
type matrixTally struct {
	mu     sync.Mutex
	counts map[string]map[string]int // direction -> outcome -> n
	cannot map[string][]string       // direction -> cases libspdm cannot do
}

func (m *matrixTally) add(dir, outcome, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts[dir] == nil {
		m.counts[dir] = map[string]int{}
	}
	m.counts[dir][outcome]++
	if outcome == "libspdm-cannot" {
		m.cannot[dir] = append(m.cannot[dir], name)
	}
}

func (m *matrixTally) report(t *testing.T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dirs := make([]string, 0, len(m.counts))
	for d := range m.counts {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		c := m.counts[d]
		t.Logf("matrix %-7s passed %d, failed %d, libspdm cannot do %d, skipped %d", d, c["passed"], c["failed"], c["libspdm-cannot"], c["skipped"])
		for _, n := range m.cannot[d] {
			t.Logf("matrix %-7s libspdm cannot do: %s", d, n)
		}
	}
}

// record runs fn as one case, counting its outcome.
func (m *matrixTally) record(t *testing.T, dir string, c mCase) {
	t.Cleanup(func() {
		switch {
		case t.Failed():
			m.add(dir, "failed", c.name())
		case t.Skipped() && strings.HasPrefix(skipReason(t), "libspdm cannot"):
			m.add(dir, "libspdm-cannot", c.name())
		case t.Skipped():
			m.add(dir, "skipped", c.name())
		default:
			m.add(dir, "passed", c.name())
		}
	})
}

var skipReasons sync.Map // test name -> reason

func skipCase(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	skipReasons.Store(t.Name(), msg)
	t.Skip(msg)
}

func skipReason(t *testing.T) string {
	v, _ := skipReasons.Load(t.Name())
	s, _ := v.(string)
	return s
}

// TestInteropMatrix walks the matrix in the three directions. Cases run in
// parallel (go test -parallel bounds them); each libspdm emulator serves
// one case and exits.
func TestInteropMatrix(t *testing.T) {
	tally := &matrixTally{counts: map[string]map[string]int{}, cannot: map[string][]string{}}
	cases := matrixCases()
	t.Run("group", func(t *testing.T) {
		for _, c := range cases {
			t.Run("ours/"+c.name(), func(t *testing.T) {
				tally.record(t, "ours", c)
				t.Parallel()
				matrixOurs(t, c)
			})
			t.Run("theirs/"+c.name(), func(t *testing.T) {
				tally.record(t, "theirs", c)
				t.Parallel()
				matrixTheirs(t, c)
			})
			t.Run("devsim/"+c.name(), func(t *testing.T) {
				tally.record(t, "devsim", c)
				t.Parallel()
				matrixDevsim(t, c)
			})
		}
	})
	tally.report(t)
}

// matrixEnv is a libspdm bin directory for one case: the build's own, or
// a private overlay whose RSA-2048 sample identity is a long chain.
func matrixEnv(t *testing.T, c mCase) (bin string) {
	t.Helper()
	bin, why := matrixBin(c.variant)
	if bin == "" {
		skipCase(t, "%s", why)
	}
	if c.chain == "" {
		return bin
	}
	prefix := filepath.Join(bin, "long_chains", matrixLongChains[c.chain])
	return overlayBin(t, bin, c.alg.dir, map[string]string{
		"ca.cert.der":                    prefix + "_ca.cert.der",
		"bundle_responder.certchain.der": prefix + "_bundle_responder.certchain.der",
		"end_responder.key":              prefix + "_end_responder.key",
	})
}

// overlayBin makes a directory that looks like bin (symbolic links)
// except that dir's files named in files come from elsewhere.
func overlayBin(t *testing.T, bin, dir string, files map[string]string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == dir || e.Name() == "test.log" {
			continue
		}
		if err := os.Symlink(filepath.Join(bin, e.Name()), filepath.Join(out, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := os.ReadDir(filepath.Join(bin, dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(out, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range sub {
		src := filepath.Join(bin, dir, e.Name())
		if o, ok := files[e.Name()]; ok {
			src = o
		}
		if err := os.Symlink(src, filepath.Join(out, dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// responderArgs are spdm_responder_emu's flags for a case. A
// mutual-authentication mode other than "none" sets --mut_auth and
// --basic_mut_auth here, and the requester's identity in
// runOurRequester and requesterArgs.
func responderArgs(c mCase) []string {
	args := []string{"--ver", c.v.String(), "--asym", c.alg.asym, "--hash", c.alg.hash, "--aead", c.aead, "--dhe", c.dhe,
		"--mut_auth", "NO", "--basic_mut_auth", "NO"}
	if c.chain != "" {
		// Its other slots keep the sample chains, which the overlay's
		// root does not anchor: its requester would print FAIL for them.
		args = append(args, "--slot_count", "1")
	}
	return args
}

// requesterArgs are spdm_requester_emu's flags for a case.
func requesterArgs(c mCase) []string {
	caps := "CERT,CHAL,ENCRYPT,MAC,KEY_EX,PSK,HBEAT,KEY_UPD"
	if c.v >= secchan.V12 {
		caps += ",CHUNK"
	}
	if c.inClear {
		caps += ",HANDSHAKE_IN_CLEAR"
	}
	session := "MEAS" // no KEY_EX or PSK: no session is opened
	switch c.session {
	case "KEY_EX":
		session = "KEY_EX,HEARTBEAT,KEY_UPDATE,MEAS"
	case "PSK":
		session = "PSK,HEARTBEAT,KEY_UPDATE,MEAS"
	}
	return []string{"--ver", c.v.String(), "--asym", c.alg.asym, "--hash", c.alg.hash, "--aead", c.aead, "--dhe", c.dhe,
		"--slot_id", strconv.Itoa(int(c.slot)), "--exe_conn", "DIGEST,CERT,CHAL,MEAS", "--exe_session", session, "--cap", caps}
}

// execRequesterEmu runs spdm_requester_emu from bin against addr and
// checks its verdict.
func execRequesterEmu(bin, addr string, args []string) (string, error) {
	out, err := execRequesterEmuRaw(bin, addr, args)
	if err == nil {
		err = requesterEmuVerdict(out, args)
	}
	return out, err
}

// execRequesterEmuRaw runs spdm_requester_emu from bin against addr
// (PCI_DOE), bounded to two minutes.
func execRequesterEmuRaw(bin, addr string, args []string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"--trans", "PCI_DOE", "--ip", host, "--port", port}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "spdm_requester_emu"), all...)
	cmd.Dir = bin
	cmd.Env = os.Environ()
	if pre := os.Getenv("LIBSPDM_NODELAY_PRELOAD"); pre != "" && fileExists(pre) {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+pre)
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// requesterEmuVerdict checks libspdm's requester output: no failure or
// error line, and every verification the flows imply reported PASS.
func requesterEmuVerdict(out string, args []string) error {
	for _, bad := range []string{"- FAIL", "ERROR: "} {
		if i := strings.Index(out, bad); i >= 0 {
			line := out[i:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			return fmt.Errorf("spdm_requester_emu reported %q", line)
		}
	}
	var joined, caps string // the --exe_session and --cap lists
	for i := range args {
		if i+1 < len(args) {
			switch args[i] {
			case "--exe_session":
				joined = args[i+1]
			case "--cap":
				caps = args[i+1]
			}
		}
	}
	want := []string{"verify_peer_cert_chain_buffer - PASS", "verify_challenge_signature - PASS", "verify_measurement_signature - PASS"}
	if strings.Contains(joined, "KEY_EX") {
		want = append(want, "verify_key_exchange_signature - PASS", "SPDM_FINISH_RSP")
		if !strings.Contains(caps, "HANDSHAKE_IN_CLEAR") {
			// In the clear, KEY_EXCHANGE_RSP carries no verify data.
			want = append(want, "verify_key_exchange_hmac - PASS")
		}
	}
	if strings.Contains(joined, "PSK") {
		want = append(want, "verify_psk_exchange_rsp_hmac - PASS", "SPDM_PSK_FINISH_RSP")
	}
	if strings.Contains(joined, "HEARTBEAT") {
		want = append(want, "SPDM_HEARTBEAT_ACK", "SPDM_KEY_UPDATE_ACK", "SPDM_END_SESSION_ACK")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			return fmt.Errorf("spdm_requester_emu did not report %q", w)
		}
	}
	return nil
}

// libspdmSelf runs the case between libspdm's own requester and responder
// and returns nil if libspdm completes it.
func libspdmSelf(t *testing.T, bin string, c mCase) (string, error) {
	t.Helper()
	_, addr := startResponderEmu(t, bin, responderArgs(c)...)
	return execRequesterEmu(bin, addr, requesterArgs(c))
}

// failOrCannot fails the case, unless libspdm fails it against itself too.
func failOrCannot(t *testing.T, bin string, c mCase, err error, out string) {
	t.Helper()
	selfOut, selfErr := libspdmSelf(t, bin, c)
	if selfErr != nil {
		skipCase(t, "libspdm cannot do this against itself (%v; its requester's last lines:\n%s)\nthis direction: %v", selfErr, tail(selfOut, 8), err)
	}
	t.Fatalf("%v\n%s\n(libspdm's requester and responder complete this case together)", err, tail(out, 30))
}

// matrixOurs: our requester against libspdm's responder.
func matrixOurs(t *testing.T, c mCase) {
	bin := matrixEnv(t, c)
	var roots []*x509.Certificate
	roots = append(roots, libspdmRoot(t, bin, c.alg.dir))
	if c.slot != 0 {
		der, err := os.ReadFile(filepath.Join(bin, c.alg.dir, "ca1.cert.der"))
		if err != nil {
			t.Fatal(err)
		}
		ca1, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, ca1)
	}
	emu, addr := startResponderEmu(t, bin, responderArgs(c)...)
	err := runOurRequester(addr, c, roots, 0)
	if err != nil {
		failOrCannot(t, bin, c, err, emu.stdout.String())
	}
}

// matrixTheirs: libspdm's requester against devsim.
func matrixTheirs(t *testing.T, c mCase) {
	bin := matrixEnv(t, c)
	dir := filepath.Join(bin, c.alg.dir)
	ids := []secchan.Identity{libspdmIdentity(t, dir, "bundle_responder.certchain.der", "end_responder.key")}
	if c.slot != 0 {
		// Slot 1: libspdm's second sample chain, for the same key.
		ids = append(ids, libspdmIdentity(t, dir, "bundle_responder.certchain1.der", "end_responder.key"))
	}
	addr := serveMatrixDevsim(t, ids)
	out, err := execRequesterEmu(bin, addr, requesterArgs(c))
	if err != nil {
		failOrCannot(t, bin, c, err, out)
	}
}

// matrixDevsim: our requester against devsim with identities made here;
// the small variant is our requester's 256-byte DataTransferSize.
func matrixDevsim(t *testing.T, c mCase) {
	depth, filler := 3, 0
	switch c.chain {
	case "long32k":
		depth, filler = 25, 800
	case "long64k":
		depth, filler = 49, 800
	}
	m := matrixIdentity(t, c.alg.asym, depth, filler)
	ids := []secchan.Identity{m.id}
	roots := []*x509.Certificate{m.root}
	if c.slot != 0 {
		m1 := matrixIdentity(t, c.alg.asym, 4, 0)
		ids = append(ids, m1.id)
		roots = append(roots, m1.root)
	}
	addr := serveMatrixDevsim(t, ids)
	dts := uint32(0)
	if c.variant == "small" {
		dts = 256
	}
	if err := runOurRequester(addr, c, roots, dts); err != nil {
		if c.variant == "small" && c.v < secchan.V12 {
			// Without CHUNK (1.1) a 256-byte transfer cannot carry a
			// signed response: the failure must say so.
			if errors.Is(err, secchan.ErrCodeResponseTooLarge) || strings.Contains(err.Error(), "too large") || strings.Contains(err.Error(), "ResponseTooLarge") {
				skipCase(t, "SPDM 1.1 has no CHUNK: %v", err)
			}
		}
		t.Fatal(err)
	}
}

// serveMatrixDevsim serves devsim with ids (one slot each) on loopback.
func serveMatrixDevsim(t *testing.T, ids []secchan.Identity) string {
	t.Helper()
	vf, _, err := devsim.NewSPDMVF(ids, devsim.NewMeasurements())
	if err != nil {
		t.Fatal(err)
	}
	// Cases run in parallel: a port picked free a moment ago may be
	// another case's by now.
	return serveLoopback(t, &doe.Server{Mailbox: vf.Driver()})
}

// runOurRequester runs the case's flows with our requester at addr:
// authentication (digests, certificate of the slot, challenge, signed
// measurements), then the session with heartbeat, key updates and
// measurements inside. The connection ends with SHUTDOWN.
func runOurRequester(addr string, c mCase, roots []*x509.Certificate, dts uint32) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	mb, err := doe.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer mb.Close()
	cfg := secchan.DefaultRequesterConfig()
	cfg.Validator = &secchan.AnchorValidator{Roots: roots}
	cfg.Versions = []secchan.Version{c.v}
	cfg.BaseAsym, cfg.BaseHash = c.alg.asymBit, c.alg.hashBit
	cfg.AEAD, cfg.DHE = matrixAEAD[c.aead], matrixDHE[c.dhe]
	if dts != 0 {
		cfg.DataTransferSize = dts
	}
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: mb}, cfg)
	if err := q.Connect(ctx); err != nil {
		return err
	}
	if _, err := q.GetDigests(ctx); err != nil {
		return err
	}
	chain, err := q.GetCertificate(ctx, c.slot)
	if err != nil {
		return err
	}
	if c.chain != "" && len(chain.Certs) < 10 {
		return fmt.Errorf("long chain has only %d certificates", len(chain.Certs))
	}
	if _, err := q.Challenge(ctx, c.slot, secchan.SummaryAll); err != nil {
		return err
	}
	res, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true, Slot: c.slot})
	if err != nil {
		return err
	}
	if len(res.Blocks) == 0 || !res.Signed {
		return fmt.Errorf("measurements: %d blocks, signed %v", len(res.Blocks), res.Signed)
	}
	neg := q.Negotiated()
	if neg.BaseAsym != c.alg.asymBit || neg.BaseHash != c.alg.hashBit {
		return fmt.Errorf("negotiated %s/%s, want %s/%s", secchan.AsymName(neg.BaseAsym), secchan.HashName(neg.BaseHash), c.alg.asym, c.alg.hash)
	}
	var ss *secchan.SecureSession
	switch c.session {
	case "none":
		return nil
	case "KEY_EX":
		ss, err = q.KeyExchange(ctx, secchan.SessionOptions{Slot: c.slot, Summary: secchan.SummaryAll})
	case "PSK":
		ss, err = q.PSKExchange(ctx, secchan.SessionOptions{PSK: libspdmPSK, PSKHint: libspdmHint})
	}
	if err != nil {
		return err
	}
	if got := secchan.AEADName(ss.AEAD()); got != c.aead {
		return fmt.Errorf("session AEAD %s, want %s", got, c.aead)
	}
	for _, step := range []func() error{
		func() error { return ss.Heartbeat(ctx) },
		func() error { return ss.KeyUpdate(ctx, false) },
		func() error { return ss.KeyUpdate(ctx, true) },
		func() error {
			r, err := ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true, Slot: c.slot})
			if err == nil && len(r.Blocks) == 0 {
				err = errors.New("no measurement blocks inside the session")
			}
			return err
		},
		func() error { return ss.End(ctx) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("in the session: %w", err)
		}
	}
	return nil
}
