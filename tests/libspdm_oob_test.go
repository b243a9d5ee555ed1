package tests

import (
	"strings"
	"testing"
)

// TestLibspdmRequesterOOBKeyUpdate is issue 16's finding 6: spdm-emu's
// requester with --key_upd RSP sends the out-of-band socket command 0x8001
// (start an encapsulated KEY_UPDATE) and reads the reply into a
// zero-length buffer. devsim's server answers it with an empty UNKNOWN
// frame, so the stream stays in step: the rest of the session (in-session
// measurements, END_SESSION) completes. Whether the encapsulated
// KEY_UPDATE itself happens is the encapsulated-request work's to check.
func TestLibspdmRequesterOOBKeyUpdate(t *testing.T) {
	bin := libspdmBin(t)
	addr, _ := devsimWithLibspdmIdentity(t, bin, "ecp384")
	out, _ := execRequesterEmu(bin, addr, []string{"--ver", "1.2", "--exe_conn", "DIGEST,CERT,CHAL,MEAS",
		"--exe_session", "KEY_EX,KEY_UPDATE,MEAS", "--key_upd", "RSP", "--cap", "CERT,CHAL,ENCRYPT,MAC,KEY_EX,PSK,HBEAT,KEY_UPD,CHUNK"})
	if strings.Contains(out, "SOCKET_SPDM_COMMAND_OOB_ENCAP_KEY_UPDATE fail") || strings.Contains(out, "buffer too small") {
		t.Fatalf("spdm_requester_emu could not read the reply to 0x8001:\n%s", tail(out, 30))
	}
	for _, w := range []string{"verify_key_exchange_hmac - PASS", "SPDM_END_SESSION_ACK"} {
		if !strings.Contains(out, w) {
			t.Fatalf("after 0x8001 the session did not complete (no %q):\n%s", w, tail(out, 30))
		}
	}
	if i, j := strings.Index(out, "Platform port Transmit command: 00 00 80 01"), strings.LastIndex(out, "SPDM_END_SESSION_ACK"); i >= 0 && j < i {
		t.Fatalf("END_SESSION_ACK came before 0x8001 was sent:\n%s", tail(out, 30))
	}
}
