package secchan

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxCertificateFileSize bounds a certificate file read by
// LoadCertificates; trust anchors and platform roots are a few KiB.
const MaxCertificateFileSize = 1 << 20

// LoadCertificates reads the certificates in the file at path: either one
// DER certificate, or PEM with one or more CERTIFICATE blocks (text between
// blocks, such as openssl's human-readable dump, is ignored). Any other PEM
// block (a key, a CSR) is refused rather than skipped, since a file that
// holds one is not the anchor file it was meant to be. It is the one
// loader of trust anchors and platform roots: the guest's configuration,
// the policy and devattest probe all read certificate files with it, so
// they accept exactly the same files. Errors name the file and what was
// expected.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCertificateFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", path, err)
	}
	if len(b) > MaxCertificateFileSize {
		return nil, fmt.Errorf("certificate file %s: more than %d bytes", path, MaxCertificateFileSize)
	}
	certs, err := ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", path, err)
	}
	return certs, nil
}

// ParseCertificates parses b as LoadCertificates parses a file.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty (want PEM CERTIFICATE blocks or one DER certificate)")
	}
	var out []*x509.Certificate
	rest := b
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		return out, nil
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("neither PEM CERTIFICATE blocks nor one DER certificate: %w", err)
	}
	return []*x509.Certificate{c}, nil
}
