// Package secchan implements DMTF SPDM (DSP0274, versions 1.0 to 1.3) as
// carried over PCI DOE (the PCI-SIG CMA binding): the message codec, a
// requester that authenticates a device and reads its signed measurements,
// a responder for emulated devices, and the transcripts and signature
// checks that tie them together.
//
// secchan knows no guest, policy or IDE: certificate-chain validation comes
// in through the ChainValidator interface.
package secchan

import "fmt"

// Version is an SPDM version as carried in the SPDMVersion byte: major in
// the high nibble, minor in the low one (0x12 is 1.2).
type Version uint8

// Versions this package speaks.
const (
	V10 Version = 0x10
	V11 Version = 0x11
	V12 Version = 0x12
	V13 Version = 0x13
)

func (v Version) String() string { return fmt.Sprintf("%d.%d", v>>4, v&0xF) }

// ParseVersion parses "1.2" into V12.
func ParseVersion(s string) (Version, error) {
	for _, v := range []Version{V10, V11, V12, V13} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("secchan: unknown SPDM version %q (want 1.0, 1.1, 1.2 or 1.3)", s)
}

// Request and response codes (DSP0274 Table 4 and Table 5).
const (
	CodeDigests             uint8 = 0x01
	CodeCertificate         uint8 = 0x02
	CodeChallengeAuth       uint8 = 0x03
	CodeVersion             uint8 = 0x04
	CodeChunkResponse       uint8 = 0x06
	CodeMeasurements        uint8 = 0x60
	CodeCapabilities        uint8 = 0x61
	CodeAlgorithms          uint8 = 0x63
	CodeKeyExchangeRsp      uint8 = 0x64
	CodeFinishRsp           uint8 = 0x65
	CodePSKExchangeRsp      uint8 = 0x66
	CodePSKFinishRsp        uint8 = 0x67
	CodeHeartbeatAck        uint8 = 0x68
	CodeKeyUpdateAck        uint8 = 0x69
	CodeEndSessionAck       uint8 = 0x6C
	CodeVendorDefinedRsp    uint8 = 0x7E
	CodeError               uint8 = 0x7F
	CodeGetDigests          uint8 = 0x81
	CodeGetCertificate      uint8 = 0x82
	CodeChallenge           uint8 = 0x83
	CodeGetVersion          uint8 = 0x84
	CodeChunkGet            uint8 = 0x86
	CodeGetMeasurements     uint8 = 0xE0
	CodeGetCapabilities     uint8 = 0xE1
	CodeNegotiateAlgorithms uint8 = 0xE3
	CodeKeyExchange         uint8 = 0xE4
	CodeFinish              uint8 = 0xE5
	CodePSKExchange         uint8 = 0xE6
	CodePSKFinish           uint8 = 0xE7
	CodeHeartbeat           uint8 = 0xE8
	CodeKeyUpdate           uint8 = 0xE9
	CodeEndSession          uint8 = 0xEC
	CodeVendorDefinedReq    uint8 = 0xFE
	CodeRespondIfReady      uint8 = 0xFF
)

var codeNames = map[uint8]string{
	CodeDigests: "DIGESTS", CodeCertificate: "CERTIFICATE", CodeChallengeAuth: "CHALLENGE_AUTH",
	CodeVersion: "VERSION", CodeChunkResponse: "CHUNK_RESPONSE", CodeMeasurements: "MEASUREMENTS",
	CodeCapabilities: "CAPABILITIES", CodeAlgorithms: "ALGORITHMS", CodeKeyExchangeRsp: "KEY_EXCHANGE_RSP",
	CodeFinishRsp: "FINISH_RSP", CodePSKExchangeRsp: "PSK_EXCHANGE_RSP", CodePSKFinishRsp: "PSK_FINISH_RSP",
	CodeHeartbeatAck: "HEARTBEAT_ACK", CodeKeyUpdateAck: "KEY_UPDATE_ACK", CodeEndSessionAck: "END_SESSION_ACK",
	CodeVendorDefinedRsp: "VENDOR_DEFINED_RESPONSE", CodeError: "ERROR",
	CodeGetDigests: "GET_DIGESTS", CodeGetCertificate: "GET_CERTIFICATE", CodeChallenge: "CHALLENGE",
	CodeGetVersion: "GET_VERSION", CodeChunkGet: "CHUNK_GET", CodeGetMeasurements: "GET_MEASUREMENTS",
	CodeGetCapabilities: "GET_CAPABILITIES", CodeNegotiateAlgorithms: "NEGOTIATE_ALGORITHMS",
	CodeKeyExchange: "KEY_EXCHANGE", CodeFinish: "FINISH", CodePSKExchange: "PSK_EXCHANGE",
	CodePSKFinish: "PSK_FINISH", CodeHeartbeat: "HEARTBEAT", CodeKeyUpdate: "KEY_UPDATE",
	CodeEndSession: "END_SESSION", CodeVendorDefinedReq: "VENDOR_DEFINED_REQUEST", CodeRespondIfReady: "RESPOND_IF_READY",
}

// CodeName names a request or response code.
func CodeName(c uint8) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code 0x%02x", c)
}

// Capability flags (DSP0274 Table 11 and 12). Requester and responder share
// bit positions; some bits exist on one side only.
const (
	CapCache            uint32 = 1 << 0 // responder
	CapCert             uint32 = 1 << 1
	CapChal             uint32 = 1 << 2
	CapMeasNoSig        uint32 = 1 << 3 // responder: MEAS_CAP = 01b
	CapMeasSig          uint32 = 1 << 4 // responder: MEAS_CAP = 10b
	CapMeasFresh        uint32 = 1 << 5 // responder
	CapEncrypt          uint32 = 1 << 6
	CapMAC              uint32 = 1 << 7
	CapMutAuth          uint32 = 1 << 8
	CapKeyEx            uint32 = 1 << 9
	CapPSK              uint32 = 1 << 10 // requester PSK_CAP; responder PSK_CAP = 01b
	CapPSKWithContext   uint32 = 1 << 11 // responder PSK_CAP = 10b
	CapEncap            uint32 = 1 << 12
	CapHbeat            uint32 = 1 << 13
	CapKeyUpd           uint32 = 1 << 14
	CapHandshakeInClr   uint32 = 1 << 15
	CapPubKeyID         uint32 = 1 << 16
	CapChunk            uint32 = 1 << 17 // 1.2
	CapAliasCert        uint32 = 1 << 18 // 1.2, responder
	CapSetCert          uint32 = 1 << 19 // 1.2, responder
	CapCSR              uint32 = 1 << 20 // 1.2, responder
	CapCertInstallRst   uint32 = 1 << 21 // 1.2, responder
	CapEPInfoNoSig      uint32 = 1 << 22 // 1.3
	CapEPInfoSig        uint32 = 1 << 23 // 1.3
	CapMEL              uint32 = 1 << 24 // 1.3, responder
	CapEvent            uint32 = 1 << 25 // 1.3
	CapMultiKeyOnly     uint32 = 1 << 26 // 1.3
	CapMultiKeyNeg      uint32 = 1 << 27 // 1.3
	CapGetKeyPairInfo   uint32 = 1 << 28 // 1.3, responder
	CapSetKeyPairInfo   uint32 = 1 << 29 // 1.3, responder
	CapLargeResp        uint32 = 1 << 31 // 1.4; reserved before
	capMeasMask                = CapMeasNoSig | CapMeasSig
	capMultiKeyMask            = CapMultiKeyOnly | CapMultiKeyNeg
	capPSKResponderMask        = CapPSK | CapPSKWithContext
	// capDefinedThrough13 is every flag DSP0274 1.3 defines.
	capDefinedThrough13 uint32 = 1<<30 - 1
)

var capNames = []struct {
	bit  uint32
	name string
}{
	{CapCache, "CACHE"}, {CapCert, "CERT"}, {CapChal, "CHAL"}, {CapMeasNoSig, "MEAS_NO_SIG"},
	{CapMeasSig, "MEAS_SIG"}, {CapMeasFresh, "MEAS_FRESH"}, {CapEncrypt, "ENCRYPT"}, {CapMAC, "MAC"},
	{CapMutAuth, "MUT_AUTH"}, {CapKeyEx, "KEY_EX"}, {CapPSK, "PSK"}, {CapPSKWithContext, "PSK_WITH_CONTEXT"},
	{CapEncap, "ENCAP"}, {CapHbeat, "HBEAT"}, {CapKeyUpd, "KEY_UPD"}, {CapHandshakeInClr, "HANDSHAKE_IN_THE_CLEAR"},
	{CapPubKeyID, "PUB_KEY_ID"}, {CapChunk, "CHUNK"}, {CapAliasCert, "ALIAS_CERT"},
	{CapSetCert, "SET_CERT"}, {CapCSR, "CSR"}, {CapCertInstallRst, "CERT_INSTALL_RESET"},
	{CapEPInfoNoSig, "EP_INFO_NO_SIG"}, {CapEPInfoSig, "EP_INFO_SIG"}, {CapMEL, "MEL"}, {CapEvent, "EVENT"},
	{CapMultiKeyOnly, "MULTI_KEY_ONLY"}, {CapMultiKeyNeg, "MULTI_KEY_NEG"},
	{CapGetKeyPairInfo, "GET_KEY_PAIR_INFO"}, {CapSetKeyPairInfo, "SET_KEY_PAIR_INFO"}, {CapLargeResp, "LARGE_RESP"},
}

// CapabilityNames lists the names of the flags set in f, for people.
func CapabilityNames(f uint32) []string {
	var out []string
	for _, c := range capNames {
		if f&c.bit != 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// ERROR codes (DSP0274 Table 58).
type ErrorCode uint8

const (
	ErrCodeInvalidRequest       ErrorCode = 0x01
	ErrCodeBusy                 ErrorCode = 0x03
	ErrCodeUnexpectedRequest    ErrorCode = 0x04
	ErrCodeUnspecified          ErrorCode = 0x05
	ErrCodeDecryptError         ErrorCode = 0x06
	ErrCodeUnsupportedRequest   ErrorCode = 0x07
	ErrCodeRequestInFlight      ErrorCode = 0x08
	ErrCodeInvalidResponseCode  ErrorCode = 0x09
	ErrCodeSessionLimitExceeded ErrorCode = 0x0A
	ErrCodeSessionRequired      ErrorCode = 0x0B
	ErrCodeResetRequired        ErrorCode = 0x0C
	ErrCodeResponseTooLarge     ErrorCode = 0x0D
	ErrCodeRequestTooLarge      ErrorCode = 0x0E
	ErrCodeLargeResponse        ErrorCode = 0x0F
	ErrCodeMessageLost          ErrorCode = 0x10
	ErrCodeVersionMismatch      ErrorCode = 0x41
	ErrCodeResponseNotReady     ErrorCode = 0x42
	ErrCodeRequestResynch       ErrorCode = 0x43
	ErrCodeOperationFailed      ErrorCode = 0x44
	ErrCodeNoPendingRequests    ErrorCode = 0x45
	ErrCodeVendorDefined        ErrorCode = 0xFF
)

var errorCodeNames = map[ErrorCode]string{
	ErrCodeInvalidRequest: "InvalidRequest", ErrCodeBusy: "Busy", ErrCodeUnexpectedRequest: "UnexpectedRequest",
	ErrCodeUnspecified: "Unspecified", ErrCodeDecryptError: "DecryptError", ErrCodeUnsupportedRequest: "UnsupportedRequest",
	ErrCodeRequestInFlight: "RequestInFlight", ErrCodeInvalidResponseCode: "InvalidResponseCode",
	ErrCodeSessionLimitExceeded: "SessionLimitExceeded", ErrCodeSessionRequired: "SessionRequired",
	ErrCodeResetRequired: "ResetRequired", ErrCodeResponseTooLarge: "ResponseTooLarge", ErrCodeRequestTooLarge: "RequestTooLarge",
	ErrCodeLargeResponse: "LargeResponse", ErrCodeMessageLost: "MessageLost", ErrCodeVersionMismatch: "VersionMismatch",
	ErrCodeResponseNotReady: "ResponseNotReady", ErrCodeRequestResynch: "RequestResynch", ErrCodeOperationFailed: "OperationFailed",
	ErrCodeNoPendingRequests: "NoPendingRequests", ErrCodeVendorDefined: "VendorDefined",
}

func (c ErrorCode) String() string {
	if n, ok := errorCodeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("ErrorCode(0x%02x)", uint8(c))
}

// Error makes an ErrorCode usable as a sentinel: errors.Is(err,
// ErrCodeBusy) matches an *SPDMError carrying that code.
func (c ErrorCode) Error() string { return "spdm: " + c.String() }
