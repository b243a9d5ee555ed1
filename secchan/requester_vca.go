package secchan

// Requester steps for version, capabilities and algorithms (VCA).

import (
	"context"
	"fmt"
	"slices"
)

// Connect runs the three VCA steps.
func (q *Requester) Connect(ctx context.Context) error {
	if err := q.GetVersion(ctx); err != nil {
		return err
	}
	if err := q.GetCapabilities(ctx); err != nil {
		return err
	}
	return q.NegotiateAlgorithms(ctx)
}

// GetVersion starts (or restarts) the connection: every transcript and
// negotiated value is dropped, and the highest common version is chosen.
func (q *Requester) GetVersion(ctx context.Context) error {
	const step = "GET_VERSION"
	req := (&GetVersion{}).Marshal()
	resp, err := q.exchange(ctx, req, false)
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	var m VersionResponse
	msg, err := expect(resp, CodeVersion, V10, m.Decode)
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	offered := q.cfg.Versions
	if q.cfg.MinVersion != 0 {
		offered = slices.DeleteFunc(slices.Clone(offered), func(v Version) bool { return v < q.cfg.MinVersion })
	}
	v, ok := m.Highest(offered)
	if !ok {
		var theirs []string
		for _, e := range m.Entries {
			theirs = append(theirs, e.Version().String())
		}
		return &StepError{Step: step, Err: fmt.Errorf("%w: responder offers %v, we accept %v", ErrNegotiation, theirs, offered)}
	}
	q.neg = Negotiated{Version: v}
	q.vca = append(append(q.vca[:0], req...), msg...)
	q.b, q.l, q.haveVCA, q.digests, q.firstDigests = nil, nil, false, nil, nil
	clear(q.chains)
	q.log.Debug("spdm step", "step", step, "version", v.String())
	return nil
}

// GetCapabilities exchanges capabilities at the chosen version.
func (q *Requester) GetCapabilities(ctx context.Context) error {
	const step = "GET_CAPABILITIES"
	v := q.neg.Version
	if v == 0 {
		return &StepError{Step: step, Err: fmt.Errorf("%w: GET_VERSION first", ErrNegotiation)}
	}
	g := GetCapabilities{Version: v, CTExponent: q.cfg.CTExponent, Flags: q.reqCaps(v),
		DataTransferSize: q.cfg.DataTransferSize, MaxSPDMmsgSize: q.cfg.MaxSPDMmsgSize}
	req := g.Marshal()
	resp, err := q.exchange(ctx, req, false)
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	var m Capabilities
	msg, err := expect(resp, CodeCapabilities, v, m.Decode)
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	if m.Flags&(CapCert|CapChal) == 0 && m.Flags&capMeasMask == 0 {
		return &StepError{Step: step, Err: fmt.Errorf("%w: responder offers neither certificates, challenge nor measurements (flags 0x%08x)", ErrNegotiation, m.Flags)}
	}
	q.neg.RspCaps = m.Flags
	q.neg.RspCTExponent = m.CTExponent
	q.neg.RspDataTransfer = m.DataTransferSize
	q.neg.RspMaxMsgSize = m.MaxSPDMmsgSize
	q.vca = append(append(q.vca, req...), msg...)
	q.log.Debug("spdm step", "step", step, "caps", CapabilityNames(m.Flags))
	return nil
}

// reqCaps returns the requester flags valid at version v.
func (q *Requester) reqCaps(v Version) uint32 {
	f := q.cfg.Caps
	// An identity answers mutual authentication, with encapsulated
	// requests (requester_encap.go) or without.
	f |= q.reqMutualCaps(v)
	if v < V12 {
		f &^= CapChunk | CapAliasCert
	}
	if v < V13 {
		f &^= capMultiKeyMask
	}
	if v < V11 {
		f = 0
	}
	return f
}

// NegotiateAlgorithms offers the configured algorithms and checks that the
// responder selected exactly one of each that it must.
func (q *Requester) NegotiateAlgorithms(ctx context.Context) error {
	const step = "NEGOTIATE_ALGORITHMS"
	v := q.neg.Version
	if v == 0 || q.neg.RspCaps == 0 && v >= V11 {
		return &StepError{Step: step, Err: fmt.Errorf("%w: GET_CAPABILITIES first", ErrNegotiation)}
	}
	n := NegotiateAlgorithms{Version: v, MeasurementSpec: MeasurementSpecDMTF, BaseAsymAlgo: q.cfg.BaseAsym, BaseHashAlgo: q.cfg.BaseHash}
	if v >= V12 {
		n.OtherParamsSupport = 1 << 1 // opaque data format 1 (DSP0274 Table 21)
	}
	if v >= V11 {
		n.Structs = []AlgStruct{
			{Type: AlgTypeDHE, Bits: q.cfg.DHE},
			{Type: AlgTypeAEAD, Bits: q.cfg.AEAD},
			{Type: AlgTypeReqBaseAsym, Bits: q.reqBaseAsym()},
			{Type: AlgTypeKeySchedule, Bits: q.cfg.KeySchedule},
		}
	}
	req := n.Marshal()
	resp, err := q.exchange(ctx, req, false)
	if err != nil {
		return &StepError{Step: step, Err: refusedOffer(err, &n)}
	}
	var m Algorithms
	msg, err := expect(resp, CodeAlgorithms, v, m.Decode)
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	neg, err := q.checkSelection(&n, &m)
	if err != nil {
		return &StepError{Step: step, Err: err}
	}
	q.neg = neg
	q.vca = append(append(q.vca, req...), msg...)
	q.haveVCA = true
	q.log.Debug("spdm step", "step", step, "asym", AsymName(neg.BaseAsym), "hash", HashName(neg.BaseHash))
	return nil
}

// checkSelection validates ALGORITHMS against what was offered.
func (q *Requester) checkSelection(n *NegotiateAlgorithms, m *Algorithms) (Negotiated, error) {
	neg := q.neg
	caps := neg.RspCaps
	needAsym := caps&(CapChal|CapMeasSig|CapKeyEx) != 0
	if m.BaseHashSel != 0 || needAsym || caps&CapCert != 0 {
		if !singleBit(m.BaseHashSel) || m.BaseHashSel&n.BaseHashAlgo == 0 {
			return neg, fmt.Errorf("%w: BaseHashSel %s is not one of the offered %s", ErrNegotiation, HashName(m.BaseHashSel), HashName(n.BaseHashAlgo))
		}
		h, err := hashOf(m.BaseHashSel)
		if err != nil {
			return neg, err
		}
		neg.BaseHash, neg.Hash = m.BaseHashSel, h
	}
	if needAsym || m.BaseAsymSel != 0 {
		if !singleBit(m.BaseAsymSel) || m.BaseAsymSel&n.BaseAsymAlgo == 0 {
			return neg, fmt.Errorf("%w: BaseAsymSel %s is not one of the offered %s", ErrNegotiation, AsymName(m.BaseAsymSel), AsymName(n.BaseAsymAlgo))
		}
		s, err := sigSize(m.BaseAsymSel)
		if err != nil {
			return neg, err
		}
		neg.BaseAsym, neg.SigSize = m.BaseAsymSel, s
	}
	if caps&capMeasMask != 0 {
		if m.MeasurementSpecSel != MeasurementSpecDMTF {
			return neg, fmt.Errorf("%w: MeasurementSpecificationSel 0x%02x, want DMTF", ErrNegotiation, m.MeasurementSpecSel)
		}
		if !singleBit(m.MeasurementHashAlgo) {
			return neg, fmt.Errorf("%w: MeasurementHashAlgo 0x%x selects not exactly one", ErrNegotiation, m.MeasurementHashAlgo)
		}
		size, err := measHashSize(m.MeasurementHashAlgo)
		if err != nil {
			return neg, err
		}
		neg.MeasurementSpec, neg.MeasurementHash, neg.MeasHashSize = m.MeasurementSpecSel, m.MeasurementHashAlgo, size
	}
	if len(m.ExtAsymSel) != 0 || len(m.ExtHashSel) != 0 {
		return neg, fmt.Errorf("%w: responder selected an extended algorithm we did not offer", ErrNegotiation)
	}
	for _, s := range m.Structs {
		offered := structBits(n.Structs, s.Type)
		if len(s.External) != 0 || (s.Bits != 0 && (!singleBit(uint32(s.Bits)) || s.Bits&offered == 0)) {
			return neg, fmt.Errorf("%w: algorithm structure type %d selects 0x%04x from offered 0x%04x", ErrNegotiation, s.Type, s.Bits, offered)
		}
	}
	neg.DHE = structBits(m.Structs, AlgTypeDHE)
	neg.AEAD = structBits(m.Structs, AlgTypeAEAD)
	neg.ReqBaseAsym = structBits(m.Structs, AlgTypeReqBaseAsym)
	neg.KeySchedule = structBits(m.Structs, AlgTypeKeySchedule)
	neg.OtherParams = m.OtherParamsSelection
	if m.OtherParamsSelection&^n.OtherParamsSupport&0x0F != 0 {
		return neg, fmt.Errorf("%w: opaque data format 0x%x not offered", ErrNegotiation, m.OtherParamsSelection&0x0F)
	}
	// DSP0274 1.3: MULTI_KEY_CONN_RSP holds when the responder's
	// MULTI_KEY_CAP is "only", or "negotiate" and we asked for it.
	q.multiKey = neg.Version >= V13 && (caps&CapMultiKeyOnly != 0 || caps&CapMultiKeyNeg != 0 && n.OtherParamsSupport&0x10 != 0)
	return neg, nil
}

// reqBaseAsym is the ReqBaseAsymAlg offered: every scheme the
// mutual-authentication keys sign with when there are any, else the
// configured set.
func (q *Requester) reqBaseAsym() uint16 {
	if a := q.reqAsymOffer(); a != 0 {
		return a
	}
	return q.cfg.ReqBaseAsym
}
