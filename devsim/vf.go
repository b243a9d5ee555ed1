package devsim

import (
	"context"
	"errors"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// SPDM ERROR fields used by the placeholder CMA handler (DSP0274 §10.12).
const (
	spdmCodeError             = 0x7F
	spdmErrUnsupportedRequest = 0x07
	spdmVersion10             = 0x10
)

// WithSPDM makes h the VF's CMA/SPDM handler (NewVF), normally a
// *secchan.Responder. If h has a Reset method, a function reset calls it,
// as a device reset drops its SPDM connection.
func WithSPDM(h Handler) Option { return func(f *Function) { f.spdm = h } }

// NewVF returns an emulated VF that lists discovery, CMA/SPDM and secured
// CMA/SPDM, as a CMA-capable device does. CMA/SPDM is served by the
// WithSPDM handler; without one, a placeholder answers every SPDM request
// with ERROR(UnsupportedRequest), which is what a conforming responder says
// of a request it does not support. Secured messages set the DOE Error
// bit, since no session can exist (NewSPDMVF replaces this with its
// responder's secured side).
func NewVF(opts ...Option) *Function {
	f := New(opts...)
	cma := f.spdm
	if cma == nil {
		cma = HandlerFunc(unsupportedSPDM)
	}
	_ = f.Handle(doe.ProtocolCMA, cma)
	_ = f.Handle(doe.ProtocolSecuredCMA, HandlerFunc(noSession))
	return f
}

// Secure-session settings of NewSPDMVF's responder: libspdm's sample PSK
// and hint (spdm-emu's requester sends this hint), and the capabilities a
// CMA device with sessions offers.
const (
	SamplePSKHint = "TestPskHint\x00"
	SamplePSK     = "TestPskData\x00"
)

// SPDMVFCaps are the responder capabilities of NewSPDMVF (with
// measurements): authentication, signed measurements, large responses and
// secure sessions — KEY_EXCHANGE, PSK with a ResponderContext (so
// PSK_FINISH follows, as with libspdm's responder), encryption and MAC,
// heartbeat and key update, and HANDSHAKE_IN_THE_CLEAR (used only when the
// requester sets it too; then KEY_EXCHANGE's FINISH and FINISH_RSP go in
// the clear, which DMTF's SPDM-Responder-Validator otherwise leaves
// untested).
const SPDMVFCaps = secchan.CapCert | secchan.CapChal | secchan.CapMeasSig | secchan.CapChunk |
	secchan.CapKeyEx | secchan.CapPSKWithContext | secchan.CapEncrypt | secchan.CapMAC |
	secchan.CapHbeat | secchan.CapKeyUpd | secchan.CapHandshakeInClr

// NewSPDMVF returns a VF whose CMA/SPDM handler is a real SPDM responder
// for ids and meas, with secure sessions (SPDMVFCaps, the sample PSK):
// secured CMA/SPDM objects go to the same responder. Inside a session it
// answers IDE_KM with a fresh ide.Responder (DefaultIDEConfig; use
// NewIDESPDMVF to hold that responder) and TDISP for one interface
// (tdisp.go, Function.TDI). Discovery also lists
// ide.LinkProtocol, the device end of the simulated IDE link
// (simulation only, under the emulator vendor ID): a root-port end
// elsewhere sends it protected TLPs and gets protected TLPs back, so the
// link is checked without any key leaving this process.
func NewSPDMVF(ids []secchan.Identity, meas secchan.MeasurementProvider, opts ...Option) (*Function, *secchan.Responder, error) {
	idekm, err := newDefaultIDE()
	if err != nil {
		return nil, nil, err
	}
	return newSPDMVF(ids, meas, idekm, opts...)
}

// newSPDMVF builds the SPDM VF around idekm: IDE_KM inside the sessions,
// a function reset forgets its keys, and the simulated IDE link
// (ide.LinkProtocol, listed in discovery) reaches its ports' keys.
func newSPDMVF(ids []secchan.Identity, meas secchan.MeasurementProvider, idekm *ide.Responder, opts ...Option) (*Function, *secchan.Responder, error) {
	opts = append(opts[:len(opts):len(opts)], WithResetHook(idekm.Reset))
	var vendor secchan.VendorHandler // set once the function exists
	// ENCAP too: the device asks for mutual authentication
	// (WithMutualAuth) and for a KEY_UPDATE of its own key on spdm-emu's
	// out-of-band command through encapsulated requests.
	caps := SPDMVFCaps | secchan.CapEncap
	if meas == nil {
		caps &^= secchan.CapMeasSig
	}
	cfg := secchan.ResponderConfig{
		Caps:          caps,
		Identities:    ids,
		Measurements:  meas,
		PSKs:          map[string][]byte{SamplePSKHint: []byte(SamplePSK)},
		VendorHandler: func(ctx context.Context, sid uint32, req []byte) ([]byte, error) { return vendor(ctx, sid, req) },
	}
	if err := spdmConfigOf(&cfg, opts); err != nil { // WithMutualAuth
		return nil, nil, err
	}
	rsp, err := secchan.NewResponder(cfg)
	if err != nil {
		return nil, nil, err
	}
	f := NewVF(append(opts[:len(opts):len(opts)], WithSPDM(rsp))...)
	if err := f.newTDI(idekm); err != nil {
		return nil, nil, err
	}
	vendor = f.vendorMux(idekm)
	_ = f.Handle(doe.ProtocolSecuredCMA, HandlerFunc(rsp.HandleSecuredDOE))
	_ = f.Handle(ide.LinkProtocol, HandlerFunc(ide.DeviceLinkHandler(idekm)))
	return f, rsp, nil
}

func unsupportedSPDM(_ context.Context, req doe.Object) (doe.Object, error) {
	version, code := byte(spdmVersion10), byte(0)
	if len(req.Payload) >= 2 {
		version, code = req.Payload[0], req.Payload[1]
	}
	return doe.NewObject(doe.ProtocolCMA, []byte{version, spdmCodeError, spdmErrUnsupportedRequest, code}), nil
}

var errNoSession = errors.New("devsim: secured message without an SPDM session")

func noSession(context.Context, doe.Object) (doe.Object, error) {
	return doe.Object{}, errNoSession
}

// NewDefaultSPDMVF returns a VF with a fresh identity (NewIdentity), the
// default measurements (NewMeasurements) and a real SPDM responder, and the
// root certificate's DER a verifier must trust.
func NewDefaultSPDMVF(opts ...Option) (f *Function, rootDER []byte, meas *Measurements, err error) {
	rootDER, ids, err := NewIdentity()
	if err != nil {
		return nil, nil, nil, err
	}
	meas = NewMeasurements()
	f, _, err = NewSPDMVF(ids, meas, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	return f, rootDER, meas, nil
}
