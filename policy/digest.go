package policy

// Digest is the SHA-256 of the policy file's bytes: the appraisal policy
// id of an EAR (package policy/ear). The files the policy names (anchors,
// CoRIMs) are covered by name only.
func (p *Policy) Digest() []byte { return p.digest[:] }
