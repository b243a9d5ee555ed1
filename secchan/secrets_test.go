package secchan_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/secchan"
)

// TestNoKeyMaterialInLogsOrErrors runs a session with debug logging and a
// failing key update, and checks that no secret of the session, nor the
// PSK, appears in the log or in any error, raw or in hex.
func TestNoKeyMaterialInLogsOrErrors(t *testing.T) {
	f := newFixture(t, secchan.ResponderConfig{Caps: devsim.SPDMVFCaps, PSKs: map[string][]byte{devsim.SamplePSKHint: []byte(devsim.SamplePSK)}})
	var log bytes.Buffer
	f.cfg.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	q := secchan.NewRequester(&tamperTransport{rsp: f.rsp}, f.cfg)
	if err := flow(ctx, q); err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	var errs []string
	for _, psk := range []bool{false, true} {
		var ss *secchan.SecureSession
		var err error
		if psk {
			ss, err = q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte(devsim.SamplePSK), PSKHint: []byte(devsim.SamplePSKHint)})
		} else {
			ss, err = q.KeyExchange(ctx, secchan.SessionOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secchan.SessionSecretsForTest(ss)...)
		if err := ss.KeyUpdate(ctx, true); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secchan.SessionSecretsForTest(ss)...)
		if err := ss.End(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ss.Heartbeat(ctx); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// A wrong PSK fails with an error that must not carry the keys either.
	if _, err := q.PSKExchange(ctx, secchan.SessionOptions{PSK: []byte("wrong key material"), PSKHint: []byte(devsim.SamplePSKHint)}); err != nil {
		errs = append(errs, err.Error())
	} else {
		t.Fatal("a wrong PSK opened a session")
	}
	if len(secrets) < 10 || len(errs) < 3 {
		t.Fatalf("collected %d secrets and %d errors: the test checks too little", len(secrets), len(errs))
	}
	secrets = append(secrets, []byte(devsim.SamplePSK), []byte("wrong key material"))
	text := log.String() + strings.Join(errs, "\n")
	if !strings.Contains(log.String(), "KEY_EXCHANGE") {
		t.Fatalf("debug log lacks the steps; nothing was logged to check:\n%s", log.String())
	}
	for _, s := range secrets {
		for _, form := range []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s))} {
			if len(form) >= 8 && strings.Contains(text, form) {
				t.Fatalf("a secret appears in the log or an error: %q", form)
			}
		}
	}
}
