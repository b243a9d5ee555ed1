package devsim

import (
	"fmt"
	"slices"
	"sync"

	"github.com/devattest/devattest/secchan"
)

// The emulated device's measurement values, fixed so that tests can compute
// the digests a verifier should expect.
const (
	MeasurementROM            = "devsim immutable ROM 1.0"
	MeasurementFirmware       = "devsim firmware 1.0.0"
	MeasurementHardwareConfig = "devsim hardware configuration: x4, IDE, 1 VF"
	MeasurementFirmwareConfig = "devsim firmware configuration: default"
	MeasurementVersion        = "devsim 1.0"
)

// Measurements is the device's measurement store: indices 1 (immutable
// ROM), 2 (mutable firmware), 3 (hardware configuration), 4 (firmware
// configuration) and 5 (version, a readable string). It implements
// secchan.MeasurementProvider and is safe for concurrent use.
type Measurements struct {
	mu     sync.Mutex
	blocks []secchan.RawMeasurement // ordered by index
}

// NewMeasurements returns a store with the default values.
func NewMeasurements() *Measurements {
	return &Measurements{blocks: []secchan.RawMeasurement{
		{Index: 1, Type: secchan.MeasTypeImmutableROM, Value: []byte(MeasurementROM)},
		{Index: 2, Type: secchan.MeasTypeMutableFirmware, Value: []byte(MeasurementFirmware)},
		{Index: 3, Type: secchan.MeasTypeHardwareConfig, Value: []byte(MeasurementHardwareConfig)},
		{Index: 4, Type: secchan.MeasTypeFirmwareConfig, Value: []byte(MeasurementFirmwareConfig)},
		{Index: 5, Type: secchan.MeasTypeVersion, Value: []byte(MeasurementVersion)},
	}}
}

// Measurements implements secchan.MeasurementProvider with a copy of the
// current values.
func (m *Measurements) Measurements() []secchan.RawMeasurement {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]secchan.RawMeasurement, len(m.blocks))
	for i, b := range m.blocks {
		out[i] = secchan.RawMeasurement{Index: b.Index, Type: b.Type, Value: slices.Clone(b.Value)}
	}
	return out
}

// Set changes the value at index, as a firmware update or a configuration
// change would; the next GET_MEASUREMENTS reports it.
func (m *Measurements) Set(index uint8, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.blocks {
		if m.blocks[i].Index == index {
			m.blocks[i].Value = slices.Clone(value)
			return nil
		}
	}
	return fmt.Errorf("devsim: no measurement at index %d", index)
}
