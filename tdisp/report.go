package tdisp

// The device interface report (TDISP 1.0 DEVICE_INTERFACE_REPORT
// structure; pci_tdisp_device_interface_report_struct_t): what the device
// froze when it locked the interface. Fields, all little-endian:
//
//	INTERFACE_INFO u16, reserved u16, MSI_X_MESSAGE_CONTROL u16,
//	LNR_CONTROL u16, TPH_CONTROL u32, MMIO_RANGE_COUNT u32,
//	MMIO_RANGE[count] (FIRST_PAGE u64, NUMBER_OF_PAGES u32,
//	RANGE_ATTRIBUTES u16, RANGE_ID u16), DEVICE_SPECIFIC_INFO_LEN u32,
//	DEVICE_SPECIFIC_INFO.
//
// FIRST_PAGE is the 4 KiB page number of the range's address plus the
// MMIO_REPORTING_OFFSET the requester gave in LOCK_INTERFACE.

import (
	"encoding/binary"
	"fmt"
)

// INTERFACE_INFO bits.
const (
	InfoNoUpdateAfterLock uint16 = 0x01
	InfoDMAWithoutPASID   uint16 = 0x02
	InfoDMAWithPASID      uint16 = 0x04
	InfoATSSupported      uint16 = 0x08
	InfoPRSSupported      uint16 = 0x10
	infoKnown                    = 0x1F
)

var infoNames = []string{"NO_UPDATE_AFTER_LOCK", "DMA_WITHOUT_PASID", "DMA_WITH_PASID", "ATS_SUPPORTED", "PRS_SUPPORTED"}

// InfoNames names the INTERFACE_INFO bits set in f.
func InfoNames(f uint16) []string { return bitNames(uint32(f), infoNames) }

// InfoBit returns the INTERFACE_INFO bit of a name InfoNames gives.
func InfoBit(name string) (uint16, bool) {
	for i, n := range infoNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// MMIO range attribute bits.
const (
	AttrMSIXTable        uint16 = 0x01
	AttrMSIXPBA          uint16 = 0x02
	AttrNonTEEMem        uint16 = 0x04
	AttrMemAttrUpdatable uint16 = 0x08
	attrKnown                   = 0x0F
)

var attrNames = []string{"MSIX_TABLE", "MSIX_PBA", "IS_NON_TEE_MEM", "IS_MEM_ATTR_UPDATABLE"}

// AttrNames names the range attribute bits set in a.
func AttrNames(a uint16) []string { return bitNames(uint32(a), attrNames) }

// AttrBit returns the attribute bit of a name AttrNames gives.
func AttrBit(name string) (uint16, bool) {
	for i, n := range attrNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// PageSize is the unit of FIRST_PAGE and NUMBER_OF_PAGES.
const PageSize = 4096

// MMIORange is one MMIO_RANGE of the report.
type MMIORange struct {
	FirstPage  uint64
	Pages      uint32
	Attributes uint16
	RangeID    uint16
}

// Size is the range's size in bytes.
func (r MMIORange) Size() uint64 { return uint64(r.Pages) * PageSize }

const (
	reportFixed = 16
	rangeSize   = 16
	// MaxReportSize bounds a report: GET_DEVICE_INTERFACE_REPORT addresses
	// it with 16-bit offsets.
	MaxReportSize = 0xFFFF
)

// Report is the decoded device interface report.
type Report struct {
	InterfaceInfo      uint16
	MSIXMessageControl uint16
	LNRControl         uint16
	TPHControl         uint32
	Ranges             []MMIORange
	DeviceSpecific     []byte
}

// Marshal encodes the report.
func (r *Report) Marshal() []byte {
	le := binary.LittleEndian
	b := le.AppendUint16(nil, r.InterfaceInfo)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, r.MSIXMessageControl)
	b = le.AppendUint16(b, r.LNRControl)
	b = le.AppendUint32(b, r.TPHControl)
	b = le.AppendUint32(b, uint32(len(r.Ranges)))
	for _, m := range r.Ranges {
		b = le.AppendUint64(b, m.FirstPage)
		b = le.AppendUint32(b, m.Pages)
		b = le.AppendUint16(b, m.Attributes)
		b = le.AppendUint16(b, m.RangeID)
	}
	b = le.AppendUint32(b, uint32(len(r.DeviceSpecific)))
	return append(b, r.DeviceSpecific...)
}

func reportErr(field, format string, args ...any) error {
	return decodeErr("DEVICE_INTERFACE_REPORT structure", field, format, args...)
}

// ParseReport decodes a whole interface report: reserved fields and bits
// must be zero, the range count and device-specific length must fit the
// bytes exactly.
func ParseReport(b []byte) (*Report, error) {
	le := binary.LittleEndian
	if len(b) < reportFixed+4 {
		return nil, reportErr("", "%d bytes, want at least %d", len(b), reportFixed+4)
	}
	if len(b) > MaxReportSize {
		return nil, reportErr("", "%d bytes, more than %d", len(b), MaxReportSize)
	}
	r := &Report{
		InterfaceInfo:      le.Uint16(b),
		MSIXMessageControl: le.Uint16(b[4:]),
		LNRControl:         le.Uint16(b[6:]),
		TPHControl:         le.Uint32(b[8:]),
	}
	if r.InterfaceInfo&^infoKnown != 0 {
		return nil, reportErr("INTERFACE_INFO", "reserved bits in 0x%04x", r.InterfaceInfo)
	}
	if v := le.Uint16(b[2:]); v != 0 {
		return nil, reportErr("Reserved", "0x%04x, want 0", v)
	}
	n := le.Uint32(b[12:])
	rest := b[reportFixed:]
	if uint64(n)*rangeSize > uint64(len(rest)-4) {
		return nil, reportErr("MMIO_RANGE_COUNT", "%d ranges do not fit in %d bytes", n, len(rest))
	}
	r.Ranges = make([]MMIORange, n)
	for i := range r.Ranges {
		m := MMIORange{FirstPage: le.Uint64(rest), Pages: le.Uint32(rest[8:]), Attributes: le.Uint16(rest[12:]), RangeID: le.Uint16(rest[14:])}
		if m.Attributes&^attrKnown != 0 {
			return nil, reportErr(fmt.Sprintf("MMIO_RANGE[%d].RANGE_ATTRIBUTES", i), "reserved bits in 0x%04x", m.Attributes)
		}
		r.Ranges[i] = m
		rest = rest[rangeSize:]
	}
	dl := le.Uint32(rest)
	rest = rest[4:]
	if uint64(dl) != uint64(len(rest)) {
		return nil, reportErr("DEVICE_SPECIFIC_INFO_LEN", "%d, but %d bytes follow", dl, len(rest))
	}
	if dl > 0 {
		r.DeviceSpecific = append([]byte(nil), rest...)
	}
	return r, nil
}
