package devsim

// The emulated function's memory configuration, the part of its config
// space a TDISP interface report describes: two 64-bit memory BARs (BAR0
// for registers, BAR2 holding the MSI-X table and PBA) and an MSI-X
// capability. The host may write BARs (sizing and placing them), the
// command register and MSI-X Message Control, as it does on a real
// function; every write that changes one of them is a configuration
// change that the function's config hooks hear (a locked TDI goes to
// ERROR on it).

import (
	"encoding/binary"
	"fmt"
)

// Memory layout of the emulated function.
const (
	RegCommand  = 0x04
	RegBAR0     = 0x10
	RegBAR2     = 0x18
	MSIXOffset  = 0x40 // MSI-X capability in the standard capability list
	BAR0Size    = 64 << 10
	BAR2Size    = 8 << 10
	MSIXEntries = 4
	// MSI-X table at BAR2 offset 0, PBA at BAR2 offset 0x1000.
	MSIXTableOffset = 0
	MSIXPBAOffset   = 0x1000

	// DefaultBAR0 and DefaultBAR2 are where New places the BARs.
	DefaultBAR0 = 0xE000_0000
	DefaultBAR2 = 0xE001_0000

	barMem64       = 0x4 // memory BAR, 64-bit, not prefetchable
	cmdMemorySpace = 0x2
	capIDMSIX      = 0x11
	statusCapList  = 0x10
	msixBIR        = 2
)

// initMemoryConfig lays out the BARs and the MSI-X capability.
func (f *Function) initMemoryConfig() {
	s := f.static[:]
	le := binary.LittleEndian
	le.PutUint16(s[RegCommand:], cmdMemorySpace)
	s[0x06] |= statusCapList
	s[0x34] = MSIXOffset
	le.PutUint64(s[RegBAR0:], DefaultBAR0|barMem64)
	le.PutUint64(s[RegBAR2:], DefaultBAR2|barMem64)
	// MSI-X: ID, next 0, Message Control = table size - 1; table and PBA
	// offsets with BIR 2.
	le.PutUint16(s[MSIXOffset:], capIDMSIX)
	le.PutUint16(s[MSIXOffset+2:], MSIXEntries-1)
	le.PutUint32(s[MSIXOffset+4:], MSIXTableOffset|msixBIR)
	le.PutUint32(s[MSIXOffset+8:], MSIXPBAOffset|msixBIR)
}

// writableConfig applies a host write to the registers the host may
// change and says which one changed ("" if none did); other writes are
// ignored, as writes to read-only registers are. Called with f.mu held.
func (f *Function) writableConfig(off int, v uint32) string {
	s := f.static[:]
	le := binary.LittleEndian
	old := le.Uint32(s[off:])
	var name string
	switch off {
	case RegCommand:
		v = old&0xFFFF0000 | v&0x0406 // memory space, bus master, interrupt disable
		name = "command register"
	case RegBAR0, RegBAR2:
		size := uint32(BAR0Size)
		if off == RegBAR2 {
			size = BAR2Size
		}
		v = v&^(size-1) | barMem64
		name = fmt.Sprintf("BAR%d", (off-RegBAR0)/4)
	case RegBAR0 + 4, RegBAR2 + 4:
		name = fmt.Sprintf("BAR%d upper half", (off-RegBAR0)/4-1)
	case MSIXOffset:
		v = old&0x07FFFFFF | v&0xC0000000 // enable and function mask
		name = "MSI-X Message Control"
	default:
		return ""
	}
	if v == old {
		return ""
	}
	le.PutUint32(s[off:], v)
	return name
}

// WithConfigHook makes h hear every change the host makes to the BARs,
// the command register or MSI-X Message Control, after the write.
func WithConfigHook(h func(what string)) Option {
	return func(f *Function) { f.configHooks = append(f.configHooks, h) }
}

// MemoryConfig is the function's memory configuration as it is now.
type MemoryConfig struct {
	Command     uint16
	BAR0, BAR2  uint64 // base addresses
	MSIXControl uint16
}

// MemoryConfig reads the BARs, the command register and MSI-X Message
// Control.
func (f *Function) MemoryConfig() MemoryConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.static[:]
	le := binary.LittleEndian
	return MemoryConfig{
		Command:     le.Uint16(s[RegCommand:]),
		BAR0:        le.Uint64(s[RegBAR0:]) &^ 0xF,
		BAR2:        le.Uint64(s[RegBAR2:]) &^ 0xF,
		MSIXControl: le.Uint16(s[MSIXOffset+2:]),
	}
}
