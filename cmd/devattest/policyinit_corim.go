package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy/corim"
	"github.com/devattest/devattest/secchan"
)

// corimOptions are policy init's CoRIM flags.
type corimOptions struct {
	out, key, cert string
	unsigned       bool
}

func (o corimOptions) check() error {
	switch {
	case o.out == "" && (o.key != "" || o.cert != "" || o.unsigned):
		return errors.New("--corim-key, --corim-cert and --corim-unsigned need --corim FILE")
	case o.out != "" && o.unsigned && (o.key != "" || o.cert != ""):
		return errors.New("--corim-unsigned writes no signature: give it or --corim-key and --corim-cert, not both")
	case o.out != "" && !o.unsigned && (o.key == "" || o.cert == ""):
		return errors.New("--corim FILE needs --corim-key KEY and --corim-cert CERT (or --corim-unsigned)")
	}
	return nil
}

// writeCoRIM writes the reference values of the report's devices that
// passed as a CoRIM, signed with the key and certificate chain (signer
// first) unless o.unsigned, and returns the line to show.
func writeCoRIM(rep *evidence.Report, o corimOptions, force bool) (string, error) {
	body := rep.ParsedBody()
	rim, err := corim.FromDevices("", body.Devices)
	if err == nil {
		err = rim.SetContentID("devattest policy init " + body.Created.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if err != nil {
		return "", fmt.Errorf("--corim: %w", err)
	}
	b, err := rim.MarshalUnsigned()
	if err != nil {
		return "", err
	}
	if !o.unsigned {
		key, err := cli.LoadSigner(o.key)
		if err != nil {
			return "", fmt.Errorf("--corim-key: %w", err)
		}
		chain, err := secchan.LoadCertificates(o.cert)
		if err != nil {
			return "", fmt.Errorf("--corim-cert: %w", err)
		}
		if b, err = corim.Sign(b, key, chain); err != nil {
			return "", err
		}
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(o.out, flags, 0o644)
	if err != nil {
		return "", fmt.Errorf("--corim: %w (--force overwrites)", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	kind := "signed"
	if o.unsigned {
		kind = "UNSIGNED (read only with allow_unsigned_reference_values: true)"
	}
	line := fmt.Sprintf("wrote %s: %s CoRIM, %d device class(es)", o.out, kind, len(rim.References))
	for _, r := range rim.References {
		line += fmt.Sprintf("\n  class %q (reference_values: %s, reference_values_class if the file has more than one)", r.ClassID, filepath.Base(o.out))
	}
	return line, nil
}
