package secchan

import (
	"errors"
	"fmt"
)

// Sentinel errors; every error of this package wraps one of these or an
// ErrorCode, so callers use errors.Is.
var (
	// ErrMalformed: a message whose bytes do not follow DSP0274.
	ErrMalformed = errors.New("spdm: malformed message")
	// ErrUnexpectedResponse: a well-formed response that does not answer
	// the request (wrong code, version, slot, ...).
	ErrUnexpectedResponse = errors.New("spdm: unexpected response")
	// ErrUnsupportedAlgorithm: an algorithm this package does not implement.
	ErrUnsupportedAlgorithm = errors.New("spdm: unsupported algorithm")
	// ErrNegotiation: versions, capabilities or algorithms could not be agreed.
	ErrNegotiation = errors.New("spdm: negotiation failed")
	// ErrSignature: a signature did not verify over its transcript.
	ErrSignature = errors.New("spdm: signature verification failed")
	// ErrCertChain: a certificate chain is malformed, does not match its
	// digest, or does not validate.
	ErrCertChain = errors.New("spdm: certificate chain rejected")
	// ErrTimeout: the responder did not answer in time.
	ErrTimeout = errors.New("spdm: timeout")
)

// DecodeError names the message and field that failed to parse.
type DecodeError struct {
	Message string // e.g. "ALGORITHMS"
	Field   string // e.g. "Length"
	Reason  string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("spdm: malformed %s: %s", e.Message, e.Reason)
	}
	return fmt.Sprintf("spdm: malformed %s: %s: %s", e.Message, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformed) match.
func (e *DecodeError) Unwrap() error { return ErrMalformed }

func decodeErr(msg, field, format string, args ...any) error {
	return &DecodeError{Message: msg, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// SPDMError is an ERROR response received from the peer.
type SPDMError struct {
	Code ErrorCode
	Data uint8  // ErrorData
	Ext  []byte // ExtendedErrorData
}

func (e *SPDMError) Error() string {
	return fmt.Sprintf("spdm: responder answered ERROR %s (data 0x%02x)", e.Code.String(), e.Data)
}

// Is matches the ErrorCode sentinel of the same code.
func (e *SPDMError) Is(target error) bool {
	c, ok := target.(ErrorCode)
	return ok && c == e.Code
}

// StepError says which step of a flow failed.
type StepError struct {
	Step string // e.g. "GET_CERTIFICATE slot 0"
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }
