package policy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
)

// writeSelfSigned writes a fresh self-signed CA certificate as PEM.
func writeSelfSigned(t testing.TB, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unrelated root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// attested is one device attested by the guest over an emulated VF.
type attested struct {
	dev    evidence.Device
	nonce  []byte
	anchor string // PEM file of the VF's root, in dir
	dir    string
	root   []byte // the VF's root certificate, PEM
}

var (
	attestOnce sync.Once
	attestRes  attested
	attestErr  error
)

const testLabel = "0000:01:00.1"

// attestDevice attests one devsim VF with IDE once per test binary and
// returns a copy of the evidence; dir holds the VF's root as vf-root.pem.
func attestDevice(t testing.TB) attested {
	t.Helper()
	attestOnce.Do(func() {
		attestRes, attestErr = runAttest(t.TempDir(), testLabel)
	})
	if attestErr != nil {
		t.Fatal(attestErr)
	}
	a := attestRes
	b, err := json.Marshal(a.dev)
	if err != nil {
		t.Fatal(err)
	}
	a.dev = evidence.Device{}
	if err := jsonUnmarshal(b, &a.dev); err != nil {
		t.Fatal(err)
	}
	// A private directory with the anchor, so tests can add files.
	a.dir = t.TempDir()
	a.anchor = filepath.Join(a.dir, "vf-root.pem")
	if err := os.WriteFile(a.anchor, a.root, 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

func runAttest(dir, label string) (attested, error) {
	vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		return attested{}, err
	}
	sock := filepath.Join(dir, "vf.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return attested{}, err
	}
	srv := &doe.Server{Mailbox: vf.Driver(), ExchangeTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return attested{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nonce := []byte("owner nonce for the policy tests")
	d, err := guest.AttestDevice(ctx, guest.DeviceConfig{Label: label, Shim: "unix:" + sock, IDE: true, TDISP: true,
		Anchors: []*x509.Certificate{root}}, nonce)
	if err != nil {
		return attested{}, err
	}
	return attested{dev: d, nonce: nonce, root: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})}, nil
}
