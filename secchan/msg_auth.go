package secchan

// Messages of identity: GET_DIGESTS/DIGESTS (DSP0274 §10.7),
// GET_CERTIFICATE/CERTIFICATE (§10.8), CHALLENGE/CHALLENGE_AUTH (§10.9).

import (
	"fmt"
	"math/bits"
)

// NonceSize is the size of SPDM nonces; ContextSize of 1.3 RequesterContext.
const (
	NonceSize   = 32
	ContextSize = 8
)

// GetDigests is GET_DIGESTS.
type GetDigests struct{ Version Version }

func (m *GetDigests) Marshal() []byte { return []byte{uint8(m.Version), CodeGetDigests, 0, 0} }

func (m *GetDigests) Decode(b []byte) (int, error) {
	r := newReader("GET_DIGESTS", b)
	h := checkHeader(r, CodeGetDigests, 0)
	m.Version = h.Version
	if r.err == nil && (h.Param1 != 0 || h.Param2 != 0) {
		r.fail("Param1/Param2", "reserved, are 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	return r.done()
}

// Digests is DIGESTS: one digest of the certificate chain in each
// provisioned slot. With a multi-key connection (1.3), per-slot KeyPairID,
// CertificateInfo and KeyUsageMask follow the digests.
type Digests struct {
	Version       Version
	SupportedMask uint8 // Param1, 1.3
	SlotMask      uint8 // Param2: provisioned slots
	Digests       [][]byte
	KeyPairIDs    []uint8
	CertInfos     []uint8
	KeyUsageMasks []uint16
}

func (m *Digests) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeDigests, m.SupportedMask, m.SlotMask)
	for _, d := range m.Digests {
		w.bytes(d)
	}
	for _, v := range m.KeyPairIDs {
		w.u8(v)
	}
	for _, v := range m.CertInfos {
		w.u8(v)
	}
	for _, v := range m.KeyUsageMasks {
		w.u16(v)
	}
	return w.b
}

// Decode parses DIGESTS given the negotiated hash size and whether the
// connection is multi-key (1.3 MULTI_KEY_CONN_RSP).
func (m *Digests) Decode(b []byte, hashSize int, multiKey bool) (int, error) {
	r := newReader("DIGESTS", b)
	h := checkHeader(r, CodeDigests, 0)
	*m = Digests{Version: h.Version, SupportedMask: h.Param1, SlotMask: h.Param2}
	if r.err == nil && h.Version < V13 && h.Param1 != 0 {
		r.fail("Param1", "reserved before 1.3, is 0x%02x", h.Param1)
	}
	if r.err == nil && h.Version >= V13 && h.Param1 != 0 && h.Param2&^h.Param1 != 0 {
		r.fail("Param2", "provisioned slots 0x%02x not all supported (0x%02x)", h.Param2, h.Param1)
	}
	n := bits.OnesCount8(h.Param2)
	for i := 0; i < n && r.err == nil; i++ {
		m.Digests = append(m.Digests, r.bytes(fmt.Sprintf("Digest[%d]", i), hashSize))
	}
	if multiKey {
		for i := 0; i < n && r.err == nil; i++ {
			m.KeyPairIDs = append(m.KeyPairIDs, r.u8("KeyPairID"))
		}
		for i := 0; i < n && r.err == nil; i++ {
			m.CertInfos = append(m.CertInfos, r.u8("CertificateInfo"))
		}
		for i := 0; i < n && r.err == nil; i++ {
			m.KeyUsageMasks = append(m.KeyUsageMasks, r.u16("KeyUsageMask"))
		}
	}
	return r.done()
}

// DigestFor returns the digest of slot, or nil if the slot is empty.
func (m *Digests) DigestFor(slot uint8) []byte {
	if slot > 7 || m.SlotMask&(1<<slot) == 0 {
		return nil
	}
	return m.Digests[bits.OnesCount8(m.SlotMask&(1<<slot-1))]
}

// GetCertificate is GET_CERTIFICATE.
type GetCertificate struct {
	Version Version
	Slot    uint8
	// SlotSizeRequested (1.3, Param2 bit 0) asks only for the chain's size.
	SlotSizeRequested bool
	Offset            uint16
	Length            uint16
}

func (m *GetCertificate) Marshal() []byte {
	w := &writer{}
	var p2 uint8
	if m.SlotSizeRequested {
		p2 = 1
	}
	w.header(m.Version, CodeGetCertificate, m.Slot, p2)
	w.u16(m.Offset)
	w.u16(m.Length)
	return w.b
}

func (m *GetCertificate) Decode(b []byte) (int, error) {
	r := newReader("GET_CERTIFICATE", b)
	h := checkHeader(r, CodeGetCertificate, 0)
	*m = GetCertificate{Version: h.Version, Slot: h.Param1 & 0xF}
	p2 := h.Param2
	if h.Version >= V13 {
		m.SlotSizeRequested = p2&1 != 0
		p2 &^= 1
	}
	if r.err == nil && (h.Param1&0xF0 != 0 || p2 != 0) {
		r.fail("Param1/Param2", "reserved bits set: 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	if r.err == nil && m.Slot > 7 {
		r.fail("Param1", "slot %d out of range", m.Slot)
	}
	m.Offset = r.u16("Offset")
	m.Length = r.u16("Length")
	return r.done()
}

// Certificate is CERTIFICATE: one portion of a slot's chain.
type Certificate struct {
	Version   Version
	Slot      uint8
	CertInfo  uint8 // Param2 bits 2:0, 1.3
	Portion   []byte
	Remainder uint16
}

func (m *Certificate) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeCertificate, m.Slot, m.CertInfo)
	w.u16(uint16(len(m.Portion)))
	w.u16(m.Remainder)
	w.bytes(m.Portion)
	return w.b
}

func (m *Certificate) Decode(b []byte) (int, error) {
	r := newReader("CERTIFICATE", b)
	h := checkHeader(r, CodeCertificate, 0)
	*m = Certificate{Version: h.Version, Slot: h.Param1 & 0xF, CertInfo: h.Param2 & 0x7}
	if r.err == nil && (h.Param1&0xF0 != 0 || h.Param2&0xF8 != 0) {
		r.fail("Param1/Param2", "reserved bits set: 0x%02x 0x%02x", h.Param1, h.Param2)
	}
	if r.err == nil && h.Version < V13 && h.Param2 != 0 {
		r.fail("Param2", "reserved before 1.3, is 0x%02x", h.Param2)
	}
	n := int(r.u16("PortionLength"))
	m.Remainder = r.u16("RemainderLength")
	m.Portion = r.bytes("CertChain", n)
	return r.done()
}

// Measurement summary hash types (CHALLENGE Param2, KEY_EXCHANGE Param1).
const (
	SummaryNone uint8 = 0x00
	SummaryTCB  uint8 = 0x01
	SummaryAll  uint8 = 0xFF
)

// Challenge is CHALLENGE.
type Challenge struct {
	Version     Version
	Slot        uint8 // 0xFF: the provisioned public key
	SummaryType uint8
	Nonce       [NonceSize]byte
	Context     [ContextSize]byte // 1.3
}

func (m *Challenge) Marshal() []byte {
	w := &writer{}
	w.header(m.Version, CodeChallenge, m.Slot, m.SummaryType)
	w.bytes(m.Nonce[:])
	if m.Version >= V13 {
		w.bytes(m.Context[:])
	}
	return w.b
}

func (m *Challenge) Decode(b []byte) (int, error) {
	r := newReader("CHALLENGE", b)
	h := checkHeader(r, CodeChallenge, 0)
	*m = Challenge{Version: h.Version, Slot: h.Param1, SummaryType: h.Param2}
	if r.err == nil && m.Slot > 7 && m.Slot != 0xFF {
		r.fail("Param1", "slot %d out of range", m.Slot)
	}
	if r.err == nil && m.SummaryType != SummaryNone && m.SummaryType != SummaryTCB && m.SummaryType != SummaryAll {
		r.fail("Param2", "measurement summary hash type 0x%02x", m.SummaryType)
	}
	copy(m.Nonce[:], r.bytes("Nonce", NonceSize))
	if m.Version >= V13 {
		copy(m.Context[:], r.bytes("RequesterContext", ContextSize))
	}
	return r.done()
}

// ChallengeAuth is CHALLENGE_AUTH.
type ChallengeAuth struct {
	Version       Version
	Slot          uint8 // Param1 bits 3:0
	BasicMutAuth  bool  // Param1 bit 7 (1.1 only)
	SlotMask      uint8 // Param2
	CertChainHash []byte
	Nonce         [NonceSize]byte
	SummaryHash   []byte
	Opaque        []byte
	Context       [ContextSize]byte // 1.3
	Signature     []byte
}

func (m *ChallengeAuth) Marshal() []byte {
	w := &writer{}
	p1 := m.Slot
	if m.BasicMutAuth {
		p1 |= 0x80
	}
	w.header(m.Version, CodeChallengeAuth, p1, m.SlotMask)
	w.bytes(m.CertChainHash)
	w.bytes(m.Nonce[:])
	w.bytes(m.SummaryHash)
	w.u16(uint16(len(m.Opaque)))
	w.bytes(m.Opaque)
	if m.Version >= V13 {
		w.bytes(m.Context[:])
	}
	w.bytes(m.Signature)
	return w.b
}

// Decode parses CHALLENGE_AUTH; summarySize is the hash size if the
// request asked for a measurement summary hash, else 0. It returns the
// message length; the signed part is everything before the signature.
func (m *ChallengeAuth) Decode(b []byte, hashSize, summarySize, sigSize int) (int, error) {
	r := newReader("CHALLENGE_AUTH", b)
	h := checkHeader(r, CodeChallengeAuth, 0)
	*m = ChallengeAuth{Version: h.Version, Slot: h.Param1 & 0xF, BasicMutAuth: h.Param1&0x80 != 0, SlotMask: h.Param2}
	if r.err == nil && h.Param1&0x70 != 0 {
		r.fail("Param1", "reserved bits set: 0x%02x", h.Param1)
	}
	m.CertChainHash = r.bytes("CertChainHash", hashSize)
	copy(m.Nonce[:], r.bytes("Nonce", NonceSize))
	m.SummaryHash = r.bytes("MeasurementSummaryHash", summarySize)
	m.Opaque = r.bytes("OpaqueData", int(r.u16("OpaqueDataLength")))
	if r.err == nil && len(m.Opaque) > MaxOpaqueSize {
		r.fail("OpaqueDataLength", "%d exceeds %d", len(m.Opaque), MaxOpaqueSize)
	}
	if m.Version >= V13 {
		copy(m.Context[:], r.bytes("RequesterContext", ContextSize))
	}
	m.Signature = r.bytes("Signature", sigSize)
	return r.done()
}

// MaxOpaqueSize is the largest OpaqueData allowed (DSP0274: 1024 bytes).
const MaxOpaqueSize = 1024
