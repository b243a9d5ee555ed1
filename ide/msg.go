// Package ide programs PCIe IDE (Integrity and Data Encryption) link keys
// with IDE_KM (PCIe Base 6.x §6.33.3) over an SPDM secure session: the
// message codec (this file), a requester (requester.go), a device-side
// responder (responder.go) and a simulated IDE link that protects TLPs with
// the programmed keys (link.go).
//
// IDE_KM objects travel as the payload of VENDOR_DEFINED_REQUEST/RESPONSE
// (DSP0274 §10.20) under StandardID PCI-SIG (3), the PCI-SIG vendor ID
// 0x0001 and protocol ID 0 (wrap.go); only a secure session may carry them.
//
// # Key and IFV byte order
//
// KEY_PROG carries the AES-256-GCM key as 8 DWs and the IFV (the initial
// value of the IV's invocation field) as 2 DWs. This package uses the
// PCIe/CXL convention that Intel's tee-io-validator documents
// (doc/key_byte_order.md, after PCIe Base 6.2 and its Appendix L vectors):
// the message lists the most significant DW first and each DW is a
// little-endian 32-bit value. So, with the key written most significant
// byte first as crypto/aes takes it (k[0] ... k[31]), the wire holds
// k[3] k[2] k[1] k[0] k[7] k[6] k[5] k[4] ... — each 4-byte group
// reversed, groups in order — and an IFV of 1 is the bytes
// 00 00 00 00 01 00 00 00. libspdm's spdm-emu requester fills the key
// with random bytes (so any order works against its sample device, which
// stores them opaquely) and writes its IFV as the DWs {0, 1}, which under
// this convention is exactly the specification's initial invocation field
// of 1; every KEY_PROG in the golden corpus decodes to IFV 1.
package ide

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// IDE_KM object IDs (PCIe Base 6.x Table 6-37; pci_idekm.h).
const (
	ObjQuery      uint8 = 0x00
	ObjQueryResp  uint8 = 0x01
	ObjKeyProg    uint8 = 0x02
	ObjKPAck      uint8 = 0x03
	ObjKSetGo     uint8 = 0x04
	ObjKSetStop   uint8 = 0x05
	ObjKGoStopAck uint8 = 0x06
)

var objectNames = [...]string{"QUERY", "QUERY_RESP", "KEY_PROG", "KP_ACK", "K_SET_GO", "K_SET_STOP", "K_GOSTOP_ACK"}

// ObjectName names an IDE_KM object ID.
func ObjectName(id uint8) string {
	if int(id) < len(objectNames) {
		return objectNames[id]
	}
	return fmt.Sprintf("IDE_KM object 0x%02x", id)
}

// Object sizes in bytes (pci_idekm.h, packed).
const (
	querySize   = 3
	keyProgHdr  = 7
	KeySize     = 32 // 8 DW
	IFVSize     = 8  // 2 DW
	keyProgSize = keyProgHdr + KeySize + IFVSize
	ackSize     = 7 // KP_ACK, K_SET_GO, K_SET_STOP, K_GOSTOP_ACK
)

// KeySet is K0 or K1.
type KeySet uint8

const (
	K0 KeySet = 0
	K1 KeySet = 1
)

// Other is the other key set.
func (k KeySet) Other() KeySet { return k ^ 1 }

func (k KeySet) String() string { return fmt.Sprintf("K%d", uint8(k)) }

// Direction is RX or TX, from the point of view of the port being
// programmed.
type Direction uint8

const (
	RX Direction = 0
	TX Direction = 1
)

// Reverse is the direction the other end of the link uses for the same
// traffic (a device's TX key is the root port's RX key).
func (d Direction) Reverse() Direction { return d ^ 1 }

func (d Direction) String() string {
	if d == TX {
		return "TX"
	}
	return "RX"
}

// SubStream is an IDE sub-stream (PCIe Base 6.x §6.33.4).
type SubStream uint8

const (
	PR  SubStream = 0 // posted requests
	NPR SubStream = 1 // non-posted requests
	CPL SubStream = 2 // completions
)

func (s SubStream) String() string {
	switch s {
	case PR:
		return "PR"
	case NPR:
		return "NPR"
	case CPL:
		return "CPL"
	}
	return fmt.Sprintf("SubStream(%d)", uint8(s))
}

// Directions and SubStreams list every value, in the order keys are
// programmed (the order of spdm-emu's requester).
var (
	Directions = [2]Direction{RX, TX}
	SubStreams = [3]SubStream{PR, NPR, CPL}
)

// KeySubStream is the key_sub_stream byte: bit 0 key set, bit 1
// direction (1 = TX), bits 3:2 reserved, bits 7:4 sub-stream.
type KeySubStream uint8

// KSS builds a KeySubStream.
func KSS(ks KeySet, d Direction, s SubStream) KeySubStream {
	return KeySubStream(uint8(ks&1) | uint8(d&1)<<1 | uint8(s)<<4)
}

func (k KeySubStream) KeySet() KeySet       { return KeySet(k & 1) }
func (k KeySubStream) Direction() Direction { return Direction(k >> 1 & 1) }
func (k KeySubStream) SubStream() SubStream { return SubStream(k >> 4) }

// Valid reports whether the reserved bits are zero and the sub-stream is
// one of PR, NPR, CPL.
func (k KeySubStream) Valid() bool { return k&0x0C == 0 && k.SubStream() <= CPL }

func (k KeySubStream) String() string {
	return fmt.Sprintf("%v|%v|%v", k.KeySet(), k.Direction(), k.SubStream())
}

// ErrMalformed is matched (errors.Is) by every *DecodeError.
var ErrMalformed = errors.New("ide: malformed IDE_KM object")

// DecodeError names the object and field that did not decode.
type DecodeError struct {
	Object string
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("ide: %s: %s", e.Object, e.Reason)
	}
	return fmt.Sprintf("ide: %s %s: %s", e.Object, e.Field, e.Reason)
}

func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func decodeErr(obj uint8, field, format string, args ...any) error {
	return &DecodeError{Object: ObjectName(obj), Field: field, Reason: fmt.Sprintf(format, args...)}
}

// header checks the object ID, the minimum length and reserved bytes (at
// the given offsets) of b.
func header(obj uint8, b []byte, size int, reserved ...int) error {
	if len(b) < size {
		return decodeErr(obj, "", "%d bytes, want %d", len(b), size)
	}
	if b[0] != obj {
		return decodeErr(obj, "ObjectID", "0x%02x", b[0])
	}
	for _, off := range reserved {
		if b[off] != 0 {
			return decodeErr(obj, fmt.Sprintf("Reserved (byte %d)", off), "0x%02x, want 0", b[off])
		}
	}
	return nil
}

// Message is any IDE_KM object.
type Message interface {
	ObjectID() uint8
	Marshal() []byte
	Decode(b []byte) (int, error)
}

// Query is QUERY: object ID, reserved, port index.
type Query struct {
	PortIndex uint8
}

func (*Query) ObjectID() uint8   { return ObjQuery }
func (m *Query) Marshal() []byte { return []byte{ObjQuery, 0, m.PortIndex} }

// Decode decodes QUERY (3 bytes).
func (m *Query) Decode(b []byte) (int, error) {
	if err := header(ObjQuery, b, querySize, 1); err != nil {
		return 0, err
	}
	m.PortIndex = b[2]
	return querySize, nil
}

// IDE capability register fields (PCIe Base 6.x §7.9.26.2).
const (
	CapLinkIDE           uint32 = 1 << 0
	CapSelectiveIDE      uint32 = 1 << 1
	CapFlowThrough       uint32 = 1 << 2
	CapPartialHeader     uint32 = 1 << 3
	CapAggregation       uint32 = 1 << 4
	CapPCRC              uint32 = 1 << 5
	CapIDEKM             uint32 = 1 << 6
	CapSelectiveCfg      uint32 = 1 << 7
	capAlgShift                 = 8  // bits 12:8 supported algorithms (0: AES-GCM-256, 96-bit MAC)
	capNumTCsShift              = 13 // bits 15:13 number of TCs for link IDE, minus 1
	capNumSelShift              = 16 // bits 23:16 number of selective IDE streams, minus 1
	selCapAddrBlocksMask        = 0xF
	maxAddrBlocks               = 15
)

// LinkCount and SelectiveCount are how many link and selective stream
// register blocks the capability register announces.
func LinkCount(cap uint32) int {
	if cap&CapLinkIDE == 0 {
		return 0
	}
	return int(cap>>capNumTCsShift&7) + 1
}

func SelectiveCount(cap uint32) int {
	if cap&CapSelectiveIDE == 0 {
		return 0
	}
	return int(cap>>capNumSelShift&0xFF) + 1
}

// LinkStream is one link IDE stream register block.
type LinkStream struct{ Control, Status uint32 }

// SelectiveStream is one selective IDE stream register block; the number
// of address association blocks is bits 3:0 of Cap.
type SelectiveStream struct {
	Cap, Control, Status uint32
	RID1, RID2           uint32
	Addr                 [][3]uint32
}

// QueryResp is QUERY_RESP: port index, device/function, bus, segment,
// max port index, then the IDE extended capability's registers from the
// capability register on, as raw DWs (little-endian): capability,
// control, the link stream blocks and the selective stream blocks, their
// counts taken from the capability register.
type QueryResp struct {
	PortIndex    uint8
	DevFunc      uint8
	Bus          uint8
	Segment      uint8
	MaxPortIndex uint8
	Cap, Control uint32
	Link         []LinkStream
	Selective    []SelectiveStream
	// ZeroDWs counts all-zero DWs after the blocks the capability register
	// announces. libspdm's sample device always sends its whole 74-DW
	// buffer, zero-filled; trailing DWs that are not zero are refused.
	ZeroDWs int
}

func (*QueryResp) ObjectID() uint8 { return ObjQueryResp }

func (m *QueryResp) Marshal() []byte {
	b := []byte{ObjQueryResp, 0, m.PortIndex, m.DevFunc, m.Bus, m.Segment, m.MaxPortIndex}
	le := binary.LittleEndian
	b = le.AppendUint32(b, m.Cap)
	b = le.AppendUint32(b, m.Control)
	for _, l := range m.Link {
		b = le.AppendUint32(le.AppendUint32(b, l.Control), l.Status)
	}
	for _, s := range m.Selective {
		for _, v := range []uint32{s.Cap, s.Control, s.Status, s.RID1, s.RID2} {
			b = le.AppendUint32(b, v)
		}
		for _, a := range s.Addr {
			b = le.AppendUint32(le.AppendUint32(le.AppendUint32(b, a[0]), a[1]), a[2])
		}
	}
	return append(b, make([]byte, 4*m.ZeroDWs)...)
}

// Decode decodes QUERY_RESP, which runs to the end of b: the register
// blocks must fill it exactly (plus zero DWs, see ZeroDWs).
func (m *QueryResp) Decode(b []byte) (int, error) {
	const fixed = 7
	*m = QueryResp{}
	if err := header(ObjQueryResp, b, fixed+8, 1); err != nil {
		return 0, err
	}
	if (len(b)-fixed)%4 != 0 {
		return 0, decodeErr(ObjQueryResp, "IDE registers", "%d bytes, not whole DWs", len(b)-fixed)
	}
	m.PortIndex, m.DevFunc, m.Bus, m.Segment, m.MaxPortIndex = b[2], b[3], b[4], b[5], b[6]
	regs := b[fixed:]
	dw := func() uint32 { v := binary.LittleEndian.Uint32(regs); regs = regs[4:]; return v }
	need := func(field string, n int) error {
		if len(regs) < 4*n {
			return decodeErr(ObjQueryResp, field, "capability announces %d more DWs, %d bytes left", n, len(regs))
		}
		return nil
	}
	m.Cap, m.Control = dw(), dw()
	if n := LinkCount(m.Cap); n > 0 {
		if err := need("Link IDE stream blocks", 2*n); err != nil {
			return 0, err
		}
		m.Link = make([]LinkStream, n)
		for i := range m.Link {
			m.Link[i] = LinkStream{Control: dw(), Status: dw()}
		}
	}
	if n := SelectiveCount(m.Cap); n > 0 {
		m.Selective = make([]SelectiveStream, 0, min(n, len(regs)/20))
		for i := 0; i < n; i++ {
			field := fmt.Sprintf("Selective IDE stream block %d", i)
			if err := need(field, 5); err != nil {
				return 0, err
			}
			s := SelectiveStream{Cap: dw(), Control: dw(), Status: dw(), RID1: dw(), RID2: dw()}
			na := int(s.Cap & selCapAddrBlocksMask)
			if err := need(field+" address associations", 3*na); err != nil {
				return 0, err
			}
			for range na {
				s.Addr = append(s.Addr, [3]uint32{dw(), dw(), dw()})
			}
			m.Selective = append(m.Selective, s)
		}
	}
	for len(regs) > 0 {
		if v := dw(); v != 0 {
			return 0, decodeErr(ObjQueryResp, "IDE registers", "DW 0x%08x beyond the blocks the capability register announces", v)
		}
		m.ZeroDWs++
	}
	return len(b), nil
}

// KeyProg is KEY_PROG: stream ID, key_sub_stream, port index, the key
// (8 DW) and the IFV (2 DW); see the package comment for their byte order.
type KeyProg struct {
	StreamID  uint8
	KSS       KeySubStream
	PortIndex uint8
	Key       [KeySize]byte // AES-256 key, most significant byte first
	IFV       uint64        // initial invocation field
}

func (*KeyProg) ObjectID() uint8 { return ObjKeyProg }

func (m *KeyProg) Marshal() []byte {
	b := make([]byte, keyProgSize)
	b[0], b[3], b[5], b[6] = ObjKeyProg, m.StreamID, uint8(m.KSS), m.PortIndex
	PutWireKey(b[keyProgHdr:], &m.Key)
	PutWireIFV(b[keyProgHdr+KeySize:], m.IFV)
	return b
}

// Decode decodes KEY_PROG (47 bytes).
func (m *KeyProg) Decode(b []byte) (int, error) {
	*m = KeyProg{}
	if err := header(ObjKeyProg, b, keyProgHdr, 1, 2, 4); err != nil {
		return 0, err
	}
	if len(b) < keyProgSize {
		return 0, decodeErr(ObjKeyProg, "Key/IFV", "%d bytes, want %d", len(b), keyProgSize)
	}
	m.StreamID, m.KSS, m.PortIndex = b[3], KeySubStream(b[5]), b[6]
	if !m.KSS.Valid() {
		return 0, decodeErr(ObjKeyProg, "KeySubStream", "0x%02x", b[5])
	}
	m.Key = WireKey(b[keyProgHdr:])
	m.IFV = WireIFV(b[keyProgHdr+KeySize:])
	return keyProgSize, nil
}

// PutWireKey writes key in KEY_PROG's order into dst[:32]: each 4-byte
// group of the key reversed (a little-endian DW), most significant first.
func PutWireKey(dst []byte, key *[KeySize]byte) {
	for i := 0; i < KeySize; i += 4 {
		dst[i], dst[i+1], dst[i+2], dst[i+3] = key[i+3], key[i+2], key[i+1], key[i]
	}
}

// WireKey is the inverse of PutWireKey.
func WireKey(src []byte) (key [KeySize]byte) {
	for i := 0; i < KeySize; i += 4 {
		key[i], key[i+1], key[i+2], key[i+3] = src[i+3], src[i+2], src[i+1], src[i]
	}
	return key
}

// PutWireIFV writes ifv as two little-endian DWs, bits 63:32 first.
func PutWireIFV(dst []byte, ifv uint64) {
	binary.LittleEndian.PutUint32(dst, uint32(ifv>>32))
	binary.LittleEndian.PutUint32(dst[4:], uint32(ifv))
}

// WireIFV is the inverse of PutWireIFV.
func WireIFV(src []byte) uint64 {
	return uint64(binary.LittleEndian.Uint32(src))<<32 | uint64(binary.LittleEndian.Uint32(src[4:]))
}

// KeyRef names one key: stream, key_sub_stream and port. It is the body
// of K_SET_GO, K_SET_STOP and K_GOSTOP_ACK.
type KeyRef struct {
	StreamID  uint8
	KSS       KeySubStream
	PortIndex uint8
}

func (r KeyRef) String() string {
	return fmt.Sprintf("stream %d %v port %d", r.StreamID, r.KSS, r.PortIndex)
}

func (r KeyRef) marshal(obj uint8) []byte {
	return []byte{obj, 0, 0, r.StreamID, 0, uint8(r.KSS), r.PortIndex}
}

func (r *KeyRef) decode(obj uint8, b []byte) (int, error) {
	*r = KeyRef{}
	if err := header(obj, b, ackSize, 1, 2, 4); err != nil {
		return 0, err
	}
	r.StreamID, r.KSS, r.PortIndex = b[3], KeySubStream(b[5]), b[6]
	if !r.KSS.Valid() {
		return 0, decodeErr(obj, "KeySubStream", "0x%02x", b[5])
	}
	return ackSize, nil
}

// KSetGo is K_SET_GO.
type KSetGo struct{ KeyRef }

func (*KSetGo) ObjectID() uint8                { return ObjKSetGo }
func (m *KSetGo) Marshal() []byte              { return m.marshal(ObjKSetGo) }
func (m *KSetGo) Decode(b []byte) (int, error) { return m.decode(ObjKSetGo, b) }

// KSetStop is K_SET_STOP.
type KSetStop struct{ KeyRef }

func (*KSetStop) ObjectID() uint8                { return ObjKSetStop }
func (m *KSetStop) Marshal() []byte              { return m.marshal(ObjKSetStop) }
func (m *KSetStop) Decode(b []byte) (int, error) { return m.decode(ObjKSetStop, b) }

// KGoStopAck is K_GOSTOP_ACK.
type KGoStopAck struct{ KeyRef }

func (*KGoStopAck) ObjectID() uint8                { return ObjKGoStopAck }
func (m *KGoStopAck) Marshal() []byte              { return m.marshal(ObjKGoStopAck) }
func (m *KGoStopAck) Decode(b []byte) (int, error) { return m.decode(ObjKGoStopAck, b) }

// KPAck is KP_ACK: stream ID, status, key_sub_stream, port index.
type KPAck struct {
	StreamID  uint8
	Status    KPStatus
	KSS       KeySubStream
	PortIndex uint8
}

func (*KPAck) ObjectID() uint8 { return ObjKPAck }

func (m *KPAck) Marshal() []byte {
	return []byte{ObjKPAck, 0, 0, m.StreamID, uint8(m.Status), uint8(m.KSS), m.PortIndex}
}

// Decode decodes KP_ACK (7 bytes). The key_sub_stream is taken as sent:
// a device echoes the request's, even one it refused as unsupported.
func (m *KPAck) Decode(b []byte) (int, error) {
	*m = KPAck{}
	if err := header(ObjKPAck, b, ackSize, 1, 2); err != nil {
		return 0, err
	}
	m.StreamID, m.Status, m.KSS, m.PortIndex = b[3], KPStatus(b[4]), KeySubStream(b[5]), b[6]
	return ackSize, nil
}

// Ref is the key the ACK is for.
func (m *KPAck) Ref() KeyRef { return KeyRef{m.StreamID, m.KSS, m.PortIndex} }

// KPStatus is a KP_ACK status (PCIe Base 6.x §6.33.3; pci_idekm.h). A
// non-zero status is an error; errors.Is(err, KPUnsupportedPortIndex)
// matches it.
type KPStatus uint8

const (
	KPSuccess              KPStatus = 0x00
	KPIncorrectLength      KPStatus = 0x01
	KPUnsupportedPortIndex KPStatus = 0x02
	KPUnsupportedValue     KPStatus = 0x03
	KPUnspecifiedFailure   KPStatus = 0x04
)

func (s KPStatus) Error() string { return "ide: KP_ACK status " + s.String() }

func (s KPStatus) String() string {
	switch s {
	case KPSuccess:
		return "Success"
	case KPIncorrectLength:
		return "IncorrectLength"
	case KPUnsupportedPortIndex:
		return "UnsupportedPortIndex"
	case KPUnsupportedValue:
		return "UnsupportedValue"
	case KPUnspecifiedFailure:
		return "UnspecifiedFailure"
	}
	return fmt.Sprintf("reserved (0x%02x)", uint8(s))
}

// Err is nil for Success and the status itself otherwise.
func (s KPStatus) Err() error {
	if s == KPSuccess {
		return nil
	}
	return s
}

// newMessage returns an empty message for an object ID.
func newMessage(id uint8) Message {
	switch id {
	case ObjQuery:
		return &Query{}
	case ObjQueryResp:
		return &QueryResp{}
	case ObjKeyProg:
		return &KeyProg{}
	case ObjKPAck:
		return &KPAck{}
	case ObjKSetGo:
		return &KSetGo{}
	case ObjKSetStop:
		return &KSetStop{}
	case ObjKGoStopAck:
		return &KGoStopAck{}
	}
	return nil
}

// Parse decodes one whole IDE_KM object; b must hold exactly that object.
func Parse(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, &DecodeError{Object: "IDE_KM", Reason: "empty"}
	}
	m := newMessage(b[0])
	if m == nil {
		return nil, &DecodeError{Object: "IDE_KM", Field: "ObjectID", Reason: fmt.Sprintf("unknown 0x%02x", b[0])}
	}
	n, err := m.Decode(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, decodeErr(b[0], "", "%d bytes after the object", len(b)-n)
	}
	return m, nil
}
