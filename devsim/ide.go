package devsim

// IDE_KM for the emulated VF: an ide.Responder answers the PCI-SIG
// IDE_KM VENDOR_DEFINED_REQUESTs that arrive inside the SPDM responder's
// secure sessions; TDISP goes to the VF's TDI (tdisp.go), and other
// vendor-defined requests (CXL) get ERROR(UnsupportedRequest). The
// programmed keys stay in this process, readable only by the simulated
// link: in process (ide.Responder.Port), or over DOE through
// ide.LinkProtocol, where only protected TLPs cross.

import (
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// DefaultIDEConfig is the IDE_KM device of NewSPDMVF: ports 0 and 1
// (spdm-emu's requester programs port 1), link and selective IDE.
func DefaultIDEConfig() ide.ResponderConfig { return ide.DefaultResponderConfig() }

func newDefaultIDE() (*ide.Responder, error) { return ide.NewResponder(DefaultIDEConfig()) }

// NewIDESPDMVF is NewSPDMVF with idekm as the IDE_KM responder, so that
// the caller can reach the device's keys for a simulated link.
func NewIDESPDMVF(ids []secchan.Identity, meas secchan.MeasurementProvider, idekm *ide.Responder, opts ...Option) (*Function, *secchan.Responder, error) {
	return newSPDMVF(ids, meas, idekm, opts...)
}

// NewDefaultIDESPDMVF is NewDefaultSPDMVF that also returns the VF's IDE_KM
// responder.
func NewDefaultIDESPDMVF(opts ...Option) (f *Function, rootDER []byte, idekm *ide.Responder, err error) {
	rootDER, ids, err := NewIdentity()
	if err != nil {
		return nil, nil, nil, err
	}
	if idekm, err = newDefaultIDE(); err != nil {
		return nil, nil, nil, err
	}
	f, _, err = NewIDESPDMVF(ids, NewMeasurements(), idekm, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	return f, rootDER, idekm, nil
}
