package guest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	vplatform "github.com/devattest/devattest/policy/platform"
)

func TestParseConfig(t *testing.T) {
	good := "platform: fake-tpm\nide: true\ndevices:\n  - label: a\n    shim: vsock:3:7000\n    trust_anchors: [root.pem]\n  - label: b\n    shim: 127.0.0.1:7000\n    required: false\n    trust_anchors: [/abs/root.pem]\n"
	c, err := ParseConfig([]byte(good), "/etc/devattest")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Devices[0].IsRequired() || c.Devices[1].IsRequired() || !c.Devices[0].IDE || !c.Devices[1].IDE {
		t.Fatalf("required/ide: %+v", c.Devices)
	}
	if c.Devices[0].TrustAnchors[0] != "/etc/devattest/root.pem" || c.Devices[1].TrustAnchors[0] != "/abs/root.pem" {
		t.Fatalf("anchor paths: %v %v", c.Devices[0].TrustAnchors, c.Devices[1].TrustAnchors)
	}
	if a, err := ParseShimAddr("vsock:3:7000"); err != nil || a.Network != "vsock" || a.CID != 3 || a.Port != 7000 {
		t.Fatalf("vsock address: %+v, %v", a, err)
	}
	bad := map[string]string{
		"unknown key":     "platform: fake-snp\nverbose: true\ndevices:\n  - {label: a, shim: unix:/x, trust_anchors: [r]}\n",
		"unknown dev key": "devices:\n  - {label: a, shim: unix:/x, trust_anchors: [r], psk: x}\n",
		"bad platform":    "platform: sgx\ndevices:\n  - {label: a, shim: unix:/x, trust_anchors: [r]}\n",
		"no devices":      "platform: fake-snp\n",
		"no anchors":      "devices:\n  - {label: a, shim: unix:/x}\n",
		"bad shim":        "devices:\n  - {label: a, shim: nowhere, trust_anchors: [r]}\n",
		"bad vsock":       "devices:\n  - {label: a, shim: \"vsock:x:1\", trust_anchors: [r]}\n",
		"repeated label":  "devices:\n  - {label: a, shim: unix:/x, trust_anchors: [r]}\n  - {label: a, shim: unix:/y, trust_anchors: [r]}\n",
		"no label":        "devices:\n  - {shim: unix:/x, trust_anchors: [r]}\n",
	}
	for name, y := range bad {
		if _, err := ParseConfig([]byte(y), ""); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: ParseConfig = %v, want ErrConfig", name, err)
		}
	}
	if _, err := LoadConfig("/nonexistent/guest.yaml"); !errors.Is(err, ErrConfig) {
		t.Fatalf("LoadConfig of a missing file: %v", err)
	}
}

// TestBootBindingTPM: on a vTPM the policy and each device's evidence
// digest are extended and the event log replays against the quoted PCR.
func TestBootBindingTPM(t *testing.T) {
	cfg, _ := twoDevices(t, false)
	att, err := platform.NewFakeTPM(platform.Options{})
	if err != nil {
		t.Fatalf("fake TPM: %v", err)
	}
	defer att.Close()
	rep, err := AttestWith(ctxT(t), cfg, att, []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	var pr platform.Report
	if err := pr.UnmarshalBinary(rep.Platform.Report); err != nil {
		t.Fatal(err)
	}
	if rep.ParsedBody().BootBinding != evidence.BootBindingExtended || len(pr.EventLog) != 3 {
		t.Fatalf("platform: %q, %d events", rep.ParsedBody().BootBinding, len(pr.EventLog))
	}
	for i, b := range rep.ParsedBody().DeviceBytes() {
		d := evidence.EvidenceDigest(b)
		if !bytes.Equal(pr.EventLog[i+1].Digest, d[:]) {
			t.Fatalf("event %d is not the digest of device %d's evidence", i+1, i)
		}
	}
	if err := vplatform.VerifyReport(&pr, vplatform.TrustAnchors{}, rep.UserData()); err != nil {
		t.Fatalf("VerifyReport: %v", err)
	}
}
