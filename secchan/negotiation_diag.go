package secchan

// Negotiation failures that say what each side offered (issue 16,
// finding 4). An ERROR(InvalidRequest) to NEGOTIATE_ALGORITHMS carries no
// data (DSP0274 defines no ExtendedErrorData for it), so the requester
// names its own offer, and the responder logs both sides'.

import (
	"errors"
	"fmt"
	"log/slog"
)

// algOffer names a NEGOTIATE_ALGORITHMS offer field by field.
func algOffer(n *NegotiateAlgorithms) string {
	s := fmt.Sprintf("BaseAsym %s, BaseHash %s", AsymName(n.BaseAsymAlgo), HashName(n.BaseHashAlgo))
	for _, t := range n.Structs {
		s += ", " + structOffer(t.Type, t.Bits)
	}
	return s
}

// structOffer names one algorithm structure's bits.
func structOffer(typ uint8, bits uint16) string {
	switch typ {
	case AlgTypeDHE:
		return "DHE " + DHEName(bits)
	case AlgTypeAEAD:
		return "AEAD " + AEADName(bits)
	case AlgTypeReqBaseAsym:
		return "ReqBaseAsym " + AsymName(uint32(bits))
	case AlgTypeKeySchedule:
		if bits == KeyScheduleSPDM {
			return "KeySchedule SPDM"
		}
		return fmt.Sprintf("KeySchedule 0x%04x", bits)
	}
	return fmt.Sprintf("structure type %d 0x%04x", typ, bits)
}

// refusedOffer explains an ERROR to NEGOTIATE_ALGORITHMS: with
// InvalidRequest, responders (libspdm's, this package's) say that nothing
// they support was offered for a field they need.
func refusedOffer(err error, n *NegotiateAlgorithms) error {
	var e *SPDMError
	if !errors.As(err, &e) || e.Code != ErrCodeInvalidRequest {
		return err
	}
	return fmt.Errorf("%w: %w: the responder refused every algorithm offered for a field it needs (we offered %s)", ErrNegotiation, err, algOffer(n))
}

// sessionAlgMismatch explains a session that cannot start because the
// responder selected no DHE group, AEAD or key schedule from our offer.
func (q *Requester) sessionAlgMismatch(psk bool) error {
	neg := q.neg
	var missing string
	switch {
	case !psk && neg.DHE == 0:
		missing = "no DHE group (we offered " + DHEName(q.cfg.DHE) + ")"
	case neg.AEAD == 0:
		missing = "no AEAD (we offered " + AEADName(q.cfg.AEAD) + ")"
	default:
		missing = fmt.Sprintf("key schedule 0x%04x (we offered %s)", neg.KeySchedule, structOffer(AlgTypeKeySchedule, q.cfg.KeySchedule))
	}
	return fmt.Errorf("%w: ALGORITHMS selected %s: the responder supports none of what we offered", ErrNegotiation, missing)
}

// logger is the responder's Logger, or one that discards.
func (r *Responder) logger() *slog.Logger {
	if r.cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.cfg.Logger
}

// logNoCommonAlgorithm logs a NEGOTIATE_ALGORITHMS this responder refuses
// or can only answer with empty selections, with both sides' offers.
func (r *Responder) logNoCommonAlgorithm(n *NegotiateAlgorithms, what string) {
	r.logger().Warn("spdm responder: no common algorithm", "field", what,
		"requester_offered", algOffer(n),
		"responder_supports", fmt.Sprintf("BaseAsym %s, BaseHash %s, DHE %s, AEAD %s", AsymName(r.asyms), HashName(r.cfg.BaseHash),
			DHEName(uint16(orBits(rspDHEPref))), AEADName(uint16(orBits(rspAEADPref)))))
}

// logVersionMismatch logs a GET_CAPABILITIES at a version this responder
// did not offer.
func (r *Responder) logVersionMismatch(asked Version) {
	r.logger().Warn("spdm responder: version not offered", "requester_asked", asked.String(), "responder_offers", fmt.Sprint(r.cfg.Versions))
}

// orBits is the union of a preference list.
func orBits(pref []uint32) uint32 {
	var v uint32
	for _, p := range pref {
		v |= p
	}
	return v
}

// SetLogger sets the Logger of a responder built without one (devsim's
// command line, for one); call it before the responder serves.
func (r *Responder) SetLogger(l *slog.Logger) { r.cfg.Logger = l }
