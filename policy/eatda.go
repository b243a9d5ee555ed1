package policy

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/evidence/eatda"
)

// CheckEATDA is the check that the body's EAT-DA claims set is exactly the
// encoding of the body (package evidence/eatda), so an EAT verifier that
// is handed the exported token reads nothing this verdict did not judge.
const CheckEATDA = "EAT-DA claims set"

// checkEATDA returns the pass reason, or why the claims set is refused.
func checkEATDA(body *evidence.Body) (string, error) {
	if len(body.EATDA) == 0 {
		return "none carried", nil
	}
	want, err := eatda.EncodeBody(body)
	if err != nil {
		return "", fmt.Errorf("the report carries one, but its body cannot be encoded as one: %w", err)
	}
	if !bytes.Equal(want, body.EATDA) {
		return "", errors.New("the report's EAT-DA claims set is not the encoding of its body")
	}
	return fmt.Sprintf("%d bytes, the encoding of the body", len(want)), nil
}
