package tests

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

// libspdmSession starts spdm_responder_emu (no mutual authentication),
// authenticates it and opens a KEY_EXCHANGE session, within a minute.
func libspdmSession(t *testing.T) (context.Context, *secchan.Requester, *secchan.SecureSession) {
	t.Helper()
	bin := libspdmBin(t)
	_, addr := startResponderEmu(t, bin, "--mut_auth", "NO", "--basic_mut_auth", "NO")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	q := authenticate(t, dialT(t, addr), trusting(libspdmRoot(t, bin, "ecp384")))
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, q, ss
}

// TestLibspdmResponderIDEKM runs our IDE_KM requester inside a
// KEY_EXCHANGE session with libspdm's spdm_responder_emu (its sample
// IDE_KM device: port 1 only after QUERY 1, zero-filled registers).
func TestLibspdmResponderIDEKM(t *testing.T) {
	ctx, q, ss := libspdmSession(t)
	rp := &ide.SimRootPort{}
	r, err := ide.NewRequester(ss, q.Negotiated().Version, rp)
	if err != nil {
		t.Fatal(err)
	}
	const port, stream = 1, 0
	qr, err := r.Query(ctx, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QUERY_RESP: port %d, max port %d, capability 0x%08x, %d zero DWs", qr.PortIndex, qr.MaxPortIndex, qr.Cap, qr.ZeroDWs)
	if err := r.ProgramKeySet(ctx, port, stream, ide.K0); err != nil {
		t.Fatal(err)
	}
	if err := r.Go(ctx, port, stream, ide.K0); err != nil {
		t.Fatal(err)
	}
	if ks, err := r.Rotate(ctx, port, stream); err != nil || ks != ide.K1 {
		t.Fatalf("rotate: %v %v", ks, err)
	}
	if err := r.Stop(ctx, port, stream); err != nil {
		t.Fatal(err)
	}
	if err := ss.End(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLibspdmRequesterIDEKMAgainstDevsim runs spdm_requester_emu's APP
// flow (PCI IDE_KM, then TDISP, CXL IDE_KM, CXL TSP) against devsim with
// its IDE_KM responder and its TDI. IDE_KM and then TDISP (version,
// capabilities, lock on the keyed stream, the report from devsim's BARs in
// 0x40-byte portions, start with the lock's nonce, stop, the state after
// each) must succeed; devsim answers CXL with ERROR(UnsupportedRequest),
// and the requester's exit status then is logged, not required.
func TestLibspdmRequesterIDEKMAgainstDevsim(t *testing.T) {
	bin := libspdmBin(t)
	addr, vf := devsimWithLibspdmIdentity(t, bin, "ecp384")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"--trans", "PCI_DOE", "--ip", host, "--port", port, "--exe_conn", "DIGEST,CERT",
		"--exe_session", "KEY_EX,APP", "--cap", "CERT,CHAL,ENCRYPT,MAC,KEY_EX,PSK,HBEAT,KEY_UPD"}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "spdm_requester_emu"), args...)
	cmd.Dir = bin
	cmd.Env = os.Environ()
	if pre := os.Getenv("LIBSPDM_NODELAY_PRELOAD"); pre != "" && fileExists(pre) {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+pre)
	}
	out, err := cmd.CombinedOutput()
	s := string(out)
	t.Logf("spdm_requester_emu exit: %v; last lines:\n%s", err, tail(s, 8))
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "key_prog") || strings.Contains(l, "key_set_go") || strings.Contains(l, "key_set_stop") ||
			strings.Contains(l, "max_port_index") || strings.Contains(strings.ToLower(l), "tdisp") || strings.Contains(l, "status") {
			t.Log(strings.TrimSpace(l))
		}
	}
	for _, kss := range []string{"K0|RX|PR", "K0|RX|NPR", "K0|RX|CPL", "K0|TX|PR", "K0|TX|NPR", "K0|TX|CPL"} {
		if !strings.Contains(s, "key_prog "+kss+" - 00") {
			t.Errorf("no successful KEY_PROG %s in the requester's output:\n%s", kss, tail(s, 60))
		}
	}
	// spdm-emu's TDISP flow, in order, each line its own success.
	rest := s
	for _, want := range []string{"get_version done", "tdi_state: 0x00", "tdi_state: 0x01", "mmio_range_count      - 0x00000003",
		"device_info_len       - 0x00000010", "start_interface done", "tdi_state: 0x02", "stop_interface done", "tdi_state: 0x00"} {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Fatalf("the requester's TDISP flow lacks %q (in order):\n%s", want, tail(s, 80))
		}
		rest = rest[i+len(want):]
	}
	if st := vf.TDI().State(); st != tdisp.StateConfigUnlocked {
		t.Errorf("devsim's TDI is %v after the requester's STOP", st)
	}
}
