package main

// TEMPORARY: until the platform branch moves these into policy.

import (
	"github.com/google/go-sev-guest/kds"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/platform"
)

func snpTCB(v uint64) policy.SNPTCB {
	p := kds.DecomposeTCBVersion(kds.TCBVersion(v))
	return policy.SNPTCB{Bootloader: p.BlSpl, TEE: p.TeeSpl, SNP: p.SnpSpl, Microcode: p.UcodeSpl}
}

func tdxBody(raw []byte) (*tdxpb.TDQuoteBody, error) {
	q, err := tdxabi.QuoteToProto(raw)
	if err != nil {
		return nil, err
	}
	return q.(*tdxpb.QuoteV4).GetTdQuoteBody(), nil
}

func bootRegister(log []platform.Event) int {
	if len(log) == 0 {
		return -1
	}
	return int(log[0].Register)
}
