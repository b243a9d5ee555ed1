package platform

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevclient "github.com/google/go-sev-guest/client"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"
)

// snpAttester gets SEV-SNP reports from a go-sev-guest QuoteProvider: the
// real one (configfs-tsm, then /dev/sev-guest) or the fake AMD-SP.
type snpAttester struct {
	mu sync.Mutex
	qp sevclient.QuoteProvider
	// fake is set for the fake: it signs whatever REPORT_DATA it was
	// registered for, so Report registers userData first.
	fake *sevtest.QuoteProvider
	fms  uint32
	// edit, when set, changes the fake's unsigned report before signing.
	edit func(*spb.Report)
}

func newSNP() (*snpAttester, error) {
	// GetQuoteProvider tries configfs-tsm (provider sev_guest) first and
	// falls back to the /dev/sev-guest ioctl interface.
	qp, err := sevclient.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("%w: SEV-SNP (configfs-tsm %s provider sev_guest, %s): %w",
			ErrNotAvailable, configfsTSMReport, sevGuestDevice, err)
	}
	return &snpAttester{qp: qp}, nil
}

// fakeSNPMu serialises signing by every FakeSNP in the process.
var fakeSNPMu sync.Mutex

// FakeSNP is a SEV-SNP attester backed by go-sev-guest's fake AMD-SP: a
// test-only ARK → ASK → VCEK chain from fixed-seed keys. Its reports verify
// only against Roots(), never against AMD's roots.
type FakeSNP struct{ snpAttester }

// NewFakeSNP returns a fake SEV-SNP attester.
func NewFakeSNP() (*FakeSNP, error) {
	product := abi.DefaultSevProduct()
	// No test cases up front: Report registers each REPORT_DATA just before
	// asking, so any user data works.
	qp, err := sevtest.TcQuoteProvider(nil, &sevtest.DeviceOptions{
		Now:     time.Now().Add(-time.Hour),
		Product: product,
	})
	if err != nil {
		return nil, fmt.Errorf("platform: fake SEV-SNP: %w", err)
	}
	return &FakeSNP{snpAttester{qp: qp, fake: qp, fms: abi.MaskedCpuid1EaxFromSevProduct(product)}}, nil
}

// Roots returns the fake signer's ARK and ASK as trusted roots for VerifySNP.
func (f *FakeSNP) Roots() *SNPRoots {
	s := f.fake.Device.Signer
	return &SNPRoots{ARK: s.Ark.Raw, ASK: s.Ask.Raw, ASVK: s.Asvk.Raw}
}

// EditReports makes every later report of the fake carry the fields edit
// sets (VMPL, guest policy, TCB, ...), signed as usual: for tests of a
// verifier's rules. edit must not change REPORT_DATA.
func (f *FakeSNP) EditReports(edit func(r *spb.Report)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edit = edit
}

// editRawReport applies edit to the unsigned report in raw (its first
// abi.ReportSize bytes).
func editRawReport(raw []byte, edit func(*spb.Report)) error {
	r, err := abi.ReportToProto(raw[:abi.ReportSize])
	if err != nil {
		return fmt.Errorf("platform: fake SEV-SNP: %w", err)
	}
	edit(r)
	b, err := abi.ReportToAbiBytes(r)
	if err != nil {
		return fmt.Errorf("platform: fake SEV-SNP: edited report: %w", err)
	}
	copy(raw, b[:abi.ReportSize])
	return nil
}

func (a *snpAttester) Kind() Kind { return KindSNP }

func (a *snpAttester) Report(ctx context.Context, userData [UserDataSize]byte) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fake != nil {
		// go-sev-guest's fake signer draws from one package-level
		// math/rand source: serialise all fakes in the process.
		fakeSNPMu.Lock()
		defer fakeSNPMu.Unlock()
		// The fake device answers only REPORT_DATA it knows: register an
		// unsigned V3 report for this one; the fake AMD-SP signs it.
		key := hex.EncodeToString(userData[:])
		data := sevtest.TestRawReportV3(userData, a.fms)
		if a.edit != nil {
			if err := editRawReport(data[:], a.edit); err != nil {
				return nil, err
			}
		}
		a.fake.Device.ReportDataRsp[key] = &sevtest.GetReportResponse{
			Resp: labi.SnpReportRespABI{Data: data},
		}
		defer delete(a.fake.Device.ReportDataRsp, key)
	}
	raw, err := a.qp.GetRawQuote(userData)
	if err != nil {
		return nil, fmt.Errorf("platform: SEV-SNP report: %w", err)
	}
	if len(raw) < abi.ReportSize {
		return nil, fmt.Errorf("platform: SEV-SNP report: %d bytes, want at least %d", len(raw), abi.ReportSize)
	}
	return &Report{
		Kind:  KindSNP,
		Raw:   clone(raw[:abi.ReportSize]),
		Certs: clone(raw[abi.ReportSize:]),
	}, nil
}

func (a *snpAttester) Extend(context.Context, []byte, string) error {
	return ErrNoRuntimeRegister
}

func (a *snpAttester) Close() error { return nil }
