package evidence

// Strict decoding: a report is read whole under a size cap, with unknown
// fields, trailing data, other format versions and inconsistent evidence
// refused. Every failure is a *DecodeError wrapping one of the sentinel
// errors below, for errors.Is.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what Unmarshal accepts.
const (
	// MaxReportSize bounds an encoded report.
	MaxReportSize = 16 << 20
	// MaxDevices bounds the devices of one report.
	MaxDevices = 256
	// MaxNonceSize bounds the owner's nonce.
	MaxNonceSize = 1024
)

// Decoding errors.
var (
	ErrTooLarge     = errors.New("evidence: report too large")
	ErrSyntax       = errors.New("evidence: malformed JSON")
	ErrUnknownField = errors.New("evidence: unknown field")
	ErrEncoding     = errors.New("evidence: bad base64 or hex encoding")
	ErrVersion      = errors.New("evidence: unsupported report version")
	ErrInvalid      = errors.New("evidence: invalid report")
	ErrEvidence     = errors.New("evidence: carried evidence bytes do not match the devices")
)

// DecodeError is a decoding failure: Err is one of the sentinel errors,
// Detail says where and why.
type DecodeError struct {
	Err    error
	Detail string
}

func (e *DecodeError) Error() string { return e.Err.Error() + ": " + e.Detail }
func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(sentinel error, format string, args ...any) error {
	return &DecodeError{Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

// Marshal encodes r as indented JSON for people and tools. The device
// evidence inside r.Evidence is carried as it is, never re-encoded.
func Marshal(r *Report) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode reads one report from rd, at most MaxReportSize bytes, and
// checks it as Unmarshal does.
func Decode(rd io.Reader) (*Report, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxReportSize+1))
	if err != nil {
		return nil, err
	}
	return Unmarshal(b)
}

// Unmarshal decodes and checks a report: size, strict JSON (no unknown
// fields, nothing after the object), version, field consistency (Validate)
// and the carried evidence bytes (CheckEvidence).
func Unmarshal(b []byte) (*Report, error) {
	if len(b) > MaxReportSize {
		return nil, decodeErr(ErrTooLarge, "more than %d bytes", MaxReportSize)
	}
	// The version first, so that a report of another version is named as
	// such rather than as unknown fields.
	var head struct {
		Version *string `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, jsonErr(err)
	}
	if head.Version == nil {
		return nil, decodeErr(ErrVersion, "no version field")
	}
	if *head.Version != FormatVersion {
		return nil, decodeErr(ErrVersion, "%q, want %q", *head.Version, FormatVersion)
	}
	var r Report
	if err := strictUnmarshal(b, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := r.CheckEvidence(); err != nil {
		return nil, err
	}
	return &r, nil
}

// strictUnmarshal decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return decodeErr(ErrSyntax, "data after the JSON object")
	}
	return nil
}

func jsonErr(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var b64 base64.CorruptInputError
	switch {
	case errors.As(err, &b64):
		return decodeErr(ErrEncoding, "%v", err)
	case errors.As(err, &syn), errors.As(err, &typ), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return decodeErr(ErrSyntax, "%v", err)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return decodeErr(ErrUnknownField, "%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	return decodeErr(ErrSyntax, "%v", err)
}

// Validate checks the report's fields for consistency: version, limits,
// and that every device is recorded as either passed or failed with the
// failed step named.
func (r *Report) Validate() error {
	if r.Version != FormatVersion {
		return decodeErr(ErrVersion, "%q, want %q", r.Version, FormatVersion)
	}
	if len(r.Nonce) == 0 || len(r.Nonce) > MaxNonceSize {
		return decodeErr(ErrInvalid, "nonce of %d bytes (want 1 to %d)", len(r.Nonce), MaxNonceSize)
	}
	if len(r.Devices) > MaxDevices {
		return decodeErr(ErrInvalid, "%d devices (at most %d)", len(r.Devices), MaxDevices)
	}
	if r.Created.IsZero() {
		return decodeErr(ErrInvalid, "no creation time")
	}
	seen := make(map[string]bool, len(r.Devices))
	for i := range r.Devices {
		if err := r.Devices[i].validate(); err != nil {
			return decodeErr(ErrInvalid, "device %d: %v", i, err)
		}
		if seen[r.Devices[i].Label] {
			return decodeErr(ErrInvalid, "device %d: label %q repeated", i, r.Devices[i].Label)
		}
		seen[r.Devices[i].Label] = true
	}
	switch r.Platform.BootBinding {
	case BootBindingExtended, BootBindingNoRegister, BootBindingFailed, BootBindingNone:
	default:
		return decodeErr(ErrInvalid, "platform boot binding %q", r.Platform.BootBinding)
	}
	if r.Boot != nil && len(r.Boot.Evidence) > MaxDevices {
		return decodeErr(ErrInvalid, "boot evidence of %d devices (at most %d)", len(r.Boot.Evidence), MaxDevices)
	}
	return nil
}

func (d *Device) validate() error {
	if d.Label == "" {
		return errors.New("no label")
	}
	switch d.Status {
	case StatusOK:
		if d.FailedStep != "" || d.Error != "" {
			return fmt.Errorf("%q: status ok with a failed step %q", d.Label, d.FailedStep)
		}
		if d.Measurements == nil || len(d.CertChain) == 0 {
			return fmt.Errorf("%q: status ok without a certificate chain and signed measurements", d.Label)
		}
	case StatusFailed:
		if d.FailedStep == "" {
			return fmt.Errorf("%q: status failed without the failed step", d.Label)
		}
	default:
		return fmt.Errorf("%q: status %q (want %q or %q)", d.Label, d.Status, StatusOK, StatusFailed)
	}
	if m := d.Measurements; m != nil {
		for _, b := range m.Blocks {
			if _, err := hex.DecodeString(b.Value); err != nil {
				return fmt.Errorf("%q: measurement block %d: %w: %v", d.Label, b.Index, ErrEncoding, err)
			}
		}
	}
	return nil
}

// CheckEvidence checks that Evidence carries exactly one blob per device,
// that each decodes strictly to a Device, and that it is the canonical
// encoding of the corresponding entry of Devices, so the parsed view says
// nothing the hashed bytes do not.
func (r *Report) CheckEvidence() error {
	if len(r.Evidence) != len(r.Devices) {
		return decodeErr(ErrEvidence, "%d evidence blobs for %d devices", len(r.Evidence), len(r.Devices))
	}
	for i, blob := range r.Evidence {
		var d Device
		if err := strictUnmarshal(blob, &d); err != nil {
			return decodeErr(ErrEvidence, "device %d: %v", i, err)
		}
		want, err := DeviceEvidenceBytes(r.Devices[i])
		if err != nil {
			return decodeErr(ErrEvidence, "device %d: %v", i, err)
		}
		if !bytes.Equal(want, blob) {
			return decodeErr(ErrEvidence, "device %d (%q): the parsed device is not the carried evidence", i, r.Devices[i].Label)
		}
	}
	if r.Boot != nil {
		if _, err := r.Boot.Devices(); err != nil {
			return err
		}
	}
	return nil
}

// Devices decodes the boot evidence, strictly, each blob to a valid
// Device.
func (b *Boot) Devices() ([]Device, error) {
	out := make([]Device, len(b.Evidence))
	for i, blob := range b.Evidence {
		if err := strictUnmarshal(blob, &out[i]); err != nil {
			return nil, decodeErr(ErrEvidence, "boot device %d: %v", i, err)
		}
		if err := out[i].validate(); err != nil {
			return nil, decodeErr(ErrEvidence, "boot device %d: %v", i, err)
		}
	}
	return out, nil
}

// NewReport assembles a report from devices: it fills Evidence with each
// device's canonical bytes. Platform and Created are left to the caller.
func NewReport(nonce []byte, devices []Device) (*Report, error) {
	r := &Report{Version: FormatVersion, Nonce: append([]byte(nil), nonce...), Devices: devices}
	r.Evidence = make([][]byte, len(devices))
	for i, d := range devices {
		b, err := DeviceEvidenceBytes(d)
		if err != nil {
			return nil, fmt.Errorf("evidence: device %q: %w", d.Label, err)
		}
		r.Evidence[i] = b
	}
	return r, nil
}
