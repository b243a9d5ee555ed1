package capture_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/doe"
)

func corpusPcap(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "libspdm", name+".pcap"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Without a key log every secured record is marked as left encrypted,
// nothing else is a problem, and decoding reaches the end.
func TestDumpWithoutKeys(t *testing.T) {
	dm, err := capture.Decode(bytes.NewReader(corpusPcap(t, "v12-p384-aes256")), capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if dm.Problems != 0 || dm.Encrypted != 24 || len(dm.Records) != 56 {
		t.Fatalf("%d problems, %d encrypted, %d records", dm.Problems, dm.Encrypted, len(dm.Records))
	}
}

// A wrong secret matches no session (its verify data tells), and a
// tampered record is marked as failing decryption while the records
// before it still decode.
func TestDumpWrongKeyAndTamper(t *testing.T) {
	_, kl := loadCorpus(t, "v12-psk")
	keys, _ := capture.ParseKeyLog(strings.NewReader(strings.Replace(kl, "secret=54", "secret=55", 1)))
	dm, err := capture.Decode(bytes.NewReader(corpusPcap(t, "v12-psk")), capture.Options{KeyLog: keys})
	if err != nil {
		t.Fatal(err)
	}
	if dm.Encrypted != 12 {
		t.Fatalf("wrong PSK: %d records left encrypted, want 12", dm.Encrypted)
	}
	keys, _ = capture.ParseKeyLog(strings.NewReader(kl))
	b := corpusPcap(t, "v12-psk")
	b[len(b)-20] ^= 1 // inside the last record's tag
	dm, err = capture.Decode(bytes.NewReader(b), capture.Options{KeyLog: keys})
	if err != nil {
		t.Fatal(err)
	}
	last := dm.Records[len(dm.Records)-1]
	if dm.Problems != 1 || !strings.Contains(last.Problem, "decryption failed") || !dm.Records[len(dm.Records)-2].Decrypted {
		t.Fatalf("%d problems, last record %+v", dm.Problems, last)
	}
}

// A capture cut in the middle returns the records before the cut and an
// error naming where.
func TestDumpCutFile(t *testing.T) {
	b := corpusPcap(t, "v12-psk")
	dm, err := capture.Decode(bytes.NewReader(b[:len(b)-5]), capture.Options{})
	if err == nil || dm == nil || len(dm.Records) != 41 {
		t.Fatalf("err %v, dump %v", err, dm)
	}
}

// The record bound holds: a capture longer than MaxRecords is read up to
// it, with an error saying so.
func TestDumpRecordBound(t *testing.T) {
	dm, err := capture.Decode(bytes.NewReader(corpusPcap(t, "v12-psk")), capture.Options{MaxRecords: 10})
	if err == nil || !strings.Contains(err.Error(), "more than 10 records") || len(dm.Records) != 10 {
		t.Fatalf("err %v, %d records", err, len(dm.Records))
	}
}

// MCTP captures (link type 291, as spdm-emu writes them with --trans
// MCTP): the 4-byte transport header, the message type, then SPDM.
func TestDumpMCTP(t *testing.T) {
	var buf bytes.Buffer
	w, err := doe.NewPcapWriter(&buf, doe.LinkTypeMCTP, doe.PcapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hdr := []byte{1, 0, 0, 0xC8}
	w.Write(time.Now(), append(append(hdr[:4:4], 5), 0x10, 0x84, 0, 0))
	w.Write(time.Now(), append(append(hdr[:4:4], 5), 0x10, 0x04, 0, 0, 0, 1, 0x00, 0x12))
	w.Write(time.Now(), append(append(hdr[:4:4], 6), 0xff, 0xff, 0xff, 0xff, 0, 0, 0x20, 0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dm, err := capture.Decode(&buf, capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if dm.LinkType != doe.LinkTypeMCTP || len(dm.Records) != 3 || dm.Problems != 0 ||
		dm.Records[0].Message != "GET_VERSION" || dm.Records[1].Message != "VERSION" || dm.Records[1].Dir != "rsp" || dm.Records[2].Encrypted == "" {
		t.Fatalf("%+v", dm)
	}
}
