package devsim

import (
	"context"
	"errors"

	"github.com/devattest/devattest/doe"
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
// bit, since no session can exist yet.
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

// NewSPDMVF returns a VF whose CMA/SPDM handler is a real SPDM responder
// for ids and meas, with the responder's default configuration.
func NewSPDMVF(ids []secchan.Identity, meas secchan.MeasurementProvider, opts ...Option) (*Function, *secchan.Responder, error) {
	rsp, err := secchan.NewResponder(secchan.ResponderConfig{Identities: ids, Measurements: meas})
	if err != nil {
		return nil, nil, err
	}
	return NewVF(append(opts[:len(opts):len(opts)], WithSPDM(rsp))...), rsp, nil
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
