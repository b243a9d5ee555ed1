package doe

import (
	"fmt"
)

// ConfigSpace is a function's PCIe configuration space, accessed in aligned
// 32-bit units. Implementations: Linux sysfs (SysfsConfigSpace) and the
// emulated function in devsim.
type ConfigSpace interface {
	ReadConfig32(off int) (uint32, error)
	WriteConfig32(off int, v uint32) error
}

// ConfigSpaceSize is the size of PCIe extended configuration space.
const ConfigSpaceSize = 4096

// Extended capabilities start at 0x100 (PCIe Base 6.x §7.6.3).
const extCapStart = 0x100

// ExtCapIDDOE is the DOE extended capability ID (PCIe Base 6.x §7.9.24).
const ExtCapIDDOE = 0x002E

// DOE register offsets from the capability base and their bits
// (PCIe Base 6.x §7.9.24).
const (
	RegCapabilities = 0x04
	RegControl      = 0x08
	RegStatus       = 0x0C
	RegWriteMailbox = 0x10
	RegReadMailbox  = 0x14
	CapabilitySize  = 0x18

	ControlAbort     uint32 = 1 << 0
	ControlIntEnable uint32 = 1 << 1
	ControlGo        uint32 = 1 << 31

	StatusBusy      uint32 = 1 << 0
	StatusIntStatus uint32 = 1 << 1
	StatusError     uint32 = 1 << 2
	StatusReady     uint32 = 1 << 31 // Data Object Ready
)

// ExtCap is one entry of the extended capability list.
type ExtCap struct {
	Offset  int
	ID      uint16
	Version int
}

// WalkExtCaps reads the extended capability list from 0x100. It guards
// against a hostile or broken list: pointers below 0x100 (other than the
// terminating 0), unaligned or past the end, and loops are errors.
func WalkExtCaps(cs ConfigSpace) ([]ExtCap, error) {
	var caps []ExtCap
	seen := make(map[int]bool)
	for off := extCapStart; off != 0; {
		if off < extCapStart || off > ConfigSpaceSize-4 || off%4 != 0 {
			return caps, fmt.Errorf("%w: extended capability pointer 0x%x is out of range", ErrConfigSpace, off)
		}
		if seen[off] {
			return caps, fmt.Errorf("%w: extended capability list loops at 0x%x", ErrConfigSpace, off)
		}
		seen[off] = true
		hdr, err := cs.ReadConfig32(off)
		if err != nil {
			return caps, fmt.Errorf("doe: reading extended capability header at 0x%x: %w", off, err)
		}
		if hdr == 0 || hdr == 0xFFFFFFFF {
			// 0: no extended capabilities at all (only valid at 0x100);
			// all ones: the function is gone or the read failed.
			if off == extCapStart && hdr == 0 {
				return caps, nil
			}
			return caps, fmt.Errorf("%w: extended capability header at 0x%x reads 0x%08x", ErrConfigSpace, off, hdr)
		}
		caps = append(caps, ExtCap{Offset: off, ID: uint16(hdr), Version: int(hdr>>16) & 0xF})
		off = int(hdr>>20) & 0xFFC
	}
	return caps, nil
}

// FindDOE returns every DOE capability of the function, in list order.
func FindDOE(cs ConfigSpace) ([]ExtCap, error) {
	caps, err := WalkExtCaps(cs)
	if err != nil {
		return nil, err
	}
	var doe []ExtCap
	for _, c := range caps {
		if c.ID == ExtCapIDDOE {
			if c.Offset+CapabilitySize > ConfigSpaceSize {
				return nil, fmt.Errorf("%w: DOE capability at 0x%x runs past the end of config space", ErrConfigSpace, c.Offset)
			}
			doe = append(doe, c)
		}
	}
	if len(doe) == 0 {
		return nil, ErrNoCapability
	}
	return doe, nil
}
