package platform

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	vplatform "github.com/devattest/devattest/policy/platform"
)

// FakeTDX is a TDX attester whose quotes are signed by a test-only signer
// generated in NewFakeTDX: a root CA, a PCK Platform CA and a PCK leaf
// certificate with the SGX extension (the names and extension layout
// go-tdx-guest's verifier checks), a QE report signed by the PCK key that
// binds an attestation key, and quotes signed by that attestation key. Its
// quotes verify only against Roots(), never against Intel's SGX root CA.
// go-tdx-guest's own fake only replays a canned Intel quote, hence this
// signer. The TD measurements (MRTD, the TD's attributes, ...) are zero;
// the TDX module's identity is a fixed made-up one (FakeTDXMRSEAM,
// FakeTDXTEETCBSVN, signed by Intel as MRSIGNERSEAM zero says); only
// REPORTDATA and the RTMRs carry information. Collateral (TCB info, QE
// identity) for this signer does not exist: never for production trust.
type FakeTDX struct {
	mu     sync.Mutex
	rtmr   int
	rtmrs  [4][tdxabi.RtmrSize]byte
	log    []Event
	root   *x509.Certificate
	akKey  *ecdsa.PrivateKey
	signed *tdxpb.Ecdsa256BitQuoteV4AuthData // QE certification data; Signature filled per quote
	edit   func(*tdxpb.TDQuoteBody)
}

// Fake PCK certificate values (SGX extension contents).
var (
	fakeTDXFMSPC = []byte{0x00, 0x80, 0x6f, 0x05, 0x00, 0x00}
	fakeTDXPCEID = []byte{0x00, 0x00}
	// Intel's QE vendor ID (939A7233-F79C-4CA9-940A-0DB3957F0607).
	fakeTDXQEVendorID = []byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}
)

// The fake TDX module's identity: a made-up MRSEAM and TEE_TCB_SVN, so
// that a fake quote passes a verifier's defaults, which refuse the
// all-zero values no real module has.
var (
	FakeTDXMRSEAM    = func() []byte { d := sha512.Sum384([]byte("devattest fake TDX module")); return d[:] }()
	FakeTDXTEETCBSVN = []byte{0x03, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
)

// NewFakeTDX returns a fake TDX attester with a freshly generated test-only
// signer. Extend uses RTMR[opts.TDXRTMR] (DefaultTDXRTMR when zero).
func NewFakeTDX(opts Options) (*FakeTDX, error) {
	opts = opts.withDefaults()
	if opts.TDXRTMR < 0 || opts.TDXRTMR > 3 {
		return nil, fmt.Errorf("platform: TDX RTMR %d out of range 0-3", opts.TDXRTMR)
	}
	f := &FakeTDX{rtmr: opts.TDXRTMR}
	if err := f.makeSigner(); err != nil {
		return nil, fmt.Errorf("platform: fake TDX signer: %w", err)
	}
	return f, nil
}

// Roots returns the fake signer's root CA as the trust anchor for VerifyTDX.
func (f *FakeTDX) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.root)
	return p
}

// RootCertificate returns the DER of the fake signer's root CA.
func (f *FakeTDX) RootCertificate() []byte { return clone(f.root.Raw) }

func (f *FakeTDX) Kind() Kind { return KindTDX }

// Report returns a TD quote v4 with REPORTDATA = userData and the current
// RTMRs, signed by the fake attestation key.
func (f *FakeTDX) Report(ctx context.Context, userData [UserDataSize]byte) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	header := &tdxpb.Header{
		Version:            tdxabi.QuoteVersion,
		AttestationKeyType: tdxabi.AttestationKeyType,
		TeeType:            tdxabi.TeeTDX,
		PceSvn:             make([]byte, 2),
		QeSvn:              make([]byte, 2),
		QeVendorId:         clone(fakeTDXQEVendorID),
		UserData:           make([]byte, 20),
	}
	body := &tdxpb.TDQuoteBody{
		TeeTcbSvn:      clone(FakeTDXTEETCBSVN),
		MrSeam:         clone(FakeTDXMRSEAM),
		MrSignerSeam:   make([]byte, tdxabi.MrSeamSize),
		SeamAttributes: make([]byte, 8),
		TdAttributes:   make([]byte, tdxabi.TdAttributesSize),
		// x87, SSE, AVX, AVX-512: within validate's XFAM fixed bits.
		Xfam:          []byte{0xe7, 0, 0, 0, 0, 0, 0, 0},
		MrTd:          make([]byte, tdxabi.MrTdSize),
		MrConfigId:    make([]byte, tdxabi.MrConfigIDSize),
		MrOwner:       make([]byte, tdxabi.MrOwnerSize),
		MrOwnerConfig: make([]byte, tdxabi.MrOwnerConfigSize),
		ReportData:    clone(userData[:]),
	}
	for i := range f.rtmrs {
		body.Rtmrs = append(body.Rtmrs, clone(f.rtmrs[i][:]))
	}
	if f.edit != nil {
		f.edit(body)
	}
	hb, err := tdxabi.HeaderToAbiBytes(header)
	if err != nil {
		return nil, fmt.Errorf("platform: fake TDX quote header: %w", err)
	}
	bb, err := tdxabi.TdQuoteBodyToAbiBytes(body)
	if err != nil {
		return nil, fmt.Errorf("platform: fake TDX quote body: %w", err)
	}
	sig, err := signRaw(f.akKey, append(hb, bb...))
	if err != nil {
		return nil, fmt.Errorf("platform: fake TDX quote signature: %w", err)
	}
	signed := &tdxpb.Ecdsa256BitQuoteV4AuthData{
		Signature:           sig,
		EcdsaAttestationKey: f.signed.GetEcdsaAttestationKey(),
		CertificationData:   f.signed.GetCertificationData(),
	}
	quote := &tdxpb.QuoteV4{
		Header:         header,
		TdQuoteBody:    body,
		SignedDataSize: uint32(signedDataSize(signed)),
		SignedData:     signed,
	}
	raw, err := tdxabi.QuoteToAbiBytes(quote)
	if err != nil {
		return nil, fmt.Errorf("platform: fake TDX quote: %w", err)
	}
	return &Report{Kind: KindTDX, Raw: raw, EventLog: slices.Clone(f.log)}, nil
}

// Extend sets RTMR[i] = SHA-384(RTMR[i] || SHA-384(digest)), as the TDX
// module does for an RTMR extend with vplatform.MeasuredDigest(KindTDX, digest).
func (f *FakeTDX) Extend(ctx context.Context, digest []byte, event string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(digest) == 0 || len(digest) > 255 {
		return fmt.Errorf("platform: TDX extend: digest of %d bytes (want 1-255)", len(digest))
	}
	m := vplatform.MeasuredDigest(KindTDX, digest)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rtmrs[f.rtmr] = sha512.Sum384(append(clone(f.rtmrs[f.rtmr][:]), m...))
	f.log = append(f.log, Event{Register: uint32(f.rtmr), Digest: clone(digest), Description: event})
	return nil
}

func (f *FakeTDX) Close() error { return nil }

// EditQuotes makes every later quote of the fake carry the body fields
// edit sets (TD attributes, SEAM attributes, MRSEAM, TEE_TCB_SVN, ...),
// signed as usual: for tests of a verifier's rules. edit must keep the
// field sizes and must not change REPORTDATA.
func (f *FakeTDX) EditQuotes(edit func(body *tdxpb.TDQuoteBody)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edit = edit
}

// makeSigner builds root CA → PCK Platform CA → PCK leaf, an attestation key
// and the QE report (signed by the PCK key) whose report data is
// SHA-256(attestation key || QE auth data) || zeros.
func (f *FakeTDX) makeSigner() error {
	newKey := func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	rootKey, err := newKey()
	if err != nil {
		return err
	}
	caKey, err := newKey()
	if err != nil {
		return err
	}
	pckKey, err := newKey()
	if err != nil {
		return err
	}
	if f.akKey, err = newKey(); err != nil {
		return err
	}
	now := time.Now()
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{vplatform.FakeTDXOrganization}}
	}
	serial := func() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) }

	rootSN, err := serial()
	if err != nil {
		return err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSN,
		Subject:               name("Intel SGX Root CA"),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return fmt.Errorf("root CA: %w", err)
	}
	if f.root, err = x509.ParseCertificate(rootDER); err != nil {
		return err
	}

	caSN, err := serial()
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSN,
		Subject:               name("Intel SGX PCK Platform CA"),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, f.root, &caKey.PublicKey, rootKey)
	if err != nil {
		return fmt.Errorf("PCK Platform CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}

	sgxExt, err := fakeSGXExtension()
	if err != nil {
		return err
	}
	pckSN, err := serial()
	if err != nil {
		return err
	}
	ski := sha256.Sum256(elliptic.MarshalCompressed(elliptic.P256(), pckKey.X, pckKey.Y))
	// go-tdx-guest insists on exactly six extensions in the PCK leaf, as
	// Intel issues them: authority and subject key IDs, CRL distribution
	// point, key usage, basic constraints and the SGX extension.
	pckTmpl := &x509.Certificate{
		SerialNumber:          pckSN,
		Subject:               name("Intel SGX PCK Certificate"),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(7, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          ski[:20],
		CRLDistributionPoints: []string{"https://fake-tdx.invalid/pckcrl"},
		ExtraExtensions:       []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}, Value: sgxExt}},
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	pckDER, err := x509.CreateCertificate(rand.Reader, pckTmpl, ca, &pckKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("PCK certificate: %w", err)
	}

	var chain []byte
	for _, der := range [][]byte{pckDER, caDER, rootDER} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}

	ak := make([]byte, 64)
	f.akKey.X.FillBytes(ak[:32])
	f.akKey.Y.FillBytes(ak[32:])
	authData := make([]byte, 32)
	if _, err := rand.Read(authData); err != nil {
		return err
	}
	h := sha256.Sum256(append(clone(ak), authData...))
	qe := &tdxpb.EnclaveReport{
		CpuSvn:     make([]byte, 16),
		Reserved1:  make([]byte, 28),
		Attributes: make([]byte, 16),
		MrEnclave:  make([]byte, 32),
		Reserved2:  make([]byte, 32),
		MrSigner:   make([]byte, 32),
		Reserved3:  make([]byte, 96),
		IsvProdId:  2, // TD QE
		Reserved4:  make([]byte, 60),
		ReportData: append(h[:], make([]byte, 32)...),
	}
	qeRaw, err := tdxabi.EnclaveReportToAbiBytes(qe)
	if err != nil {
		return fmt.Errorf("QE report: %w", err)
	}
	qeSig, err := signRaw(pckKey, qeRaw)
	if err != nil {
		return fmt.Errorf("QE report signature: %w", err)
	}
	qeCert := &tdxpb.QEReportCertificationData{
		QeReport:          qe,
		QeReportSignature: qeSig,
		QeAuthData:        &tdxpb.QeAuthData{ParsedDataSize: uint32(len(authData)), Data: authData},
		PckCertificateChainData: &tdxpb.PCKCertificateChainData{
			CertificateDataType: 5, // PCK certificate chain
			Size:                uint32(len(chain)),
			PckCertChain:        chain,
		},
	}
	f.signed = &tdxpb.Ecdsa256BitQuoteV4AuthData{
		EcdsaAttestationKey: ak,
		CertificationData: &tdxpb.CertificationData{
			CertificateDataType:       6, // QE report certification data
			Size:                      uint32(qeCertDataSize(qeCert)),
			QeReportCertificationData: qeCert,
		},
	}
	return nil
}

// qeCertDataSize is the ABI size of QE report certification data: QE report,
// its signature, u16-prefixed auth data, and the PCK chain with its
// u16 type and u32 size.
func qeCertDataSize(c *tdxpb.QEReportCertificationData) int {
	return 0x180 + 0x40 + 2 + len(c.GetQeAuthData().GetData()) + 6 + len(c.GetPckCertificateChainData().GetPckCertChain())
}

// signedDataSize is the ABI size of the quote's signed data: signature,
// attestation key, u16 type and u32 size of the certification data, and the
// certification data.
func signedDataSize(s *tdxpb.Ecdsa256BitQuoteV4AuthData) int {
	return 0x40 + 0x40 + 6 + int(s.GetCertificationData().GetSize())
}

// signRaw signs SHA-256(msg) and returns r || s, 32 bytes each, the
// signature encoding of TDX quotes and QE reports.
func signRaw(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig, nil
}

// fakeSGXExtension is the value of the SGX extension (OID
// 1.2.840.113741.1.13.1): a sequence of (OID, value) pairs for PPID, TCB
// (16 SGX TCB components, PCESVN, CPUSVN), PCEID and FMSPC, the four that
// go-tdx-guest's pcs.PckCertificateExtensions reads.
func fakeSGXExtension() ([]byte, error) {
	type octetAttr struct {
		Type  asn1.ObjectIdentifier
		Value []byte
	}
	type intAttr struct {
		Type  asn1.ObjectIdentifier
		Value int
	}
	type seqAttr struct {
		Type  asn1.ObjectIdentifier
		Value []asn1.RawValue
	}
	sgx := asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oid := func(arcs ...int) asn1.ObjectIdentifier { return append(slices.Clone(sgx), arcs...) }
	raw := func(v any) (asn1.RawValue, error) {
		b, err := asn1.Marshal(v)
		return asn1.RawValue{FullBytes: b}, err
	}
	var tcb []asn1.RawValue
	for i := 1; i <= 16; i++ {
		v, err := raw(intAttr{oid(2, i), 0})
		if err != nil {
			return nil, err
		}
		tcb = append(tcb, v)
	}
	pcesvn, err := raw(intAttr{oid(2, 17), 0})
	if err != nil {
		return nil, err
	}
	cpusvn, err := raw(octetAttr{oid(2, 18), make([]byte, 16)})
	if err != nil {
		return nil, err
	}
	tcb = append(tcb, pcesvn, cpusvn)

	ppid := make([]byte, 16)
	if _, err := rand.Read(ppid); err != nil {
		return nil, err
	}
	var ext []asn1.RawValue
	for _, v := range []any{
		octetAttr{oid(1), ppid},
		seqAttr{oid(2), tcb},
		octetAttr{oid(3), clone(fakeTDXPCEID)},
		octetAttr{oid(4), clone(fakeTDXFMSPC)},
	} {
		r, err := raw(v)
		if err != nil {
			return nil, err
		}
		ext = append(ext, r)
	}
	return asn1.Marshal(ext)
}

// AdoptEventLog implements EventLogAdopter.
func (f *FakeTDX) AdoptEventLog(log []Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return adoptLog(&f.log, log)
}

// SamePlatform returns another attester of the same fake TD, as a second
// process of the same boot sees it: same signer, same RTMR values, but no
// event log of its own (it can adopt the first process's with
// AdoptEventLog).
func (f *FakeTDX) SamePlatform() *FakeTDX {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &FakeTDX{rtmr: f.rtmr, rtmrs: f.rtmrs, root: f.root, akKey: f.akKey, signed: f.signed}
}
