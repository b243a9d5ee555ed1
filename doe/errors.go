package doe

import (
	"errors"
	"fmt"
)

// Errors returned by this package; every error wraps one of these so that
// callers can use errors.Is.
var (
	// ErrMalformed: an object or frame whose bytes do not follow the format.
	ErrMalformed = errors.New("doe: malformed data object")
	// ErrTooLarge: an object or frame over a size bound.
	ErrTooLarge = errors.New("doe: object too large")
	// ErrTimeout: the mailbox did not answer before the deadline.
	ErrTimeout = errors.New("doe: timeout")
	// ErrBusy: the mailbox stayed busy and could not take a request.
	ErrBusy = errors.New("doe: mailbox busy")
	// ErrDeviceError: the DOE Error status bit was set by the device.
	ErrDeviceError = errors.New("doe: device set the DOE error bit")
	// ErrAbortFailed: an abort did not bring the mailbox back to idle.
	ErrAbortFailed = errors.New("doe: abort did not complete")
	// ErrForeignActivity: the mailbox showed work this driver did not ask
	// for (Error or Data Object Ready at the start of an exchange, or a
	// response of another protocol): another user drove its registers.
	ErrForeignActivity = errors.New("doe: foreign activity on the mailbox")
	// ErrUnexpectedResponse: a response of another protocol than the request.
	ErrUnexpectedResponse = errors.New("doe: unexpected response")
	// ErrNoCapability: no DOE capability where one was looked for.
	ErrNoCapability = errors.New("doe: no DOE capability")
	// ErrConfigSpace: a config space access failed or was out of range.
	ErrConfigSpace = errors.New("doe: config space access failed")
	// ErrClosed: the mailbox or connection has been closed.
	ErrClosed = errors.New("doe: closed")
	// ErrRefused: the peer refused the request (see RemoteError).
	ErrRefused = errors.New("doe: request refused by peer")
)

// RemoteError is a refusal sent by a socket-framing peer (a shim or devsim)
// in place of a response: the peer's reason, as text it chose to give.
type RemoteError struct {
	Reason string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("doe: peer refused the request: %s", e.Reason)
}

// Unwrap lets errors.Is(err, ErrRefused) match.
func (e *RemoteError) Unwrap() error { return ErrRefused }
