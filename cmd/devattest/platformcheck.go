package main

import (
	"bytes"
	"crypto/x509"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/platform"
)

// Names of the platform checks run here.
const (
	checkEventLog    = "event log"
	checkMeasurement = "launch measurement"
	checkDebug       = "debug policy"
	checkMRTD        = "mrtd"
	checkAK          = "attestation key"
)

// platformVerifier is policy.PlatformVerifier for p: platform.VerifyReport
// with the policy's roots, the JSON event log against the signed one, then
// the launch measurement (SEV-SNP), MRTD (TDX) or attestation key (vTPM)
// against the policy's allowlist.
func platformVerifier(p *policy.Policy) policy.PlatformVerifier {
	return func(rep *evidence.Report, ud [64]byte) []policy.Result {
		var out []policy.Result
		add := func(check string, err error) bool {
			r := policy.Result{Device: policy.SubjectPlatform, Check: check, OK: err == nil}
			if err != nil {
				r.Reason = err.Error()
			}
			out = append(out, r)
			return err == nil
		}
		var pr platform.Report
		if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
			add(policy.CheckPlatform, err)
			return out
		}
		if string(pr.Kind) != rep.Platform.Kind {
			add(policy.CheckPlatform, fmt.Errorf("the signed report is from %q, the report says %q", pr.Kind, rep.Platform.Kind))
			return out
		}
		anchors, err := trustAnchors(p)
		if err != nil {
			add(policy.CheckPlatform, err)
			return out
		}
		if !add(policy.CheckPlatform, platform.VerifyReport(&pr, anchors, ud)) {
			return out
		}
		add(checkEventLog, sameLog(rep.Platform.EventLog, pr.EventLog))
		rule := p.Platform
		switch pr.Kind {
		case platform.KindSNP:
			r, err := abi.ReportToProto(pr.Raw)
			if err != nil {
				add(checkMeasurement, err)
				return out
			}
			add(checkMeasurement, allowed("launch measurement", r.GetMeasurement(), rule.SNP.Measurement))
			pol, err := abi.ParseSnpPolicy(r.GetPolicy())
			if err == nil && pol.Debug && !rule.SNP.PolicyDebugAllowed {
				err = fmt.Errorf("the guest policy allows debugging and the policy does not")
			}
			add(checkDebug, err)
			if rule.SNP.MinTCB != nil {
				add(policy.CheckSNPTCB, rule.SNP.CheckTCB(snpTCB(r.GetReportedTcb())))
			}
			if len(rule.SNP.VMPL) > 0 {
				add(policy.CheckSNPVMPL, rule.SNP.CheckVMPL(r.GetVmpl()))
			}
		case platform.KindTDX:
			body, err := tdxBody(pr.Raw)
			if err != nil {
				add(checkMRTD, err)
				return out
			}
			add(checkMRTD, allowed("MRTD", body.GetMrTd(), rule.TDX.MRTD))
			if len(rule.TDX.RTMRs) > 0 {
				add(policy.CheckTDXRTMRs, rule.TDX.CheckRTMRs(body.GetRtmrs(), bootRegister(pr.EventLog)))
			}
			if rule.TDX.TDAttributes != nil {
				add(policy.CheckTDXAttribute, rule.TDX.CheckTDAttributes(body.GetTdAttributes()))
			}
			if rule.TDX.XFAM != nil {
				add(policy.CheckTDXXFAM, rule.TDX.CheckXFAM(body.GetXfam()))
			}
		case platform.KindTPM:
			add(checkAK, allowed("attestation key", pr.AKPublic, rule.TPM.AKPublic))
			if len(rule.TPM.PCRs) > 0 {
				add(policy.CheckTPMPCRs, rule.TPM.CheckPCRs(tpmPCRs(&pr), bootRegister(pr.EventLog)))
			}
		}
		return out
	}
}

// snpTCB splits a SEV-SNP TCB version into its SVNs.
func snpTCB(v uint64) policy.SNPTCB {
	p := kds.DecomposeTCBVersion(kds.TCBVersion(v))
	return policy.SNPTCB{Bootloader: p.BlSpl, TEE: p.TeeSpl, SNP: p.SnpSpl, Microcode: p.UcodeSpl}
}

// tpmPCRs are the quoted SHA-256 PCR values by index. VerifyReport has
// checked them against the quote's PCR digest.
func tpmPCRs(pr *platform.Report) map[uint32][]byte {
	m := make(map[uint32][]byte, len(pr.PCRs))
	for _, v := range pr.PCRs {
		m[v.Index] = v.Digest
	}
	return m
}

// bootRegister is the register the event log extends, or -1 without a
// log (VerifyReport accepts a log on one register only).
func bootRegister(log []platform.Event) int {
	if len(log) == 0 {
		return -1
	}
	return int(log[0].Register)
}

func trustAnchors(p *policy.Policy) (platform.TrustAnchors, error) {
	var a platform.TrustAnchors
	r := p.Platform.Roots
	if r.SNPARKDER != nil {
		a.SNP = &platform.SNPRoots{ARK: r.SNPARKDER, ASK: r.SNPASKDER}
	}
	if r.TDXRootDER != nil {
		c, err := x509.ParseCertificate(r.TDXRootDER)
		if err != nil {
			return a, fmt.Errorf("policy TDX root: %w", err)
		}
		a.TDX = x509.NewCertPool()
		a.TDX.AddCert(c)
	}
	return a, nil
}

func tdxBody(raw []byte) (*tdxpb.TDQuoteBody, error) {
	q, err := tdxabi.QuoteToProto(raw)
	if err != nil {
		return nil, err
	}
	v4, ok := q.(*tdxpb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("unsupported quote type %T", q)
	}
	return v4.GetTdQuoteBody(), nil
}

func allowed(what string, got []byte, list policy.HexList) error {
	if !list.Contains(got) {
		return fmt.Errorf("%s %x is not in the policy", what, got)
	}
	return nil
}

func sameLog(json []evidence.Event, signed []platform.Event) error {
	if len(json) != len(signed) {
		return fmt.Errorf("the report lists %d events, the signed report %d", len(json), len(signed))
	}
	for i := range json {
		if json[i].Register != signed[i].Register || !bytes.Equal(json[i].Digest, signed[i].Digest) {
			return fmt.Errorf("event %d differs from the signed report's", i)
		}
	}
	return nil
}
