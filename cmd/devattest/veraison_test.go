package main

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/evidence/eatda"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/policy/corim"
	"github.com/devattest/devattest/secchan"
)

// veraisonLayout is a device model without an immutable-ROM block (the one
// block type Veraison's da-spdm cannot read) and with one block of every
// other type devsim's responder reports as a digest.
const veraisonLayout = `
- {index: 1, type: mutable-firmware, value: "widget firmware 2.1.0"}
- {index: 2, type: hardware-config, value: "x8, IDE, 4 VFs"}
- {index: 3, type: firmware-config, value: "default"}
- {index: 4, type: mutable-firmware-version, value: "2.1.0"}
- {index: 5, type: mutable-firmware-svn, value: "svn 3"}
`

// veraisonReport attests two emulated VFs with the layout above on a fake
// SEV-SNP platform with a 64-byte owner nonce, as the demo's formats
// section does, and writes the report, the token (export --eat-da) and a
// CoRIM (policy init --corim; signed with key and cert, or unsigned when
// they are empty).
func veraisonReport(t *testing.T, key, cert string) (e e2e, nonce []byte, token, refs string) {
	t.Helper()
	a, err := platform.NewFakeSNP()
	if err != nil {
		t.Fatal(err)
	}
	var vfs []*devsim.Measurements
	for range 2 {
		m, err := devsim.ParseMeasurementLayout([]byte(veraisonLayout))
		if err != nil {
			t.Fatal(err)
		}
		vfs = append(vfs, m)
	}
	nonce = make([]byte, 64)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	roots := snpRoots(t, a)
	e = attestSpec(t, attestOptions{platform: "fake-snp", att: a, roots: roots, nonce: nonce, vfs: vfs})
	token = filepath.Join(e.dir, "token.cbor")
	if code, out, errOut := runCmd("export", "--eat-da", e.report, "--out", token); code != 0 {
		t.Fatalf("export: %d\n%s%s", code, out, errOut)
	} else if strings.Contains(out, "note:") {
		t.Fatalf("export names Veraison problems for a token made to have none:\n%s", out)
	}
	refs = filepath.Join(e.dir, "refs.cbor")
	args := []string{"policy", "init", "--from", e.report, "--out", filepath.Join(e.dir, "corim-policy.yaml"), "--corim", refs}
	if key == "" {
		args = append(args, "--corim-unsigned")
	} else {
		args = append(args, "--corim-key", key, "--corim-cert", cert)
	}
	if code, out, errOut := runCmd(append(args, roots(e.dir)...)...); code != 0 {
		t.Fatalf("policy init --corim: %d\n%s%s", code, out, errOut)
	}
	return e, nonce, token, refs
}

// TestVeraisonReadyToken: with a layout without immutable ROM and a
// 64-byte nonce the token has none of the differences Veraison's scheme
// trips on, and the CoRIM holds, per device class the token's submodules
// derive, every block under the name Veraison gives it.
func TestVeraisonReadyToken(t *testing.T) {
	_, _, token, refs := veraisonReport(t, "", "")
	tok, err := eatda.Decode(mustRead(t, token))
	if err != nil {
		t.Fatal(err)
	}
	if p := tok.VeraisonProblems(); len(p) != 0 || len(tok.Nonce) != 64 {
		t.Fatalf("%d-byte nonce, problems %q", len(tok.Nonce), p)
	}
	rim, err := corim.Read(mustRead(t, refs), corim.Options{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	veraisonNames := map[uint8]string{1: "immutable-rom", 2: "mutable-firmware", 3: "hardware-config", 6: "device-mode", 7: "mutable-firmware-version"}
	for name, sub := range tok.Submods {
		class, err := eatda.ClassID(name)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := rim.Reference(class)
		if err != nil {
			t.Fatalf("submodule %q: %v", name, err)
		}
		if len(ref.Measurements) != len(sub.Measurements.Blocks) {
			t.Fatalf("class %q: %d reference measurements for %d blocks", class, len(ref.Measurements), len(sub.Measurements.Blocks))
		}
		for _, m := range ref.Measurements {
			b := sub.Measurements.Blocks[m.Index]
			if want := veraisonNames[b.ComponentType]; m.Name != want {
				t.Errorf("class %q mkey %d: name %q; Veraison derives %q from component type %d", class, m.Index, m.Name, want, b.ComponentType)
			}
			if len(m.Digests) != 1 || !bytes.Equal(m.Digests[0].Value, b.Digest.Val) {
				t.Errorf("class %q mkey %d: reference digests %v, token %x", class, m.Index, m.Digests, b.Digest.Val)
			}
		}
	}
}

// TestInteropVeraison provisions CoRIMs that policy init --corim wrote to
// Veraison's services and appraises the export --eat-da tokens of the same
// reports with the da-spdm scheme over Veraison's REST API:
//   - the pair: every device submodule affirming;
//   - one reference digest changed in the CoRIM: that device warning;
//   - devsim's default layout (immutable ROM at block 1): refused, the
//     difference the README records (pinned, so a Veraison fix shows);
//   - a 32-byte nonce: refused (Veraison compares 64 bytes).
//
// DEVATTEST_VERAISON_PROVISIONING and DEVATTEST_VERAISON_VERIFICATION name
// the two services (loopback URLs, http://127.0.0.1:PORT) of a Veraison
// built locally with the da-spdm scheme. With DEVATTEST_VERAISON_CORIM_KEY
// and DEVATTEST_VERAISON_CORIM_CERT (a signer whose certificate chains to
// a root in the VTS's ca-certs) the CoRIMs are signed; else unsigned.
func TestInteropVeraison(t *testing.T) {
	prov, verif := os.Getenv("DEVATTEST_VERAISON_PROVISIONING"), os.Getenv("DEVATTEST_VERAISON_VERIFICATION")
	if prov == "" || verif == "" {
		t.Skip("DEVATTEST_VERAISON_PROVISIONING and DEVATTEST_VERAISON_VERIFICATION are not set: set them to a local Veraison (with the da-spdm scheme) to run this interop test; TestVeraisonReadyToken and policy/corim's TestPairMatchesAsVeraison check the pair without it")
	}
	v := veraison{t: t, prov: loopbackURL(t, prov), verif: loopbackURL(t, verif), client: &http.Client{Timeout: 30 * time.Second}}
	key, cert := os.Getenv("DEVATTEST_VERAISON_CORIM_KEY"), os.Getenv("DEVATTEST_VERAISON_CORIM_CERT")
	if (key == "") != (cert == "") {
		t.Fatal("DEVATTEST_VERAISON_CORIM_KEY and DEVATTEST_VERAISON_CORIM_CERT go together")
	}
	if key == "" {
		t.Log("no DEVATTEST_VERAISON_CORIM_KEY: provisioning unsigned CoRIMs")
	}
	earKey := v.earKey()

	t.Run("affirming", func(t *testing.T) {
		v := v.on(t)
		_, nonce, token, refs := veraisonReport(t, key, cert)
		v.provision(refs, key != "")
		res := v.appraise(mustRead(t, token), nonce, earKey)
		tok, _ := eatda.Decode(mustRead(t, token))
		if len(res.Submods) != len(tok.Submods) {
			t.Fatalf("%d submodules in the EAR for %d devices: %s", len(res.Submods), len(tok.Submods), res.raw)
		}
		for name := range tok.Submods {
			class, _ := eatda.ClassID(name)
			s, ok := res.Submods[class]
			if !ok || s.Status != "affirming" || s.Vector["executables"] != 2 {
				t.Errorf("class %q: %+v\n%s", class, s, res.raw)
			}
		}
	})

	t.Run("one reference digest changed", func(t *testing.T) {
		v := v.on(t)
		_, nonce, token, refs := veraisonReport(t, key, cert)
		changed := changeOneDigest(t, refs, key, cert)
		v.provision(changed, key != "")
		res := v.appraise(mustRead(t, token), nonce, earKey)
		var warned, affirmed int
		for class, s := range res.Submods {
			switch {
			case s.Status == "warning" && s.Vector["executables"] == 33:
				warned++
			case s.Status == "affirming":
				affirmed++
			default:
				t.Errorf("class %q: %+v", class, s)
			}
		}
		if warned != 1 || affirmed != 1 {
			t.Fatalf("%d warning, %d affirming; want 1 and 1\n%s", warned, affirmed, res.raw)
		}
	})

	t.Run("default layout refused", func(t *testing.T) {
		v := v.on(t)
		a, err := platform.NewFakeSNP()
		if err != nil {
			t.Fatal(err)
		}
		nonce := bytes.Repeat([]byte{0x5a}, 64)
		e := attestSpec(t, attestOptions{platform: "fake-snp", att: a, nonce: nonce, roots: snpRoots(t, a)})
		tok, err := exportEATDA(e.report)
		if err != nil {
			t.Fatal(err)
		}
		res := v.appraise(tok, nonce, earKey)
		if !strings.Contains(res.raw, "unexpected component type 0") {
			t.Fatalf("Veraison's scheme no longer refuses component type 0 (README difference 1 may be gone):\n%s", res.raw)
		}
	})

	t.Run("32-byte nonce refused", func(t *testing.T) {
		v := v.on(t)
		a, err := platform.NewFakeSNP()
		if err != nil {
			t.Fatal(err)
		}
		m, _ := devsim.ParseMeasurementLayout([]byte(veraisonLayout))
		nonce := bytes.Repeat([]byte{0x33}, 32)
		e := attestSpec(t, attestOptions{platform: "fake-snp", att: a, nonce: nonce, vfs: []*devsim.Measurements{m},
			roots: snpRoots(t, a)})
		tok, err := exportEATDA(e.report)
		if err != nil {
			t.Fatal(err)
		}
		res := v.appraise(tok, nonce, earKey)
		if !strings.Contains(res.raw, "nonce in evidence does not match session nonce") {
			t.Fatalf("Veraison took a 32-byte nonce (README difference 3 may be gone):\n%s", res.raw)
		}
	})
}

// changeOneDigest rewrites a CoRIM with the first reference digest of its
// first class changed (last byte flipped), signed as the original was.
func changeOneDigest(t *testing.T, refs, key, cert string) string {
	t.Helper()
	rim, err := corim.Read(mustRead(t, refs), corim.Options{AllowUnsigned: true, Anchors: anchorsOf(t, cert)})
	if err != nil {
		t.Fatal(err)
	}
	d := rim.References[0].Measurements[0].Digests[0].Value
	d[len(d)-1] ^= 0xFF
	// Another CoRIM: another ID (a store refuses other content under an
	// ID it holds).
	if err := rim.SetContentID("devattest test, one digest changed"); err != nil {
		t.Fatal(err)
	}
	b, err := rim.MarshalUnsigned()
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		signer, err := cli.LoadSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		chain, err := secchan.LoadCertificates(cert)
		if err != nil {
			t.Fatal(err)
		}
		if b, err = corim.Sign(b, signer, chain); err != nil {
			t.Fatal(err)
		}
	}
	return writeFile(t, refs+".changed", b)
}

func anchorsOf(t *testing.T, cert string) []*x509.Certificate {
	t.Helper()
	if cert == "" {
		return nil
	}
	chain, err := secchan.LoadCertificates(cert)
	if err != nil {
		t.Fatal(err)
	}
	return chain[len(chain)-1:]
}

// loopbackURL refuses a service that is not on a loopback address: this
// test talks to nothing else.
func loopbackURL(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		t.Fatalf("%q is not an http(s) URL", s)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		t.Fatalf("%q is not a loopback address (127.0.0.1 or ::1): interop tests talk to loopback only", s)
	}
	return strings.TrimSuffix(u.String(), "/")
}

// veraison is a client of Veraison's provisioning and challenge-response
// verification APIs.
type veraison struct {
	t           *testing.T
	prov, verif string
	client      *http.Client
}

// on returns v reporting to t (a subtest's).
func (v veraison) on(t *testing.T) veraison { v.t = t; return v }

func (v veraison) do(method, u, contentType string, body []byte) (*http.Response, []byte) {
	v.t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "*/*")
	rsp, err := v.client.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(rsp.Body, 4<<20))
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, u, err)
	}
	return rsp, b
}

// earKey is the verification service's EAR signing key (its
// .well-known document).
func (v veraison) earKey() *jose.JSONWebKey {
	rsp, b := v.do(http.MethodGet, v.verif+"/.well-known/veraison/verification", "", nil)
	var doc struct {
		Key        json.RawMessage `json:"ear-verification-key"`
		MediaTypes []string        `json:"media-types"`
	}
	if rsp.StatusCode != http.StatusOK || json.Unmarshal(b, &doc) != nil {
		v.t.Fatalf("well-known: %s\n%s", rsp.Status, b)
	}
	found := false
	for _, mt := range doc.MediaTypes {
		found = found || mt == eatda.MediaTypeVeraisonDA
	}
	if !found {
		v.t.Fatalf("Veraison does not take %s (no da-spdm scheme?): %q", eatda.MediaTypeVeraisonDA, doc.MediaTypes)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(doc.Key); err != nil {
		v.t.Fatalf("EAR key: %v", err)
	}
	return &k
}

func (v veraison) provision(path string, signed bool) {
	v.t.Helper()
	mt := corim.MediaTypeSigned
	if !signed {
		mt = corim.ContentType + `; profile="` + corim.Profile + `"`
	}
	rsp, b := v.do(http.MethodPost, v.prov+"/endorsement-provisioning/v1/submit", mt, mustRead(v.t, path))
	var st struct {
		Status string `json:"status"`
	}
	if rsp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil || st.Status != "success" {
		v.t.Fatalf("provisioning %s: %s\n%s", filepath.Base(path), rsp.Status, b)
	}
}

// earResult is what the test reads of Veraison's EAR.
type earResult struct {
	raw     string
	Submods map[string]earSubmod
}

type earSubmod struct {
	Status string         `json:"ear.status"`
	Vector map[string]int `json:"ear.trustworthiness-vector"`
	Claims map[string]any `json:"ear.veraison.policy-claims"`
}

// appraise opens a challenge-response session with nonce, posts the token
// and returns the EAR's claims after checking its signature with key.
func (v veraison) appraise(token, nonce []byte, key *jose.JSONWebKey) earResult {
	v.t.Helper()
	q := url.Values{"nonce": {base64.URLEncoding.EncodeToString(nonce)}}
	rsp, b := v.do(http.MethodPost, v.verif+"/challenge-response/v1/newSession?"+q.Encode(), "", nil)
	loc := rsp.Header.Get("Location")
	if rsp.StatusCode != http.StatusCreated || loc == "" || strings.Contains(loc, "://") {
		v.t.Fatalf("newSession: %s, Location %q\n%s", rsp.Status, loc, b)
	}
	session := v.verif + "/challenge-response/v1/" + strings.TrimPrefix(loc, "/")
	defer v.do(http.MethodDelete, session, "", nil)
	rsp, b = v.do(http.MethodPost, session, eatda.MediaTypeVeraisonDA, token)
	var s struct {
		Status string `json:"status"`
		Result string `json:"result"`
	}
	if rsp.StatusCode != http.StatusOK || json.Unmarshal(b, &s) != nil || s.Status != "complete" {
		v.t.Fatalf("evidence: %s\n%s", rsp.Status, b)
	}
	jws, err := jose.ParseSigned(s.Result, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.EdDSA})
	if err != nil {
		v.t.Fatalf("EAR: %v\n%s", err, s.Result)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		v.t.Fatalf("EAR signature: %v", err)
	}
	var claims struct {
		Nonce   string               `json:"eat_nonce"`
		Profile string               `json:"eat_profile"`
		Submods map[string]earSubmod `json:"submods"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		v.t.Fatalf("EAR claims: %v\n%s", err, payload)
	}
	if claims.Profile != "tag:github.com,2023:veraison/ear" {
		v.t.Fatalf("EAR profile %q", claims.Profile)
	}
	if n, err := base64.URLEncoding.DecodeString(claims.Nonce); err != nil || !bytes.Equal(n, nonce) {
		v.t.Fatalf("EAR eat_nonce %q is not the session nonce", claims.Nonce)
	}
	return earResult{raw: string(payload), Submods: claims.Submods}
}
