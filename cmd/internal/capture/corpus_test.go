package capture_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/secchan"
)

// The golden corpus: spdm-emu's own captures (capture/testdata/libspdm),
// and the JSON that lists their records and secrets (secchan's copy).
var corpusCases = []string{"v11-p256-aes128", "v12-p384-aes256", "v12-psk", "v13-p384-chacha", "v12-ide-km"}

type corpusJSON struct {
	Messages []struct {
		Dir     string `json:"dir"`
		DOEType int    `json:"doe_type"`
		Hex     string `json:"hex"`
	} `json:"messages"`
	Sessions []struct {
		Type       string `json:"type"`
		DHESecret  string `json:"dhe_secret"`
		PSK        string `json:"psk"`
		KeyUpdates []any  `json:"key_updates"`
	} `json:"sessions"`
}

func loadCorpus(t *testing.T, name string) (*corpusJSON, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "secchan", "testdata", "libspdm", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpusJSON
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	// The key log, as a person would write it from spdm-emu's debug log:
	// only the kind and the secret of each session.
	var kl strings.Builder
	for _, s := range c.Sessions {
		if s.Type == "psk" {
			fmt.Fprintf(&kl, "SESSION kind=psk secret=%s\n", s.PSK)
		} else {
			fmt.Fprintf(&kl, "SESSION kind=dhe secret=%s\n", s.DHESecret)
		}
	}
	return &c, kl.String()
}

// Every corpus capture decodes fully with the corpus's secrets: every
// record parsed, every secured record decrypted (key updates included),
// each record's direction and DOE type as the JSON lists them, and each
// plain SPDM record named by its code.
func TestCorpusDecodesFully(t *testing.T) {
	for _, name := range corpusCases {
		t.Run(name, func(t *testing.T) {
			c, kl := loadCorpus(t, name)
			keys, err := capture.ParseKeyLog(strings.NewReader(kl))
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(filepath.Join("testdata", "libspdm", name+".pcap"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dm, err := capture.Decode(f, capture.Options{KeyLog: keys})
			if err != nil {
				t.Fatal(err)
			}
			if dm.Problems != 0 || dm.Encrypted != 0 {
				var sb strings.Builder
				capture.WriteText(&sb, dm)
				t.Fatalf("%d problems, %d left encrypted:\n%s", dm.Problems, dm.Encrypted, sb.String())
			}
			if len(dm.Records) != len(c.Messages) {
				t.Fatalf("%d records, JSON lists %d", len(dm.Records), len(c.Messages))
			}
			decrypted := 0
			protocol := map[int]string{0: "DOE Discovery", 1: "CMA/SPDM", 2: "Secured CMA/SPDM"}
			for i, m := range c.Messages {
				r := dm.Records[i]
				if r.Dir != m.Dir {
					t.Errorf("record %d: direction %s, JSON says %s", i+1, r.Dir, m.Dir)
				}
				want := protocol[m.DOEType]
				if m.DOEType == 1 {
					want = "SPDM"
				}
				if r.Protocol != want {
					t.Errorf("record %d: protocol %q, JSON's DOE type %d", i+1, r.Protocol, m.DOEType)
				}
				raw, _ := hex.DecodeString(m.Hex)
				if m.DOEType == 1 && r.Message != secchan.CodeName(raw[9]) {
					t.Errorf("record %d: %s, the bytes hold %s", i+1, r.Message, secchan.CodeName(raw[9]))
				}
				if m.DOEType == 2 {
					if !r.Decrypted || r.Message == "" {
						t.Errorf("record %d: secured record not decrypted", i+1)
					}
					decrypted++
				}
			}
			if decrypted == 0 {
				t.Fatal("no secured record checked")
			}
		})
	}
}
