package platform

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"math/big"
	"strings"

	"github.com/google/go-sev-guest/abi"
	sevverify "github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
	tdxverify "github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tpm/tpm2"
)

// SNPRoots are DER certificates of an AMD root of trust for one product
// line: ARK (self-signed), ASK (signs VCEKs) and optionally ASVK (signs
// VLEKs).
type SNPRoots struct {
	ARK, ASK, ASVK []byte
}

// TrustAnchors are what a verifier trusts. Nil fields select the vendors'
// production roots embedded in the libraries.
type TrustAnchors struct {
	// SNP replaces AMD's roots.
	SNP *SNPRoots
	// TDX replaces Intel's SGX root CA.
	TDX *x509.CertPool
	// TPMAKPublic, when set, is the only TPM attestation key (TPMT_PUBLIC)
	// accepted. When nil the report's own key is used and the caller must
	// establish trust in it some other way.
	TPMAKPublic []byte
}

func verifyErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrVerify, fmt.Sprintf(format, args...))
}

// MeasuredDigest is the value Extend puts into the register for digest:
// SHA-256(digest) for a vTPM PCR (SHA-256 bank), SHA-384(digest) for a TDX
// RTMR.
func MeasuredDigest(kind Kind, digest []byte) []byte {
	switch kind {
	case KindTDX:
		d := sha512.Sum384(digest)
		return d[:]
	default:
		d := sha256.Sum256(digest)
		return d[:]
	}
}

// ReplayEventLog computes the value register holds after the events of log
// that target it, starting from zero: r = H(r || MeasuredDigest(digest)).
func ReplayEventLog(kind Kind, log []Event, register uint32) []byte {
	size := sha256.Size
	if kind == KindTDX {
		size = sha512.Size384
	}
	r := make([]byte, size)
	for _, e := range log {
		if e.Register != register {
			continue
		}
		m := MeasuredDigest(kind, e.Digest)
		if kind == KindTDX {
			d := sha512.Sum384(append(r, m...))
			r = d[:]
		} else {
			d := sha256.Sum256(append(r, m...))
			r = d[:]
		}
	}
	return r
}

// VerifySNP checks an SEV-SNP attestation report offline: the certificate
// table's VCEK (or VLEK) chains to roots (AMD's embedded roots when nil), the
// report's signature, and REPORT_DATA == wantUserData. It does not judge
// measurement, policy bits or TCB: that is the verifier's policy.
func VerifySNP(raw, certs []byte, roots *SNPRoots, wantUserData [UserDataSize]byte) error {
	if len(raw) != abi.ReportSize {
		return verifyErr("SEV-SNP report is %d bytes, want %d", len(raw), abi.ReportSize)
	}
	att, err := abi.ReportCertsToProto(append(clone(raw), certs...))
	if err != nil {
		return verifyErr("SEV-SNP report: %v", err)
	}
	opts := &sevverify.Options{DisableCertFetching: true}
	if roots != nil {
		tr, err := snpTrustedRoots(roots)
		if err != nil {
			return err
		}
		opts.TrustedRoots = tr
	}
	if err := sevverify.SnpAttestation(att, opts); err != nil {
		return verifyErr("SEV-SNP report: %v", err)
	}
	if subtle.ConstantTimeCompare(att.GetReport().GetReportData(), wantUserData[:]) != 1 {
		return fmt.Errorf("%w: SEV-SNP REPORT_DATA", ErrUserDataMismatch)
	}
	return nil
}

func snpTrustedRoots(r *SNPRoots) (map[string][]*trust.AMDRootCerts, error) {
	ark, err := x509.ParseCertificate(r.ARK)
	if err != nil {
		return nil, verifyErr("SEV-SNP ARK: %v", err)
	}
	ask, err := x509.ParseCertificate(r.ASK)
	if err != nil {
		return nil, verifyErr("SEV-SNP ASK: %v", err)
	}
	var asvk *x509.Certificate
	if len(r.ASVK) > 0 {
		if asvk, err = x509.ParseCertificate(r.ASVK); err != nil {
			return nil, verifyErr("SEV-SNP ASVK: %v", err)
		}
	}
	// AMD names roots "ARK-<product line>".
	line, ok := strings.CutPrefix(ark.Subject.CommonName, "ARK-")
	if !ok || line == "" {
		return nil, verifyErr("SEV-SNP ARK common name %q is not ARK-<product line>", ark.Subject.CommonName)
	}
	return map[string][]*trust.AMDRootCerts{line: {{
		Product:      line,
		ProductLine:  line,
		ProductCerts: &trust.ProductCerts{Ark: ark, Ask: ask, Asvk: asvk},
	}}}, nil
}

// VerifyTDX checks a TDX quote offline: the PCK chain inside the quote up to
// roots (Intel's SGX root CA when nil), the QE report signature, the
// attestation key binding and the quote signature, then REPORTDATA ==
// wantUserData. Collateral (TCB info, QE identity) is not fetched; the
// verifier's policy judges TCB. It returns the parsed quote so the caller
// can read the RTMRs.
func VerifyTDX(raw []byte, roots *x509.CertPool, wantUserData [UserDataSize]byte) (*tdxpb.QuoteV4, error) {
	q, err := tdxabi.QuoteToProto(raw)
	if err != nil {
		return nil, verifyErr("TDX quote: %v", err)
	}
	quote, ok := q.(*tdxpb.QuoteV4)
	if !ok {
		return nil, verifyErr("TDX quote: unsupported quote type %T", q)
	}
	if err := tdxverify.TdxQuote(quote, &tdxverify.Options{TrustedRoots: roots}); err != nil {
		return nil, verifyErr("TDX quote: %v", err)
	}
	if subtle.ConstantTimeCompare(quote.GetTdQuoteBody().GetReportData(), wantUserData[:]) != 1 {
		return nil, fmt.Errorf("%w: TDX REPORTDATA", ErrUserDataMismatch)
	}
	return quote, nil
}

// VerifyTPM checks a TPM2_Quote offline: akPub is a restricted ECC signing
// key, sig is its signature over quote, quote is a TPMS_ATTEST with the
// TPM_GENERATED magic, type TPM_ST_ATTEST_QUOTE, extra data
// TPMQualifyingData(wantUserData) and no trailing bytes, and its PCR digest
// is SHA-256 over pcrs (the SHA-256 bank, ascending index, exactly the
// selection quoted). go-tpm's reflective unmarshal checks none of this.
func VerifyTPM(quote, sig, akPub []byte, pcrs []PCRValue, wantUserData [UserDataSize]byte) error {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](akPub)
	if err != nil {
		return verifyErr("TPM attestation key: %v", err)
	}
	if err := checkExact("attestation key", pub, akPub); err != nil {
		return err
	}
	if pub.Type != tpm2.TPMAlgECC || !pub.ObjectAttributes.Restricted || !pub.ObjectAttributes.SignEncrypt ||
		!pub.ObjectAttributes.FixedTPM || pub.ObjectAttributes.Decrypt {
		return verifyErr("TPM attestation key is not a restricted, fixed ECC signing key")
	}
	key, err := tpm2.Pub(*pub)
	if err != nil {
		return verifyErr("TPM attestation key: %v", err)
	}
	ecKey, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return verifyErr("TPM attestation key is %T, want ECDSA", key)
	}

	s, err := tpm2.Unmarshal[tpm2.TPMTSignature](sig)
	if err != nil {
		return verifyErr("TPM quote signature: %v", err)
	}
	if err := checkExact("quote signature", s, sig); err != nil {
		return err
	}
	if s.SigAlg != tpm2.TPMAlgECDSA {
		return verifyErr("TPM quote signature algorithm 0x%x, want ECDSA", uint16(s.SigAlg))
	}
	es, err := s.Signature.ECDSA()
	if err != nil || es.Hash != tpm2.TPMAlgSHA256 {
		return verifyErr("TPM quote signature is not ECDSA with SHA-256")
	}
	h := sha256.Sum256(quote)
	r, ss := new(big.Int).SetBytes(es.SignatureR.Buffer), new(big.Int).SetBytes(es.SignatureS.Buffer)
	if !ecdsa.Verify(ecKey, h[:], r, ss) {
		return verifyErr("TPM quote signature does not verify")
	}

	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](quote)
	if err != nil {
		return verifyErr("TPM quote: %v", err)
	}
	if err := checkExact("quote", att, quote); err != nil {
		return err
	}
	if att.Magic != tpm2.TPMGeneratedValue {
		return verifyErr("TPM quote magic 0x%08x, want TPM_GENERATED 0x%08x", uint32(att.Magic), uint32(tpm2.TPMGeneratedValue))
	}
	if att.Type != tpm2.TPMSTAttestQuote {
		return verifyErr("TPM attestation type 0x%04x, want TPM_ST_ATTEST_QUOTE", uint16(att.Type))
	}
	if subtle.ConstantTimeCompare(att.ExtraData.Buffer, TPMQualifyingData(wantUserData)) != 1 {
		return fmt.Errorf("%w: TPM quote qualifying data", ErrUserDataMismatch)
	}
	info, err := att.Attested.Quote()
	if err != nil {
		return verifyErr("TPM quote info: %v", err)
	}
	idx := make([]uint, 0, len(pcrs))
	hp := sha256.New()
	for i, p := range pcrs {
		if i > 0 && p.Index <= pcrs[i-1].Index {
			return verifyErr("TPM PCR values not in ascending index order")
		}
		if len(p.Digest) != sha256.Size {
			return verifyErr("TPM PCR %d value is %d bytes, want %d", p.Index, len(p.Digest), sha256.Size)
		}
		idx = append(idx, uint(p.Index))
		hp.Write(p.Digest)
	}
	want := SHA256PCRSelection(idx...)
	if !bytes.Equal(tpm2.Marshal(info.PCRSelect), tpm2.Marshal(want)) {
		return verifyErr("TPM quote covers another PCR selection than the PCR values given")
	}
	if subtle.ConstantTimeCompare(info.PCRDigest.Buffer, hp.Sum(nil)) != 1 {
		return verifyErr("TPM PCR values do not match the quoted PCR digest")
	}
	return nil
}

// checkExact insists that v re-marshals to exactly b, so trailing or
// non-canonical bytes are rejected (go-tpm's Unmarshal ignores them).
func checkExact(what string, v tpm2.Marshallable, b []byte) error {
	if !bytes.Equal(tpm2.Marshal(v), b) {
		return verifyErr("TPM %s: trailing or non-canonical bytes", what)
	}
	return nil
}

// SHA256PCRSelection selects pcrs of the SHA-256 bank, the only bank
// devattest quotes.
func SHA256PCRSelection(pcrs ...uint) tpm2.TPMLPCRSelection {
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(pcrs...),
	}}}
}

// VerifyReport verifies r for wantUserData against anchors and, for TDX and
// vTPM, replays r.EventLog against the signed values of the registers the
// log names. It does not replay a register the log does not name: a
// caller that relies on a register (the boot binding) replays that one
// itself with ReplayEventLog, so that a log stripped of its events cannot
// pass for "nothing was extended".
func VerifyReport(r *Report, anchors TrustAnchors, wantUserData [UserDataSize]byte) error {
	regs, err := verifySigned(r, anchors, wantUserData)
	if err != nil {
		return err
	}
	return CheckEventLog(r.Kind, r.EventLog, regs)
}

// verifySigned verifies r's signature, chain and user data and returns
// its signed register values (nil for SEV-SNP).
func verifySigned(r *Report, anchors TrustAnchors, wantUserData [UserDataSize]byte) (map[uint32][]byte, error) {
	switch r.Kind {
	case KindSNP:
		return nil, VerifySNP(r.Raw, r.Certs, anchors.SNP, wantUserData)
	case KindTDX:
		q, err := VerifyTDX(r.Raw, anchors.TDX, wantUserData)
		if err != nil {
			return nil, err
		}
		return TDXRegisters(q.GetTdQuoteBody()), nil
	case KindTPM:
		if anchors.TPMAKPublic != nil && !bytes.Equal(anchors.TPMAKPublic, r.AKPublic) {
			return nil, verifyErr("TPM attestation key is not the trusted one")
		}
		if err := VerifyTPM(r.Raw, r.Signature, r.AKPublic, r.PCRs, wantUserData); err != nil {
			return nil, err
		}
		return TPMRegisters(r.PCRs), nil
	default:
		return nil, verifyErr("unknown platform kind %q", r.Kind)
	}
}

// TDXRegisters returns a quote body's RTMRs by index.
func TDXRegisters(body *tdxpb.TDQuoteBody) map[uint32][]byte {
	m := make(map[uint32][]byte, 4)
	for i, v := range body.GetRtmrs() {
		m[uint32(i)] = v
	}
	return m
}

// TPMRegisters returns quoted PCR values by index.
func TPMRegisters(pcrs []PCRValue) map[uint32][]byte {
	m := make(map[uint32][]byte, len(pcrs))
	for _, v := range pcrs {
		m[v.Index] = v.Digest
	}
	return m
}

// CheckEventLog checks log against the signed register values of a
// verified report (registers by index; nil for SEV-SNP): every register
// the log names must be signed, and must equal the replay of the log's
// events for it. A register the log does not name is not judged (see
// VerifyReport).
func CheckEventLog(kind Kind, log []Event, registers map[uint32][]byte) error {
	if kind == KindSNP {
		if len(log) != 0 {
			return fmt.Errorf("%w: SEV-SNP report carries an event log but has no register", ErrEventLog)
		}
		return nil
	}
	name := "PCR"
	if kind == KindTDX {
		name = "RTMR"
	}
	done := map[uint32]bool{}
	for _, e := range log {
		if done[e.Register] {
			continue
		}
		done[e.Register] = true
		v, ok := registers[e.Register]
		if !ok {
			return fmt.Errorf("%w: event for %s %d, which the report does not sign", ErrEventLog, name, e.Register)
		}
		if !bytes.Equal(ReplayEventLog(kind, log, e.Register), v) {
			return fmt.Errorf("%w: %s %d", ErrEventLog, name, e.Register)
		}
	}
	return nil
}

// TDXQuoteBody parses a TDX quote (v4) and returns its body, without
// verifying anything: for showing a quote, or reading one VerifyTDX has
// accepted.
func TDXQuoteBody(raw []byte) (*tdxpb.TDQuoteBody, error) {
	q, err := tdxabi.QuoteToProto(raw)
	if err != nil {
		return nil, err
	}
	v4, ok := q.(*tdxpb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("unsupported TDX quote type %T", q)
	}
	return v4.GetTdQuoteBody(), nil
}
