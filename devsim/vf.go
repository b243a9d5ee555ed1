package devsim

import (
	"context"
	"errors"

	"github.com/devattest/devattest/doe"
)

// SPDM ERROR fields used by the interim CMA handler (DSP0274 §10.12).
const (
	spdmCodeError             = 0x7F
	spdmErrUnsupportedRequest = 0x07
	spdmVersion10             = 0x10
)

// NewVF returns an emulated VF that lists discovery, CMA/SPDM and secured
// CMA/SPDM, as a CMA-capable device does.
//
// Until devsim's SPDM responder exists, its CMA handler answers every SPDM
// request with ERROR(UnsupportedRequest), which is what a conforming
// responder says of a request it does not support, and it sets the DOE
// Error bit for secured messages, since no session can exist.
func NewVF(opts ...Option) *Function {
	f := New(opts...)
	_ = f.Handle(doe.ProtocolCMA, HandlerFunc(unsupportedSPDM))
	_ = f.Handle(doe.ProtocolSecuredCMA, HandlerFunc(noSession))
	return f
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
