package secchan

import (
	"crypto"
	"fmt"
	"strings"

	_ "crypto/sha256" // register SHA-256 for crypto.Hash
	_ "crypto/sha512" // register SHA-384 and SHA-512 for crypto.Hash
)

// BaseAsymAlgo bits (DSP0274 Table 15, NEGOTIATE_ALGORITHMS BaseAsymAlgo).
const (
	AsymRSASSA2048 uint32 = 1 << 0
	AsymRSAPSS2048 uint32 = 1 << 1
	AsymRSASSA3072 uint32 = 1 << 2
	AsymRSAPSS3072 uint32 = 1 << 3
	AsymECDSAP256  uint32 = 1 << 4
	AsymRSASSA4096 uint32 = 1 << 5
	AsymRSAPSS4096 uint32 = 1 << 6
	AsymECDSAP384  uint32 = 1 << 7
	AsymECDSAP521  uint32 = 1 << 8
	AsymSM2P256    uint32 = 1 << 9  // 1.2; not supported here
	AsymEd25519    uint32 = 1 << 10 // 1.2
	AsymEd448      uint32 = 1 << 11 // 1.2; not supported here
)

// BaseHashAlgo bits (DSP0274 Table 15).
const (
	HashSHA256   uint32 = 1 << 0
	HashSHA384   uint32 = 1 << 1
	HashSHA512   uint32 = 1 << 2
	HashSHA3_256 uint32 = 1 << 3 // not supported here
	HashSHA3_384 uint32 = 1 << 4
	HashSHA3_512 uint32 = 1 << 5
	HashSM3      uint32 = 1 << 6
)

// MeasurementHashAlgo bits (DSP0274 Table 16).
const (
	MeasHashRaw      uint32 = 1 << 0
	MeasHashSHA256   uint32 = 1 << 1
	MeasHashSHA384   uint32 = 1 << 2
	MeasHashSHA512   uint32 = 1 << 3
	MeasHashSHA3_256 uint32 = 1 << 4
	MeasHashSHA3_384 uint32 = 1 << 5
	MeasHashSHA3_512 uint32 = 1 << 6
	MeasHashSM3      uint32 = 1 << 7
)

// Algorithm structure table types (DSP0274 Table 16) and their bits.
const (
	AlgTypeDHE         uint8 = 2
	AlgTypeAEAD        uint8 = 3
	AlgTypeReqBaseAsym uint8 = 4
	AlgTypeKeySchedule uint8 = 5

	DHEFFDHE2048 uint16 = 1 << 0
	DHEFFDHE3072 uint16 = 1 << 1
	DHEFFDHE4096 uint16 = 1 << 2
	DHESECP256R1 uint16 = 1 << 3
	DHESECP384R1 uint16 = 1 << 4
	DHESECP521R1 uint16 = 1 << 5
	DHESM2P256   uint16 = 1 << 6

	AEADAES128GCM        uint16 = 1 << 0
	AEADAES256GCM        uint16 = 1 << 1
	AEADChaCha20Poly1305 uint16 = 1 << 2
	AEADSM4GCM           uint16 = 1 << 3

	KeyScheduleSPDM uint16 = 1 << 0
)

// MeasurementSpecDMTF is the DMTF measurement specification bit.
const MeasurementSpecDMTF uint8 = 1 << 0

type algName struct {
	bit  uint32
	name string
}

var asymNames = []algName{
	{AsymRSASSA2048, "RSASSA_2048"}, {AsymRSAPSS2048, "RSAPSS_2048"}, {AsymRSASSA3072, "RSASSA_3072"},
	{AsymRSAPSS3072, "RSAPSS_3072"}, {AsymECDSAP256, "ECDSA_P256"}, {AsymRSASSA4096, "RSASSA_4096"},
	{AsymRSAPSS4096, "RSAPSS_4096"}, {AsymECDSAP384, "ECDSA_P384"}, {AsymECDSAP521, "ECDSA_P521"},
	{AsymSM2P256, "SM2_P256"}, {AsymEd25519, "EDDSA_ED25519"}, {AsymEd448, "EDDSA_ED448"},
}

var hashNames = []algName{
	{HashSHA256, "SHA_256"}, {HashSHA384, "SHA_384"}, {HashSHA512, "SHA_512"},
	{HashSHA3_256, "SHA3_256"}, {HashSHA3_384, "SHA3_384"}, {HashSHA3_512, "SHA3_512"}, {HashSM3, "SM3_256"},
}

var measHashNames = []algName{
	{MeasHashRaw, "RAW_BIT_STREAM"}, {MeasHashSHA256, "SHA_256"}, {MeasHashSHA384, "SHA_384"},
	{MeasHashSHA512, "SHA_512"}, {MeasHashSHA3_256, "SHA3_256"}, {MeasHashSHA3_384, "SHA3_384"},
	{MeasHashSHA3_512, "SHA3_512"}, {MeasHashSM3, "SM3_256"},
}

var dheNames = []algName{
	{uint32(DHEFFDHE2048), "FFDHE_2048"}, {uint32(DHEFFDHE3072), "FFDHE_3072"}, {uint32(DHEFFDHE4096), "FFDHE_4096"},
	{uint32(DHESECP256R1), "SECP_256_R1"}, {uint32(DHESECP384R1), "SECP_384_R1"}, {uint32(DHESECP521R1), "SECP_521_R1"},
	{uint32(DHESM2P256), "SM2_P256"},
}

var aeadNames = []algName{
	{uint32(AEADAES128GCM), "AES_128_GCM"}, {uint32(AEADAES256GCM), "AES_256_GCM"},
	{uint32(AEADChaCha20Poly1305), "CHACHA20_POLY1305"}, {uint32(AEADSM4GCM), "SM4_GCM"},
}

func names(table []algName, v uint32) string {
	var out []string
	for _, a := range table {
		if v&a.bit != 0 {
			out = append(out, a.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

func parseNames(table []algName, what, list string) (uint32, error) {
	var v uint32
	for _, n := range strings.Split(list, ",") {
		n = strings.ToUpper(strings.TrimSpace(n))
		found := false
		for _, a := range table {
			if a.name == n || strings.ReplaceAll(a.name, "_", "") == strings.ReplaceAll(n, "_", "") {
				v |= a.bit
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("secchan: unknown %s algorithm %q", what, n)
		}
	}
	return v, nil
}

// AsymName, HashName, MeasHashName, DHEName and AEADName name algorithm bits.
func AsymName(v uint32) string     { return names(asymNames, v) }
func HashName(v uint32) string     { return names(hashNames, v) }
func MeasHashName(v uint32) string { return names(measHashNames, v) }
func DHEName(v uint16) string      { return names(dheNames, uint32(v)) }
func AEADName(v uint16) string     { return names(aeadNames, uint32(v)) }

// ParseAsymList parses "ECDSA_P256,ECDSA_P384" into BaseAsymAlgo bits.
func ParseAsymList(s string) (uint32, error) { return parseNames(asymNames, "asymmetric", s) }

// ParseHashList parses "SHA_256,SHA_384" into BaseHashAlgo bits.
func ParseHashList(s string) (uint32, error) { return parseNames(hashNames, "hash", s) }

// hashOf maps one BaseHashAlgo bit to a crypto.Hash this package supports.
func hashOf(bit uint32) (crypto.Hash, error) {
	switch bit {
	case HashSHA256:
		return crypto.SHA256, nil
	case HashSHA384:
		return crypto.SHA384, nil
	case HashSHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: base hash %s", ErrUnsupportedAlgorithm, HashName(bit))
}

// measHashSize is the digest size of one MeasurementHashAlgo bit (0 for raw).
func measHashSize(bit uint32) (int, error) {
	switch bit {
	case MeasHashRaw:
		return 0, nil
	case MeasHashSHA256, MeasHashSHA3_256, MeasHashSM3:
		return 32, nil
	case MeasHashSHA384, MeasHashSHA3_384:
		return 48, nil
	case MeasHashSHA512, MeasHashSHA3_512:
		return 64, nil
	}
	return 0, fmt.Errorf("%w: measurement hash 0x%x", ErrUnsupportedAlgorithm, bit)
}

// sigSize is the signature size of one BaseAsymAlgo bit (DSP0274 Table 15).
func sigSize(bit uint32) (int, error) {
	switch bit {
	case AsymRSASSA2048, AsymRSAPSS2048:
		return 256, nil
	case AsymRSASSA3072, AsymRSAPSS3072:
		return 384, nil
	case AsymRSASSA4096, AsymRSAPSS4096:
		return 512, nil
	case AsymECDSAP256, AsymSM2P256, AsymEd25519:
		return 64, nil
	case AsymECDSAP384:
		return 96, nil
	case AsymECDSAP521:
		return 132, nil
	case AsymEd448:
		return 114, nil
	}
	return 0, fmt.Errorf("%w: base asym 0x%x", ErrUnsupportedAlgorithm, bit)
}

// singleBit reports whether v has exactly one bit set.
func singleBit(v uint32) bool { return v != 0 && v&(v-1) == 0 }
