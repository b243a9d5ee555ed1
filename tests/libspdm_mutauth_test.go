package tests

// Mutual authentication with libspdm's emulators (issue 16, finding 2),
// gated by LIBSPDM_EMU_BIN: our requester answers spdm_responder_emu's
// --mut_auth and --basic_mut_auth modes with libspdm's sample requester
// identity, and libspdm's spdm_requester_emu answers devsim asking in the
// same modes.

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// libspdmRequesterIdentity loads libspdm's sample requester identity of
// dir (ecp256, ecp384, rsa3072, ...).
func libspdmRequesterIdentity(t *testing.T, bin, dir string) secchan.Identity {
	t.Helper()
	chain, err := os.ReadFile(filepath.Join(bin, dir, "bundle_requester.certchain.der"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(bin, dir, "end_requester.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := devsim.LoadIdentity(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestLibspdmResponderMutualAuthModes: spdm_responder_emu asks for mutual
// authentication in each of its modes; our requester completes
// authentication and a session, and the asking shows on our side
// (CHALLENGE_AUTH's bit, KEY_EXCHANGE_RSP's MutAuthRequested, the
// encapsulated requests answered).
func TestLibspdmResponderMutualAuthModes(t *testing.T) {
	bin := libspdmBin(t)
	for _, alg := range []struct{ dir, asym, hash string }{
		{"ecp384", "ECDSA_P384", "SHA_384"},
		{"rsa3072", "RSAPSS_3072", "SHA_384"}, // finding 3: a responder limited to RSAPSS
	} {
		for _, mode := range []struct{ mut, basic string }{
			{"NO", "BASIC"}, {"W_ENCAP", "NO"}, {"DIGESTS", "NO"}, {"WO_ENCAP", "NO"}, {"W_ENCAP", "BASIC"},
		} {
			for _, v := range []string{"1.1", "1.2", "1.3"} {
				if mode.mut == "WO_ENCAP" && v == "1.1" {
					continue
				}
				if alg.dir == "rsa3072" && v == "1.1" {
					continue // RSAPSS exists from 1.2
				}
				t.Run(alg.dir+"/"+mode.mut+"+"+mode.basic+"/"+v, func(t *testing.T) {
					ver, _ := secchan.ParseVersion(v)
					_, addr := startResponderEmu(t, bin, "--ver", v, "--mut_auth", mode.mut, "--basic_mut_auth", mode.basic,
						"--req_asym", alg.asym, "--hash", alg.hash, "--asym", "ECDSA_P384")
					id := libspdmRequesterIdentity(t, bin, alg.dir)
					cfg := trusting(libspdmRoot(t, bin, "ecp384"))
					cfg.Versions = []secchan.Version{ver}
					cfg.MutualAuth = &id
					c := dialT(t, addr)
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					q := secchan.NewRequester(&secchan.DOETransport{Mailbox: c}, cfg)
					if err := q.Connect(ctx); err != nil {
						t.Fatal(err)
					}
					if _, err := q.GetDigests(ctx); err != nil {
						t.Fatal(err)
					}
					if _, err := q.GetCertificate(ctx, 0); err != nil {
						t.Fatal(err)
					}
					cr, err := q.Challenge(ctx, 0, secchan.SummaryNone)
					if err != nil {
						t.Fatal(err)
					}
					if (cr.BasicMutualAuth != nil) != (mode.basic == "BASIC") {
						t.Fatalf("basic mutual authentication ran: %+v, asked: %s", cr.BasicMutualAuth, mode.basic)
					}
					ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if encap := mode.mut == "W_ENCAP" || mode.mut == "DIGESTS"; (ss.Encap != nil) != encap {
						t.Fatalf("session mutual authentication with encapsulated requests: %+v", ss.Encap)
					}
					exerciseSession(t, ctx, ss, true)
					c.Release()
				})
			}
		}
	}
}

// TestLibspdmRequesterMutualAuthAgainstDevsim: devsim asks
// spdm_requester_emu for mutual authentication in each mode, with
// libspdm's sample requester root as its anchor, and libspdm's requester
// completes every flow.
func TestLibspdmRequesterMutualAuthAgainstDevsim(t *testing.T) {
	bin := libspdmBin(t)
	reqRoot := libspdmRoot(t, bin, "ecp384")
	id := libspdmRequesterIdentity(t, bin, "ecp384")
	for _, mode := range []struct {
		name string
		ma   devsim.MutualAuth
	}{
		{"basic", devsim.MutualAuth{Basic: true, Anchors: []*x509.Certificate{reqRoot}}},
		{"W_ENCAP", devsim.MutualAuth{Session: "W_ENCAP", Anchors: []*x509.Certificate{reqRoot}}},
		{"DIGESTS", devsim.MutualAuth{Session: "DIGESTS", Anchors: []*x509.Certificate{reqRoot}}},
		{"WO_ENCAP", devsim.MutualAuth{Session: "WO_ENCAP", RequesterChain: id.Chain}},
	} {
		for _, v := range []string{"1.1", "1.2", "1.3"} {
			if mode.name == "WO_ENCAP" && v == "1.1" {
				continue
			}
			t.Run(mode.name+"/"+v, func(t *testing.T) {
				addr, rsp := devsimLibspdmMutual(t, bin, "ecp384", mode.ma)
				out := runRequesterEmu(t, bin, addr, "--ver", v, "--asym", "ECDSA_P384", "--hash", "SHA_384", "--req_asym", "ECDSA_P384",
					"--exe_conn", "DIGEST,CERT,CHAL,MEAS", "--exe_session", "KEY_EX,HEARTBEAT,KEY_UPDATE,MEAS",
					"--cap", "CERT,CHAL,ENCRYPT,MAC,KEY_EX,HBEAT,KEY_UPD,MUT_AUTH,ENCAP")
				if strings.Contains(out, "- FAIL") || !strings.Contains(out, "SPDM_FINISH_RSP") {
					t.Fatalf("spdm_requester_emu:\n%s", tail(out, 40))
				}
				if mode.name != "WO_ENCAP" {
					if res := rsp.MutualAuth(); res == nil || res.Err != nil || res.Chain == nil {
						t.Fatalf("devsim's record: %+v\n%s", res, tail(out, 40))
					}
				}
			})
		}
	}
}

// devsimLibspdmMutual serves devsim with libspdm's sample responder
// identity of dir, asking for mutual authentication as ma says.
func devsimLibspdmMutual(t *testing.T, bin, dir string, ma devsim.MutualAuth) (string, *secchan.Responder) {
	t.Helper()
	chain, err := os.ReadFile(filepath.Join(bin, dir, "bundle_responder.certchain.der"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(bin, dir, "end_responder.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := devsim.LoadIdentity(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	vf, rsp, err := devsim.NewSPDMVF([]secchan.Identity{id}, devsim.NewMeasurements(), devsim.WithMutualAuth(ma))
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	serve(t, &doe.Server{Mailbox: vf.Driver(), Commands: map[uint32]doe.CommandHandler{
		doe.CommandOOBEncapKeyUpdate: func(_ context.Context, _ uint32, p []byte) error {
			sid := rsp.LatestSession()
			if len(p) == 4 {
				sid = binary.LittleEndian.Uint32(p)
			}
			return rsp.StartEncapKeyUpdate(sid)
		},
	}}, addr)
	return addr, rsp
}

// TestLibspdmRequesterEncapKeyUpdateAgainstDevsim: spdm_requester_emu
// --key_upd RSP sends the out-of-band command 0x8001, then
// GET_ENCAPSULATED_REQUEST in its session, and devsim's encapsulated
// KEY_UPDATE completes (issue 16, findings 2 and 6).
func TestLibspdmRequesterEncapKeyUpdateAgainstDevsim(t *testing.T) {
	bin := libspdmBin(t)
	for _, v := range []string{"1.1", "1.2", "1.3"} {
		t.Run(v, func(t *testing.T) {
			addr, _ := devsimLibspdmMutual(t, bin, "ecp384", devsim.MutualAuth{})
			out := runRequesterEmu(t, bin, addr, "--ver", v, "--asym", "ECDSA_P384", "--hash", "SHA_384", "--key_upd", "RSP",
				"--exe_session", "KEY_EX,KEY_UPDATE,HEARTBEAT", "--cap", "CERT,CHAL,ENCRYPT,MAC,KEY_EX,HBEAT,KEY_UPD,ENCAP")
			// libspdm's requester fetched the KEY_UPDATE, moved devsim's
			// key, and the session went on to END_SESSION under it.
			for _, want := range []string{"msg SPDM_ENCAPSULATED_REQUEST(0x6a)", "libspdm_activate_update_session_data_key", "SPDM_END_SESSION_ACK"} {
				if !strings.Contains(out, want) {
					t.Fatalf("spdm_requester_emu did not show %q:\n%s", want, tail(out, 60))
				}
			}
			if strings.Contains(out, "- FAIL") || strings.Contains(out, "fail") {
				t.Fatalf("spdm_requester_emu reported a failure:\n%s", tail(out, 60))
			}
		})
	}
}
