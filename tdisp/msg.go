// Package tdisp runs the PCIe TEE Device Interface Security Protocol
// (TDISP 1.0, PCIe Base 6.x §11) over an SPDM secure session: the message
// codec (this file), the device interface report (report.go), a requester
// that locks, reads, starts and stops a TEE device interface (TDI,
// requester.go) and a device-side state machine (responder.go).
//
// TDISP messages travel as the payload of VENDOR_DEFINED_REQUEST/RESPONSE
// (DSP0274 §10.20) under StandardID PCI-SIG (3), the PCI-SIG vendor ID
// 0x0001 and protocol ID 1 (wrap.go), inside a secure session only. Every
// message starts with a 16-byte header: TDISP version (0x10 for 1.0),
// message type, two reserved bytes and the 12-byte INTERFACE_ID (a 32-bit
// function ID, then 8 reserved bytes). Multi-byte fields are
// little-endian. Layouts follow libspdm's
// include/industry_standard/pci_tdisp.h.
package tdisp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version10 is the TDISP 1.0 message version.
const Version10 uint8 = 0x10

// Message types (pci_tdisp.h). Requests have bit 7 set.
const (
	TypeVersion         uint8 = 0x01
	TypeCapabilities    uint8 = 0x02
	TypeLockInterfaceRs uint8 = 0x03
	TypeReport          uint8 = 0x04
	TypeState           uint8 = 0x05
	TypeStartRs         uint8 = 0x06
	TypeStopRs          uint8 = 0x07
	TypeError           uint8 = 0x7F

	TypeGetVersion      uint8 = 0x81
	TypeGetCapabilities uint8 = 0x82
	TypeLockInterface   uint8 = 0x83
	TypeGetReport       uint8 = 0x84
	TypeGetState        uint8 = 0x85
	TypeStart           uint8 = 0x86
	TypeStop            uint8 = 0x87
)

var typeNames = map[uint8]string{
	TypeVersion: "TDISP_VERSION", TypeCapabilities: "TDISP_CAPABILITIES",
	TypeLockInterfaceRs: "LOCK_INTERFACE_RESPONSE", TypeReport: "DEVICE_INTERFACE_REPORT",
	TypeState: "DEVICE_INTERFACE_STATE", TypeStartRs: "START_INTERFACE_RESPONSE",
	TypeStopRs: "STOP_INTERFACE_RESPONSE", TypeError: "TDISP_ERROR",
	TypeGetVersion: "GET_TDISP_VERSION", TypeGetCapabilities: "GET_TDISP_CAPABILITIES",
	TypeLockInterface: "LOCK_INTERFACE_REQUEST", TypeGetReport: "GET_DEVICE_INTERFACE_REPORT",
	TypeGetState: "GET_DEVICE_INTERFACE_STATE", TypeStart: "START_INTERFACE_REQUEST",
	TypeStop: "STOP_INTERFACE_REQUEST",
	0x08:     "BIND_P2P_STREAM_RESPONSE", 0x09: "UNBIND_P2P_STREAM_RESPONSE",
	0x0A: "SET_MMIO_ATTRIBUTE_RESPONSE", 0x0B: "VDM_RESPONSE",
	0x88: "BIND_P2P_STREAM_REQUEST", 0x89: "UNBIND_P2P_STREAM_REQUEST",
	0x8A: "SET_MMIO_ATTRIBUTE_REQUEST", 0x8B: "TDISP_VDM_REQUEST",
}

// TypeName names a TDISP message type.
func TypeName(t uint8) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("TDISP message 0x%02x", t)
}

// HeaderSize is the size of the TDISP header.
const HeaderSize = 16

// NonceSize is the size of START_INTERFACE_NONCE.
const NonceSize = 32

// ErrMalformed is matched (errors.Is) by every *DecodeError.
var ErrMalformed = errors.New("tdisp: malformed TDISP message")

// DecodeError names the message and field that did not decode.
type DecodeError struct {
	Message string
	Field   string
	Reason  string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("tdisp: %s: %s", e.Message, e.Reason)
	}
	return fmt.Sprintf("tdisp: %s %s: %s", e.Message, e.Field, e.Reason)
}

func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func decodeErr(msg, field, format string, args ...any) error {
	return &DecodeError{Message: msg, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Header is the TDISP message header without its message type, which
// each message's type gives. The INTERFACE_ID's 8 reserved bytes must be
// zero.
type Header struct {
	Version    uint8
	FunctionID uint32
}

// H returns a TDISP 1.0 header for function id.
func H(id uint32) Header { return Header{Version: Version10, FunctionID: id} }

func (h Header) append(b []byte, typ uint8) []byte {
	b = append(b, h.Version, typ, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, h.FunctionID)
	return append(b, make([]byte, 8)...)
}

// decodeHeader checks the header of a message of type typ and size
// bytes (exact when exact is set, else at least size).
func decodeHeader(h *Header, typ uint8, b []byte, size int, exact bool) error {
	name := TypeName(typ)
	if len(b) < size || exact && len(b) != size {
		want := fmt.Sprint(size)
		if !exact {
			want = "at least " + want
		}
		return decodeErr(name, "", "%d bytes, want %s", len(b), want)
	}
	if b[1] != typ {
		return decodeErr(name, "MessageType", "0x%02x (%s)", b[1], TypeName(b[1]))
	}
	if b[2] != 0 || b[3] != 0 {
		return decodeErr(name, "Reserved", "% x, want 0", b[2:4])
	}
	for i := 8; i < HeaderSize; i++ {
		if b[i] != 0 {
			return decodeErr(name, "INTERFACE_ID.Reserved", "% x, want 0", b[8:HeaderSize])
		}
	}
	h.Version = b[0]
	h.FunctionID = binary.LittleEndian.Uint32(b[4:])
	return nil
}

// Message is any TDISP message.
type Message interface {
	Type() uint8
	Hdr() Header
	Marshal() []byte
	// Decode decodes the whole of b: every TDISP message has a length
	// that its fields fix, so bytes left over are an error.
	Decode(b []byte) error
}

// bare is a message that is only a header.
type bare struct{ Header }

func (m *bare) Hdr() Header { return m.Header }

// GetVersion is GET_TDISP_VERSION.
type GetVersion struct{ bare }

func (*GetVersion) Type() uint8       { return TypeGetVersion }
func (m *GetVersion) Marshal() []byte { return m.append(nil, TypeGetVersion) }
func (m *GetVersion) Decode(b []byte) error {
	return decodeHeader(&m.Header, TypeGetVersion, b, HeaderSize, true)
}

// GetState is GET_DEVICE_INTERFACE_STATE.
type GetState struct{ bare }

func (*GetState) Type() uint8       { return TypeGetState }
func (m *GetState) Marshal() []byte { return m.append(nil, TypeGetState) }
func (m *GetState) Decode(b []byte) error {
	return decodeHeader(&m.Header, TypeGetState, b, HeaderSize, true)
}

// StartResp is START_INTERFACE_RESPONSE.
type StartResp struct{ bare }

func (*StartResp) Type() uint8       { return TypeStartRs }
func (m *StartResp) Marshal() []byte { return m.append(nil, TypeStartRs) }
func (m *StartResp) Decode(b []byte) error {
	return decodeHeader(&m.Header, TypeStartRs, b, HeaderSize, true)
}

// Stop is STOP_INTERFACE_REQUEST.
type Stop struct{ bare }

func (*Stop) Type() uint8             { return TypeStop }
func (m *Stop) Marshal() []byte       { return m.append(nil, TypeStop) }
func (m *Stop) Decode(b []byte) error { return decodeHeader(&m.Header, TypeStop, b, HeaderSize, true) }

// StopResp is STOP_INTERFACE_RESPONSE.
type StopResp struct{ bare }

func (*StopResp) Type() uint8       { return TypeStopRs }
func (m *StopResp) Marshal() []byte { return m.append(nil, TypeStopRs) }
func (m *StopResp) Decode(b []byte) error {
	return decodeHeader(&m.Header, TypeStopRs, b, HeaderSize, true)
}

// VersionResp is TDISP_VERSION: a count and that many version bytes.
type VersionResp struct {
	bare
	Versions []uint8
}

func (*VersionResp) Type() uint8 { return TypeVersion }
func (m *VersionResp) Marshal() []byte {
	b := m.append(nil, TypeVersion)
	return append(append(b, uint8(len(m.Versions))), m.Versions...)
}

func (m *VersionResp) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeVersion, b, HeaderSize+1, false); err != nil {
		return err
	}
	n := int(b[HeaderSize])
	if len(b) != HeaderSize+1+n {
		return decodeErr("TDISP_VERSION", "VERSION_NUM_COUNT", "%d, but %d version bytes follow", n, len(b)-HeaderSize-1)
	}
	m.Versions = append([]uint8(nil), b[HeaderSize+1:]...)
	return nil
}

// GetCapabilities is GET_TDISP_CAPABILITIES with the TSM's capabilities.
type GetCapabilities struct {
	bare
	TSMCaps uint32
}

func (*GetCapabilities) Type() uint8 { return TypeGetCapabilities }
func (m *GetCapabilities) Marshal() []byte {
	return binary.LittleEndian.AppendUint32(m.append(nil, TypeGetCapabilities), m.TSMCaps)
}

func (m *GetCapabilities) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeGetCapabilities, b, HeaderSize+4, true); err != nil {
		return err
	}
	m.TSMCaps = binary.LittleEndian.Uint32(b[HeaderSize:])
	return nil
}

// Capabilities is TDISP_CAPABILITIES: the device security manager's
// capabilities, a bitmap of the request types it supports (bit n of the
// 128-bit field is request code 0x80+n), the LOCK_INTERFACE flags it
// supports, its address width and request counts.
type Capabilities struct {
	bare
	DSMCaps            uint32
	ReqMsgSupported    [16]byte
	LockFlagsSupported uint16
	DevAddrWidth       uint8
	NumReqThis         uint8
	NumReqAll          uint8
}

const capabilitiesSize = HeaderSize + 4 + 16 + 2 + 3 + 3

func (*Capabilities) Type() uint8 { return TypeCapabilities }
func (m *Capabilities) Marshal() []byte {
	b := binary.LittleEndian.AppendUint32(m.append(nil, TypeCapabilities), m.DSMCaps)
	b = append(b, m.ReqMsgSupported[:]...)
	b = binary.LittleEndian.AppendUint16(b, m.LockFlagsSupported)
	return append(b, 0, 0, 0, m.DevAddrWidth, m.NumReqThis, m.NumReqAll)
}

func (m *Capabilities) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeCapabilities, b, capabilitiesSize, true); err != nil {
		return err
	}
	p := b[HeaderSize:]
	m.DSMCaps = binary.LittleEndian.Uint32(p)
	copy(m.ReqMsgSupported[:], p[4:20])
	m.LockFlagsSupported = binary.LittleEndian.Uint16(p[20:])
	if p[22] != 0 || p[23] != 0 || p[24] != 0 {
		return decodeErr("TDISP_CAPABILITIES", "Reserved", "% x, want 0", p[22:25])
	}
	m.DevAddrWidth, m.NumReqThis, m.NumReqAll = p[25], p[26], p[27]
	return nil
}

// Supports reports whether the capabilities list request type t.
func (m *Capabilities) Supports(t uint8) bool {
	if t < 0x80 {
		return false
	}
	n := t - 0x80
	return int(n/8) < len(m.ReqMsgSupported) && m.ReqMsgSupported[n/8]&(1<<(n%8)) != 0
}

// LOCK_INTERFACE flags (pci_tdisp.h).
const (
	LockNoFWUpdate          uint16 = 0x01
	LockSystemCacheLineSize uint16 = 0x02
	LockMSIX                uint16 = 0x04
	LockBindP2P             uint16 = 0x08
	LockAllRequestRedirect  uint16 = 0x10
	lockFlagsKnown                 = 0x1F
)

// LockFlagNames names the LOCK_INTERFACE flags set in f.
func LockFlagNames(f uint16) []string {
	return bitNames(uint32(f), []string{"NO_FW_UPDATE", "SYSTEM_CACHE_LINE_SIZE", "LOCK_MSIX", "BIND_P2P", "ALL_REQUEST_REDIRECT"})
}

func bitNames(v uint32, names []string) []string {
	var out []string
	for i := 0; i < 32; i++ {
		if v&(1<<i) == 0 {
			continue
		}
		if i < len(names) {
			out = append(out, names[i])
		} else {
			out = append(out, fmt.Sprintf("bit%d", i))
		}
	}
	return out
}

// LockParams are LOCK_INTERFACE_REQUEST's parameters: flags, the IDE
// stream the TDI's default traffic binds to, the offset the device adds
// to the MMIO addresses it reports, and the P2P address mask.
type LockParams struct {
	Flags               uint16
	DefaultStreamID     uint8
	MMIOReportingOffset uint64
	BindP2PAddressMask  uint64
}

// LockInterface is LOCK_INTERFACE_REQUEST.
type LockInterface struct {
	bare
	LockParams
}

const lockSize = HeaderSize + 4 + 8 + 8

func (*LockInterface) Type() uint8 { return TypeLockInterface }
func (m *LockInterface) Marshal() []byte {
	b := binary.LittleEndian.AppendUint16(m.append(nil, TypeLockInterface), m.Flags)
	b = append(b, m.DefaultStreamID, 0)
	b = binary.LittleEndian.AppendUint64(b, m.MMIOReportingOffset)
	return binary.LittleEndian.AppendUint64(b, m.BindP2PAddressMask)
}

func (m *LockInterface) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeLockInterface, b, lockSize, true); err != nil {
		return err
	}
	p := b[HeaderSize:]
	m.Flags = binary.LittleEndian.Uint16(p)
	if m.Flags&^lockFlagsKnown != 0 {
		return decodeErr("LOCK_INTERFACE_REQUEST", "FLAGS", "reserved bits in 0x%04x", m.Flags)
	}
	m.DefaultStreamID = p[2]
	if p[3] != 0 {
		return decodeErr("LOCK_INTERFACE_REQUEST", "Reserved", "0x%02x, want 0", p[3])
	}
	m.MMIOReportingOffset = binary.LittleEndian.Uint64(p[4:])
	m.BindP2PAddressMask = binary.LittleEndian.Uint64(p[12:])
	return nil
}

// nonceMsg is a header and START_INTERFACE_NONCE.
type nonceMsg struct {
	bare
	Nonce [NonceSize]byte
}

func (m *nonceMsg) marshal(typ uint8) []byte { return append(m.append(nil, typ), m.Nonce[:]...) }

func (m *nonceMsg) decode(typ uint8, b []byte) error {
	if err := decodeHeader(&m.Header, typ, b, HeaderSize+NonceSize, true); err != nil {
		return err
	}
	copy(m.Nonce[:], b[HeaderSize:])
	return nil
}

// LockInterfaceResp is LOCK_INTERFACE_RESPONSE with the
// START_INTERFACE_NONCE that START_INTERFACE_REQUEST must return.
type LockInterfaceResp struct{ nonceMsg }

func (*LockInterfaceResp) Type() uint8             { return TypeLockInterfaceRs }
func (m *LockInterfaceResp) Marshal() []byte       { return m.marshal(TypeLockInterfaceRs) }
func (m *LockInterfaceResp) Decode(b []byte) error { return m.decode(TypeLockInterfaceRs, b) }

// Start is START_INTERFACE_REQUEST.
type Start struct{ nonceMsg }

func (*Start) Type() uint8             { return TypeStart }
func (m *Start) Marshal() []byte       { return m.marshal(TypeStart) }
func (m *Start) Decode(b []byte) error { return m.decode(TypeStart, b) }

// GetReport is GET_DEVICE_INTERFACE_REPORT: a portion of the report from
// Offset, at most Length bytes.
type GetReport struct {
	bare
	Offset, Length uint16
}

func (*GetReport) Type() uint8 { return TypeGetReport }
func (m *GetReport) Marshal() []byte {
	b := binary.LittleEndian.AppendUint16(m.append(nil, TypeGetReport), m.Offset)
	return binary.LittleEndian.AppendUint16(b, m.Length)
}

func (m *GetReport) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeGetReport, b, HeaderSize+4, true); err != nil {
		return err
	}
	m.Offset = binary.LittleEndian.Uint16(b[HeaderSize:])
	m.Length = binary.LittleEndian.Uint16(b[HeaderSize+2:])
	return nil
}

// ReportResp is DEVICE_INTERFACE_REPORT: one portion of the report and
// how many bytes remain after it.
type ReportResp struct {
	bare
	Portion   []byte
	Remainder uint16
}

func (*ReportResp) Type() uint8 { return TypeReport }
func (m *ReportResp) Marshal() []byte {
	b := binary.LittleEndian.AppendUint16(m.append(nil, TypeReport), uint16(len(m.Portion)))
	b = binary.LittleEndian.AppendUint16(b, m.Remainder)
	return append(b, m.Portion...)
}

func (m *ReportResp) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeReport, b, HeaderSize+4, false); err != nil {
		return err
	}
	n := int(binary.LittleEndian.Uint16(b[HeaderSize:]))
	if len(b) != HeaderSize+4+n {
		return decodeErr("DEVICE_INTERFACE_REPORT", "PORTION_LENGTH", "%d, but %d bytes follow", n, len(b)-HeaderSize-4)
	}
	m.Remainder = binary.LittleEndian.Uint16(b[HeaderSize+2:])
	m.Portion = append([]byte(nil), b[HeaderSize+4:]...)
	return nil
}

// TDI states (TDISP 1.0; pci_tdisp.h).
type State uint8

const (
	StateConfigUnlocked State = 0
	StateConfigLocked   State = 1
	StateRun            State = 2
	StateError          State = 3
)

func (s State) String() string {
	switch s {
	case StateConfigUnlocked:
		return "CONFIG_UNLOCKED"
	case StateConfigLocked:
		return "CONFIG_LOCKED"
	case StateRun:
		return "RUN"
	case StateError:
		return "ERROR"
	}
	return fmt.Sprintf("reserved state %d", uint8(s))
}

// ParseState is the inverse of State.String for the four states.
func ParseState(s string) (State, bool) {
	for st := StateConfigUnlocked; st <= StateError; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

// StateResp is DEVICE_INTERFACE_STATE.
type StateResp struct {
	bare
	State State
}

func (*StateResp) Type() uint8 { return TypeState }
func (m *StateResp) Marshal() []byte {
	return append(m.append(nil, TypeState), uint8(m.State))
}

func (m *StateResp) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeState, b, HeaderSize+1, true); err != nil {
		return err
	}
	m.State = State(b[HeaderSize])
	if m.State > StateError {
		return decodeErr("DEVICE_INTERFACE_STATE", "TDI_STATE", "%d is reserved", b[HeaderSize])
	}
	return nil
}

// ErrorCode is a TDISP_ERROR code (pci_tdisp.h). It is an error itself.
type ErrorCode uint32

const (
	ErrInvalidRequest             ErrorCode = 0x01
	ErrBusy                       ErrorCode = 0x03
	ErrInvalidInterfaceState      ErrorCode = 0x04
	ErrUnspecified                ErrorCode = 0x05
	ErrUnsupportedRequest         ErrorCode = 0x07
	ErrVersionMismatch            ErrorCode = 0x41
	ErrInvalidInterface           ErrorCode = 0x101
	ErrInvalidNonce               ErrorCode = 0x102
	ErrInsufficientEntropy        ErrorCode = 0x103
	ErrInvalidDeviceConfiguration ErrorCode = 0x104
)

var errorNames = map[ErrorCode]string{
	ErrInvalidRequest: "INVALID_REQUEST", ErrBusy: "BUSY", ErrInvalidInterfaceState: "INVALID_INTERFACE_STATE",
	ErrUnspecified: "UNSPECIFIED", ErrUnsupportedRequest: "UNSUPPORTED_REQUEST", ErrVersionMismatch: "VERSION_MISMATCH",
	ErrInvalidInterface: "INVALID_INTERFACE", ErrInvalidNonce: "INVALID_NONCE",
	ErrInsufficientEntropy: "INSUFFICIENT_ENTROPY", ErrInvalidDeviceConfiguration: "INVALID_DEVICE_CONFIGURATION",
}

func (c ErrorCode) String() string {
	if n, ok := errorNames[c]; ok {
		return n
	}
	return fmt.Sprintf("error code 0x%x", uint32(c))
}

func (c ErrorCode) Error() string { return "tdisp: TDISP_ERROR " + c.String() }

// ErrorResp is TDISP_ERROR: a code, error data and extended error data
// (opaque here).
type ErrorResp struct {
	bare
	Code     ErrorCode
	Data     uint32
	Extended []byte
}

func (*ErrorResp) Type() uint8 { return TypeError }
func (m *ErrorResp) Marshal() []byte {
	b := binary.LittleEndian.AppendUint32(m.append(nil, TypeError), uint32(m.Code))
	return append(binary.LittleEndian.AppendUint32(b, m.Data), m.Extended...)
}

func (m *ErrorResp) Decode(b []byte) error {
	if err := decodeHeader(&m.Header, TypeError, b, HeaderSize+8, false); err != nil {
		return err
	}
	m.Code = ErrorCode(binary.LittleEndian.Uint32(b[HeaderSize:]))
	m.Data = binary.LittleEndian.Uint32(b[HeaderSize+4:])
	m.Extended = nil
	if len(b) > HeaderSize+8 {
		m.Extended = append([]byte(nil), b[HeaderSize+8:]...)
	}
	return nil
}

// Error is the TDISP_ERROR as a Go error that matches (errors.Is) its code.
func (m *ErrorResp) Error() string {
	if m.Data != 0 {
		return fmt.Sprintf("%v (data 0x%x)", m.Code, m.Data)
	}
	return m.Code.Error()
}

func (m *ErrorResp) Unwrap() error { return m.Code }

// newMessage returns an empty message of type t.
func newMessage(t uint8) Message {
	switch t {
	case TypeGetVersion:
		return &GetVersion{}
	case TypeVersion:
		return &VersionResp{}
	case TypeGetCapabilities:
		return &GetCapabilities{}
	case TypeCapabilities:
		return &Capabilities{}
	case TypeLockInterface:
		return &LockInterface{}
	case TypeLockInterfaceRs:
		return &LockInterfaceResp{}
	case TypeGetReport:
		return &GetReport{}
	case TypeReport:
		return &ReportResp{}
	case TypeGetState:
		return &GetState{}
	case TypeState:
		return &StateResp{}
	case TypeStart:
		return &Start{}
	case TypeStartRs:
		return &StartResp{}
	case TypeStop:
		return &Stop{}
	case TypeStopRs:
		return &StopResp{}
	case TypeError:
		return &ErrorResp{}
	}
	return nil
}

// ErrUnknownType is matched by Parse's error for a message type this
// package does not implement (BIND_P2P_STREAM, SET_MMIO_ATTRIBUTE, VDM,
// reserved codes).
var ErrUnknownType = errors.New("tdisp: message type not implemented")

// Parse decodes one whole TDISP message.
func Parse(b []byte) (Message, error) {
	if len(b) < HeaderSize {
		return nil, decodeErr("TDISP message", "", "%d bytes, shorter than the %d-byte header", len(b), HeaderSize)
	}
	m := newMessage(b[1])
	if m == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownType, TypeName(b[1]))
	}
	if err := m.Decode(b); err != nil {
		return nil, err
	}
	return m, nil
}
