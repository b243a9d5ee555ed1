package tests

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
	"github.com/devattest/devattest/secchan"
)

// devsimWithLibspdmIdentity serves devsim on a loopback TCP port with
// libspdm's sample identity from dir (ecp256, ecp384), so that libspdm's
// requester trusts it.
func devsimWithLibspdmIdentity(t *testing.T, bin, dir string) (string, *devsim.Function) {
	t.Helper()
	id := libspdmIdentity(t, filepath.Join(bin, dir), "bundle_responder.certchain.der", "end_responder.key")
	vf, _, err := devsim.NewSPDMVF([]secchan.Identity{id}, devsim.NewMeasurements())
	if err != nil {
		t.Fatal(err)
	}
	return serveLoopback(t, &doe.Server{Mailbox: vf.Driver()}), vf
}

// libspdmIdentity loads one of libspdm's sample identities: a chain
// (root first) and its leaf's PEM key, both in dir.
func libspdmIdentity(t *testing.T, dir, chainFile, keyFile string) secchan.Identity {
	t.Helper()
	chain, err := os.ReadFile(filepath.Join(dir, chainFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := devsim.LoadIdentity(chain, key)
	if err != nil {
		t.Fatalf("%s with %s: %v", chainFile, keyFile, err)
	}
	return id
}

// runRequesterEmu runs libspdm's spdm_requester_emu against addr with the
// authentication flows and the session flows (KEY_EXCHANGE and PSK, each
// with HEARTBEAT, KEY_UPDATE and measurements inside), and returns its
// output.
func runRequesterEmu(t *testing.T, bin, addr string, args ...string) string {
	t.Helper()
	all := append([]string{"--exe_conn", "DIGEST,CERT,CHAL,MEAS",
		"--exe_session", "KEY_EX,PSK,HEARTBEAT,KEY_UPDATE,MEAS", "--cap", "CERT,CHAL,ENCRYPT,MAC,KEY_EX,PSK,HBEAT,KEY_UPD"}, args...)
	out, err := execRequesterEmuRaw(bin, addr, all)
	if err != nil {
		t.Fatalf("spdm_requester_emu %v: %v\n%s", all, err, tail(out, 40))
	}
	return out
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// wantPasses checks that libspdm's requester verified what it must have.
func wantPasses(t *testing.T, out string, sessions bool) {
	t.Helper()
	want := []string{"verify_peer_cert_chain_buffer - PASS", "verify_challenge_signature - PASS", "verify_measurement_signature - PASS"}
	if sessions {
		want = append(want, "verify_key_exchange_signature - PASS", "verify_key_exchange_hmac - PASS", "verify_psk_exchange_rsp_hmac - PASS",
			"SPDM_FINISH_RSP", "SPDM_PSK_FINISH_RSP", "SPDM_HEARTBEAT_ACK", "SPDM_KEY_UPDATE_ACK", "SPDM_END_SESSION_ACK")
	}
	for _, s := range want {
		if !strings.Contains(out, s) {
			t.Fatalf("spdm_requester_emu did not report %q\n%s", s, tail(out, 40))
		}
	}
	if strings.Contains(out, "- FAIL") {
		t.Fatalf("spdm_requester_emu reported a failure\n%s", tail(out, 40))
	}
}

// TestLibspdmRequesterAgainstDevsim runs libspdm's requester against
// devsim (DIGEST, CERT, CHAL, MEAS) for every version and both key types.
func TestLibspdmRequesterAgainstDevsim(t *testing.T) {
	bin := libspdmBin(t)
	for _, alg := range []struct{ dir, asym, hash string }{
		{"ecp256", "ECDSA_P256", "SHA_256"},
		{"ecp384", "ECDSA_P384", "SHA_384"},
	} {
		for _, v := range []string{"1.0", "1.1", "1.2", "1.3"} {
			t.Run(v+"/"+alg.asym, func(t *testing.T) {
				addr, vf := devsimWithLibspdmIdentity(t, bin, alg.dir)
				out := runRequesterEmu(t, bin, addr, "--ver", v, "--asym", alg.asym, "--hash", alg.hash)
				wantPasses(t, out, v != "1.0") // sessions exist from 1.1
				if vf.Stats().Requests == 0 {
					t.Fatal("devsim saw no request")
				}
			})
		}
	}
}

// TestLibspdmRequesterThroughShim runs libspdm's requester through the
// host shim to devsim.
func TestLibspdmRequesterThroughShim(t *testing.T) {
	bin := libspdmBin(t)
	devAddr, _ := devsimWithLibspdmIdentity(t, bin, "ecp384")
	backend := &hostshim.SocketBackend{Addr: devAddr}
	t.Cleanup(func() { backend.Close() })
	med := hostshim.NewMediator(backend, hostshim.Options{VF: "devsim"})
	shimAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	serve(t, &doe.Server{Connect: med.Connect}, shimAddr)
	wantPasses(t, runRequesterEmu(t, bin, shimAddr), true)
}
