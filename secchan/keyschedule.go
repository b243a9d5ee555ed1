package secchan

// The SPDM key schedule (DSP0274 §12, "Key schedule"), as stages:
//
//	ikm (ECDHE secret or PSK)
//	  └─ HKDF-Extract(salt0) ────────────────────────► HandshakeSecret
//	       ├─ Expand("req hs data"/"rsp hs data", TH1) ─► HandshakeKeys
//	       └─ Expand("derived") → Extract(0^H) ─────────► MasterSecret
//	            └─ Expand("req app data"/"rsp app data"/"exp master", TH2)
//	                                                   ─► DataSecrets
//	 each direction secret ─ Expand("key"/"iv"/"finished") ─► keys, IV
//	 each data secret ────── Expand("traffic upd") ─────────► next secret
//
// Every Expand goes through one function with a BinConcat info: the output
// length (u16 LE), "spdm1.N " for the connection's version, the label and
// the transcript hash where one applies. salt0 is H zero bytes, except
// for a PSK from SPDM 1.3 on, where it is H bytes of 0xFF.

import (
	"crypto"
	"crypto/hkdf"
	"encoding/binary"
	"fmt"
)

// Key-schedule labels (DSP0274 Table 80).
const (
	labelDerived    = "derived"
	labelReqHS      = "req hs data"
	labelRspHS      = "rsp hs data"
	labelReqApp     = "req app data"
	labelRspApp     = "rsp app data"
	labelKey        = "key"
	labelIV         = "iv"
	labelFinished   = "finished"
	labelExpMaster  = "exp master"
	labelTrafficUpd = "traffic upd"
)

// IVSize is the AEAD nonce size of every SPDM cipher suite.
const IVSize = 12

// TagSize is the AEAD tag size of every SPDM cipher suite.
const TagSize = 16

// AEADKeySize returns the key size of an AEAD cipher suite bit.
func AEADKeySize(aead uint16) (int, error) {
	switch aead {
	case AEADAES128GCM:
		return 16, nil
	case AEADAES256GCM, AEADChaCha20Poly1305:
		return 32, nil
	}
	return 0, fmt.Errorf("%w: AEAD %s", ErrUnsupportedAlgorithm, AEADName(aead))
}

// KeySchedule holds what every stage needs: the connection's version, its
// hash and AEAD.
type KeySchedule struct {
	Version Version
	Hash    crypto.Hash
	AEAD    uint16
}

// binConcat builds the HKDF info for label.
func (ks KeySchedule) binConcat(length int, label string, context []byte) []byte {
	info := binary.LittleEndian.AppendUint16(nil, uint16(length))
	info = fmt.Appendf(info, "spdm%d.%d ", ks.Version>>4, ks.Version&0xF)
	info = append(info, label...)
	return append(info, context...)
}

// expand is the one HKDF-Expand of the schedule.
func (ks KeySchedule) expand(secret []byte, label string, context []byte, length int) []byte {
	out, err := hkdf.Expand(ks.Hash.New, secret, string(ks.binConcat(length, label, context)), length)
	if err != nil {
		// Only possible for lengths over 255*H, which no caller asks for.
		panic("secchan: HKDF-Expand length out of range")
	}
	return out
}

// DirectionKeys are the AEAD key and IV of one direction.
type DirectionKeys struct {
	Key []byte
	IV  []byte
}

// Zero overwrites the keys.
func (d *DirectionKeys) Zero() {
	zero(d.Key)
	zero(d.IV)
}

// keysFrom derives the AEAD key and IV from a direction secret.
func (ks KeySchedule) keysFrom(secret []byte) (DirectionKeys, error) {
	n, err := AEADKeySize(ks.AEAD)
	if err != nil {
		return DirectionKeys{}, err
	}
	return DirectionKeys{Key: ks.expand(secret, labelKey, nil, n), IV: ks.expand(secret, labelIV, nil, IVSize)}, nil
}

// HandshakeSecret is the first stage, from the key-exchange material.
type HandshakeSecret struct {
	ks     KeySchedule
	secret []byte
}

// NewHandshakeSecret extracts the handshake secret from ikm: the ECDHE
// shared secret, or the PSK when psk is true.
func (ks KeySchedule) NewHandshakeSecret(ikm []byte, psk bool) (*HandshakeSecret, error) {
	if ks.Hash == 0 || !ks.Hash.Available() {
		return nil, fmt.Errorf("%w: key schedule without a hash", ErrUnsupportedAlgorithm)
	}
	if len(ikm) == 0 {
		return nil, fmt.Errorf("secchan: empty key-exchange secret")
	}
	salt := make([]byte, ks.Hash.Size())
	if psk && ks.Version >= V13 {
		for i := range salt {
			salt[i] = 0xFF
		}
	}
	prk, err := hkdf.Extract(ks.Hash.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	return &HandshakeSecret{ks: ks, secret: prk}, nil
}

// Secret returns the handshake secret itself (for tests against vectors).
func (h *HandshakeSecret) Secret() []byte { return h.secret }

// HandshakeKeys protect the handshake (FINISH/PSK_FINISH and responses).
type HandshakeKeys struct {
	ReqSecret, RspSecret     []byte
	ReqFinished, RspFinished []byte
	Req, Rsp                 DirectionKeys
}

// Zero overwrites every key of the stage.
func (k *HandshakeKeys) Zero() {
	zero(k.ReqSecret)
	zero(k.RspSecret)
	zero(k.ReqFinished)
	zero(k.RspFinished)
	k.Req.Zero()
	k.Rsp.Zero()
}

// Keys derives the handshake keys from TH1's hash.
func (h *HandshakeSecret) Keys(th1 []byte) (*HandshakeKeys, error) {
	hs := h.ks.Hash.Size()
	k := &HandshakeKeys{
		ReqSecret: h.ks.expand(h.secret, labelReqHS, th1, hs),
		RspSecret: h.ks.expand(h.secret, labelRspHS, th1, hs),
	}
	k.ReqFinished = h.ks.expand(k.ReqSecret, labelFinished, nil, hs)
	k.RspFinished = h.ks.expand(k.RspSecret, labelFinished, nil, hs)
	var err error
	if k.Req, err = h.ks.keysFrom(k.ReqSecret); err != nil {
		return nil, err
	}
	if k.Rsp, err = h.ks.keysFrom(k.RspSecret); err != nil {
		return nil, err
	}
	return k, nil
}

// Master derives the master secret; the handshake secret is then no longer
// needed and is zeroed.
func (h *HandshakeSecret) Master() *MasterSecret {
	hs := h.ks.Hash.Size()
	salt := h.ks.expand(h.secret, labelDerived, nil, hs)
	prk, err := hkdf.Extract(h.ks.Hash.New, make([]byte, hs), salt)
	if err != nil {
		panic("secchan: HKDF-Extract failed with a registered hash")
	}
	zero(salt)
	zero(h.secret)
	return &MasterSecret{ks: h.ks, secret: prk}
}

// MasterSecret is the stage that yields the data secrets.
type MasterSecret struct {
	ks     KeySchedule
	secret []byte
}

// Secret returns the master secret itself (for tests against vectors).
func (m *MasterSecret) Secret() []byte { return m.secret }

// DataSecrets protect application data after the handshake.
type DataSecrets struct {
	ks                   KeySchedule
	ReqSecret, RspSecret []byte
	ExportMaster         []byte
	Req, Rsp             DirectionKeys
}

// Data derives the data secrets from TH2's hash and zeroes the master
// secret.
func (m *MasterSecret) Data(th2 []byte) (*DataSecrets, error) {
	hs := m.ks.Hash.Size()
	d := &DataSecrets{
		ks:           m.ks,
		ReqSecret:    m.ks.expand(m.secret, labelReqApp, th2, hs),
		RspSecret:    m.ks.expand(m.secret, labelRspApp, th2, hs),
		ExportMaster: m.ks.expand(m.secret, labelExpMaster, th2, hs),
	}
	zero(m.secret)
	var err error
	if d.Req, err = m.ks.keysFrom(d.ReqSecret); err != nil {
		return nil, err
	}
	if d.Rsp, err = m.ks.keysFrom(d.RspSecret); err != nil {
		return nil, err
	}
	return d, nil
}

// Zero overwrites every secret of the stage.
func (d *DataSecrets) Zero() {
	zero(d.ReqSecret)
	zero(d.RspSecret)
	zero(d.ExportMaster)
	d.Req.Zero()
	d.Rsp.Zero()
}

// UpdateReq and UpdateRsp move one direction to its next data secret
// (KEY_UPDATE, DSP0274 §12.7) and return the new keys; the old secret is
// zeroed. The old keys stay with the caller, which may still need them
// until the update is acknowledged.
func (d *DataSecrets) UpdateReq() (DirectionKeys, error) { return d.update(&d.ReqSecret, &d.Req) }

// UpdateRsp: see UpdateReq.
func (d *DataSecrets) UpdateRsp() (DirectionKeys, error) { return d.update(&d.RspSecret, &d.Rsp) }

func (d *DataSecrets) update(secret *[]byte, keys *DirectionKeys) (DirectionKeys, error) {
	next := d.ks.expand(*secret, labelTrafficUpd, nil, d.ks.Hash.Size())
	k, err := d.ks.keysFrom(next)
	if err != nil {
		zero(next)
		return DirectionKeys{}, err
	}
	zero(*secret)
	*secret, *keys = next, k
	return k, nil
}

// zero overwrites b.
func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
