package corim_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy/corim"
)

// body is the EAT-DA package's recorded body: one devsim device that
// passed, one that failed.
func body(t testing.TB) *evidence.Body {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "evidence", "eatda", "testdata", "body.json"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := evidence.ParseBody(b)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// issuer is a test CA and a signer it certified.
type issuer struct {
	root, leaf *x509.Certificate
	key        crypto.Signer
}

func newCert(t testing.TB, name string, ca bool, parent *x509.Certificate, parentKey crypto.Signer, curve elliptic.Curve) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: ca, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func newIssuer(t testing.TB, curve elliptic.Curve) issuer {
	root, rootKey := newCert(t, "reference values root", true, nil, nil, curve)
	leaf, key := newCert(t, "reference values signer", false, root, rootKey, curve)
	return issuer{root: root, leaf: leaf, key: key}
}

func signed(t testing.TB, is issuer) (*corim.RIM, []byte) {
	t.Helper()
	r, err := corim.FromDevices("devattest test", body(t).Devices)
	if err != nil {
		t.Fatal(err)
	}
	u, err := r.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	s, err := corim.Sign(u, is.key, []*x509.Certificate{is.leaf})
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

func TestSignedRoundTrip(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		is := newIssuer(t, curve)
		want, s := signed(t, is)
		got, err := corim.Read(s, corim.Options{Anchors: []*x509.Certificate{is.root}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read back %+v, want %+v", got, want)
		}
		// The signer's own certificate as the anchor works too.
		if _, err := corim.Read(s, corim.Options{Anchors: []*x509.Certificate{is.leaf}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFromDevices(t *testing.T) {
	b := body(t)
	r, err := corim.FromDevices("id", b.Devices)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.References) != 1 {
		t.Fatalf("%d references, want 1 (the failed device has none)", len(r.References))
	}
	ref := r.References[0]
	d := b.Devices[0]
	if len(ref.Measurements) != len(d.Measurements.Blocks) {
		t.Fatalf("%d measurements, the device has %d blocks", len(ref.Measurements), len(d.Measurements.Blocks))
	}
	for i, m := range ref.Measurements {
		blk := d.Measurements.Blocks[i]
		if m.Index != blk.Index || len(m.Digests) != 1 || m.Digests[0].Alg != 7 || !bytes.Equal(m.Digests[0].Value, blk.Value) {
			t.Fatalf("measurement %d: %+v, block %+v", i, m, blk)
		}
	}
	// Veraison's names are off by one from SPDM's component types: block 2
	// is SPDM's mutable firmware (1), named as Veraison names 1.
	if ref.Measurements[1].Name != "immutable-rom" || ref.Measurements[2].Name != "mutable-firmware" {
		t.Fatalf("names %q, %q", ref.Measurements[1].Name, ref.Measurements[2].Name)
	}
	if ref.ClassID == "" || bytes.Contains([]byte(ref.ClassID), []byte("CN=")) {
		t.Fatalf("class id %q", ref.ClassID)
	}
}

func TestReadRefuses(t *testing.T) {
	is := newIssuer(t, elliptic.P256())
	other := newIssuer(t, elliptic.P256())
	r, s := signed(t, is)
	u, err := r.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	byOther, err := corim.Sign(u, other.key, []*x509.Certificate{other.leaf})
	if err != nil {
		t.Fatal(err)
	}
	// A digest changed inside the signed payload.
	tampered := bytes.Clone(s)
	dig := r.References[0].Measurements[0].Digests[0].Value
	i := bytes.Index(tampered, dig)
	if i < 0 {
		t.Fatal("digest not found in the signed CoRIM")
	}
	tampered[i] ^= 1
	// Another key's signature under the anchor's signer certificate.
	if _, err := corim.Sign(u, other.key, []*x509.Certificate{is.leaf}); err == nil {
		t.Fatal("Sign accepted a key that is not the certificate's")
	}
	anchors := []*x509.Certificate{is.root}
	for name, c := range map[string]struct {
		in   []byte
		o    corim.Options
		want error
	}{
		"tampered digest":       {tampered, corim.Options{Anchors: anchors}, corim.ErrUntrusted},
		"signed by another key": {byOther, corim.Options{Anchors: anchors}, corim.ErrUntrusted},
		"no anchor":             {s, corim.Options{}, corim.ErrUntrusted},
		"expired signer":        {s, corim.Options{Anchors: anchors, Now: time.Now().Add(48 * time.Hour)}, corim.ErrUntrusted},
		"unsigned":              {u, corim.Options{Anchors: anchors}, corim.ErrUntrusted},
		"truncated":             {s[:len(s)-3], corim.Options{Anchors: anchors}, corim.ErrDecode},
		"garbage":               {[]byte{0x01, 0x02}, corim.Options{Anchors: anchors}, corim.ErrDecode},
		"unsigned, not a CoRIM": {[]byte{0xd9, 0x01, 0xf5, 0xa0}, corim.Options{AllowUnsigned: true}, corim.ErrDecode},
		"too large":             {make([]byte, corim.MaxSize+1), corim.Options{AllowUnsigned: true}, corim.ErrDecode},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := corim.Read(c.in, c.o); !errors.Is(err, c.want) {
				t.Fatalf("Read: %v, want %v", err, c.want)
			}
		})
	}
	// Unsigned only with the explicit flag.
	got, err := corim.Read(u, corim.Options{AllowUnsigned: true})
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("unsigned with AllowUnsigned: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	is := newIssuer(f, elliptic.P256())
	r, s := signed(f, is)
	u, _ := r.MarshalUnsigned()
	f.Add(s)
	f.Add(u)
	if seeds, err := filepath.Glob(filepath.Join("testdata", "*.cbor")); err == nil {
		for _, p := range seeds {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	anchors := []*x509.Certificate{is.root}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := corim.Read(b, corim.Options{Anchors: anchors, AllowUnsigned: true})
		if err != nil {
			return
		}
		// What reads re-encodes to something that reads the same.
		u, err := got.MarshalUnsigned()
		if err != nil {
			return // e.g. names longer than... none: but never panic
		}
		back, err := corim.ParseUnsigned(u)
		if err != nil || !reflect.DeepEqual(back.References, got.References) {
			t.Fatalf("re-encoding does not read back: %v", err)
		}
	})
}

// TestSetContentID: the ID names the content (other references, another
// ID; the same references, the same ID) and survives a round trip.
func TestSetContentID(t *testing.T) {
	b := body(t)
	id := func(change func(r *corim.RIM)) string {
		r, err := corim.FromDevices("", b.Devices)
		if err != nil {
			t.Fatal(err)
		}
		change(r)
		if err := r.SetContentID("devattest policy init 2026-12-05T00:00:00Z"); err != nil {
			t.Fatal(err)
		}
		u, err := r.MarshalUnsigned()
		if err != nil {
			t.Fatal(err)
		}
		back, err := corim.Read(u, corim.Options{AllowUnsigned: true})
		if err != nil || back.ID != r.ID {
			t.Fatalf("round trip: %v, ID %q, want %q", err, back.ID, r.ID)
		}
		return r.ID
	}
	same := func(*corim.RIM) {}
	a := id(same)
	if !strings.HasPrefix(a, "devattest policy init 2026-12-05T00:00:00Z ") || len(a) != len("devattest policy init 2026-12-05T00:00:00Z ")+16 {
		t.Fatalf("ID %q", a)
	}
	if id(same) != a {
		t.Fatal("the same references got another ID")
	}
	if id(func(r *corim.RIM) { r.References[0].Measurements[0].Digests[0].Value[0] ^= 1 }) == a {
		t.Fatal("a changed digest kept the ID")
	}
	if id(func(r *corim.RIM) { r.References[0].ClassID += "x" }) == a {
		t.Fatal("another class kept the ID")
	}
}
