package main

// devsim's mutual authentication flags and the out-of-band socket command
// that starts an encapsulated KEY_UPDATE (spdm-emu's 0x8001).

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// mutAuthFlags are devsim's mutual-authentication flags, named after
// spdm_responder_emu's --mut_auth and --basic_mut_auth.
type mutAuthFlags struct {
	mode  *string
	basic *bool
	ca    *string
	chain *string
	slot  *uint
}

func addMutAuthFlags(fs *flag.FlagSet) *mutAuthFlags {
	return &mutAuthFlags{
		mode:  fs.String("mut-auth", "NO", "ask for mutual authentication in KEY_EXCHANGE_RSP: NO, WO_ENCAP (the requester's chain given by --req-cert-chain), W_ENCAP (fetched with encapsulated requests) or DIGESTS (the optimised encapsulated flow)"),
		basic: fs.Bool("basic-mut-auth", false, "ask for basic mutual authentication in CHALLENGE_AUTH (encapsulated GET_DIGESTS, GET_CERTIFICATE, CHALLENGE)"),
		ca:    fs.String("req-ca", "", "the requester's trust anchors (PEM or one DER certificate): needed for W_ENCAP, DIGESTS and --basic-mut-auth"),
		chain: fs.String("req-cert-chain", "", "the requester's chain for WO_ENCAP: concatenated DER certificates, root first (libspdm's bundle_requester.certchain.der)"),
		slot:  fs.Uint("req-slot", 0, "the requester's certificate slot to ask for (0-7)"),
	}
}

// option turns the flags into a devsim option; nil when nothing is asked.
func (m *mutAuthFlags) option() (devsim.Option, error) {
	mode, err := devsim.ParseMutualAuthMode(*m.mode)
	if err != nil {
		return nil, fmt.Errorf("--mut-auth: %w", err)
	}
	if *m.slot > 7 {
		return nil, fmt.Errorf("--req-slot %d: want 0 to 7", *m.slot)
	}
	if (mode == "" || mode == "NO") && !*m.basic {
		if *m.ca != "" || *m.chain != "" {
			return nil, errors.New("--req-ca and --req-cert-chain need --mut-auth or --basic-mut-auth")
		}
		return nil, nil
	}
	ma := devsim.MutualAuth{Session: mode, Basic: *m.basic, Slot: uint8(*m.slot)}
	if *m.ca != "" {
		if ma.Anchors, err = secchan.LoadCertificates(*m.ca); err != nil {
			return nil, fmt.Errorf("--req-ca: %w", err)
		}
	}
	if *m.chain != "" {
		b, err := os.ReadFile(*m.chain)
		if err != nil {
			return nil, fmt.Errorf("--req-cert-chain: %w", err)
		}
		certs, err := x509.ParseCertificates(b)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("--req-cert-chain %s: not concatenated DER certificates: %v", *m.chain, err)
		}
		for _, c := range certs {
			ma.RequesterChain = append(ma.RequesterChain, c.Raw)
		}
	}
	return devsim.WithMutualAuth(ma), nil
}

// oobCommands serves spdm-emu's out-of-band commands for rsp.
func oobCommands(rsp *secchan.Responder, log *slog.Logger) map[uint32]doe.CommandHandler {
	return map[uint32]doe.CommandHandler{
		doe.CommandOOBEncapKeyUpdate: func(_ context.Context, _ uint32, payload []byte) error {
			var id uint32
			switch len(payload) {
			case 4:
				id = binary.LittleEndian.Uint32(payload)
			case 0:
			default:
				return fmt.Errorf("OOB_ENCAP_KEY_UPDATE payload of %d bytes, want a 4-byte session ID or none", len(payload))
			}
			if id == 0 {
				id = rsp.LatestSession()
			}
			if err := rsp.StartEncapKeyUpdate(id); err != nil {
				return err
			}
			log.Info("encapsulated KEY_UPDATE requested", "session", fmt.Sprintf("0x%08x", id))
			return nil
		},
	}
}
