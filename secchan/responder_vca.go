package secchan

// Responder side of VCA: GET_VERSION (DSP0274 §10.3), GET_CAPABILITIES
// (§10.4) and NEGOTIATE_ALGORITHMS (§10.5).
//
// Algorithm selection is deterministic. From what both sides support the
// responder takes the first entry of these preference lists: the 384-bit
// security level first (what PCIe CMA/TDISP devices and libspdm's P-384
// samples standardise on, so a requester offering everything gets one
// consistent suite: ECDSA P-384, SHA-384, secp384r1, AES-256-GCM), then the
// 256-bit level, then P-521/SHA-512, which are slower and less widely
// implemented.

import "crypto"

var (
	rspAsymPref = []uint32{
		AsymECDSAP384, AsymECDSAP256, AsymECDSAP521,
		AsymRSAPSS4096, AsymRSAPSS3072, AsymRSAPSS2048,
		AsymRSASSA4096, AsymRSASSA3072, AsymRSASSA2048,
		AsymEd25519,
	}
	rspHashPref     = []uint32{HashSHA384, HashSHA256, HashSHA512}
	rspMeasHashPref = []uint32{MeasHashSHA384, MeasHashSHA256, MeasHashSHA512, MeasHashRaw}
	rspDHEPref      = []uint32{uint32(DHESECP384R1), uint32(DHESECP256R1), uint32(DHESECP521R1)}
	rspAEADPref     = []uint32{uint32(AEADAES256GCM), uint32(AEADAES128GCM), uint32(AEADChaCha20Poly1305)}
	rspKeySchedPref = []uint32{uint32(KeyScheduleSPDM)}
)

// rspPick returns the first preference present in common, or 0.
func rspPick(pref []uint32, common uint32) uint32 {
	for _, p := range pref {
		if common&p != 0 {
			return p
		}
	}
	return 0
}

// OtherParamsSupport/Selection bits (DSP0274 1.2 Table 21; 1.3 adds
// MULTI_KEY_CONN, which this responder never selects).
const (
	rspOpaqueFmt0    uint8 = 1 << 0
	rspOpaqueFmt1    uint8 = 1 << 1
	rspOpaqueFmtMask       = rspOpaqueFmt0 | rspOpaqueFmt1
)

// rspCapsMask is what CAPABILITIES may carry in each version.
func rspCapsMask(v Version) uint32 {
	switch {
	case v == V10:
		return CapCache | CapCert | CapChal | capMeasMask | CapMeasFresh
	case v == V11:
		return 1<<17 - 1
	case v == V12:
		return 1<<19 - 1
	}
	return capDefinedThrough13
}

func (r *Responder) offers(v Version) bool {
	for _, o := range r.cfg.Versions {
		if o == v {
			return true
		}
	}
	return false
}

// getVersion answers GET_VERSION in any state and starts a new connection.
func (r *Responder) getVersion(req []byte, h Header) reply {
	if h.Version != V10 {
		// GET_VERSION is always 1.0; so is the ERROR about it.
		return reply{msg: rspError(V10, ErrCodeVersionMismatch, 0, nil)}
	}
	var g GetVersion
	msg, err := decodeExact("GET_VERSION", req, g.Decode)
	if err != nil {
		return reply{msg: rspError(V10, ErrCodeInvalidRequest, 0, nil)}
	}
	var m VersionResponse
	for _, v := range r.cfg.Versions {
		m.Entries = append(m.Entries, VersionEntry(uint16(v)<<8))
	}
	resp := m.Marshal()
	return reply{msg: resp, commit: func() {
		r.endAllSessions() // a new connection ends every session
		r.st = rspConn{state: ResponderAfterVersion}
		r.st.vca = append(append(r.st.vca, msg...), resp...)
	}}
}

// getCapabilities answers GET_CAPABILITIES; its header's version, which
// must be one VERSION offered, becomes the connection's version.
func (r *Responder) getCapabilities(req []byte, h Header) reply {
	st := &r.st
	if st.state != ResponderAfterVersion {
		return r.fail(ErrCodeUnexpectedRequest, 0)
	}
	if !r.offers(h.Version) {
		r.logVersionMismatch(h.Version)
		return r.fail(ErrCodeVersionMismatch, 0)
	}
	st.version = h.Version // as libspdm: later ERRORs carry this version
	var g GetCapabilities
	msg, err := decodeExact("GET_CAPABILITIES", req, g.Decode)
	if err != nil || !requesterCapsValid(g.Flags, g.Version) {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	// DSP0274 1.2 §10.4: without CHUNK_CAP a requester cannot receive a
	// message larger than one transfer.
	if g.Version >= V12 && g.Flags&CapChunk == 0 && g.DataTransferSize != g.MaxSPDMmsgSize {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	m := Capabilities{
		Version:    g.Version,
		CTExponent: r.cfg.CTExponent,
		Flags:      r.cfg.Caps & rspCapsMask(g.Version),
	}
	if g.Version == V11 && m.Flags&CapEncap == 0 {
		m.Flags &^= CapMutAuth // 1.1 allows it only with ENCAP
	}
	if g.Version >= V12 {
		m.DataTransferSize = r.cfg.DataTransferSize
		m.MaxSPDMmsgSize = r.cfg.MaxSPDMmsgSize
	}
	resp := m.Marshal()
	return reply{msg: resp, commit: func() {
		st.state = ResponderAfterCapabilities
		st.reqCaps = g.Flags
		st.reqDTS, st.reqMax = g.DataTransferSize, g.MaxSPDMmsgSize
		st.vca = append(append(st.vca, msg...), resp...)
	}}
}

// requesterCapsValid applies the flag rules of DSP0274 Table 11 that
// libspdm's responder enforces (libspdm_check_request_flag_compatibility).
func requesterCapsValid(f uint32, v Version) bool {
	if v < V11 {
		return true
	}
	has := func(b uint32) bool { return f&b != 0 }
	keyEx, psk := has(CapKeyEx), has(CapPSK)
	switch {
	case has(CapPSKWithContext): // requester PSK_CAP 10b and 11b are reserved
		return false
	case (keyEx || psk) && !has(CapMAC) && !has(CapEncrypt):
		return false
	case !keyEx && !psk && f&(CapMAC|CapEncrypt|CapHandshakeInClr|CapHbeat|CapKeyUpd) != 0:
		return false
	case !keyEx && psk && has(CapHandshakeInClr):
		return false
	case has(CapCert) && has(CapPubKeyID):
		return false
	case !has(CapCert) && !has(CapPubKeyID) && (has(CapChal) || has(CapMutAuth)):
		return false
	case has(CapMutAuth) && !keyEx && !has(CapChal):
		return false
	case v == V11 && has(CapMutAuth) && !has(CapEncap):
		return false
	}
	if (has(CapCert) || has(CapPubKeyID)) && !has(CapChal) && !keyEx {
		// From 1.3, EP_INFO_CAP with signature (bits 23:22 = 10b) also
		// uses the key.
		if v < V13 || (f>>22)&3 != 2 {
			return false
		}
	}
	if v >= V13 {
		multi := f & capMultiKeyMask
		if multi == capMultiKeyMask || (f>>22)&3 == 3 {
			return false
		}
		if multi != 0 && (has(CapPubKeyID) || !has(CapCert)) {
			return false
		}
	}
	return true
}

// negotiateAlgorithms answers NEGOTIATE_ALGORITHMS with one selection per
// field and per algorithm structure the requester sent.
func (r *Responder) negotiateAlgorithms(req []byte, h Header) reply {
	st := &r.st
	if st.state != ResponderAfterCapabilities {
		return r.fail(ErrCodeUnexpectedRequest, 0)
	}
	if h.Version != st.version {
		return r.fail(ErrCodeVersionMismatch, 0)
	}
	var n NegotiateAlgorithms
	msg, err := decodeExact("NEGOTIATE_ALGORITHMS", req, n.Decode)
	if err != nil {
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	m := Algorithms{Version: n.Version}
	if r.cfg.Caps&capMeasMask != 0 && n.MeasurementSpec != 0 {
		if n.MeasurementSpec&MeasurementSpecDMTF == 0 {
			return r.fail(ErrCodeInvalidRequest, 0)
		}
		m.MeasurementSpecSel = MeasurementSpecDMTF
		m.MeasurementHashAlgo = rspPick(rspMeasHashPref, r.cfg.MeasHash)
	}
	m.BaseAsymSel = rspPick(rspAsymPref, n.BaseAsymAlgo&r.asyms)
	m.BaseHashSel = rspPick(rspHashPref, n.BaseHashAlgo&r.cfg.BaseHash)
	if r.cfg.Caps&(CapCert|CapChal|CapMeasSig) != 0 && (m.BaseAsymSel == 0 || m.BaseHashSel == 0) {
		// Nothing in common to sign or hash with (libspdm answers the same).
		r.logNoCommonAlgorithm(&n, "BaseAsym/BaseHash")
		return r.fail(ErrCodeInvalidRequest, 0)
	}
	for _, t := range n.Structs {
		if t.Bits == 0 {
			return r.fail(ErrCodeInvalidRequest, 0)
		}
		// Every structure sent is answered, with a selection only where
		// the responder has the capability that uses it (DSP0274 §10.5;
		// SPDM-Responder-Validator 3.5.13-16): DHE for KEY_EX, AEAD and
		// key schedule for KEY_EX or PSK, ReqBaseAsym for MUT_AUTH.
		sel := AlgStruct{Type: t.Type}
		sessions := r.cfg.Caps&(CapKeyEx|CapPSK|CapPSKWithContext) != 0
		switch {
		case t.Type == AlgTypeDHE && r.cfg.Caps&CapKeyEx != 0:
			sel.Bits = uint16(rspPick(rspDHEPref, uint32(t.Bits)))
		case t.Type == AlgTypeAEAD && sessions:
			sel.Bits = uint16(rspPick(rspAEADPref, uint32(t.Bits)))
		case t.Type == AlgTypeReqBaseAsym && r.cfg.Caps&CapMutAuth != 0 && (n.Version >= V12 || r.cfg.EncapMutualAuth != nil):
			sel.Bits = uint16(rspPick(rspAsymPref, uint32(t.Bits)&r.reqAsymsVerifiable()))
		case t.Type == AlgTypeKeySchedule && sessions:
			sel.Bits = uint16(rspPick(rspKeySchedPref, uint32(t.Bits)))
		}
		if sel.Bits == 0 && (t.Type == AlgTypeDHE && r.cfg.Caps&CapKeyEx != 0 || t.Type == AlgTypeAEAD && sessions) {
			// Answered with no selection; the requester's sessions will fail.
			r.logNoCommonAlgorithm(&n, structOffer(t.Type, t.Bits))
		}
		m.Structs = append(m.Structs, sel)
	}
	if n.Version >= V12 {
		switch offered := n.OtherParamsSupport & rspOpaqueFmtMask; {
		case offered&rspOpaqueFmt1 != 0:
			m.OtherParamsSelection = rspOpaqueFmt1
		case offered&rspOpaqueFmt0 != 0:
			m.OtherParamsSelection = rspOpaqueFmt0
		}
	}
	var hash crypto.Hash
	var slots []rspSlot
	if m.BaseHashSel != 0 {
		hash, err = hashOf(m.BaseHashSel)
		if err != nil {
			return r.fail(ErrCodeUnspecified, 0)
		}
		for _, id := range r.ids {
			if id.asyms&m.BaseAsymSel == 0 || len(slots) == 8 {
				continue
			}
			chain, err := BuildCertChain(hash, id.root, id.certs...)
			if err != nil {
				return r.fail(ErrCodeUnspecified, 0)
			}
			d := hash.New()
			d.Write(chain)
			slots = append(slots, rspSlot{id: id, chain: chain, digest: d.Sum(nil)})
		}
	}
	resp := m.Marshal()
	return reply{msg: resp, commit: func() {
		st.state = ResponderNegotiated
		st.measSpec = m.MeasurementSpecSel
		st.measHash = m.MeasurementHashAlgo
		st.otherParams = m.OtherParamsSelection
		st.asym, st.hashAlg, st.hash = m.BaseAsymSel, m.BaseHashSel, hash
		st.dhe = structBits(m.Structs, AlgTypeDHE)
		st.aead = structBits(m.Structs, AlgTypeAEAD)
		st.reqAsym = structBits(m.Structs, AlgTypeReqBaseAsym)
		st.keySchedule = structBits(m.Structs, AlgTypeKeySchedule)
		st.slots = slots
		st.vca = append(append(st.vca, msg...), resp...)
	}}
}
