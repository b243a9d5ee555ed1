package platform

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	vplatform "github.com/devattest/devattest/policy/platform"
)

// tpmBootPCRs are the firmware PCRs every quote covers besides the Extend PCR.
var tpmBootPCRs = []uint{0, 1, 2, 3, 4, 5, 6, 7}

// akTemplate is a restricted ECC P-256 signing key (ECDSA with SHA-256).
// Restricted means the TPM signs only digests it computed itself, so a
// TPMS_ATTEST carrying TPM_GENERATED cannot be forged with this key.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		Restricted:          true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
	}),
}

// tpmAttester quotes with an attestation key it creates in the owner
// hierarchy and extends one PCR of the SHA-256 bank.
type tpmAttester struct {
	mu      sync.Mutex
	tpm     transport.TPMCloser
	pcr     uint
	ak      tpm2.AuthHandle
	akPub   []byte
	log     []Event
	onClose func()
	closed  bool
}

func newTPM(opts Options) (*tpmAttester, error) {
	if !exists(opts.TPMPath) {
		return nil, fmt.Errorf("%w: vTPM: %s not found", ErrNotAvailable, opts.TPMPath)
	}
	t, err := linuxtpm.Open(opts.TPMPath)
	if err != nil {
		return nil, fmt.Errorf("%w: vTPM %s: %w", ErrNotAvailable, opts.TPMPath, err)
	}
	a, err := newTPMAttester(t, opts)
	if err != nil {
		t.Close()
		return nil, err
	}
	return a, nil
}

// fakeTPMOpen guards the one simulator a process may run (go-tpm-tools
// keeps the simulator behind a process-wide lock; a second Get blocks).
var fakeTPMOpen atomic.Bool

// NewFakeTPM returns a vTPM attester on the go-tpm-tools TPM simulator
// (Microsoft's reference implementation, freshly manufactured, so every PCR
// starts at zero). Only one can be open per process at a time; a second
// call fails until the first is closed.
func NewFakeTPM(opts Options) (Attester, error) {
	opts = opts.withDefaults()
	if !fakeTPMOpen.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: fake vTPM: the TPM simulator is already open in this process (one per process)", ErrNotAvailable)
	}
	t, err := simulator.OpenSimulator()
	if err != nil {
		fakeTPMOpen.Store(false)
		return nil, fmt.Errorf("%w: fake vTPM: %w", ErrNotAvailable, err)
	}
	a, err := newTPMAttester(t, opts)
	if err != nil {
		t.Close()
		fakeTPMOpen.Store(false)
		return nil, err
	}
	a.onClose = func() { fakeTPMOpen.Store(false) }
	return a, nil
}

func newTPMAttester(t transport.TPMCloser, opts Options) (*tpmAttester, error) {
	if opts.TPMPCR < 0 || opts.TPMPCR > 23 {
		return nil, fmt.Errorf("platform: vTPM PCR %d out of range 0-23", opts.TPMPCR)
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(akTemplate),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("platform: vTPM: create attestation key: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("platform: vTPM: attestation key public area: %w", err)
	}
	return &tpmAttester{
		tpm:   t,
		pcr:   uint(opts.TPMPCR),
		ak:    tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)},
		akPub: tpm2.Marshal(pub),
	}, nil
}

func (a *tpmAttester) Kind() Kind { return KindTPM }

// quotedPCRs returns the PCRs a quote covers, ascending and unique, which is
// the order the TPM digests them in (TPM 2.0 Part 1, 17.6.2 / Part 3, 18.4).
func (a *tpmAttester) quotedPCRs() []uint {
	p := append(slices.Clone(tpmBootPCRs), a.pcr)
	slices.Sort(p)
	return slices.Compact(p)
}

func (a *tpmAttester) Report(ctx context.Context, userData [UserDataSize]byte) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("platform: vTPM attester closed")
	}
	pcrs := a.quotedPCRs()
	q, err := tpm2.Quote{
		SignHandle:     a.ak,
		QualifyingData: tpm2.TPM2BData{Buffer: vplatform.TPMQualifyingData(userData)},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      vplatform.SHA256PCRSelection(pcrs...),
	}.Execute(a.tpm)
	if err != nil {
		return nil, fmt.Errorf("platform: vTPM quote: %w", err)
	}
	// Read the values the quote digested; a.mu keeps Extend out in between.
	values := make([]PCRValue, 0, len(pcrs))
	for _, i := range pcrs {
		d, err := a.readPCR(i)
		if err != nil {
			return nil, err
		}
		values = append(values, PCRValue{Index: uint32(i), Digest: d})
	}
	return &Report{
		Kind:      KindTPM,
		Raw:       clone(q.Quoted.Bytes()),
		Signature: tpm2.Marshal(q.Signature),
		AKPublic:  clone(a.akPub),
		PCRs:      values,
		EventLog:  slices.Clone(a.log),
	}, nil
}

func (a *tpmAttester) readPCR(i uint) ([]byte, error) {
	rsp, err := tpm2.PCRRead{PCRSelectionIn: vplatform.SHA256PCRSelection(i)}.Execute(a.tpm)
	if err != nil {
		return nil, fmt.Errorf("platform: vTPM read PCR %d: %w", i, err)
	}
	if len(rsp.PCRValues.Digests) != 1 || len(rsp.PCRValues.Digests[0].Buffer) != sha256.Size {
		return nil, fmt.Errorf("platform: vTPM read PCR %d: no SHA-256 value returned", i)
	}
	return clone(rsp.PCRValues.Digests[0].Buffer), nil
}

func (a *tpmAttester) Extend(ctx context.Context, digest []byte, event string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(digest) == 0 || len(digest) > 255 {
		return fmt.Errorf("platform: vTPM extend: digest of %d bytes (want 1-255)", len(digest))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("platform: vTPM attester closed")
	}
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(a.pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{
			HashAlg: tpm2.TPMAlgSHA256,
			Digest:  vplatform.MeasuredDigest(KindTPM, digest),
		}}},
	}.Execute(a.tpm)
	if err != nil {
		return fmt.Errorf("platform: vTPM extend PCR %d: %w", a.pcr, err)
	}
	a.log = append(a.log, Event{Register: uint32(a.pcr), Digest: clone(digest), Description: event})
	return nil
}

func (a *tpmAttester) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	_, ferr := tpm2.FlushContext{FlushHandle: a.ak.Handle}.Execute(a.tpm)
	err := a.tpm.Close()
	if a.onClose != nil {
		a.onClose()
	}
	if err != nil {
		return fmt.Errorf("platform: vTPM close: %w", err)
	}
	if ferr != nil {
		return fmt.Errorf("platform: vTPM flush attestation key: %w", ferr)
	}
	return nil
}

// AdoptEventLog implements EventLogAdopter.
func (a *tpmAttester) AdoptEventLog(log []Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return adoptLog(&a.log, log)
}
