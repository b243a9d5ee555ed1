// Package ear turns a verdict into an EAT Attestation Result
// (draft-fv-rats-ear): a JWT signed with ES256 or ES384 whose claims
// carry the owner's nonce, the time, the verifier's identity and one
// submodule per device plus one ("platform") for the platform, each with
// an ear.status, an AR4SI trustworthiness vector derived from the
// verdict's checks (see Vector for the mapping) and the appraisal policy
// id (the policy's digest).
//
// The status of a submodule is contraindicated when any of its checks
// failed, or when any check of the report or the platform failed (the
// devices' evidence is trustworthy only through the report's platform
// binding); warning when it passed with a warning; affirming otherwise.
// So an EAR affirms exactly what the verdict passes.
package ear

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/devattest/devattest/policy"
)

// Constants of the format.
const (
	// Profile is the EAR profile (as Veraison's ear package names it).
	Profile = "tag:github.com,2023:veraison/ear"
	// MediaType is how an EAR JWT is sent.
	MediaType = `application/eat+jwt; eat_profile="` + Profile + `"`
	// PlatformSubmod is the platform's submodule.
	PlatformSubmod = "platform"
	// Developer is the verifier id's developer.
	Developer = "https://github.com/devattest/devattest"
)

// Status values (AR4SI trust tiers).
const (
	StatusAffirming       = "affirming"
	StatusWarning         = "warning"
	StatusContraindicated = "contraindicated"
)

// ErrToken wraps every error of Verify.
var ErrToken = errors.New("ear: token refused")

// Result is the EAR claims set.
type Result struct {
	Profile    string               `json:"eat_profile"`
	IssuedAt   int64                `json:"iat"`
	VerifierID VerifierID           `json:"ear.verifier-id"`
	Nonce      string               `json:"eat_nonce,omitempty"`
	Submods    map[string]Appraisal `json:"submods"`
}

// VerifierID names the verifier.
type VerifierID struct {
	Build     string `json:"build"`
	Developer string `json:"developer"`
}

// Appraisal is one submodule's result.
type Appraisal struct {
	Status      string `json:"ear.status"`
	TrustVector Vector `json:"ear.trustworthiness-vector"`
	PolicyID    string `json:"ear.appraisal-policy-id,omitempty"`
}

// Options are what a Result needs beyond the verdict.
type Options struct {
	// Build names the verifier's build (default "devattest").
	Build string
	// PolicyID is the appraisal policy id (FromVerdict's callers pass
	// PolicyID(p)).
	PolicyID string
	// Now is the issue time (zero: time.Now()).
	Now time.Time
}

// PolicyID is the appraisal policy id of p: "sha-256:" and the hex
// digest of its YAML bytes.
func PolicyID(p *policy.Policy) string { return fmt.Sprintf("sha-256:%x", p.Digest()) }

// EncodeNonce is the eat_nonce of an owner's nonce: base64url without
// padding. EAR takes 8 to 88 characters, so nonces of 6 to 66 bytes.
func EncodeNonce(nonce []byte) (string, error) {
	s := base64.RawURLEncoding.EncodeToString(nonce)
	if len(s) < 8 || len(s) > 88 {
		return "", fmt.Errorf("ear: a nonce of %d bytes does not fit eat_nonce (6 to 66 bytes)", len(nonce))
	}
	return s, nil
}

// FromVerdict derives the EAR of verdict v for nonce.
func FromVerdict(v policy.Verdict, nonce []byte, o Options) (*Result, error) {
	n, err := EncodeNonce(nonce)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	build := o.Build
	if build == "" {
		build = "devattest"
	}
	r := &Result{Profile: Profile, IssuedAt: now.Unix(), VerifierID: VerifierID{Build: build, Developer: Developer}, Nonce: n,
		Submods: map[string]Appraisal{}}
	vectors := map[string]*Vector{PlatformSubmod: {}}
	failed := map[string]bool{}
	warned := map[string]bool{}
	globalFail := false
	for _, res := range v.Results {
		subject := res.Device
		if subject == policy.SubjectReport {
			subject = PlatformSubmod
		}
		if vectors[subject] == nil {
			vectors[subject] = &Vector{}
		}
		vectors[subject].add(res)
		if !res.OK {
			failed[subject] = true
			if res.Device == policy.SubjectReport || res.Device == policy.SubjectPlatform {
				globalFail = true
			}
		} else if strings.HasPrefix(res.Reason, "WARNING") {
			warned[subject] = true
		}
	}
	for subject, vec := range vectors {
		status := StatusAffirming
		switch {
		case failed[subject] || globalFail:
			status = StatusContraindicated
		case warned[subject] || vec.worstTier() == StatusWarning:
			status = StatusWarning
		}
		r.Submods[subject] = Appraisal{Status: status, TrustVector: *vec, PolicyID: o.PolicyID}
	}
	if !v.OK && r.allAffirming() {
		// A failing verdict never yields an all-affirming EAR.
		a := r.Submods[PlatformSubmod]
		a.Status = StatusContraindicated
		r.Submods[PlatformSubmod] = a
	}
	return r, nil
}

func (r *Result) allAffirming() bool {
	for _, a := range r.Submods {
		if a.Status != StatusAffirming {
			return false
		}
	}
	return true
}

// Sign encodes r as a compact JWT signed by key: ES256 for a P-256 key,
// ES384 for P-384.
func (r *Result) Sign(key crypto.Signer) (string, error) {
	alg, err := algorithm(key.Public())
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("ear: %w", err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("ear: %w", err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("ear: %w", err)
	}
	return jws.CompactSerialize()
}

func algorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		}
	}
	return "", fmt.Errorf("ear: the signing key must be ECDSA P-256 (ES256) or P-384 (ES384), not %T", pub)
}

// Verify checks an EAR JWT's signature with pub (an *ecdsa.PublicKey or
// a jose.JSONWebKey) and returns its claims, checked for the EAR profile.
func Verify(token string, pub any) (*Result, error) {
	if len(token) > 1<<20 {
		return nil, fmt.Errorf("%w: more than 1 MiB", ErrToken)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.ES384})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrToken, err)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrToken, err)
	}
	var r Result
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrToken, err)
	}
	if r.Profile != Profile || r.IssuedAt == 0 || len(r.Submods) == 0 {
		return nil, fmt.Errorf("%w: not an EAR (profile %q, iat %d, %d submodules)", ErrToken, r.Profile, r.IssuedAt, len(r.Submods))
	}
	for name, a := range r.Submods {
		switch a.Status {
		case StatusAffirming, StatusWarning, StatusContraindicated, "none":
		default:
			return nil, fmt.Errorf("%w: submodule %q: status %q", ErrToken, name, a.Status)
		}
	}
	return &r, nil
}

// VerifyReport is policy.VerifyReport and the EAR of its verdict, with
// the policy's id (PolicyID) unless o names another.
func VerifyReport(report []byte, p *policy.Policy, nonce []byte, o Options) (policy.Verdict, *Result, error) {
	v := policy.VerifyReport(report, p, nonce)
	if o.PolicyID == "" {
		o.PolicyID = PolicyID(p)
	}
	r, err := FromVerdict(v, nonce, o)
	return v, r, err
}
