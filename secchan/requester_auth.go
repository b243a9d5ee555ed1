package secchan

// Requester steps for identity, authentication and measurements.

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
)

// GetDigests reads the digest of every provisioned slot's chain.
func (q *Requester) GetDigests(ctx context.Context) (*Digests, error) {
	const step = "GET_DIGESTS"
	if err := q.needVCA(step); err != nil {
		return nil, err
	}
	if q.neg.RspCaps&CapCert == 0 {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: responder has no CERT_CAP", ErrNegotiation)}
	}
	req := (&GetDigests{Version: q.neg.Version}).Marshal()
	resp, err := q.exchange(ctx, req, false)
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	var m Digests
	msg, err := expect(resp, CodeDigests, q.neg.Version, func(b []byte) (int, error) {
		return m.Decode(b, q.neg.Hash.Size(), q.multiKey)
	})
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	if m.SlotMask == 0 {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: no certificate slot is provisioned", ErrCertChain)}
	}
	// GET_DIGESTS starts the certificate part of M1/M2 afresh, as libspdm
	// does on both sides.
	q.b = append(append([]byte(nil), req...), msg...)
	q.l = nil
	q.digests = &m
	if q.firstDigests == nil {
		q.firstDigests = slices.Clone(msg)
	}
	q.log.Debug("spdm step", "step", step, "slots", fmt.Sprintf("0x%02x", m.SlotMask))
	return &m, nil
}

// maxCertPortion is how much of a chain to ask for at once: what fits in
// the responder's DataTransferSize after the CERTIFICATE header (1.2+), or
// the 1.0/1.1 convention of 0x400 bytes.
func (q *Requester) maxCertPortion() uint16 {
	const header = 8
	if q.neg.Version >= V12 && q.neg.RspDataTransfer > header {
		return uint16(min(q.neg.RspDataTransfer-header, 0xFFFF, q.cfg.DataTransferSize-header))
	}
	return 0x400
}

// GetCertificate reads the whole chain of slot, checks it against the
// slot's digest from DIGESTS and has the configured validator judge it.
func (q *Requester) GetCertificate(ctx context.Context, slot uint8) (*CertChain, error) {
	step := fmt.Sprintf("GET_CERTIFICATE slot %d", slot)
	if err := q.needVCA(step); err != nil {
		return nil, err
	}
	if q.digests == nil {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: GET_DIGESTS first", ErrUnexpectedResponse)}
	}
	want := q.digests.DigestFor(slot)
	if want == nil {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: slot %d is not provisioned (slot mask 0x%02x)", ErrCertChain, slot, q.digests.SlotMask)}
	}
	var chain, transcript []byte
	for {
		if len(chain) > MaxCertChainSize {
			return nil, &StepError{Step: step, Err: fmt.Errorf("%w: chain exceeds %d bytes", ErrCertChain, MaxCertChainSize)}
		}
		g := GetCertificate{Version: q.neg.Version, Slot: slot, Offset: uint16(len(chain)), Length: q.maxCertPortion()}
		req := g.Marshal()
		resp, err := q.exchange(ctx, req, false)
		if err != nil {
			return nil, &StepError{Step: step, Err: err}
		}
		var m Certificate
		msg, err := expect(resp, CodeCertificate, q.neg.Version, m.Decode)
		if err != nil {
			return nil, &StepError{Step: step, Err: err}
		}
		switch {
		case m.Slot != slot:
			err = fmt.Errorf("%w: CERTIFICATE for slot %d, asked for %d", ErrUnexpectedResponse, m.Slot, slot)
		case len(m.Portion) == 0 && m.Remainder != 0:
			err = fmt.Errorf("%w: empty portion with %d bytes remaining", ErrMalformed, m.Remainder)
		case len(m.Portion) > int(g.Length):
			err = fmt.Errorf("%w: portion of %d bytes, asked for at most %d", ErrMalformed, len(m.Portion), g.Length)
		case len(chain)+len(m.Portion)+int(m.Remainder) > MaxCertChainSize:
			err = fmt.Errorf("%w: chain would exceed %d bytes", ErrCertChain, MaxCertChainSize)
		}
		if err != nil {
			return nil, &StepError{Step: step, Err: err}
		}
		chain = append(chain, m.Portion...)
		transcript = append(append(transcript, req...), msg...)
		if m.Remainder == 0 {
			break
		}
	}
	d := q.neg.Hash.New()
	d.Write(chain)
	if subtle.ConstantTimeCompare(d.Sum(nil), want) != 1 {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: chain digest does not match the slot's DIGESTS entry", ErrCertChain)}
	}
	parsed, err := ParseCertChain(chain, q.neg.Hash)
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	if q.cfg.Validator == nil {
		return nil, &StepError{Step: step, Err: ErrNoAnchor}
	}
	if err := q.cfg.Validator.ValidateChain(parsed, q.neg.Hash); err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	if AsymFor(parsed.Leaf().PublicKey)&q.neg.BaseAsym == 0 && q.neg.BaseAsym&(AsymRSAPSS2048|AsymRSAPSS3072|AsymRSAPSS4096) == 0 {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: leaf key does not match the negotiated %s", ErrCertChain, AsymName(q.neg.BaseAsym))}
	}
	q.b = append(q.b, transcript...)
	q.l = nil
	q.chains[slot] = parsed
	q.log.Debug("spdm step", "step", step, "bytes", len(chain), "certs", len(parsed.Certs))
	return parsed, nil
}

// ChallengeResult is what CHALLENGE proved.
type ChallengeResult struct {
	Slot        uint8
	Nonce       [NonceSize]byte
	SummaryHash []byte
	// BasicMutualAuth is what the responder's basic mutual
	// authentication carried, when CHALLENGE_AUTH asked for it.
	BasicMutualAuth *EncapResult
}

// Challenge authenticates the responder: its signature over M1/M2 with the
// leaf key of slot's validated chain.
func (q *Requester) Challenge(ctx context.Context, slot, summary uint8) (*ChallengeResult, error) {
	step := fmt.Sprintf("CHALLENGE slot %d", slot)
	if err := q.needVCA(step); err != nil {
		return nil, err
	}
	chain := q.chains[slot]
	if chain == nil {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: no validated chain for slot %d; GET_CERTIFICATE first", ErrCertChain, slot)}
	}
	if q.neg.RspCaps&CapChal == 0 {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: responder has no CHAL_CAP", ErrNegotiation)}
	}
	c := Challenge{Version: q.neg.Version, Slot: slot, SummaryType: summary}
	nonce, err := q.nonce()
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	c.Nonce = nonce
	req := c.Marshal()
	resp, err := q.exchange(ctx, req, true)
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	summarySize := 0
	if summary != SummaryNone {
		summarySize = q.neg.Hash.Size()
	}
	var m ChallengeAuth
	msg, err := expect(resp, CodeChallengeAuth, q.neg.Version, func(b []byte) (int, error) {
		return m.Decode(b, q.neg.Hash.Size(), summarySize, q.neg.SigSize)
	})
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	d := q.neg.Hash.New()
	d.Write(chain.Raw)
	switch {
	case m.Slot != slot:
		err = fmt.Errorf("%w: CHALLENGE_AUTH for slot %d", ErrUnexpectedResponse, m.Slot)
	case q.neg.Version >= V11 && m.SlotMask&(1<<slot) == 0:
		err = fmt.Errorf("%w: slot mask 0x%02x does not include slot %d", ErrUnexpectedResponse, m.SlotMask, slot)
	case !bytes.Equal(m.CertChainHash, d.Sum(nil)):
		err = fmt.Errorf("%w: CertChainHash is not the digest of slot %d's chain", ErrCertChain, slot)
	case q.neg.Version >= V13 && m.Context != c.Context:
		err = fmt.Errorf("%w: RequesterContext not echoed", ErrUnexpectedResponse)
	}
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	signed := msg[:len(msg)-len(m.Signature)]
	th := q.neg.Hash.New()
	th.Write(q.vca)
	th.Write(q.b)
	th.Write(req)
	th.Write(signed)
	if err := VerifySignature(q.neg.Version, q.neg.BaseAsym, q.neg.Hash, chain.Leaf().PublicKey, ContextChallengeAuth, th.Sum(nil), m.Signature); err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	q.b, q.l = nil, nil
	q.log.Debug("spdm step", "step", step, "verified", true)
	res := &ChallengeResult{Slot: slot, Nonce: c.Nonce, SummaryHash: m.SummaryHash}
	if m.BasicMutAuth {
		// The responder now authenticates us (requester_encap.go).
		if res.BasicMutualAuth, err = q.basicMutualAuth(ctx); err != nil {
			return nil, &StepError{Step: step + " basic mutual authentication", Err: err}
		}
	}
	return res, nil
}

// MeasurementsResult is one MEASUREMENTS response, checked.
type MeasurementsResult struct {
	Blocks   []MeasurementBlock
	Count    int  // for MeasOpCount: the number of indices
	Signed   bool // the signature was requested and verified
	Slot     uint8
	Request  []byte // the GET_MEASUREMENTS bytes
	Response []byte // the MEASUREMENTS bytes, signature included
	// Transcript is what the signature covers (L1/L2) before hashing, so
	// that a remote verifier can re-check it: [VCA] + earlier unsigned
	// pairs + GET_MEASUREMENTS + MEASUREMENTS without the signature.
	Transcript []byte
	Nonce      [NonceSize]byte
}

// MeasurementOptions selects what GET_MEASUREMENTS asks for.
type MeasurementOptions struct {
	Operation uint8 // MeasOpCount, MeasOpAll or an index
	Signed    bool
	Slot      uint8
	Raw       bool // 1.2+: ask for raw bit streams
}

// GetMeasurements asks for measurements. A signed response is verified
// over L1/L2 with the slot's leaf key; unsigned responses are kept in L1/L2
// until the next signed one, as DSP0274 §10.11 requires.
func (q *Requester) GetMeasurements(ctx context.Context, o MeasurementOptions) (*MeasurementsResult, error) {
	res, err := q.measure(ctx, o, q.exchange, &q.l)
	if err == nil {
		// Measurements before a completed CHALLENGE end its M1/M2
		// (DSP0274 §10.9: a skipped CHALLENGE completion).
		q.b = nil
	}
	return res, err
}

// exchanger sends one request and returns its response: q.exchange
// outside a session, a SecureSession's exchange inside one.
type exchanger func(ctx context.Context, req []byte, crypto bool) ([]byte, error)

// measure runs one GET_MEASUREMENTS through exch, keeping L1/L2 in l.
func (q *Requester) measure(ctx context.Context, o MeasurementOptions, exch exchanger, l *[]byte) (*MeasurementsResult, error) {
	step := fmt.Sprintf("GET_MEASUREMENTS op 0x%02x", o.Operation)
	if err := q.needVCA(step); err != nil {
		return nil, err
	}
	if q.neg.RspCaps&capMeasMask == 0 {
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: responder has no MEAS_CAP", ErrNegotiation)}
	}
	var chain *CertChain
	g := GetMeasurements{Version: q.neg.Version, Operation: o.Operation}
	if o.Raw && q.neg.Version >= V12 {
		g.Attributes |= MeasAttrRawBitStream
	}
	if o.Signed {
		if q.neg.RspCaps&CapMeasSig == 0 {
			return nil, &StepError{Step: step, Err: fmt.Errorf("%w: responder cannot sign measurements", ErrNegotiation)}
		}
		if chain = q.chains[o.Slot]; chain == nil {
			return nil, &StepError{Step: step, Err: fmt.Errorf("%w: no validated chain for slot %d", ErrCertChain, o.Slot)}
		}
		nonce, err := q.nonce()
		if err != nil {
			return nil, &StepError{Step: step, Err: err}
		}
		g.Attributes |= MeasAttrSignature
		g.Nonce, g.Slot = nonce, o.Slot
	}
	req := g.Marshal()
	resp, err := exch(ctx, req, o.Signed)
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	sig := 0
	if o.Signed {
		sig = q.neg.SigSize
	}
	var m Measurements
	msg, err := expect(resp, CodeMeasurements, q.neg.Version, func(b []byte) (int, error) { return m.Decode(b, sig) })
	if err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	res := &MeasurementsResult{Signed: o.Signed, Slot: o.Slot, Request: req, Response: msg, Nonce: g.Nonce}
	if err := q.checkMeasurements(&g, &m, res); err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	pair := append(append([]byte(nil), req...), msg[:len(msg)-len(m.Signature)]...)
	if !o.Signed {
		*l = append(*l, pair...)
		return res, nil
	}
	var t []byte
	if q.neg.Version >= V12 {
		t = append(t, q.vca...)
	}
	t = append(append(t, *l...), pair...)
	th := q.neg.Hash.New()
	th.Write(t)
	if err := VerifySignature(q.neg.Version, q.neg.BaseAsym, q.neg.Hash, chain.Leaf().PublicKey, ContextMeasurements, th.Sum(nil), m.Signature); err != nil {
		return nil, &StepError{Step: step, Err: err}
	}
	*l = nil
	res.Transcript = t
	q.log.Debug("spdm step", "step", step, "blocks", len(res.Blocks), "verified", true)
	return res, nil
}

// checkMeasurements checks a MEASUREMENTS response against its request.
func (q *Requester) checkMeasurements(g *GetMeasurements, m *Measurements, res *MeasurementsResult) error {
	if g.SignatureRequested() && q.neg.Version >= V11 && m.Slot != g.Slot {
		return fmt.Errorf("%w: MEASUREMENTS from slot %d, asked for %d", ErrUnexpectedResponse, m.Slot, g.Slot)
	}
	if q.neg.Version >= V13 && m.Context != g.Context {
		return fmt.Errorf("%w: RequesterContext not echoed", ErrUnexpectedResponse)
	}
	if g.Operation == MeasOpCount {
		if m.NumBlocks != 0 || len(m.Record) != 0 {
			return fmt.Errorf("%w: a count response carries %d blocks", ErrMalformed, m.NumBlocks)
		}
		res.Count = int(m.Param1)
		return nil
	}
	blocks, err := m.Blocks(q.neg.MeasHashSize)
	if err != nil {
		return err
	}
	if g.Operation != MeasOpAll && (len(blocks) != 1 || blocks[0].Index != g.Operation) {
		return fmt.Errorf("%w: asked for index %d, got %d blocks", ErrUnexpectedResponse, g.Operation, len(blocks))
	}
	if g.Operation == MeasOpAll && len(blocks) == 0 {
		return fmt.Errorf("%w: no measurement blocks", ErrMalformed)
	}
	res.Blocks = blocks
	return nil
}
