package secchan

// Responder side of GET_MEASUREMENTS (DSP0274 §10.11) and the measurement
// summary hash of CHALLENGE_AUTH (§10.9).

import (
	"context"
	"crypto"
	"fmt"
	"slices"
)

// rspTCBTypes are the DMTF value types this responder counts as its TCB
// for the TCB component measurement summary hash: the code and
// configuration its trustworthiness rests on (immutable ROM, mutable
// firmware, hardware and firmware configuration). Version strings,
// manifests, device mode and SVN are descriptive and left out. DSP0274
// leaves the choice to the device; libspdm's sample counts immutable ROM
// only.
var rspTCBTypes = []uint8{MeasTypeImmutableROM, MeasTypeMutableFirmware, MeasTypeHardwareConfig, MeasTypeFirmwareConfig}

// measurementBlocks returns the provider's measurements as DMTF blocks,
// ordered by index: digests with the negotiated measurement hash, or raw
// values when raw is asked for (or the negotiated algorithm is raw only).
func (r *Responder) measurementBlocks(raw bool) ([]MeasurementBlock, error) {
	ms := r.cfg.Measurements.Measurements()
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b RawMeasurement) int { return int(a.Index) - int(b.Index) })
	raw = raw || r.st.measHash == MeasHashRaw
	var out []MeasurementBlock
	for i, m := range ms {
		switch {
		case m.Index == 0 || m.Index == 0xFF:
			return nil, fmt.Errorf("measurement index %d is reserved", m.Index)
		case i > 0 && ms[i-1].Index == m.Index:
			return nil, fmt.Errorf("measurement index %d repeated", m.Index)
		case m.Type&MeasTypeRawBitStream != 0:
			return nil, fmt.Errorf("measurement %d: type 0x%02x has the raw-bit-stream bit", m.Index, m.Type)
		}
		b := MeasurementBlock{Index: m.Index, Spec: MeasurementSpecDMTF, ValueType: m.Type}
		if raw {
			b.ValueType |= MeasTypeRawBitStream
			b.Value = slices.Clone(m.Value)
		} else {
			h, err := rspMeasHash(r.st.measHash)
			if err != nil {
				return nil, err
			}
			d := h.New()
			d.Write(m.Value)
			b.Value = d.Sum(nil)
		}
		if len(b.Value) > 0xFFFF-3 {
			return nil, fmt.Errorf("measurement %d: value of %d bytes does not fit a block", m.Index, len(b.Value))
		}
		out = append(out, b)
	}
	return out, nil
}

// rspMeasHash maps a MeasurementHashAlgo bit to its hash function.
func rspMeasHash(bit uint32) (crypto.Hash, error) {
	switch bit {
	case MeasHashSHA256:
		return crypto.SHA256, nil
	case MeasHashSHA384:
		return crypto.SHA384, nil
	case MeasHashSHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: measurement hash %s", ErrUnsupportedAlgorithm, MeasHashName(bit))
}

// summaryHash is the MeasurementSummaryHash for CHALLENGE Param2: the hash,
// with the negotiated base hash, of the concatenation of the measurement
// blocks (digest form) — all of them for SummaryAll, those of rspTCBTypes
// for SummaryTCB — as libspdm computes it.
func (r *Responder) summaryHash(kind uint8) ([]byte, error) {
	blocks, err := r.measurementBlocks(false)
	if err != nil {
		return nil, err
	}
	var sel []MeasurementBlock
	for _, b := range blocks {
		if kind == SummaryAll || slices.Contains(rspTCBTypes, b.ValueType&^MeasTypeRawBitStream) {
			sel = append(sel, b)
		}
	}
	return r.transcriptHash(MarshalRecord(sel)), nil
}

// getMeasurements answers GET_MEASUREMENTS: the number of indices, one
// block, or all blocks; signed over L1L2 when asked. l is the L1L2
// transcript it extends: the connection's, or a session's.
func (r *Responder) getMeasurements(_ context.Context, req []byte, h Header, l *[]byte) reply {
	st := &r.st
	rp, ok := r.checkNegotiated(h, capMeasMask)
	if !ok || st.measSpec == 0 || st.measHash == 0 {
		*l = nil // libspdm drops L1L2 on every failed GET_MEASUREMENTS
		if ok {
			rp = r.fail(ErrCodeUnexpectedRequest, 0) // no measurement spec negotiated
		}
		return rp
	}
	failed := func(code ErrorCode) reply {
		*l = nil
		return r.fail(code, 0)
	}
	var g GetMeasurements
	msg, err := decodeExact("GET_MEASUREMENTS", req, g.Decode)
	if err != nil {
		return failed(ErrCodeInvalidRequest)
	}
	signed := g.SignatureRequested()
	slot := uint8(0)
	if signed {
		if r.cfg.Caps&CapMeasSig == 0 {
			return failed(ErrCodeInvalidRequest)
		}
		if st.version >= V11 {
			slot = g.Slot
		}
		if int(slot) >= len(st.slots) { // 0xF (a provisioned public key) included
			return failed(ErrCodeInvalidRequest)
		}
	}
	blocks, err := r.measurementBlocks(g.Attributes&MeasAttrRawBitStream != 0)
	if err != nil {
		return failed(ErrCodeUnspecified)
	}
	nonce, err := randomNonce()
	if err != nil {
		return failed(ErrCodeUnspecified)
	}
	m := Measurements{Version: st.version, Nonce: nonce, Context: g.Context}
	switch g.Operation {
	case MeasOpCount:
		m.Param1 = uint8(len(blocks))
	case MeasOpAll:
		m.NumBlocks = uint8(len(blocks))
		m.Record = MarshalRecord(blocks)
	default:
		i := slices.IndexFunc(blocks, func(b MeasurementBlock) bool { return b.Index == g.Operation })
		if i < 0 {
			// DSP0274 1.x and libspdm: an index the device lacks is
			// InvalidRequest.
			return failed(ErrCodeInvalidRequest)
		}
		m.NumBlocks = 1
		m.Record = MarshalRecord(blocks[i : i+1])
	}
	if len(m.Record) >= 1<<24 {
		return failed(ErrCodeUnspecified)
	}
	if signed && st.version >= V11 {
		m.Slot = slot // content-change detection (1.2 bits 5:4) not offered: 00b
	}
	resp := m.Marshal()
	commit := func() {
		*l = append(append(*l, msg...), resp...)
		if !st.authenticated {
			st.b = nil // DSP0274: measurements before a completed CHALLENGE drop M1/M2
		}
	}
	if signed {
		var vca []byte
		if st.version >= V12 {
			vca = st.vca
		}
		th := r.transcriptHash(vca, *l, msg, resp)
		sig, err := Sign(st.version, st.asym, st.hash, st.slots[slot].id.key, ContextMeasurements, th)
		if err != nil {
			return failed(ErrCodeUnspecified)
		}
		resp = append(resp, sig...)
		commit = func() {
			*l = nil // L1L2 ends with a signed MEASUREMENTS
			if !st.authenticated {
				st.b = nil
			}
		}
	}
	return reply{msg: resp, commit: commit}
}
