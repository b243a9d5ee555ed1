package secchan

// Responder side of identity: GET_DIGESTS (DSP0274 §10.7), GET_CERTIFICATE
// (§10.8) and CHALLENGE (§10.9).

// slotMask is the bit mask of the provisioned slots.
func (st *rspConn) slotMask() uint8 {
	var m uint8
	for i := range st.slots {
		m |= 1 << i
	}
	return m
}

// getDigests answers GET_DIGESTS with the digest of each provisioned
// slot's chain. It starts B afresh, as libspdm does.
func (r *Responder) getDigests(req []byte, h Header) reply {
	if rp, ok := r.checkNegotiated(h, CapCert); !ok {
		return rp
	}
	var g GetDigests
	msg, err := decodeExact("GET_DIGESTS", req, g.Decode)
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	st := &r.st
	m := Digests{Version: st.version, SlotMask: st.slotMask()}
	if st.version >= V13 {
		// SupportedSlotMask: the slots are fixed, so exactly the
		// provisioned ones.
		m.SupportedMask = m.SlotMask
	}
	for _, s := range st.slots {
		m.Digests = append(m.Digests, s.digest)
	}
	resp := m.Marshal()
	return reply{msg: resp, commit: func() {
		st.b = append(append(st.b[:0], msg...), resp...)
	}}
}

// getCertificate answers GET_CERTIFICATE with one portion of a slot's
// chain: the requested Length, or less where the chain ends or the
// response could not reach the requester (certPortionRoom).
func (r *Responder) getCertificate(req []byte, h Header) reply {
	if rp, ok := r.checkNegotiated(h, CapCert); !ok {
		return rp
	}
	var g GetCertificate
	msg, err := decodeExact("GET_CERTIFICATE", req, g.Decode)
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	st := &r.st
	if int(g.Slot) >= len(st.slots) {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	chain := st.slots[g.Slot].chain
	if g.SlotSizeRequested {
		// 1.3: only the size; Offset and Length are ignored.
		resp := (&Certificate{Version: st.version, Slot: g.Slot, Remainder: uint16(len(chain))}).Marshal()
		return reply{msg: resp}
	}
	if int(g.Offset) >= len(chain) {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	n := min(int(g.Length), r.certPortionRoom(), len(chain)-int(g.Offset))
	m := Certificate{
		Version:   st.version,
		Slot:      g.Slot,
		Portion:   chain[g.Offset : int(g.Offset)+n],
		Remainder: uint16(len(chain) - int(g.Offset) - n),
	}
	resp := m.Marshal()
	return reply{msg: resp, commit: func() {
		st.b = append(append(st.b, msg...), resp...)
	}}
}

// certPortionRoom is the largest certificate portion one CERTIFICATE can
// carry to this requester. When both sides support CHUNK (1.2+), a
// response larger than the requester's DataTransferSize goes out with
// CHUNK_GET, so only its MaxSPDMmsgSize bounds the portion: a requester
// asking for Offset 0 and Length 0xFFFF gets the whole chain in one
// response (libspdm's requester refuses anything shorter then, and
// libspdm's responder never cuts the portion while chunking). Without
// CHUNK the response must fit one transfer: the requester's
// DataTransferSize in 1.2+, this responder's in 1.0/1.1, which have none.
func (r *Responder) certPortionRoom() int {
	const header = 8 // CERTIFICATE before the portion
	st := &r.st
	switch {
	case st.version < V12:
		return int(r.cfg.DataTransferSize) - header
	case st.reqCaps&CapChunk != 0 && r.cfg.Caps&CapChunk != 0:
		return int(st.reqMax) - header
	default:
		return int(st.reqDTS) - header
	}
}

// challenge answers CHALLENGE with CHALLENGE_AUTH signed over M1M2.
func (r *Responder) challenge(req []byte, h Header) reply {
	if rp, ok := r.checkNegotiated(h, CapChal); !ok {
		return rp
	}
	var c Challenge
	msg, err := decodeExact("CHALLENGE", req, c.Decode)
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	st := &r.st
	if int(c.Slot) >= len(st.slots) { // 0xFF (a provisioned public key) included
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	var summary []byte
	if c.SummaryType != SummaryNone {
		if r.cfg.Caps&capMeasMask == 0 || st.measSpec == 0 || st.measHash == 0 {
			return r.fail(ErrCodeInvalidRequest, 0)
		}
		if summary, err = r.summaryHash(c.SummaryType); err != nil {
			return r.fail(ErrCodeUnspecified, 0)
		}
	}
	nonce, err := randomNonce()
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	slot := st.slots[c.Slot]
	m := ChallengeAuth{
		Version:       st.version,
		Slot:          c.Slot,
		SlotMask:      st.slotMask(),
		CertChainHash: slot.digest,
		Nonce:         nonce,
		SummaryHash:   summary,
		Context:       c.Context,
		BasicMutAuth:  r.wantBasicMutual(), // responder_encap.go
	}
	unsigned := m.Marshal()
	th := r.transcriptHash(st.vca, st.b, msg, unsigned)
	sig, err := Sign(st.version, st.asym, st.hash, slot.id.key, ContextChallengeAuth, th)
	if err != nil {
		return r.fail(ErrCodeUnspecified, 0)
	}
	resp := append(unsigned, sig...)
	return reply{msg: resp, commit: func() {
		st.b = nil // M1M2 ends with CHALLENGE_AUTH
		st.authenticated = true
		if m.BasicMutAuth {
			r.startEncap(encapBasic, "basic", nil)
		}
	}}
}
