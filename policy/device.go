package policy

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/secchan"
)

// Result is the outcome of one check.
type Result struct {
	// Device is the device label, or "report" / "platform" for checks of
	// the report as a whole.
	Device string `json:"device"`
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// Names of the device checks, in the order CheckDevice runs them.
const (
	CheckRule        = "rule"
	CheckStatus      = "status"
	CheckVersion     = "spdm version"
	CheckAlgorithms  = "algorithms"
	CheckChain       = "certificate chain"
	CheckAnchors     = "trust anchors"
	CheckPin         = "pin"
	CheckCertRules   = "certificate rules"
	CheckRequest     = "measurement request"
	CheckNonce       = "measurement nonce"
	CheckTranscript  = "transcript"
	CheckSignature   = "measurement signature"
	CheckBlocks      = "measurement blocks"
	CheckNegotiation = "signed negotiation"
	CheckReference   = "reference measurements"
	CheckSession     = "session"
	CheckIDE         = "ide"
	CheckEvents      = "events"
	spdmNonceLabel   = "devattest spdm nonce/1\x00"
)

// SPDMNonce is the requester nonce the guest derives for label from the
// owner's nonce: SHA-256("devattest spdm nonce/1\0" ‖ u16be(len label) ‖
// label ‖ ownerNonce). It is the guest's construction (guest.SPDMNonce),
// written again here because policy never imports the guest.
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

// Validator returns the chain validator the guest uses for the device
// called label: the chain must reach the rule's trust anchors, use an
// allowed hash and match the pin. Without a rule for label every chain is
// refused.
func (p *Policy) Validator(label string) secchan.ChainValidator {
	r, ok := p.Rule(label)
	return &chainValidator{label: label, rule: r, ok: ok}
}

type chainValidator struct {
	label string
	rule  *DeviceRule
	ok    bool
}

func (v *chainValidator) ValidateChain(chain *secchan.CertChain, h crypto.Hash) error {
	if !v.ok {
		return fmt.Errorf("%w: policy has no rule for device %q", secchan.ErrCertChain, v.label)
	}
	if err := v.rule.checkHash(h); err != nil {
		return fmt.Errorf("%w: %w", secchan.ErrCertChain, err)
	}
	if err := v.rule.anchorValidator().ValidateChain(chain, h); err != nil {
		return err
	}
	if err := v.rule.checkPin(chain); err != nil {
		return fmt.Errorf("%w: %w", secchan.ErrCertChain, err)
	}
	if err := v.rule.checkCertRules(chain, h); err != nil {
		return fmt.Errorf("%w: %w", secchan.ErrCertChain, err)
	}
	return nil
}

// anchorValidator validates to the rule's anchors at the rule's
// validity_time, or now.
func (r *DeviceRule) anchorValidator() *secchan.AnchorValidator {
	v := &secchan.AnchorValidator{Roots: r.anchors}
	if c := r.Certificates; c != nil && !c.validAt.IsZero() {
		at := c.validAt
		v.Now = func() time.Time { return at }
	}
	return v
}

// DefaultCertRules apply to a rule without a certificates block: an SPDM
// responder's leaf signs, so it must be an end entity with the
// digitalSignature key usage (DSP0274 §10.7.2's leaf profile).
var DefaultCertRules = CertRules{LeafKeyUsageDigitalSignature: true, LeafNotCA: true}

// checkCertRules applies the rule's certificates block (but not
// validity_time, which anchorValidator applies) to a parsed chain.
func (r *DeviceRule) checkCertRules(chain *secchan.CertChain, h crypto.Hash) error {
	c := r.Certificates
	if c == nil {
		c = &DefaultCertRules
	}
	var bad []string
	if c.MaxChainLength > 0 {
		n := len(chain.Certs)
		d := h.New()
		d.Write(chain.Certs[0].Raw)
		if !bytes.Equal(d.Sum(nil), chain.RootHash) {
			n++ // the root is not carried; count it
		}
		if n > c.MaxChainLength {
			bad = append(bad, fmt.Sprintf("max_chain_length: the chain has %d certificates (root included), the policy allows %d", n, c.MaxChainLength))
		}
	}
	leaf := chain.Leaf()
	if c.LeafKeyUsageDigitalSignature && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		bad = append(bad, fmt.Sprintf("leaf_key_usage_digital_signature: the leaf %q has no digitalSignature key usage", leaf.Subject))
	}
	if c.LeafNotCA && (!leaf.BasicConstraintsValid || leaf.IsCA) {
		why := "is a CA"
		if !leaf.BasicConstraintsValid {
			why = "has no basic constraints"
		}
		bad = append(bad, fmt.Sprintf("leaf_not_ca: the leaf %q %s", leaf.Subject, why))
	}
	if c.IntermediatesCA {
		for i, cert := range chain.Certs[:len(chain.Certs)-1] {
			if !cert.BasicConstraintsValid || !cert.IsCA {
				bad = append(bad, fmt.Sprintf("intermediates_ca: certificate %d %q is not a CA with valid basic constraints", i, cert.Subject))
			}
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func (r *DeviceRule) checkHash(h crypto.Hash) error {
	if r.hash == 0 {
		return nil
	}
	for _, bit := range []uint32{secchan.HashSHA256, secchan.HashSHA384, secchan.HashSHA512} {
		if hb, _ := hashOf(bit); hb == h && r.hash&bit != 0 {
			return nil
		}
	}
	return fmt.Errorf("hash %v is not allowed (allowed: %s)", h, secchan.HashName(r.hash))
}

func (r *DeviceRule) checkPin(chain *secchan.CertChain) error {
	if r.Pin == nil {
		return nil
	}
	if want := r.Pin.LeafPublicKeySHA256; want != nil {
		got := sha256.Sum256(chain.Leaf().RawSubjectPublicKeyInfo)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return fmt.Errorf("leaf public key SHA-256 %x is not the pinned %x", got, []byte(want))
		}
	}
	if want := r.Pin.ChainSHA256; want != nil {
		got := sha256.Sum256(chain.Raw)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return fmt.Errorf("chain SHA-256 %x is not the pinned %x", got, []byte(want))
		}
	}
	return nil
}

// CheckDevice checks one device of a report whose owner nonce is
// ownerNonce against its rule. Every check is reported; a check that
// cannot run because an earlier one failed is reported as failed with the
// reason.
func (p *Policy) CheckDevice(d evidence.Device, ownerNonce []byte) []Result {
	c := &deviceCheck{d: d, label: d.Label}
	r, ok := p.Rule(d.Label)
	if !ok {
		c.fail(CheckRule, "the policy has no rule for this device and no default rule")
		return c.out
	}
	c.rule = r
	if r.Default {
		c.pass(CheckRule, "default rule")
	} else {
		c.pass(CheckRule, "")
	}
	if !d.OK() {
		c.fail(CheckStatus, fmt.Sprintf("status %q, failed at %s: %s", d.Status, d.FailedStep, d.Error))
		return c.out
	}
	if d.Measurements == nil || len(d.CertChain) == 0 {
		c.fail(CheckStatus, "status ok without a certificate chain and signed measurements")
		return c.out
	}
	c.pass(CheckStatus, "")
	c.run(ownerNonce)
	return c.out
}

type deviceCheck struct {
	d     evidence.Device
	label string
	rule  *DeviceRule
	out   []Result
}

func (c *deviceCheck) pass(check, reason string) {
	c.out = append(c.out, Result{Device: c.label, Check: check, OK: true, Reason: reason})
}

func (c *deviceCheck) fail(check, reason string) {
	c.out = append(c.out, Result{Device: c.label, Check: check, OK: false, Reason: reason})
}

func (c *deviceCheck) result(check string, err error) bool {
	if err != nil {
		c.fail(check, err.Error())
		return false
	}
	c.pass(check, "")
	return true
}

// negotiated is what the evidence says was negotiated, checked for
// consistency and support.
type negotiated struct {
	version  secchan.Version
	asym     uint32
	hash     uint32
	h        crypto.Hash
	sigSize  int
	measSize int
}

func (c *deviceCheck) run(ownerNonce []byte) {
	d, r := c.d, c.rule
	m := d.Measurements

	v, err := secchan.ParseVersion(d.SPDMVersion)
	if err == nil && v < r.minVersion {
		err = fmt.Errorf("negotiated %s, policy requires at least %s", v, r.minVersion)
	}
	versionOK := c.result(CheckVersion, err)

	n, err := c.algorithms(v)
	algOK := c.result(CheckAlgorithms, err)
	if !versionOK || !algOK {
		c.fail(CheckChain, "not checked: version or algorithms refused")
		c.skipSigned("version or algorithms refused")
		c.checkReference()
		c.checkSessionIDE()
		return
	}

	chain, err := secchan.ParseCertChain(d.CertChain, n.h)
	chainOK := c.result(CheckChain, err)
	if chainOK {
		c.result(CheckAnchors, r.anchorValidator().ValidateChain(chain, n.h))
		if r.Pin != nil {
			c.result(CheckPin, r.checkPin(chain))
		}
		c.result(CheckCertRules, r.checkCertRules(chain, n.h))
	} else {
		c.fail(CheckAnchors, "not checked: the chain does not parse")
		if r.Pin != nil {
			c.fail(CheckPin, "not checked: the chain does not parse")
		}
		c.fail(CheckCertRules, "not checked: the chain does not parse")
	}

	var req secchan.GetMeasurements
	var rsp secchan.Measurements
	reqOK := c.result(CheckRequest, decodeExact(m.Request, func(b []byte) (int, error) { return req.Decode(b) }, func() error {
		switch {
		case req.Version != n.version:
			return fmt.Errorf("request version %s, negotiated %s", req.Version, n.version)
		case !req.SignatureRequested():
			return errors.New("the request did not ask for a signature")
		case req.Operation != secchan.MeasOpAll:
			return fmt.Errorf("the request asked for operation 0x%02x, not all blocks", req.Operation)
		case req.Slot != d.CertSlot:
			return fmt.Errorf("the request names slot %d, the chain is from slot %d", req.Slot, d.CertSlot)
		}
		return nil
	}))
	if reqOK {
		want := SPDMNonce(d.Label, ownerNonce)
		switch {
		case subtle.ConstantTimeCompare(req.Nonce[:], want[:]) != 1:
			c.fail(CheckNonce, "the request's nonce is not the one derived from the owner's nonce and the label")
		case !bytes.Equal(m.Nonce, req.Nonce[:]):
			c.fail(CheckNonce, "the evidence's nonce is not the request's")
		default:
			c.pass(CheckNonce, "")
		}
	} else {
		c.fail(CheckNonce, "not checked: the request does not decode")
	}

	rspErr := decodeExact(m.Response, func(b []byte) (int, error) { return rsp.Decode(b, n.sigSize) }, func() error {
		switch {
		case rsp.Version != n.version:
			return fmt.Errorf("response version %s, negotiated %s", rsp.Version, n.version)
		case rsp.Slot != d.CertSlot:
			return fmt.Errorf("the response is from slot %d, the chain from slot %d", rsp.Slot, d.CertSlot)
		case n.version >= secchan.V13 && rsp.Context != req.Context:
			return errors.New("RequesterContext not echoed")
		}
		return nil
	})
	if rspErr != nil {
		c.fail(CheckTranscript, "not checked: the signed response does not decode: "+rspErr.Error())
		c.fail(CheckSignature, "not checked: the signed response does not decode")
		c.fail(CheckBlocks, "not checked: the signed response does not decode: "+rspErr.Error())
		c.fail(CheckNegotiation, "not checked: the signed response does not decode")
	} else {
		// The signature covers [VCA] ‖ earlier unsigned pairs ‖ request ‖
		// response without its signature; the transcript must end with
		// exactly the carried request and response.
		tail := append(bytes.Clone(m.Request), m.Response[:len(m.Response)-len(rsp.Signature)]...)
		transcriptOK := c.result(CheckTranscript, func() error {
			if !bytes.HasSuffix(m.Transcript, tail) {
				return errors.New("the transcript does not end with the carried request and response")
			}
			return nil
		}())
		switch {
		case !chainOK:
			c.fail(CheckSignature, "not checked: the chain does not parse")
		case !transcriptOK:
			c.fail(CheckSignature, "not checked: the transcript does not cover the carried messages")
		default:
			th := n.h.New()
			th.Write(m.Transcript)
			c.result(CheckSignature, secchan.VerifySignature(n.version, n.asym, n.h, chain.Leaf().PublicKey,
				secchan.ContextMeasurements, th.Sum(nil), rsp.Signature))
		}
		c.result(CheckBlocks, c.compareBlocks(&rsp, n))
		if transcriptOK {
			c.result(CheckNegotiation, c.checkNegotiation(n))
		} else {
			c.fail(CheckNegotiation, "not checked: the transcript does not cover the carried messages")
		}
	}
	c.checkReference()
	c.checkSessionIDE()
}

// checkNegotiation reads VCA from the start of the signed transcript (1.2
// and later put it there) and compares what it negotiated with what the
// evidence claims, so the claimed version, capabilities and algorithms are
// the ones the device signed.
func (c *deviceCheck) checkNegotiation(n negotiated) error {
	if n.version < secchan.V12 {
		return nil
	}
	vca, err := secchan.ParseVCA(c.d.Measurements.Transcript)
	if err != nil {
		return fmt.Errorf("the signed transcript does not start with VCA: %w", err)
	}
	caps, alg := &vca.Capabilities, &vca.Algorithms
	a := c.d.Algorithms
	switch {
	case alg.Version != n.version || caps.Version != n.version:
		return fmt.Errorf("the signed negotiation is for version %s, the evidence claims %s", alg.Version, n.version)
	case caps.Flags != c.d.CapabilityFlags:
		return fmt.Errorf("signed capabilities 0x%x, the evidence claims 0x%x", caps.Flags, c.d.CapabilityFlags)
	case alg.BaseAsymSel != a.BaseAsymBits || alg.BaseHashSel != a.BaseHashBits || alg.MeasurementHashAlgo != a.MeasurementHashBits:
		return fmt.Errorf("signed algorithms %s/%s/%s, the evidence claims %s/%s/%s",
			secchan.AsymName(alg.BaseAsymSel), secchan.HashName(alg.BaseHashSel), secchan.MeasHashName(alg.MeasurementHashAlgo),
			a.BaseAsym, a.BaseHash, a.MeasurementHash)
	}
	return nil
}

func (c *deviceCheck) skipSigned(why string) {
	for _, k := range []string{CheckAnchors, CheckRequest, CheckNonce, CheckTranscript, CheckSignature, CheckBlocks, CheckNegotiation} {
		c.fail(k, "not checked: "+why)
	}
}

// algorithms checks that the claimed algorithm names match their bits,
// that they are supported and that the rule allows them.
func (c *deviceCheck) algorithms(v secchan.Version) (negotiated, error) {
	a := c.d.Algorithms
	n := negotiated{version: v}
	if a == nil {
		return n, errors.New("the evidence names no algorithms")
	}
	if !singleBit(a.BaseAsymBits) || secchan.AsymName(a.BaseAsymBits) != a.BaseAsym {
		return n, fmt.Errorf("base asym %q does not match its bits 0x%x", a.BaseAsym, a.BaseAsymBits)
	}
	if !singleBit(a.BaseHashBits) || secchan.HashName(a.BaseHashBits) != a.BaseHash {
		return n, fmt.Errorf("base hash %q does not match its bits 0x%x", a.BaseHash, a.BaseHashBits)
	}
	if !singleBit(a.MeasurementHashBits) || secchan.MeasHashName(a.MeasurementHashBits) != a.MeasurementHash {
		return n, fmt.Errorf("measurement hash %q does not match its bits 0x%x", a.MeasurementHash, a.MeasurementHashBits)
	}
	n.asym, n.hash = a.BaseAsymBits, a.BaseHashBits
	if c.rule.asym != 0 && c.rule.asym&n.asym == 0 {
		return n, fmt.Errorf("base asym %s is not allowed (allowed: %s)", a.BaseAsym, secchan.AsymName(c.rule.asym))
	}
	if c.rule.hash != 0 && c.rule.hash&n.hash == 0 {
		return n, fmt.Errorf("base hash %s is not allowed (allowed: %s)", a.BaseHash, secchan.HashName(c.rule.hash))
	}
	var err error
	if n.h, err = hashOf(n.hash); err != nil {
		return n, err
	}
	if n.sigSize, err = sigSize(n.asym); err != nil {
		return n, err
	}
	if n.measSize, err = measHashSize(a.MeasurementHashBits); err != nil {
		return n, err
	}
	return n, nil
}

// compareBlocks re-parses the signed record and compares it with the
// parsed blocks the evidence carries.
func (c *deviceCheck) compareBlocks(rsp *secchan.Measurements, n negotiated) error {
	signed, err := rsp.Blocks(n.measSize)
	if err != nil {
		return fmt.Errorf("the signed record does not parse: %w", err)
	}
	got := c.d.Measurements.Blocks
	if len(signed) != len(got) {
		return fmt.Errorf("the evidence lists %d blocks, the signed response %d", len(got), len(signed))
	}
	for i, s := range signed {
		g := got[i]
		t := s.ValueType &^ secchan.MeasTypeRawBitStream
		switch {
		case g.Index != s.Index:
			return fmt.Errorf("block %d: index %d, signed %d", i, g.Index, s.Index)
		case g.TypeCode != t || g.Raw != s.RawBitStream() || g.Type != secchan.MeasurementTypeName(t):
			return fmt.Errorf("block %d: type differs from the signed one", g.Index)
		case !bytes.Equal(g.Value, s.Value):
			return fmt.Errorf("block %d: value %x, signed %x", g.Index, []byte(g.Value), s.Value)
		}
	}
	return nil
}

func (c *deviceCheck) checkReference() {
	refs := c.rule.ReferenceMeasurements
	if len(refs) == 0 {
		c.pass(CheckReference, "skipped: the policy lists no reference measurements (any value accepted)")
		return
	}
	values := map[uint8][]byte{}
	for _, b := range c.d.Measurements.Blocks {
		values[b.Index] = b.Value
	}
	var bad, good []string
	for _, ref := range refs {
		v, ok := values[ref.Index]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("block %d missing (expected %s)", ref.Index, hexList(ref.Digest)))
		case !ref.Digest.Contains(v):
			bad = append(bad, fmt.Sprintf("block %d: expected %s, seen %x", ref.Index, hexList(ref.Digest), v))
		default:
			good = append(good, fmt.Sprintf("block %d = %x", ref.Index, v))
		}
	}
	if len(bad) > 0 {
		c.fail(CheckReference, strings.Join(bad, "; "))
		return
	}
	c.pass(CheckReference, strings.Join(good, "; "))
}

// hexList spells accepted values for a reason line.
func hexList(l HexList) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = hex.EncodeToString(v)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "one of " + strings.Join(parts, ", ")
}

func (c *deviceCheck) checkSessionIDE() {
	d, r := c.d, c.rule
	switch {
	case !r.RequireSession:
		c.pass(CheckSession, "skipped: the policy does not require a secure session")
	case d.Session == nil:
		c.fail(CheckSession, "required, but no secure session")
	case !d.Measurements.InSession:
		c.fail(CheckSession, "required, but the measurements were not taken in the session")
	case !d.Session.Ended:
		c.fail(CheckSession, "the session was not ended cleanly")
	default:
		c.pass(CheckSession, fmt.Sprintf("session 0x%08x, %s", d.Session.ID, d.Session.AEAD))
	}
	if !r.RequireIDE {
		c.pass(CheckIDE, "skipped: the policy does not require IDE")
	} else {
		c.result(CheckIDE, checkIDE(d.IDE, r.AllowSimulatedRootPort))
		if d.IDE != nil && d.IDE.KeySet != "" && c.out[len(c.out)-1].OK {
			c.out[len(c.out)-1].Reason = fmt.Sprintf("stream %d, key set %s, root port: %s", d.IDE.Stream, d.IDE.KeySet, d.IDE.RootPort)
		}
	}
	c.checkTDISP()
	c.checkEvents()
}

func checkIDE(ide *evidence.IDE, allowSimulated bool) error {
	switch {
	case ide == nil:
		return errors.New("required, but IDE was not keyed")
	case ide.KeySet == "":
		return errors.New("required, but no key set went live")
	case ide.RootPort == "":
		return errors.New("required, but the report does not say who programmed the root port")
	case ide.RootPort == evidence.RootPortSimulated && !allowSimulated:
		return errors.New("the root port's half of the stream is the simulated link, which encrypts nothing on a real bus (allow_simulated_root_port: true for tests)")
	}
	for _, s := range ide.Steps {
		if strings.HasPrefix(s.Result, "failed") {
			return fmt.Errorf("step %s %s", s.Name, s.Result)
		}
	}
	return nil
}

// EventAttested is the one device event kind a rule accepts without
// naming it: a measurement that went as expected.
const EventAttested = "attested"

// checkEvents judges what happened to the device since its previous
// report: every event kind other than EventAttested must be listed in the
// rule's allow_events.
func (c *deviceCheck) checkEvents() {
	var bad []string
	for _, e := range c.d.Events {
		if e.Kind != EventAttested && !slices.Contains(c.rule.AllowEvents, e.Kind) {
			bad = append(bad, fmt.Sprintf("%s at %s: %s", e.Kind, e.Time.Format(time.RFC3339), e.Message))
		}
	}
	switch {
	case len(bad) > 0:
		c.fail(CheckEvents, fmt.Sprintf("%d events the policy does not allow (allow_events): %s", len(bad), strings.Join(bad, "; ")))
	case len(c.d.Events) == 0:
		c.pass(CheckEvents, "no events since the previous report")
	default:
		c.pass(CheckEvents, fmt.Sprintf("%d allowed events", len(c.d.Events)))
	}
}

// decodeExact decodes b, insists that all of it was consumed, then runs
// the consistency check.
func decodeExact(b []byte, dec func([]byte) (int, error), check func() error) error {
	n, err := dec(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-n)
	}
	return check()
}

func singleBit(v uint32) bool { return v != 0 && v&(v-1) == 0 }

func hashOf(bit uint32) (crypto.Hash, error) {
	switch bit {
	case secchan.HashSHA256:
		return crypto.SHA256, nil
	case secchan.HashSHA384:
		return crypto.SHA384, nil
	case secchan.HashSHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("base hash %s is not supported", secchan.HashName(bit))
}

func sigSize(asym uint32) (int, error) {
	switch asym {
	case secchan.AsymRSASSA2048, secchan.AsymRSAPSS2048:
		return 256, nil
	case secchan.AsymRSASSA3072, secchan.AsymRSAPSS3072:
		return 384, nil
	case secchan.AsymRSASSA4096, secchan.AsymRSAPSS4096:
		return 512, nil
	case secchan.AsymECDSAP256, secchan.AsymEd25519:
		return 64, nil
	case secchan.AsymECDSAP384:
		return 96, nil
	case secchan.AsymECDSAP521:
		return 132, nil
	}
	return 0, fmt.Errorf("base asym %s is not supported", secchan.AsymName(asym))
}

func measHashSize(bit uint32) (int, error) {
	switch bit {
	case secchan.MeasHashRaw:
		return 0, nil
	case secchan.MeasHashSHA256, secchan.MeasHashSHA3_256:
		return 32, nil
	case secchan.MeasHashSHA384, secchan.MeasHashSHA3_384:
		return 48, nil
	case secchan.MeasHashSHA512, secchan.MeasHashSHA3_512:
		return 64, nil
	}
	return 0, fmt.Errorf("measurement hash %s is not supported", secchan.MeasHashName(bit))
}

// LeafPublicKeySHA256 is the pin value of a certificate.
func LeafPublicKeySHA256(c *x509.Certificate) []byte {
	d := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return d[:]
}
