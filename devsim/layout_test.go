package devsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/secchan"
)

const sampleLayout = `
# a device model without an immutable-ROM block
- index: 2
  type: mutable-firmware
  value: "fw 2.0"
- index: 1
  type: hardware-config
  value: "x8"
- index: 7
  type: mutable-firmware-svn
  value: "svn 3"
`

func TestParseMeasurementLayout(t *testing.T) {
	m, err := ParseMeasurementLayout([]byte(sampleLayout))
	if err != nil {
		t.Fatal(err)
	}
	got := m.Measurements()
	want := []secchan.RawMeasurement{
		{Index: 1, Type: secchan.MeasTypeHardwareConfig, Value: []byte("x8")},
		{Index: 2, Type: secchan.MeasTypeMutableFirmware, Value: []byte("fw 2.0")},
		{Index: 7, Type: secchan.MeasTypeSVN, Value: []byte("svn 3")},
	}
	if len(got) != len(want) {
		t.Fatalf("%d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Index != want[i].Index || got[i].Type != want[i].Type || string(got[i].Value) != string(want[i].Value) {
			t.Errorf("block %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Set still changes a block of a loaded layout.
	if err := m.Set(7, []byte("svn 4")); err != nil || string(m.Measurements()[2].Value) != "svn 4" {
		t.Fatalf("Set: %v", err)
	}
	if err := m.Set(3, []byte("x")); err == nil {
		t.Fatal("Set of an index the layout lacks succeeded")
	}
}

func TestParseMeasurementLayoutRefused(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"empty", "", "empty"},
		{"empty list", "[]", "at least one block"},
		{"not a list", "index: 1", "line 1"},
		{"unknown key", "- index: 1\n  type: mutable-firmware\n  value: a\n  digest: b\n", `unknown key "digest"`},
		{"no index", "- type: mutable-firmware\n  value: a\n", "block 1 has no index"},
		{"index 0", "- index: 0\n  type: mutable-firmware\n  value: a\n", "index 0"},
		{"index 255", "- index: 255\n  type: mutable-firmware\n  value: a\n", "index 255"},
		{"negative index", "- index: -1\n  type: mutable-firmware\n  value: a\n", "index -1"},
		{"unknown type", "- index: 1\n  type: rom\n  value: a\n", `type "rom" is not one of immutable-rom, mutable-firmware`},
		{"empty value", "- index: 1\n  type: mutable-firmware\n  value: \"\"\n", "value of 0 bytes"},
		{"long value", "- index: 1\n  type: mutable-firmware\n  value: " + strings.Repeat("a", MaxMeasurementValue+1) + "\n", "value of 4097 bytes"},
		{"repeated index", "- index: 3\n  type: mutable-firmware\n  value: a\n- index: 3\n  type: hardware-config\n  value: b\n", "index 3 appears twice"},
		{"two documents", "- index: 1\n  type: mutable-firmware\n  value: a\n---\n- index: 2\n", "more than one YAML document"},
		{"oversize", strings.Repeat("#", MaxLayoutFileBytes+1), "more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMeasurementLayout([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestNewMeasurementsFromRefused(t *testing.T) {
	for _, b := range [][]secchan.RawMeasurement{
		nil,
		{{Index: 0xFF, Type: 1, Value: []byte("a")}},
		{{Index: 1, Type: secchan.MeasTypeMutableFirmware | secchan.MeasTypeRawBitStream, Value: []byte("a")}},
		{{Index: 1, Type: 11, Value: []byte("a")}},
	} {
		if _, err := NewMeasurementsFrom(b); err == nil {
			t.Errorf("%+v accepted", b)
		}
	}
	// The store keeps its own copy of the values.
	v := []byte("fw")
	m, err := NewMeasurementsFrom([]secchan.RawMeasurement{{Index: 1, Type: 1, Value: v}})
	if err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	if string(m.Measurements()[0].Value) != "fw" {
		t.Fatal("the store shares the caller's value")
	}
}

func TestLoadMeasurementLayout(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "layout.yaml")
	if err := os.WriteFile(p, []byte(sampleLayout), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := LoadMeasurementLayout(p); err != nil || len(m.Measurements()) != 3 {
		t.Fatalf("LoadMeasurementLayout: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMeasurementLayout(big); err == nil || !strings.Contains(err.Error(), "big.yaml") {
		t.Fatalf("a 1 MiB file: %v", err)
	}
	if _, err := LoadMeasurementLayout(filepath.Join(dir, "none.yaml")); err == nil {
		t.Fatal("a missing file loaded")
	}
}

// FuzzParseMeasurementLayout: no input panics, and whatever is accepted
// is a valid store (distinct indices in order, values within bounds).
func FuzzParseMeasurementLayout(f *testing.F) {
	f.Add([]byte(sampleLayout))
	f.Add([]byte("- index: 1\n  type: immutable-rom\n  value: x\n"))
	f.Add([]byte("[{index: 1, type: informational, value: x}]"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := ParseMeasurementLayout(doc)
		if err != nil {
			return
		}
		bs := m.Measurements()
		for i, b := range bs {
			if b.Index == 0 || b.Index == 0xFF || len(b.Value) == 0 || len(b.Value) > MaxMeasurementValue || b.Type > 10 {
				t.Fatalf("accepted block %+v", b)
			}
			if i > 0 && bs[i-1].Index >= b.Index {
				t.Fatalf("blocks out of order: %d then %d", bs[i-1].Index, b.Index)
			}
		}
	})
}
