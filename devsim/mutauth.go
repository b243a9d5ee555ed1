package devsim

// Mutual authentication for the emulated VF: the device asks the
// requester who it is, in one of the ways libspdm's spdm_responder_emu
// offers (--mut_auth and --basic_mut_auth), and judges the requester's
// chain against its own anchors for requesters.

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/devattest/devattest/secchan"
)

// MutualAuth says how the VF asks for mutual authentication.
type MutualAuth struct {
	// Session is how KEY_EXCHANGE_RSP asks, with spdm-emu's names: "NO"
	// (or empty), "WO_ENCAP" (MutAuthRequested 1h: the requester's chain
	// is provisioned, RequesterChain), "W_ENCAP" (2h: fetched with
	// encapsulated requests) or "DIGESTS" (4h: the optimised flow).
	Session string
	// Basic asks for basic mutual authentication in CHALLENGE_AUTH.
	Basic bool
	// Slot is the requester's slot asked for (0-7).
	Slot uint8
	// Anchors are the roots a requester's chain must reach (needed for
	// W_ENCAP, DIGESTS and Basic).
	Anchors []*x509.Certificate
	// RequesterChain is the requester's chain, DER certificates root
	// first, for WO_ENCAP.
	RequesterChain [][]byte
}

// ParseMutualAuthMode checks a --mut_auth value and returns it in upper
// case.
func ParseMutualAuthMode(s string) (string, error) {
	m := strings.ToUpper(s)
	switch m {
	case "", "NO", "WO_ENCAP", "W_ENCAP", "DIGESTS":
		return m, nil
	}
	return "", fmt.Errorf("devsim: mutual authentication mode %q: want NO, WO_ENCAP, W_ENCAP or DIGESTS", s)
}

// WithMutualAuth makes the VF's SPDM responder ask for mutual
// authentication as m says (NewSPDMVF and its kin).
func WithMutualAuth(m MutualAuth) Option {
	return func(f *Function) {
		f.spdmConfig = append(f.spdmConfig, func(cfg *secchan.ResponderConfig) error { return m.apply(cfg) })
	}
}

// apply adds m to a responder configuration.
func (m MutualAuth) apply(cfg *secchan.ResponderConfig) error {
	mode, err := ParseMutualAuthMode(m.Session)
	if err != nil {
		return err
	}
	if m.Slot > 7 {
		return fmt.Errorf("devsim: requester slot %d over 7", m.Slot)
	}
	encap := &secchan.EncapMutualAuth{Basic: m.Basic, Slot: m.Slot}
	switch mode {
	case "WO_ENCAP":
		if len(m.RequesterChain) == 0 {
			return errors.New("devsim: WO_ENCAP mutual authentication needs the requester's chain")
		}
		cfg.MutualAuth = &secchan.RequesterChain{Chain: m.RequesterChain, Slot: m.Slot}
		cfg.Caps |= secchan.CapMutAuth
	case "W_ENCAP":
		encap.Session = secchan.MutAuthWithEncapRequest
	case "DIGESTS":
		encap.Session = secchan.MutAuthWithGetDigests
	}
	if encap.Session != 0 || encap.Basic {
		if len(m.Anchors) == 0 {
			return errors.New("devsim: mutual authentication with encapsulated requests needs the requester's anchors")
		}
		encap.Validator = secchan.NewRequesterValidator(m.Anchors...)
		cfg.EncapMutualAuth = encap
		cfg.Caps |= secchan.CapMutAuth | secchan.CapEncap
	}
	return nil
}

// spdmConfigOf runs opts on a scratch function and applies the responder
// settings they carry to cfg.
func spdmConfigOf(cfg *secchan.ResponderConfig, opts []Option) error {
	var scratch Function
	for _, o := range opts {
		o(&scratch)
	}
	for _, mod := range scratch.spdmConfig {
		if err := mod(cfg); err != nil {
			return err
		}
	}
	return nil
}
