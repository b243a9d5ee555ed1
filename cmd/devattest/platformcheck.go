package main

import (
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/platform"
)

// platformVerifier is p's platform check for policy.Verify; the checks
// themselves live in package policy (CheckPlatform).
func platformVerifier(p *policy.Policy) policy.PlatformVerifier { return p.PlatformVerifier() }

// tdxBody parses a TDX quote's body without verifying it (for showing it).
func tdxBody(raw []byte) (*tdxpb.TDQuoteBody, error) { return platform.TDXQuoteBody(raw) }
