package tests

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/secchan"
)

// libspdm's sample PSK and hint, each with its trailing NUL.
var (
	libspdmPSK, _ = hex.DecodeString("5465737450736b4461746100")
	libspdmHint   = []byte("TestPskHint\x00")
)

// exerciseSession runs every in-session step on ss and ends it.
func exerciseSession(t *testing.T, ctx context.Context, ss *secchan.SecureSession, measure bool) {
	t.Helper()
	if err := ss.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ss.KeyUpdate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := ss.KeyUpdate(ctx, true); err != nil {
		t.Fatal(err)
	}
	if measure {
		res, err := ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Blocks) == 0 {
			t.Fatal("no measurement blocks inside the session")
		}
	}
	if err := ss.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ss.Heartbeat(ctx); err == nil {
		t.Fatal("HEARTBEAT after END_SESSION succeeded")
	}
}

// TestLibspdmResponderSessions opens KEY_EXCHANGE and PSK sessions with
// libspdm's spdm_responder_emu for each version and AEAD.
func TestLibspdmResponderSessions(t *testing.T) {
	bin := libspdmBin(t)
	root := libspdmRoot(t, bin, "ecp384")
	for _, v := range []secchan.Version{secchan.V11, secchan.V12, secchan.V13} {
		for _, aead := range []struct{ flag, dhe string }{
			{"AES_128_GCM", "SECP_256_R1"}, {"AES_256_GCM", "SECP_384_R1"}, {"CHACHA20_POLY1305", "SECP_521_R1"},
		} {
			for _, psk := range []bool{false, true} {
				name := v.String() + "/" + aead.flag + "/KEY_EX"
				if psk {
					name = v.String() + "/" + aead.flag + "/PSK"
				}
				t.Run(name, func(t *testing.T) {
					_, addr := startResponderEmu(t, bin, "--mut_auth", "NO", "--basic_mut_auth", "NO", "--aead", aead.flag, "--dhe", aead.dhe)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					c := dialT(t, addr)
					cfg := trusting(root)
					cfg.Versions = []secchan.Version{v}
					q := authenticate(t, c, cfg)
					var ss *secchan.SecureSession
					var err error
					if psk {
						ss, err = q.PSKExchange(ctx, secchan.SessionOptions{PSK: libspdmPSK, PSKHint: libspdmHint})
					} else {
						ss, err = q.KeyExchange(ctx, secchan.SessionOptions{Summary: secchan.SummaryAll})
					}
					if err != nil {
						t.Fatal(err)
					}
					if got := secchan.AEADName(ss.AEAD()); got != aead.flag {
						t.Fatalf("session AEAD %s, responder offered %s", got, aead.flag)
					}
					exerciseSession(t, ctx, ss, true)
				})
			}
		}
	}
}

// TestLibspdmResponderChunkedInSession: with our DataTransferSize at the
// 1.2 minimum, libspdm's responder sends large responses with CHUNK_GET,
// in the clear during authentication and inside the session afterwards
// (signed MEASUREMENTS); the requester reads each in its own channel.
func TestLibspdmResponderChunkedInSession(t *testing.T) {
	bin := libspdmBin(t)
	root := libspdmRoot(t, bin, "ecp384")
	for _, v := range []secchan.Version{secchan.V12, secchan.V13} {
		t.Run(v.String(), func(t *testing.T) {
			_, addr := startResponderEmu(t, bin, "--mut_auth", "NO", "--basic_mut_auth", "NO")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := dialT(t, addr)
			cfg := trusting(root)
			cfg.Versions = []secchan.Version{v}
			cfg.DataTransferSize = secchan.MinDataTransferSize
			q := authenticate(t, c, cfg)
			ss, err := q.KeyExchange(ctx, secchan.SessionOptions{Summary: secchan.SummaryAll})
			if err != nil {
				t.Fatal(err)
			}
			res, err := ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true})
			if err != nil {
				t.Fatalf("signed MEASUREMENTS in the session with a %d-byte DataTransferSize: %v", cfg.DataTransferSize, err)
			}
			if len(res.Response) <= int(cfg.DataTransferSize) || !res.Signed {
				t.Fatalf("MEASUREMENTS of %d bytes (signed %v): not large enough to need chunks", len(res.Response), res.Signed)
			}
			exerciseSession(t, ctx, ss, true)
		})
	}
}

// TestLibspdmResponderWrongPSK: a PSK that differs from the responder's
// fails the handshake (the verify data does not match).
func TestLibspdmResponderWrongPSK(t *testing.T) {
	bin := libspdmBin(t)
	_, addr := startResponderEmu(t, bin, "--mut_auth", "NO", "--basic_mut_auth", "NO")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dialT(t, addr)
	cfg := trusting(libspdmRoot(t, bin, "ecp384"))
	q := authenticate(t, c, cfg)
	_, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte("not the PSK"), PSKHint: libspdmHint})
	if err == nil {
		t.Fatal("a session opened with the wrong PSK")
	}
}

// TestLibspdmResponderMutualAuth: with mutual authentication requested in
// KEY_EXCHANGE_RSP (no encapsulated requests), our requester signs FINISH
// with libspdm's sample requester identity, which the responder holds.
func TestLibspdmResponderMutualAuth(t *testing.T) {
	bin := libspdmBin(t)
	_, addr := startResponderEmu(t, bin, "--mut_auth", "WO_ENCAP", "--basic_mut_auth", "NO", "--req_asym", "ECDSA_P384")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dialT(t, addr)
	chain, err := os.ReadFile(filepath.Join(bin, "ecp384", "bundle_requester.certchain.der"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(bin, "ecp384", "end_requester.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := devsim.LoadIdentity(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := trusting(libspdmRoot(t, bin, "ecp384"))
	cfg.MutualAuth = &id
	q := authenticate(t, c, cfg)
	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exerciseSession(t, ctx, ss, false)
	c.Release() // CONTINUE: the responder serves one client at a time

	// Without an identity the requester refuses the mutual request.
	c2 := dialT(t, addr)
	cfg.MutualAuth = nil
	q2 := authenticate(t, c2, cfg)
	if _, err := q2.KeyExchange(ctx, secchan.SessionOptions{}); !errors.Is(err, secchan.ErrNegotiation) {
		t.Fatalf("KEY_EXCHANGE without an identity when mutual auth is requested: %v", err)
	}
}
