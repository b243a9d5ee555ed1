package main

import (
	"fmt"
	"io"
	"os"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/policy/ear"
)

// writeEAR signs the EAR of verdict v with the key in keyPath and writes
// it to out.
func writeEAR(stdout io.Writer, v policy.Verdict, p *policy.Policy, nonce []byte, out, keyPath string) error {
	if keyPath == "" {
		return fmt.Errorf("--ear needs --ear-key KEY (ECDSA P-256 or P-384, PEM)")
	}
	key, err := cli.LoadSigner(keyPath)
	if err != nil {
		return fmt.Errorf("--ear-key: %w", err)
	}
	r, err := ear.FromVerdict(v, nonce, ear.Options{PolicyID: ear.PolicyID(p)})
	if err != nil {
		return err
	}
	tok, err := r.Sign(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(tok), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s)\n", out, ear.MediaType)
	return nil
}
