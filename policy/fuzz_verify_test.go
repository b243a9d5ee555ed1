package policy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/policy"
)

// honestReport is one report a fake platform signed and the policy that
// accepts it.
type honestReport struct {
	report []byte
	body   []byte
	policy *policy.Policy
}

// honestReports signs the attested device's body on each fake platform.
// The TPM simulator is closed again before the fuzzing starts.
func honestReports(f *testing.F) ([]honestReport, attested) {
	a := attestDevice(f)
	var out []honestReport
	for _, kind := range []string{policy.KindSNP, policy.KindTDX, policy.KindTPM} {
		pl := openPlatform(f, kind, a.dir)
		body := newBody(kind, a.nonce, a.dev)
		pl.bind(f, body)
		b := pl.seal(f, body, nil)
		pl.att.Close()
		p, err := policy.Parse([]byte("devices:\n"+fullRule(a)+pl.yaml), a.dir)
		if err != nil {
			f.Fatal(err)
		}
		rep, err := evidence.Unmarshal(b)
		if err != nil {
			f.Fatal(err)
		}
		if v := policy.VerifyReport(b, p, a.nonce); !v.OK {
			f.Fatalf("%s: the honest report fails: %+v", kind, v.Failed())
		}
		out = append(out, honestReport{report: b, body: rep.Body, policy: p})
	}
	return out, a
}

// FuzzVerifyReport: the whole path, report bytes to verdict, against the
// policies of all three platforms. Nothing panics, and a report passes
// only if its body is, byte for byte, the body a platform signed: no
// edit to the signed body, and nothing outside it, can make a pass.
func FuzzVerifyReport(f *testing.F) {
	honest, a := honestReports(f)
	for _, h := range honest {
		f.Add(h.report)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, h := range honest {
			v := policy.VerifyReport(b, h.policy, a.nonce)
			if len(v.Results) == 0 {
				t.Fatal("a verdict without results")
			}
			if !v.OK {
				continue
			}
			rep, err := evidence.Unmarshal(b)
			if err != nil {
				t.Fatalf("a report that does not decode passed: %v", err)
			}
			if !bytes.Equal(rep.Body, h.body) {
				t.Fatalf("a report whose body is not the signed one passed:\n%s", rep.Body)
			}
		}
	})
}

// FuzzCheckDevice: the device checks on any device evidence. A device
// passes only with the signed exchange the device produced: its chain,
// request, response, transcript and blocks as attested.
func FuzzCheckDevice(f *testing.F) {
	a := attestDevice(f)
	p := loadPolicy(f, a.dir, fullRule(a)+tdispRules)
	seed, err := json.Marshal(a.dev)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	want := a.dev
	f.Fuzz(func(t *testing.T, b []byte) {
		var d evidence.Device
		if json.Unmarshal(b, &d) != nil {
			return
		}
		rs := p.CheckDevice(d, a.nonce)
		if len(rs) == 0 {
			t.Fatal("no results")
		}
		if len(failed(rs)) != 0 {
			return
		}
		m, w := d.Measurements, want.Measurements
		if !bytes.Equal(d.CertChain, want.CertChain) || !bytes.Equal(m.Request, w.Request) || !bytes.Equal(m.Response, w.Response) ||
			!bytes.Equal(m.Transcript, w.Transcript) || len(m.Blocks) != len(w.Blocks) {
			t.Fatal("a device whose signed exchange differs from the attested one passed")
		}
		for i := range m.Blocks {
			if !bytes.Equal(m.Blocks[i].Value, w.Blocks[i].Value) || m.Blocks[i].Index != w.Blocks[i].Index {
				t.Fatalf("block %d differs from the signed one and passed", i)
			}
		}
	})
}

// TestWriteVerifyFuzzSeeds writes honest reports of the three platforms
// and an attested device into testdata/fuzz when POLICY_WRITE_FUZZ_SEEDS
// is set (their keys are fresh each run, so they are inputs to mutate,
// not reports that verify against a later run's policies):
//
//	POLICY_WRITE_FUZZ_SEEDS=1 go test ./policy -run TestWriteVerifyFuzzSeeds
func TestWriteVerifyFuzzSeeds(t *testing.T) {
	if os.Getenv("POLICY_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set POLICY_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzVerifyReport and FuzzCheckDevice")
	}
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := attestDevice(t)
	for _, kind := range []string{policy.KindSNP, policy.KindTDX, policy.KindTPM} {
		pl := openPlatform(t, kind, a.dir)
		body := newBody(kind, a.nonce, a.dev)
		pl.bind(t, body)
		write("FuzzVerifyReport", "honest-"+kind, pl.seal(t, body, nil))
		pl.att.Close()
	}
	dev, err := json.Marshal(a.dev)
	if err != nil {
		t.Fatal(err)
	}
	write("FuzzCheckDevice", "attested-device", dev)
}
