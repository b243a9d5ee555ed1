package secchan

import "testing"

// The preference lists decide what a requester that offers everything
// gets: the 384-bit level first, then 256, then 521/512.
func TestResponderPickPreference(t *testing.T) {
	for _, tc := range []struct {
		name         string
		pref         []uint32
		offered, out uint32
	}{
		{"asym all", rspAsymPref, AsymECDSAP256 | AsymECDSAP384 | AsymECDSAP521 | AsymRSAPSS3072 | AsymEd25519, AsymECDSAP384},
		{"asym no P-384", rspAsymPref, AsymECDSAP256 | AsymECDSAP521, AsymECDSAP256},
		{"asym RSA", rspAsymPref, AsymRSASSA3072 | AsymRSAPSS2048, AsymRSAPSS2048},
		{"hash all", rspHashPref, HashSHA256 | HashSHA384 | HashSHA512, HashSHA384},
		{"hash 256/512", rspHashPref, HashSHA256 | HashSHA512, HashSHA256},
		{"meas hash all", rspMeasHashPref, MeasHashRaw | MeasHashSHA256 | MeasHashSHA384 | MeasHashSHA512, MeasHashSHA384},
		{"meas hash raw only", rspMeasHashPref, MeasHashRaw, MeasHashRaw},
		{"dhe all", rspDHEPref, uint32(DHESECP256R1 | DHESECP384R1 | DHESECP521R1 | DHEFFDHE2048), uint32(DHESECP384R1)},
		{"dhe 256/521", rspDHEPref, uint32(DHESECP256R1 | DHESECP521R1), uint32(DHESECP256R1)},
		{"dhe ffdhe only", rspDHEPref, uint32(DHEFFDHE3072), 0},
		{"aead all", rspAEADPref, uint32(AEADAES128GCM | AEADAES256GCM | AEADChaCha20Poly1305), uint32(AEADAES256GCM)},
		{"aead 128/chacha", rspAEADPref, uint32(AEADAES128GCM | AEADChaCha20Poly1305), uint32(AEADAES128GCM)},
		{"aead chacha", rspAEADPref, uint32(AEADChaCha20Poly1305), uint32(AEADChaCha20Poly1305)},
		{"key schedule", rspKeySchedPref, uint32(KeyScheduleSPDM), uint32(KeyScheduleSPDM)},
	} {
		if got := rspPick(tc.pref, tc.offered); got != tc.out {
			t.Errorf("%s: picked 0x%x, want 0x%x", tc.name, got, tc.out)
		}
	}
}
