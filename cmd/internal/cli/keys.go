package cli

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxKeyFileSize bounds a PEM key or certificate file.
const maxKeyFileSize = 1 << 20

// LoadSigner reads a PEM private key (EC PRIVATE KEY or PKCS #8 PRIVATE
// KEY) for signing CoRIMs and EARs; the file's bytes are zeroed after
// parsing, and errors never quote key material.
func LoadSigner(path string) (crypto.Signer, error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s: no EC PRIVATE KEY or PRIVATE KEY PEM block", path)
		}
		var key any
		switch block.Type {
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			clear(block.Bytes)
			continue
		}
		clear(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %s does not parse: %w", path, block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: %s holds a %T, which cannot sign", path, block.Type, key)
		}
		return s, nil
	}
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFileSize {
		clear(b)
		return nil, errors.New(path + ": larger than 1 MiB")
	}
	return b, nil
}
