// Package guest is the guest service: it attests every assigned device
// through the host shim and binds the device evidence into the platform's
// attestation report (DESIGN.md, "Evidence and binding").
//
// One device, in order (AttestDevice; each step's name is what a failure
// records):
//
//	connect           dial the shim (doe socket framing)
//	discovery         DOE discovery; CMA/SPDM must be listed
//	VCA               GET_VERSION, GET_CAPABILITIES, NEGOTIATE_ALGORITHMS
//	GET_DIGESTS
//	GET_CERTIFICATE   slot 0, validated to the device's trust anchors
//	CHALLENGE         slot 0 (if the device has CHAL_CAP)
//	KEY_EXCHANGE      KEY_EXCHANGE + FINISH: the secure session
//	GET_MEASUREMENTS  all blocks, signed, inside the session, with the SPDM
//	                  nonce derived from the owner's nonce (SPDMNonce)
//	IDE_KM            optional: ide.RunCheck with a simulated root port
//	TDISP             optional, after IDE_KM: lock the device interface on
//	                  the keyed stream, read and check its report, start it
//	END_SESSION
//
// Attest runs every device concurrently, then extends the boot binding
// and takes the platform report over evidence.UserData.
package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// Step names recorded in evidence.Device.FailedStep.
const (
	StepAnchors         = "trust anchors"
	StepConnect         = "connect"
	StepDiscovery       = "discovery"
	StepVCA             = "VCA"
	StepDigests         = "GET_DIGESTS"
	StepCertificate     = "GET_CERTIFICATE"
	StepChallenge       = "CHALLENGE"
	StepKeyExchange     = "KEY_EXCHANGE"
	StepMeasurements    = "GET_MEASUREMENTS"
	StepIDE             = "IDE_KM"
	StepTDISP           = "TDISP"
	StepEndSession      = "END_SESSION"
	StepPolicy          = "policy"
	certSlot            = 0
	spdmNonceLabel      = "devattest spdm nonce/1\x00"
	simulatedRootPort   = "simulated root port"
	defaultDeviceBudget = 60 * time.Second
)

// DeviceError is one device's failure: which device, at which step.
type DeviceError struct {
	Label string
	Step  string
	Err   error
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("device %q failed at %s: %v", e.Label, e.Step, e.Err)
}

func (e *DeviceError) Unwrap() error { return e.Err }

// SPDMNonce is the requester nonce of a device's signed GET_MEASUREMENTS,
// derived from the workload owner's nonce so that the device's signature
// is provably fresh for that owner:
//
//	SHA-256( "devattest spdm nonce/1" 0x00 ‖ u16be(len(label)) ‖ label ‖ ownerNonce )
//
// (32 bytes, the SPDM nonce size). The label makes each device's nonce
// distinct. A verifier recomputes it and compares it with the nonce inside
// the carried GET_MEASUREMENTS request.
func SPDMNonce(label string, ownerNonce []byte) [secchan.NonceSize]byte {
	h := sha256.New()
	h.Write([]byte(spdmNonceLabel))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(label))))
	h.Write([]byte(label))
	h.Write(ownerNonce)
	var out [secchan.NonceSize]byte
	h.Sum(out[:0])
	return out
}

// mailbox is a shim connection.
type mailbox interface {
	doe.Mailbox
	Close() error
}

// dialShim connects to the shim at addr.
func dialShim(ctx context.Context, addr string) (mailbox, error) {
	a, err := ParseShimAddr(addr)
	if err != nil {
		return nil, err
	}
	if a.Network == "vsock" {
		conn, err := vsock.Dial(a.CID, a.Port, nil)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		return doe.NewSocketClient(conn), nil
	}
	return doe.Dial(ctx, a.Addr)
}

// AttestDevice attests one device (the steps are in the package comment).
// It always returns the device's evidence; on failure its Status is
// evidence.StatusFailed with the failed step named, and the error is a
// *DeviceError.
func AttestDevice(ctx context.Context, dev DeviceConfig, ownerNonce []byte) (evidence.Device, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultDeviceBudget)
		defer cancel()
	}
	d := evidence.Device{Label: dev.Label, CertSlot: certSlot, Started: time.Now().UTC()}
	fail := func(step string, err error) (evidence.Device, error) {
		d.Status, d.FailedStep, d.Error = evidence.StatusFailed, step, err.Error()
		d.Finished = time.Now().UTC()
		return d, &DeviceError{Label: dev.Label, Step: step, Err: err}
	}
	c, step, err := openDevice(ctx, &dev, &d)
	if err != nil {
		return fail(step, err)
	}
	defer c.close()
	ss, neg := c.ss, c.neg
	// After a failure inside the session, end it (best effort) so its
	// keys are zeroed on both sides.
	failInSession := func(step string, err error) (evidence.Device, error) {
		_ = ss.End(ctx)
		return fail(step, err)
	}

	d.Measurements, err = c.measure(ctx, SPDMNonce(dev.Label, ownerNonce))
	if err != nil {
		return failInSession(StepMeasurements, err)
	}
	if err := enforce(&dev, d, ownerNonce, beforeKeys...); err != nil {
		return failInSession(StepPolicy, err)
	}

	if dev.IDE {
		d.IDE, err = keyIDE(ctx, ss, neg.Version, dev.TDISP)
		if err != nil {
			return failInSession(StepIDE, err)
		}
	}
	if dev.TDISP {
		d.TDISP, err = bindTDISP(ctx, ss, neg.Version, &dev, d.IDE.Stream)
		if err != nil {
			return failInSession(StepTDISP, err)
		}
	}

	if err := ss.End(ctx); err != nil {
		return fail(StepEndSession, err)
	}
	d.Session.Ended = true
	d.Status = evidence.StatusOK
	if err := enforce(&dev, d, ownerNonce); err != nil {
		return fail(StepPolicy, err)
	}
	d.Finished = time.Now().UTC()
	return d, nil
}

// devConn is an open connection to one device with a live secure
// session. Its methods are not safe for concurrent use.
type devConn struct {
	mb  mailbox
	ss  *secchan.SecureSession
	neg secchan.Negotiated
	// derived, when set, is the nonce of the next signed GET_MEASUREMENTS;
	// otherwise the requester's nonces are random.
	derived *[secchan.NonceSize]byte
}

// close drops the connection (the session, if still open, dies with it).
func (c *devConn) close() { _ = c.mb.Close() }

// measure runs a signed GET_MEASUREMENTS of all blocks inside the session
// with the given requester nonce.
func (c *devConn) measure(ctx context.Context, nonce [secchan.NonceSize]byte) (*evidence.Measurements, error) {
	c.derived = &nonce
	defer func() { c.derived = nil }()
	res, err := c.ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true, Slot: certSlot})
	if err != nil {
		return nil, err
	}
	return measurements(res), nil
}

// openDevice runs the steps from connect to KEY_EXCHANGE, filling d with
// what it learns. On failure it returns the failed step and has closed
// the connection.
func openDevice(ctx context.Context, dev *DeviceConfig, d *evidence.Device) (_ *devConn, step string, _ error) {
	validator, err := chainValidator(dev)
	if err != nil {
		return nil, StepAnchors, err
	}
	mb, err := dialShim(ctx, dev.Shim)
	if err != nil {
		return nil, StepConnect, err
	}
	c := &devConn{mb: mb}
	fail := func(step string, err error) (*devConn, string, error) {
		c.close()
		return nil, step, err
	}

	var ex doe.Mailbox = mb
	if dev.Capture != nil {
		ex = doe.CaptureMailbox{Mailbox: mb, Capture: dev.Capture}
	}
	protos, err := doe.Discover(ctx, ex, 0)
	if err != nil {
		return fail(StepDiscovery, err)
	}
	for _, p := range protos {
		d.Protocols = append(d.Protocols, p.Name())
	}
	if !slices.Contains(protos, doe.ProtocolCMA) {
		return fail(StepDiscovery, errors.New("the device does not list CMA/SPDM"))
	}

	// The SPDM nonce source: random for CHALLENGE, derived from the
	// owner's nonce for the signed GET_MEASUREMENTS (devConn.measure).
	cfg := secchan.DefaultRequesterConfig()
	cfg.Validator = validator
	cfg.Nonce = func() ([secchan.NonceSize]byte, error) {
		if c.derived != nil {
			return *c.derived, nil
		}
		var n [secchan.NonceSize]byte
		b, err := randomNonce()
		copy(n[:], b)
		return n, err
	}
	cfg.KeyLog = dev.KeyLog
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: ex}, cfg)

	if err := q.Connect(ctx); err != nil {
		return fail(StepVCA, err)
	}
	neg := q.Negotiated()
	c.neg = neg
	d.SPDMVersion = neg.Version.String()
	d.Algorithms = algorithms(neg)
	d.Capabilities = secchan.CapabilityNames(neg.RspCaps)
	d.CapabilityFlags = neg.RspCaps
	switch {
	case neg.RspCaps&secchan.CapCert == 0:
		return fail(StepVCA, errors.New("the device offers no certificates (no CERT_CAP)"))
	case neg.RspCaps&secchan.CapMeasSig == 0:
		return fail(StepVCA, errors.New("the device cannot sign measurements (no MEAS_CAP with signatures)"))
	case neg.RspCaps&secchan.CapKeyEx == 0:
		return fail(StepVCA, errors.New("the device cannot open a secure session (no KEY_EX_CAP)"))
	}

	if _, err := q.GetDigests(ctx); err != nil {
		return fail(StepDigests, err)
	}
	chain, err := q.GetCertificate(ctx, certSlot)
	if err != nil {
		return fail(StepCertificate, err)
	}
	d.CertChain = append([]byte(nil), chain.Raw...)
	if neg.RspCaps&secchan.CapChal != 0 {
		if _, err := q.Challenge(ctx, certSlot, secchan.SummaryNone); err != nil {
			return fail(StepChallenge, err)
		}
	}

	ss, err := q.KeyExchange(ctx, secchan.SessionOptions{Slot: certSlot})
	if err != nil {
		return fail(StepKeyExchange, err)
	}
	c.ss = ss
	d.Session = &evidence.Session{ID: ss.ID(), AEAD: secchan.AEADName(ss.AEAD())}
	return c, "", nil
}

// keyIDE programs IDE keys over the session with ide.RunCheck: QUERY, K0,
// GO, rotate to K1, STOP. The root-port half of each key goes to an
// ide.SimRootPort, the simulated root port standing in for whatever the
// platform trusts to program a real one (a TSM, trusted firmware); it
// never goes to the host. The link steps are skipped: the device end of
// the simulated link is not forwarded by the shim. With keep, K1 stays in
// use for the TDISP interface bound to the stream next.
func keyIDE(ctx context.Context, ss *secchan.SecureSession, v secchan.Version, keep bool) (*evidence.IDE, error) {
	const port, stream = 0, 0
	rp := &ide.SimRootPort{}
	defer rp.Zero()
	steps, err := ide.RunCheck(ctx, ss, rp, ide.CheckOptions{Version: v, Port: port, Stream: stream,
		SkipReason: "the device end of the simulated link is not reachable through the shim", KeepKeys: keep})
	out := &evidence.IDE{Port: port, Stream: stream, RootPort: simulatedRootPort, Steps: []evidence.IDEStep{}}
	for _, s := range ide.SubStreams {
		out.SubStreams = append(out.SubStreams, s.String())
	}
	for _, s := range steps {
		r := "ok"
		switch {
		case s.Err != nil:
			r = "failed: " + s.Err.Error()
		case s.Skipped:
			r = "skipped: " + s.Detail
		case s.Detail != "":
			r = "ok: " + s.Detail
		}
		out.Steps = append(out.Steps, evidence.IDEStep{Name: s.Name, Result: r})
		if s.Err == nil && !s.Skipped {
			switch s.Name {
			case "K_SET_GO K0":
				out.KeySet = ide.K0.String()
			case "rotate to K1":
				out.KeySet = ide.K1.String()
			}
		}
	}
	return out, err
}

func algorithms(n secchan.Negotiated) *evidence.Algorithms {
	a := &evidence.Algorithms{
		BaseAsym: secchan.AsymName(n.BaseAsym), BaseAsymBits: n.BaseAsym,
		BaseHash: secchan.HashName(n.BaseHash), BaseHashBits: n.BaseHash,
		MeasurementHash: secchan.MeasHashName(n.MeasurementHash), MeasurementHashBits: n.MeasurementHash,
	}
	if n.DHE != 0 {
		a.DHE, a.DHEBits = secchan.DHEName(n.DHE), n.DHE
	}
	if n.AEAD != 0 {
		a.AEAD, a.AEADBits = secchan.AEADName(n.AEAD), n.AEAD
	}
	return a
}

func measurements(res *secchan.MeasurementsResult) *evidence.Measurements {
	m := &evidence.Measurements{
		InSession:  true,
		Nonce:      append([]byte(nil), res.Nonce[:]...),
		Request:    append([]byte(nil), res.Request...),
		Response:   append([]byte(nil), res.Response...),
		Transcript: append([]byte(nil), res.Transcript...),
		Blocks:     []evidence.Block{},
	}
	for _, b := range res.Blocks {
		t := b.ValueType &^ 0x80
		m.Blocks = append(m.Blocks, evidence.Block{
			Index: b.Index, Type: secchan.MeasurementTypeName(t), TypeCode: t,
			Raw: b.RawBitStream(), Value: bytes.Clone(b.Value),
		})
	}
	return m
}
