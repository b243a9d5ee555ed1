package evidence

// Strict, bounded decoding. A report is read under a size cap applied
// while reading; its container and body pass the structural check
// (strictjson.go) before encoding/json allocates anything for them; the
// body must then be exactly its canonical encoding, so there is one
// spelling of every body and nothing in it that the parsed view does not
// show. Every failure is a *DecodeError wrapping one of the sentinel
// errors below, for errors.Is.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits on what Decode and Unmarshal accept.
const (
	// MaxReportSize bounds an encoded report.
	MaxReportSize = 16 << 20
	// MaxDevices bounds the devices of one report (and of its boot
	// section).
	MaxDevices = 256
	// MaxNonceSize bounds the owner's nonce.
	MaxNonceSize = 1024
	// MaxEvents bounds one device's events.
	MaxEvents = 1024
	// MaxChainSize bounds a certificate chain, MaxMessageSize a signed
	// message or transcript (bytes, before hex).
	MaxChainSize   = 1 << 20
	MaxMessageSize = 1 << 20
)

// containerLimits bound the container: four keys, one nested object.
var containerLimits = jsonLimits{maxDepth: 2, maxValues: 16, defaultArrayCap: 0}

// bodyLimits bound a body: the arrays the format has, each at its cap.
var bodyLimits = jsonLimits{
	maxDepth:  7, // body, boot, devices, device, measurements, blocks, block
	maxValues: 1 << 20,
	arrayCaps: map[string]int{
		"devices": MaxDevices, "blocks": 255, "events": MaxEvents,
		"protocols": 64, "capabilities": 64, "sub_streams": 16, "steps": 64,
	},
	defaultArrayCap: 0,
	// Hex doubles a byte string. The device's own messages and chain may
	// be large (SPDM 1.3 large responses); the rest is small.
	stringCaps: map[string]int{
		"nonce": 2 * MaxNonceSize, "policy_digest": 128, "label": 256, "created": 64,
		"started": 64, "finished": 64, "time": 64, "platform": 16, "boot_binding": 64,
		"cert_chain": 2 * MaxChainSize, "request": 2 * MaxMessageSize,
		"response": 2 * MaxMessageSize, "transcript": 2 * MaxMessageSize, "value": 2 * 0xFFFF,
		"eat_da":           MaxReportSize,
		"interface_report": 2 * 0xFFFF, // a TDISP report has 16-bit offsets
	},
	defaultStringCap: 8 << 10,
}

// Decoding errors.
var (
	ErrTooLarge     = errors.New("evidence: report too large")
	ErrSyntax       = errors.New("evidence: malformed JSON")
	ErrUnknownField = errors.New("evidence: unknown field")
	ErrEncoding     = errors.New("evidence: bad hex or string encoding")
	ErrVersion      = errors.New("evidence: unsupported report version")
	ErrInvalid      = errors.New("evidence: invalid report")
	ErrCanonical    = errors.New("evidence: body is not in canonical form")
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

// Marshal encodes r as indented JSON. The body is carried as it is,
// never re-encoded.
func Marshal(r *Report) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode reads one report from rd, refusing it as soon as it passes
// MaxReportSize bytes, and checks it as Unmarshal does.
func Decode(rd io.Reader) (*Report, error) {
	b, err := ReadCapped(rd)
	if err != nil {
		return nil, err
	}
	return Unmarshal(b)
}

// ReadCapped reads an encoded report from rd and stops as soon as it
// passes MaxReportSize bytes (an endless or huge input is refused, not
// read whole).
func ReadCapped(rd io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxReportSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxReportSize {
		return nil, decodeErr(ErrTooLarge, "more than %d bytes", MaxReportSize)
	}
	return b, nil
}

// ReadFile reads a report file with ReadCapped.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := ReadCapped(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Unmarshal decodes and checks a report: size, the container's shape and
// version, then the body (ParseBody). Body() returns the parsed body.
func Unmarshal(b []byte) (*Report, error) {
	if len(b) > MaxReportSize {
		return nil, decodeErr(ErrTooLarge, "more than %d bytes", MaxReportSize)
	}
	fields := map[string][]byte{}
	var unknown string
	err := checkJSONTop(b, &containerLimits, func(key string, start, end int) {
		switch key {
		case "version", "body_type", "body", "platform":
			fields[key] = b[start:end]
		default:
			unknown = key
		}
	})
	if err != nil {
		return nil, decodeErr(ErrSyntax, "report: %v", err)
	}
	if len(b) == 0 || b[firstNonSpace(b)] != '{' {
		return nil, decodeErr(ErrSyntax, "report: not a JSON object")
	}
	var r Report
	if v, ok := fields["version"]; !ok {
		return nil, decodeErr(ErrVersion, "no version field")
	} else if err := json.Unmarshal(v, &r.Version); err != nil {
		return nil, decodeErr(ErrSyntax, "version: %v", err)
	}
	switch {
	case r.Version == "devattest-report/1":
		return nil, decodeErr(ErrVersion, "%q is the old format, whose platform report did not sign every field a verdict reads; take a new report with this version's guest (%q)", r.Version, FormatVersion)
	case r.Version != FormatVersion:
		return nil, decodeErr(ErrVersion, "%q, want %q", r.Version, FormatVersion)
	}
	if unknown != "" {
		return nil, decodeErr(ErrUnknownField, "report: %q", unknown)
	}
	for _, k := range []string{"body_type", "body", "platform"} {
		if _, ok := fields[k]; !ok {
			return nil, decodeErr(ErrInvalid, "report: no %s field", k)
		}
	}
	if err := json.Unmarshal(fields["body_type"], &r.BodyType); err != nil {
		return nil, decodeErr(ErrSyntax, "body_type: %v", err)
	}
	if r.BodyType != BodyTypeJSON {
		return nil, decodeErr(ErrVersion, "body type %q, want %q", r.BodyType, BodyTypeJSON)
	}
	body, err := unquote(fields["body"])
	if err != nil {
		return nil, decodeErr(ErrEncoding, "body: %v", err)
	}
	r.Body = body
	if err := strictUnmarshal(fields["platform"], &r.Platform); err != nil {
		return nil, err
	}
	if r.body, err = ParseBody(r.Body); err != nil {
		return nil, err
	}
	return &r, nil
}

// ParsedBody returns the parsed body: set by Unmarshal and NewReport.
func (r *Report) ParsedBody() *Body { return r.body }

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return 0
}

// ParseBody checks and decodes a body: its structure and bounds, then
// strict decoding, then that b is exactly the canonical encoding of what
// was decoded, then the fields' consistency (Validate).
func ParseBody(b []byte) (*Body, error) {
	if err := checkJSON(b, &bodyLimits); err != nil {
		return nil, decodeErr(ErrSyntax, "body: %v", err)
	}
	// json.Unmarshal reads b in place (a json.Decoder would copy it);
	// an unknown field is dropped here and caught by the canonical
	// comparison, and only then named by the strict decoder.
	var body Body
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, jsonErr(err)
	}
	if err := body.Validate(); err != nil {
		return nil, err
	}
	canon, err := body.marshal()
	if err != nil {
		return nil, decodeErr(ErrInvalid, "body: %v", err)
	}
	if !bytes.Equal(canon, b) {
		if err := strictUnmarshal(b, new(Body)); err != nil {
			return nil, err
		}
		return nil, decodeErr(ErrCanonical, "at byte %d (the body is the compact encoding/json encoding of its fields in order, byte strings in lower-case hex)", mismatchAt(canon, b))
	}
	return &body, nil
}

func mismatchAt(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
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
		return decodeErr(ErrSyntax, "data after the JSON value")
	}
	return nil
}

func jsonErr(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, ErrEncoding):
		return decodeErr(ErrEncoding, "%v", err)
	case errors.As(err, &syn), errors.As(err, &typ), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return decodeErr(ErrSyntax, "%v", err)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return decodeErr(ErrUnknownField, "%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	return decodeErr(ErrSyntax, "%v", err)
}

// unquote decodes a JSON string literal (already checked for syntax) into
// its bytes with one allocation the size of the literal.
func unquote(lit []byte) ([]byte, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return nil, errors.New("not a JSON string")
	}
	s := lit[1 : len(lit)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return nil, errors.New("unterminated escape")
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, ok := unicodeEscape(s[i:])
			if !ok {
				return nil, errors.New("bad \\u escape")
			}
			out = utf8.AppendRune(out, r)
			i += n
			continue
		default:
			return nil, fmt.Errorf("bad escape \\%c", e)
		}
		i += 2
	}
	if !utf8.Valid(out) {
		return nil, errors.New("not UTF-8")
	}
	return out, nil
}

// unicodeEscape reads \uXXXX (and a following low surrogate) at the start
// of s and returns the rune and the bytes consumed.
func unicodeEscape(s []byte) (rune, int, bool) {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range b[2:6] {
			r <<= 4
			switch {
			case c >= '0' && c <= '9':
				r |= rune(c - '0')
			case c >= 'a' && c <= 'f':
				r |= rune(c-'a') + 10
			case c >= 'A' && c <= 'F':
				r |= rune(c-'A') + 10
			default:
				return 0, false
			}
		}
		return r, true
	}
	r, ok := hex4(s)
	if !ok {
		return 0, 0, false
	}
	if utf16.IsSurrogate(r) {
		if r2, ok := hex4(s[6:]); ok {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, 12, true
			}
		}
		return 0, 0, false // a lone surrogate is no character
	}
	return r, 6, true
}

// Validate checks the body's fields for consistency: limits, the platform
// kind and boot binding by name, and every device recorded as either
// passed or failed with the failed step named.
func (b *Body) Validate() error {
	if len(b.Nonce) == 0 || len(b.Nonce) > MaxNonceSize {
		return decodeErr(ErrInvalid, "nonce of %d bytes (want 1 to %d)", len(b.Nonce), MaxNonceSize)
	}
	if b.Created.IsZero() {
		return decodeErr(ErrInvalid, "no creation time")
	}
	switch b.Platform {
	case "snp", "tdx", "tpm":
	default:
		return decodeErr(ErrInvalid, "platform %q (want snp, tdx or tpm)", b.Platform)
	}
	switch b.BootBinding {
	case BootBindingExtended, BootBindingNoRegister, BootBindingFailed, BootBindingNone:
	default:
		return decodeErr(ErrInvalid, "boot binding %q", b.BootBinding)
	}
	if len(b.Devices) > MaxDevices {
		return decodeErr(ErrInvalid, "%d devices (at most %d)", len(b.Devices), MaxDevices)
	}
	seen := make(map[string]bool, len(b.Devices))
	for i := range b.Devices {
		if err := b.Devices[i].validate(); err != nil {
			return decodeErr(ErrInvalid, "device %d: %v", i, err)
		}
		if seen[b.Devices[i].Label] {
			return decodeErr(ErrInvalid, "device %d: label %q repeated", i, b.Devices[i].Label)
		}
		seen[b.Devices[i].Label] = true
	}
	if b.Boot != nil {
		if len(b.Boot.Devices) > MaxDevices {
			return decodeErr(ErrInvalid, "boot section of %d devices (at most %d)", len(b.Boot.Devices), MaxDevices)
		}
		if _, err := b.Boot.ParseDevices(); err != nil {
			return err
		}
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
		if d.TDISP != nil && (len(d.TDISP.InterfaceReport) == 0 || d.TDISP.State == "") {
			return fmt.Errorf("%q: status ok with a TDISP interface without its report or state", d.Label)
		}
	case StatusFailed:
		if d.FailedStep == "" {
			return fmt.Errorf("%q: status failed without the failed step", d.Label)
		}
	default:
		return fmt.Errorf("%q: status %q (want %q or %q)", d.Label, d.Status, StatusOK, StatusFailed)
	}
	return nil
}

// ParseDevices decodes the boot section's devices, each strictly, in
// canonical form, to a valid Device.
func (b *Boot) ParseDevices() ([]Device, error) {
	out := make([]Device, len(b.Devices))
	for i, raw := range b.Devices {
		if err := strictUnmarshal(raw, &out[i]); err != nil {
			return nil, decodeErr(ErrInvalid, "boot device %d: %v", i, err)
		}
		if err := out[i].validate(); err != nil {
			return nil, decodeErr(ErrInvalid, "boot device %d: %v", i, err)
		}
		if canon, err := json.Marshal(out[i]); err != nil || !bytes.Equal(canon, raw) {
			return nil, decodeErr(ErrCanonical, "boot device %d", i)
		}
	}
	return out, nil
}

// marshal encodes b canonically (compact encoding/json, fields in
// declaration order) and records each device's bytes.
func (b *Body) marshal() ([]byte, error) {
	out, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	b.deviceBytes = make([][]byte, len(b.Devices))
	for i := range b.Devices {
		if b.deviceBytes[i], err = json.Marshal(b.Devices[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NewReport seals body: it validates and encodes it canonically, and
// returns the report whose user data the platform report must bind
// (Report.UserData). The caller sets Platform.
func NewReport(body *Body) (*Report, error) {
	if err := body.Validate(); err != nil {
		return nil, err
	}
	b, err := body.marshal()
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	return &Report{Version: FormatVersion, BodyType: BodyTypeJSON, Body: b, body: body}, nil
}

// DeviceBytes encodes each device as the body will carry it: what the
// boot binding extends before the body is sealed.
func DeviceBytes(devices []Device) ([][]byte, error) {
	out := make([][]byte, len(devices))
	for i := range devices {
		b, err := json.Marshal(devices[i])
		if err != nil {
			return nil, fmt.Errorf("evidence: device %q: %w", devices[i].Label, err)
		}
		out[i] = b
	}
	return out, nil
}
