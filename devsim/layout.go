package devsim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/devattest/devattest/doe/yamlerr"
	"github.com/devattest/devattest/secchan"
)

// Bounds of a measurement layout file: a layout is a handful of blocks,
// so anything larger is a mistake, refused before it is parsed.
const (
	MaxLayoutFileBytes  = 64 << 10
	MaxMeasurementValue = 4096
)

// MeasurementTypes names the DMTF measurement value types (DSP0274 Table
// 54) as the EAT-DA draft's component-type names spell them, the names a
// layout file uses.
var MeasurementTypes = map[string]uint8{
	"immutable-rom":                   secchan.MeasTypeImmutableROM,
	"mutable-firmware":                secchan.MeasTypeMutableFirmware,
	"hardware-config":                 secchan.MeasTypeHardwareConfig,
	"firmware-config":                 secchan.MeasTypeFirmwareConfig,
	"freeform-measurement-manifest":   secchan.MeasTypeManifest,
	"device-mode":                     secchan.MeasTypeDeviceMode,
	"mutable-firmware-version":        secchan.MeasTypeVersion,
	"mutable-firmware-svn":            secchan.MeasTypeSVN,
	"hash-extend-measurement":         8,
	"informational":                   9,
	"structured-measurement-manifest": 10,
}

// layoutBlock is one entry of a layout file.
type layoutBlock struct {
	Index *int   `yaml:"index"`
	Type  string `yaml:"type"`
	Value string `yaml:"value"`
}

// NewMeasurementsFrom returns a store holding blocks instead of the
// default five, for emulating a device model whose measurement layout
// differs (another set of types, more blocks). Indices must be 1..254
// and distinct, types DMTF value types without the raw-bit-stream bit,
// values 1 to MaxMeasurementValue bytes.
func NewMeasurementsFrom(blocks []secchan.RawMeasurement) (*Measurements, error) {
	if len(blocks) == 0 {
		return nil, errors.New("devsim: a measurement layout needs at least one block")
	}
	out := make([]secchan.RawMeasurement, len(blocks))
	for i, b := range blocks {
		switch {
		case b.Index == 0 || b.Index == 0xFF:
			return nil, fmt.Errorf("devsim: measurement index %d is reserved (use 1 to 254)", b.Index)
		case b.Type&secchan.MeasTypeRawBitStream != 0 || b.Type > 10:
			return nil, fmt.Errorf("devsim: measurement %d: type %d is not a DMTF measurement value type (0 to 10)", b.Index, b.Type)
		case len(b.Value) == 0 || len(b.Value) > MaxMeasurementValue:
			return nil, fmt.Errorf("devsim: measurement %d: value of %d bytes (want 1 to %d)", b.Index, len(b.Value), MaxMeasurementValue)
		}
		out[i] = secchan.RawMeasurement{Index: b.Index, Type: b.Type, Value: slices.Clone(b.Value)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	for i := 1; i < len(out); i++ {
		if out[i].Index == out[i-1].Index {
			return nil, fmt.Errorf("devsim: measurement index %d appears twice", out[i].Index)
		}
	}
	return &Measurements{blocks: out}, nil
}

// ParseMeasurementLayout reads a layout: a YAML list of blocks, each with
// index, type (a name from MeasurementTypes) and value (the text the
// device measures; the responder reports its digest, or the text itself
// when raw values are asked for).
func ParseMeasurementLayout(doc []byte) (*Measurements, error) {
	if len(doc) > MaxLayoutFileBytes {
		return nil, fmt.Errorf("devsim: measurement layout of more than %d bytes", MaxLayoutFileBytes)
	}
	var entries []layoutBlock
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&entries); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("devsim: the measurement layout is empty")
		}
		return nil, fmt.Errorf("devsim: measurement layout: %s", yamlerr.Explain(doc, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("devsim: measurement layout: more than one YAML document")
	}
	if len(entries) > 254 {
		return nil, fmt.Errorf("devsim: measurement layout of %d blocks (at most 254)", len(entries))
	}
	blocks := make([]secchan.RawMeasurement, len(entries))
	for i, e := range entries {
		if e.Index == nil {
			return nil, fmt.Errorf("devsim: measurement layout: block %d has no index", i+1)
		}
		if *e.Index < 1 || *e.Index > 254 {
			return nil, fmt.Errorf("devsim: measurement layout: block %d: index %d (use 1 to 254)", i+1, *e.Index)
		}
		t, ok := MeasurementTypes[e.Type]
		if !ok {
			return nil, fmt.Errorf("devsim: measurement layout: block %d: type %q is not one of %s", i+1, e.Type, typeNames())
		}
		blocks[i] = secchan.RawMeasurement{Index: uint8(*e.Index), Type: t, Value: []byte(e.Value)}
	}
	return NewMeasurementsFrom(blocks)
}

// LoadMeasurementLayout reads a layout file, at most MaxLayoutFileBytes.
func LoadMeasurementLayout(path string) (*Measurements, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, MaxLayoutFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := ParseMeasurementLayout(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func typeNames() string {
	names := make([]string, 0, len(MeasurementTypes))
	for n := range MeasurementTypes {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return int(MeasurementTypes[a]) - int(MeasurementTypes[b]) })
	return strings.Join(names, ", ")
}
