package devsim

// TDISP for the emulated VF: one TEE device interface whose report is
// built from the function's memory configuration (config.go) when it is
// locked, and which goes to ERROR when the host changes that
// configuration while it is locked or running. TDISP requests arrive as
// PCI-SIG vendor-defined requests inside the SPDM responder's secure
// sessions, beside IDE_KM.

import (
	"context"
	"errors"

	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
	"github.com/devattest/devattest/tdisp"
)

// DefaultTDISPFunctionID is the INTERFACE_ID function ID of the VF's TDI
// unless WithTDISPFunctionID says otherwise: 0xBEEF, the one spdm-emu's
// requester addresses, so that its default flow runs against devsim.
const DefaultTDISPFunctionID = tdisp.DefaultFunctionID

// TDISPLockFlags are the LOCK_INTERFACE flags the VF supports (those of
// libspdm's sample device).
const TDISPLockFlags = tdisp.LockNoFWUpdate | tdisp.LockSystemCacheLineSize | tdisp.LockMSIX

// TDISPDeviceInfo is the report's device-specific information.
const TDISPDeviceInfo = "devattest devsim"

// WithTDISPFunctionID sets the function ID the VF's TDI answers to.
func WithTDISPFunctionID(id uint32) Option { return func(f *Function) { f.tdiID = &id } }

// TDI returns the function's TDISP interface (nil for a VF without SPDM).
func (f *Function) TDI() *tdisp.Responder { return f.tdi }

// InterfaceReport builds the TDISP interface report from the function's
// configuration now: BAR0 as one TEE range, BAR2 as its MSI-X table
// (TEE memory if the lock covers MSI-X, else not) and PBA (never TEE
// memory) ranges, each range ID the BAR's index; addresses are 4 KiB
// pages with the lock's MMIO reporting offset added. A function whose
// memory space is disabled or a BAR unassigned has no report.
func (f *Function) InterfaceReport(p tdisp.LockParams) (*tdisp.Report, error) {
	c := f.MemoryConfig()
	if c.Command&cmdMemorySpace == 0 || c.BAR0 == 0 || c.BAR2 == 0 {
		return nil, errors.New("devsim: memory space disabled or a BAR unassigned")
	}
	info := tdisp.InfoDMAWithoutPASID
	if p.Flags&tdisp.LockNoFWUpdate != 0 {
		info |= tdisp.InfoNoUpdateAfterLock
	}
	tableAttr := tdisp.AttrMSIXTable
	if p.Flags&tdisp.LockMSIX == 0 {
		tableAttr |= tdisp.AttrNonTEEMem
	}
	page := func(addr uint64) uint64 { return (addr + p.MMIOReportingOffset) / tdisp.PageSize }
	return &tdisp.Report{
		InterfaceInfo:      info,
		MSIXMessageControl: c.MSIXControl,
		Ranges: []tdisp.MMIORange{
			{FirstPage: page(c.BAR0), Pages: BAR0Size / tdisp.PageSize, RangeID: 0},
			{FirstPage: page(c.BAR2 + MSIXTableOffset), Pages: 1, Attributes: tableAttr, RangeID: 2},
			{FirstPage: page(c.BAR2 + MSIXPBAOffset), Pages: 1, Attributes: tdisp.AttrMSIXPBA | tdisp.AttrNonTEEMem, RangeID: 2},
		},
		DeviceSpecific: []byte(TDISPDeviceInfo),
	}, nil
}

// newTDI makes the function's TDI; LOCK_INTERFACE needs IDE keys in use
// on the default stream (both directions of posted requests, on some
// port of idekm).
func (f *Function) newTDI(idekm *ide.Responder) error {
	id := uint32(DefaultTDISPFunctionID)
	if f.tdiID != nil {
		id = *f.tdiID
	}
	tdi, err := tdisp.NewResponder(tdisp.ResponderConfig{
		FunctionID: id, LockFlagsSupported: TDISPLockFlags, DevAddrWidth: 48,
		Report: f.InterfaceReport,
		StreamSecure: func(stream uint8) bool {
			for i := range 8 {
				p, ok := idekm.Port(uint8(i))
				if !ok {
					continue
				}
				_, rx := p.ActiveKeySet(stream, ide.RX, ide.PR)
				_, tx := p.ActiveKeySet(stream, ide.TX, ide.PR)
				if rx && tx {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.tdi = tdi
	f.configHooks = append(f.configHooks, func(what string) { tdi.ConfigChanged(what) })
	f.resetHooks = append(f.resetHooks, tdi.Reset)
	f.mu.Unlock()
	return nil
}

// vendorMux sends TDISP to the TDI and everything else to IDE_KM, and
// plays the host of the TDISP fault knobs: right after a successful
// LOCK_INTERFACE (TDISPChangeAfterLock) or START_INTERFACE
// (TDISPChangeWhileRunning) it moves BAR0, as a host reconfiguring the
// function behind the guest's back does.
func (f *Function) vendorMux(idekm *ide.Responder) secchan.VendorHandler {
	return func(ctx context.Context, sid uint32, req []byte) ([]byte, error) {
		_, body, err := tdisp.UnwrapRequest(req)
		if errors.Is(err, tdisp.ErrNotTDISP) {
			return idekm.Handle(ctx, sid, req)
		}
		resp, err := f.tdi.Handle(ctx, sid, req)
		if err != nil || len(body) < 2 {
			return resp, err
		}
		f.mu.Lock()
		fl := f.faults
		f.mu.Unlock()
		before := f.tdi.State()
		if (body[1] == tdisp.TypeLockInterface && fl.TDISPChangeAfterLock && before == tdisp.StateConfigLocked) ||
			(body[1] == tdisp.TypeStart && fl.TDISPChangeWhileRunning && before == tdisp.StateRun) {
			f.MoveBAR0()
		}
		return resp, nil
	}
}

// MoveBAR0 is the host moving BAR0 up by its size: a configuration
// change.
func (f *Function) MoveBAR0() {
	c := f.MemoryConfig()
	_ = f.WriteConfig32(RegBAR0, uint32(c.BAR0+BAR0Size))
}
