package platform

import "fmt"

// NewFakeTDX would return a TDX attester whose quotes are signed by a
// test-only PCK chain. go-tdx-guest's own fake only replays a canned Intel
// quote, so chosen REPORTDATA needs a test-only signer (PCK chain with the
// SGX extensions the verifier checks, a QE report signed by the PCK key, an
// attestation key bound into that QE report). That signer is not built yet:
// this returns ErrNotAvailable rather than an unverifiable stand-in.
func NewFakeTDX(Options) (Attester, error) {
	return nil, fmt.Errorf("%w: fake TDX: no test-only TDX quote signer in this build (go-tdx-guest's fake replays only a canned quote)", ErrNotAvailable)
}
