package devsim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

// validateIdentity checks id's chain in the SPDM format against root with
// secchan.AnchorValidator, and that the key is the leaf's.
func validateIdentity(t *testing.T, rootDER []byte, id secchan.Identity, h crypto.Hash) *secchan.CertChain {
	t.Helper()
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := secchan.BuildCertChain(h, id.Root, id.Chain...)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := secchan.ParseCertChain(raw, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&secchan.AnchorValidator{Roots: []*x509.Certificate{root}}).ValidateChain(chain, h); err != nil {
		t.Fatalf("chain does not validate to the root: %v", err)
	}
	pub, ok := id.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain.Leaf().PublicKey) {
		t.Fatal("key is not the leaf's")
	}
	return chain
}

func TestNewIdentity(t *testing.T) {
	rootDER, ids, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || root.CheckSignatureFrom(root) != nil || secchan.AsymFor(root.PublicKey) != secchan.AsymECDSAP384 {
		t.Fatalf("root: CA %v, self-signed %v, %s", root.IsCA, root.CheckSignatureFrom(root), secchan.AsymName(secchan.AsymFor(root.PublicKey)))
	}
	if len(ids) != 2 {
		t.Fatalf("%d identities, want 2", len(ids))
	}
	var serials []string
	for i, want := range []uint32{secchan.AsymECDSAP384, secchan.AsymECDSAP256} {
		id := ids[i]
		if len(id.Chain) != 3 || !bytes.Equal(id.Chain[0], rootDER) || !bytes.Equal(id.Root, rootDER) {
			t.Fatalf("identity %d: chain of %d certificates, want root, intermediate, leaf", i, len(id.Chain))
		}
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
			validateIdentity(t, rootDER, id, h)
		}
		inter, _ := x509.ParseCertificate(id.Chain[1])
		if !inter.IsCA || secchan.AsymFor(inter.PublicKey) != secchan.AsymECDSAP384 || !inter.MaxPathLenZero {
			t.Fatalf("intermediate: CA %v, %s", inter.IsCA, secchan.AsymName(secchan.AsymFor(inter.PublicKey)))
		}
		leaf, _ := x509.ParseCertificate(id.Chain[2])
		switch {
		case secchan.AsymFor(leaf.PublicKey) != want:
			t.Errorf("leaf %d is %s, want %s", i, secchan.AsymName(secchan.AsymFor(leaf.PublicKey)), secchan.AsymName(want))
		case leaf.IsCA || !leaf.BasicConstraintsValid:
			t.Errorf("leaf %d: CA:%v", i, leaf.IsCA)
		case leaf.KeyUsage != x509.KeyUsageDigitalSignature:
			t.Errorf("leaf %d: key usage %v", i, leaf.KeyUsage)
		case len(leaf.UnknownExtKeyUsage) != 1 || !leaf.UnknownExtKeyUsage[0].Equal(oidDMTFResponderAuth):
			t.Errorf("leaf %d: extended key usage %v", i, leaf.UnknownExtKeyUsage)
		case leaf.Subject.SerialNumber == "" || !bytes.Contains([]byte(leaf.Subject.CommonName), []byte("devsim")):
			t.Errorf("leaf %d: subject %v", i, leaf.Subject)
		case !leaf.NotAfter.Equal(noExpiry) || leaf.NotBefore.After(time.Now()):
			t.Errorf("leaf %d: validity %v to %v", i, leaf.NotBefore, leaf.NotAfter)
		}
		serials = append(serials, leaf.Subject.SerialNumber)
	}
	if serials[0] != serials[1] {
		t.Errorf("leaves name devices %q and %q, want one device", serials[0], serials[1])
	}
	// Another call is another device.
	root2, _, err := NewIdentity()
	if err != nil || bytes.Equal(root2, rootDER) {
		t.Fatalf("second identity: %v", err)
	}
}

func TestLoadIdentityKeyFormats(t *testing.T) {
	rootDER, ids, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id := ids[1] // P-256
	chainDER := bytes.Join(id.Chain, nil)
	key := id.Key.(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	for name, keyPEM := range map[string][]byte{
		"SEC1":                     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"PKCS8":                    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"EC PARAMETERS, then SEC1": append(params, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...),
	} {
		t.Run(name, func(t *testing.T) {
			root, got, err := LoadIdentity(chainDER, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(root, rootDER) || !bytes.Equal(got.Root, rootDER) || !slices.EqualFunc(got.Chain, id.Chain, bytes.Equal) {
				t.Fatal("loaded chain differs")
			}
			validateIdentity(t, root, got, crypto.SHA256)
			if _, err := secchan.NewResponder(secchan.ResponderConfig{Identities: []secchan.Identity{got}}); err != nil {
				t.Fatalf("responder refuses the loaded identity: %v", err)
			}
		})
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSEC1, _ := x509.MarshalECPrivateKey(other)
	for name, tc := range map[string]struct{ chain, key []byte }{
		"key of another leaf": {chainDER, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: otherSEC1})},
		"no key block":        {chainDER, params},
		"bad key bytes":       {chainDER, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})},
		"empty chain":         {nil, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})},
		"garbage chain":       {[]byte{0x30, 0x03, 1, 2, 3}, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})},
	} {
		if _, _, err := LoadIdentity(tc.chain, tc.key); err == nil {
			t.Errorf("%s: LoadIdentity accepted it", name)
		}
	}
}

// libspdm's sample identity, when LIBSPDM_EMU_BIN names spdm-emu's bin
// directory.
func TestLoadIdentityLibspdmSample(t *testing.T) {
	dir := os.Getenv("LIBSPDM_EMU_BIN")
	if dir == "" {
		t.Skip("LIBSPDM_EMU_BIN not set: skipping libspdm's sample identity (point it at spdm-emu's bin directory)")
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "ecp384", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rootDER, id, err := LoadIdentity(read("bundle_responder.certchain.der"), read("end_responder.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rootDER, read("ca.cert.der")) {
		t.Fatal("the bundle's first certificate is not ca.cert.der")
	}
	validateIdentity(t, rootDER, id, crypto.SHA384)
	if secchan.AsymFor(id.Key.Public()) != secchan.AsymECDSAP384 {
		t.Fatalf("key is %T", id.Key.Public())
	}
	if _, _, err := NewSPDMVF([]secchan.Identity{id}, NewMeasurements()); err != nil {
		t.Fatal(err)
	}
}

func TestMeasurementsStore(t *testing.T) {
	m := NewMeasurements()
	got := m.Measurements()
	want := []string{MeasurementROM, MeasurementFirmware, MeasurementHardwareConfig, MeasurementFirmwareConfig, MeasurementVersion}
	types := []uint8{secchan.MeasTypeImmutableROM, secchan.MeasTypeMutableFirmware, secchan.MeasTypeHardwareConfig, secchan.MeasTypeFirmwareConfig, secchan.MeasTypeVersion}
	if len(got) != len(want) {
		t.Fatalf("%d measurements", len(got))
	}
	for i := range want {
		if got[i].Index != uint8(i+1) || got[i].Type != types[i] || string(got[i].Value) != want[i] {
			t.Errorf("measurement %d: %+v", i, got[i])
		}
	}
	got[1].Value[0] = 'X' // a copy: the store is unchanged
	if err := m.Set(2, []byte("devsim firmware 2.0.0")); err != nil {
		t.Fatal(err)
	}
	if v := string(m.Measurements()[1].Value); v != "devsim firmware 2.0.0" {
		t.Fatalf("after Set: %q", v)
	}
	if err := m.Set(9, nil); err == nil {
		t.Fatal("Set of an unknown index succeeded")
	}
}

// The VF's CMA/SPDM handler is the responder, reached through the DOE
// registers; a function reset drops the SPDM connection.
func TestSPDMVFThroughRegisters(t *testing.T) {
	f, rootDER, meas, err := NewDefaultSPDMVF()
	if err != nil {
		t.Fatal(err)
	}
	if len(rootDER) == 0 || meas == nil {
		t.Fatal("no root or measurements")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := f.Driver()
	exchange := func(req []byte) []byte {
		t.Helper()
		resp, err := d.Exchange(ctx, doe.NewObject(doe.ProtocolCMA, req))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Payload
	}
	resp := exchange((&secchan.GetVersion{}).Marshal())
	var v secchan.VersionResponse
	if _, err := v.Decode(resp[:4+2+2*4]); err != nil || len(v.Entries) != 4 {
		t.Fatalf("VERSION: % x %v", resp, err)
	}
	resp = exchange((&secchan.GetCapabilities{Version: secchan.V11, Flags: secchan.CapCert | secchan.CapChal}).Marshal())
	if resp[1] != secchan.CodeCapabilities {
		t.Fatalf("CAPABILITIES: % x", resp)
	}
	f.Reset()
	resp = exchange((&secchan.NegotiateAlgorithms{Version: secchan.V11, BaseAsymAlgo: secchan.AsymECDSAP384, BaseHashAlgo: secchan.HashSHA384}).Marshal())
	if resp[1] != secchan.CodeError || resp[2] != uint8(secchan.ErrCodeUnexpectedRequest) {
		t.Fatalf("NEGOTIATE_ALGORITHMS after a function reset: % x, want ERROR(UnexpectedRequest)", resp)
	}
	// Secured messages still have no session.
	if _, err := d.Exchange(ctx, doe.NewObject(doe.ProtocolSecuredCMA, []byte{1, 2, 3, 4})); err == nil {
		t.Fatal("secured message answered")
	}
}
