package capture_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/secchan"
)

// A key log is created 0600; an existing one with a looser mode, a
// symlink or a directory is refused with the reason; lines parse back.
func TestKeyLogFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys.log")
	k, err := capture.CreateKeyLog(p)
	if err != nil {
		t.Fatal(err)
	}
	k.For("0000:01:00.1")(secchan.SessionSecrets{SessionID: 0xfffefffe, Secret: []byte{1, 2, 3}, Version: secchan.V12,
		BaseHash: secchan.HashSHA384, AEAD: secchan.AEADAES256GCM, DHE: secchan.DHESECP384R1, TH1: make([]byte, 48)})
	k.For("")(secchan.SessionSecrets{SessionID: 0xffffffff, PSK: true, Secret: []byte("TestPskData\x00"), Version: secchan.V13, BaseHash: secchan.HashSHA256})
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	es, err := capture.ParseKeyLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Device != "0000:01:00.1" || es[0].SessionID != 0xfffefffe || es[0].PSK || len(es[0].TH1) != 48 ||
		!es[1].PSK || string(es[1].Secret) != "TestPskData\x00" || es[1].Version != secchan.V13 {
		t.Fatalf("read back %+v", es)
	}
	if got := strings.Join(capture.SpdmDumpArgs(es), " "); got != "--dhe_secret 010203 --psk 5465737450736b4461746100" {
		t.Fatalf("spdm-dump args %q", got)
	}
	// Appending to the existing 0600 file works.
	if k, err = capture.CreateKeyLog(p); err != nil {
		t.Fatal(err)
	}
	k.Close()

	loose := filepath.Join(dir, "loose.log")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := capture.CreateKeyLog(loose); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("a 0644 key log: %v", err)
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := capture.CreateKeyLog(link); err == nil {
		t.Fatal("a symlink was followed")
	}
	if _, err := capture.CreateKeyLog(dir); err == nil {
		t.Fatal("a directory was accepted")
	}
}

func TestParseKeyLogErrors(t *testing.T) {
	for name, tc := range map[string]string{
		"unknown record": "CLIENT_RANDOM aa bb\n",
		"no secret":      "SESSION kind=dhe\n",
		"bad kind":       "SESSION kind=rsa secret=00\n",
		"bad hex":        "SESSION kind=dhe secret=zz\n",
		"repeated":       "SESSION kind=dhe kind=psk secret=00\n",
		"unknown field":  "SESSION kind=dhe secret=00 colour=red\n",
		"bad session":    "SESSION kind=dhe secret=00 session=0x1ffffffff\n",
		"huge secret":    "SESSION kind=dhe secret=" + strings.Repeat("00", 600) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := capture.ParseKeyLog(strings.NewReader("# comment\n\n" + tc))
			if err == nil || !strings.Contains(err.Error(), "line 3") {
				t.Fatalf("got %v, want an error naming line 3", err)
			}
		})
	}
	if _, err := capture.ParseKeyLog(strings.NewReader(strings.Repeat("#", 5<<20))); err == nil {
		t.Fatal("an oversized key log was read")
	}
}
