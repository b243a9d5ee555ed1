package secchan

import "crypto"

// Sizes a decoder needs from negotiated algorithm bits, for readers of
// captured conversations (devattest dump) that decode messages with this
// package's codecs.

// HashOf returns the hash of a BaseHashAlgo bit.
func HashOf(bit uint32) (crypto.Hash, error) { return hashOf(bit) }

// SignatureSize returns the signature size of a BaseAsymAlgo bit.
func SignatureSize(bit uint32) (int, error) { return sigSize(bit) }

// MeasurementHashSize returns the digest size of a MeasurementHashAlgo
// bit (0 for a raw bit stream).
func MeasurementHashSize(bit uint32) (int, error) { return measHashSize(bit) }
