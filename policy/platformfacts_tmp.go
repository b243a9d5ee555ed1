package policy

// TEMPORARY until the platform branch lands CheckPlatform with the
// complete rules: a minimal CheckPlatform over platform.VerifyReport.

import (
	"crypto/x509"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/policy/platform"
)

type PlatformFacts struct {
	Kind         string
	Registers    map[uint32][]byte
	BootRegister int
	EventLog     []platform.Event
	TestRoots    bool
}

func (p *Policy) CheckPlatform(report []byte, wantUserData [64]byte) (*PlatformFacts, []Result) {
	fail := func(err error) (*PlatformFacts, []Result) {
		return nil, []Result{{Device: SubjectPlatform, Check: CheckPlatform, Reason: err.Error()}}
	}
	var pr platform.Report
	if err := pr.UnmarshalBinary(report); err != nil {
		return fail(err)
	}
	var a platform.TrustAnchors
	r := p.Platform.Roots
	if r.SNPARKDER != nil {
		a.SNP = &platform.SNPRoots{ARK: r.SNPARKDER, ASK: r.SNPASKDER}
	}
	if r.TDXRootDER != nil {
		c, err := x509.ParseCertificate(r.TDXRootDER)
		if err != nil {
			return fail(err)
		}
		a.TDX = x509.NewCertPool()
		a.TDX.AddCert(c)
	}
	if err := platform.VerifyReport(&pr, a, wantUserData); err != nil {
		return fail(err)
	}
	f := &PlatformFacts{Kind: string(pr.Kind), BootRegister: -1, EventLog: pr.EventLog, Registers: map[uint32][]byte{}}
	switch pr.Kind {
	case platform.KindTDX:
		q, err := abi.QuoteToProto(pr.Raw)
		if err != nil {
			return fail(err)
		}
		for i, v := range q.(*tdxpb.QuoteV4).GetTdQuoteBody().GetRtmrs() {
			f.Registers[uint32(i)] = v
		}
		f.BootRegister = 3
	case platform.KindTPM:
		for _, v := range pr.PCRs {
			f.Registers[v.Index] = v.Digest
		}
		f.BootRegister = DefaultTPMPCR
	}
	return f, []Result{{Device: SubjectPlatform, Check: CheckPlatform, OK: true, Reason: fmt.Sprintf("%s report verified", pr.Kind)}}
}
