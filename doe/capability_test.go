package doe_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/devattest/devattest/doe"
)

// byteConfig is a ConfigSpace over a plain byte array, with a read counter
// so that tests can bound how much a walk reads.
type byteConfig struct {
	b       [doe.ConfigSpaceSize]byte
	reads   int
	failOff int // ReadConfig32 at this offset fails (0: never)
}

func (c *byteConfig) ReadConfig32(off int) (uint32, error) {
	c.reads++
	if c.reads > 4096 {
		return 0, errors.New("fake: more reads than config space has DWs; the walk does not terminate")
	}
	if off < 0 || off > doe.ConfigSpaceSize-4 || off%4 != 0 {
		return 0, fmt.Errorf("fake: bad offset %#x", off)
	}
	if c.failOff != 0 && off == c.failOff {
		return 0, errors.New("fake: read failed")
	}
	return binary.LittleEndian.Uint32(c.b[off:]), nil
}

func (c *byteConfig) WriteConfig32(off int, v uint32) error {
	return errors.New("fake: read-only")
}

// cap writes an extended capability header.
func (c *byteConfig) cap(off int, id uint16, version uint8, next int) *byteConfig {
	binary.LittleEndian.PutUint32(c.b[off:], uint32(id)|uint32(version&0xF)<<16|uint32(next)<<20)
	return c
}

func (c *byteConfig) raw(off int, v uint32) *byteConfig {
	binary.LittleEndian.PutUint32(c.b[off:], v)
	return c
}

func TestWalkExtCaps(t *testing.T) {
	cs := (&byteConfig{}).
		cap(0x100, 0x0003, 1, 0x150). // DSN
		cap(0x150, doe.ExtCapIDDOE, 2, 0x200).
		cap(0x200, 0x0001, 2, 0x180). // AER; pointers may go backwards
		cap(0x180, doe.ExtCapIDDOE, 1, 0xFE0).
		cap(0xFE0, 0x000B, 1, 0) // VSEC, last
	caps, err := doe.WalkExtCaps(cs)
	if err != nil {
		t.Fatalf("WalkExtCaps: %v", err)
	}
	want := []doe.ExtCap{
		{Offset: 0x100, ID: 0x0003, Version: 1},
		{Offset: 0x150, ID: doe.ExtCapIDDOE, Version: 2},
		{Offset: 0x200, ID: 0x0001, Version: 2},
		{Offset: 0x180, ID: doe.ExtCapIDDOE, Version: 1},
		{Offset: 0xFE0, ID: 0x000B, Version: 1},
	}
	if !slices.Equal(caps, want) {
		t.Fatalf("WalkExtCaps = %+v\nwant %+v", caps, want)
	}
	does, err := doe.FindDOE(cs)
	if err != nil {
		t.Fatalf("FindDOE: %v", err)
	}
	if !slices.Equal(does, []doe.ExtCap{want[1], want[3]}) {
		t.Fatalf("FindDOE = %+v", does)
	}
}

func TestWalkExtCapsVersionBits(t *testing.T) {
	// Version is bits 19:16 only; ID is bits 15:0.
	cs := (&byteConfig{}).raw(0x100, 0xFFE<<20|0xF<<16|0xFFFF)
	cs.raw(0xFFC, 0x0000002E|3<<16) // DOE at 0xFFC would run past the end
	caps, err := doe.WalkExtCaps(cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 2 || caps[0] != (doe.ExtCap{Offset: 0x100, ID: 0xFFFF, Version: 15}) || caps[1] != (doe.ExtCap{Offset: 0xFFC, ID: doe.ExtCapIDDOE, Version: 3}) {
		t.Fatalf("WalkExtCaps = %+v", caps)
	}
	// 0xFFE masks to 0xFFC; a DOE capability there has no room for its
	// registers.
	if _, err := doe.FindDOE(cs); !errors.Is(err, doe.ErrConfigSpace) {
		t.Fatalf("FindDOE with DOE at 0xffc: err = %v, want ErrConfigSpace", err)
	}
	// The last offset that fits all six DOE registers.
	cs = (&byteConfig{}).cap(0x100, 1, 1, 0xFE8).cap(0xFE8, doe.ExtCapIDDOE, 1, 0)
	if got, err := doe.FindDOE(cs); err != nil || len(got) != 1 || got[0].Offset != 0xFE8 {
		t.Fatalf("FindDOE with DOE at 0xfe8 = %+v, %v", got, err)
	}
	cs = (&byteConfig{}).cap(0x100, 1, 1, 0xFEC).cap(0xFEC, doe.ExtCapIDDOE, 1, 0)
	if got, err := doe.FindDOE(cs); !errors.Is(err, doe.ErrConfigSpace) {
		t.Fatalf("FindDOE with DOE at 0xfec = %+v, %v; want ErrConfigSpace", got, err)
	}
}

func TestWalkExtCapsHostile(t *testing.T) {
	cases := []struct {
		name   string
		cs     *byteConfig
		nCaps  int // capabilities returned with the error
		errMsg string
	}{
		{"loop to self", (&byteConfig{}).cap(0x100, 1, 1, 0x100), 1, "loop"},
		{"loop back", (&byteConfig{}).cap(0x100, 1, 1, 0x140).cap(0x140, 2, 1, 0x180).cap(0x180, 3, 1, 0x140), 3, "loop"},
		{"pointer below 0x100", (&byteConfig{}).cap(0x100, 1, 1, 0x40), 1, "out of range"},
		{"pointer 0xfc", (&byteConfig{}).cap(0x100, 1, 1, 0x0FC), 1, "out of range"},
		{"all ones at 0x100", (&byteConfig{}).raw(0x100, 0xFFFFFFFF), 0, "0xffffffff"},
		{"all ones later", (&byteConfig{}).cap(0x100, 1, 1, 0x200).raw(0x200, 0xFFFFFFFF), 1, "0xffffffff"},
		{"zero header later", (&byteConfig{}).cap(0x100, 1, 1, 0x200), 1, "0x00000000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caps, err := doe.WalkExtCaps(tc.cs)
			if !errors.Is(err, doe.ErrConfigSpace) {
				t.Fatalf("WalkExtCaps = %+v, %v; want ErrConfigSpace", caps, err)
			}
			if len(caps) != tc.nCaps {
				t.Errorf("returned %d capabilities with the error, want %d", len(caps), tc.nCaps)
			}
			if tc.cs.reads > 16 {
				t.Errorf("walk made %d reads", tc.cs.reads)
			}
			if _, err := doe.FindDOE(tc.cs); !errors.Is(err, doe.ErrConfigSpace) {
				t.Errorf("FindDOE: err = %v, want ErrConfigSpace", err)
			}
			if err != nil && !containsFold(err.Error(), tc.errMsg) {
				t.Errorf("error %q does not mention %q", err, tc.errMsg)
			}
		})
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// The low two bits of the next pointer are reserved and masked (PCIe
// §7.6.3: software must mask them), so an "unaligned" pointer lands on the
// DW it names and is never used as an unaligned offset.
func TestWalkExtCapsUnalignedPointer(t *testing.T) {
	cs := (&byteConfig{}).cap(0x100, 1, 1, 0x153).cap(0x150, doe.ExtCapIDDOE, 2, 0)
	caps, err := doe.WalkExtCaps(cs)
	if err != nil {
		t.Fatalf("WalkExtCaps: %v", err)
	}
	if len(caps) != 2 || caps[1].Offset != 0x150 {
		t.Fatalf("WalkExtCaps = %+v", caps)
	}
	for _, c := range caps {
		if c.Offset%4 != 0 {
			t.Fatalf("unaligned offset %#x", c.Offset)
		}
	}
	// 0x102 masks to 0x100: a loop, not an unaligned read.
	cs = (&byteConfig{}).cap(0x100, 1, 1, 0x102)
	if _, err := doe.WalkExtCaps(cs); !errors.Is(err, doe.ErrConfigSpace) {
		t.Fatalf("pointer 0x102 from 0x100: err = %v, want ErrConfigSpace", err)
	}
}

func TestWalkExtCapsLongChain(t *testing.T) {
	// Every DW from 0x100 to 0xFFC is a capability: the longest possible
	// list ends without error and without revisiting anything.
	cs := &byteConfig{}
	for off := 0x100; off < doe.ConfigSpaceSize; off += 4 {
		next := off + 4
		if next == doe.ConfigSpaceSize {
			next = 0
		}
		cs.cap(off, 0x0003, 1, next)
	}
	caps, err := doe.WalkExtCaps(cs)
	if err != nil || len(caps) != (doe.ConfigSpaceSize-0x100)/4 {
		t.Fatalf("long chain: %d caps, %v", len(caps), err)
	}
	if cs.reads != len(caps) {
		t.Errorf("%d reads for %d capabilities", cs.reads, len(caps))
	}
	if _, err := doe.FindDOE(cs); !errors.Is(err, doe.ErrNoCapability) {
		t.Errorf("FindDOE: %v, want ErrNoCapability", err)
	}
}

func TestFindDOENone(t *testing.T) {
	// No DOE in a normal list.
	cs := (&byteConfig{}).cap(0x100, 0x0003, 1, 0x150).cap(0x150, 0x0001, 2, 0)
	if got, err := doe.FindDOE(cs); !errors.Is(err, doe.ErrNoCapability) || got != nil {
		t.Fatalf("FindDOE = %+v, %v; want ErrNoCapability", got, err)
	}
	// Empty list: header 0 at 0x100 is valid and has no capabilities.
	empty := &byteConfig{}
	caps, err := doe.WalkExtCaps(empty)
	if err != nil || len(caps) != 0 {
		t.Fatalf("empty list: %+v, %v", caps, err)
	}
	if empty.reads != 1 {
		t.Errorf("empty list: %d reads", empty.reads)
	}
	if _, err := doe.FindDOE(empty); !errors.Is(err, doe.ErrNoCapability) {
		t.Fatalf("empty list: FindDOE err = %v, want ErrNoCapability", err)
	}
	if _, err := doe.FindDOE(empty); errors.Is(err, doe.ErrConfigSpace) {
		t.Fatalf("empty list is not a config space failure: %v", err)
	}
}

func TestWalkExtCapsReadError(t *testing.T) {
	cs := (&byteConfig{failOff: 0x150}).cap(0x100, 1, 1, 0x150).cap(0x150, doe.ExtCapIDDOE, 1, 0)
	caps, err := doe.WalkExtCaps(cs)
	if err == nil || len(caps) != 1 {
		t.Fatalf("WalkExtCaps = %+v, %v; want the read error after one capability", caps, err)
	}
	if !containsFold(err.Error(), "0x150") || !containsFold(err.Error(), "read failed") {
		t.Errorf("error %q does not say where and why", err)
	}
	if _, err := doe.FindDOE(cs); err == nil || errors.Is(err, doe.ErrNoCapability) {
		t.Errorf("FindDOE with a failing read: err = %v", err)
	}
}

func TestDOERegisterLayout(t *testing.T) {
	if doe.ExtCapIDDOE != 0x2E || doe.RegCapabilities != 4 || doe.RegControl != 8 || doe.RegStatus != 0xC ||
		doe.RegWriteMailbox != 0x10 || doe.RegReadMailbox != 0x14 || doe.CapabilitySize != 0x18 {
		t.Error("DOE register offsets do not match PCIe §7.9.24")
	}
	if doe.ControlAbort != 1 || doe.ControlIntEnable != 2 || doe.ControlGo != 1<<31 ||
		doe.StatusBusy != 1 || doe.StatusIntStatus != 2 || doe.StatusError != 4 || doe.StatusReady != 1<<31 {
		t.Error("DOE register bits do not match PCIe §7.9.24")
	}
}
