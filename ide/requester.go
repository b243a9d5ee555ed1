package ide

// The IDE_KM requester (PCIe Base 6.x §6.33.3), run by the guest over an
// established SPDM secure session. For each key set it makes fresh keys
// and IFVs, programs the device over the session and hands the root-port
// half to a RootPort, then zeroes its copies.
//
// Key direction: a device's TX key protects the traffic the root port
// receives, so the key sent as TX to the device goes to the root port as
// RX, and the other way round.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/devattest/devattest/secchan"
)

// Session carries one VENDOR_DEFINED_REQUEST (the whole message) and
// returns the whole response. Only an established *secchan.SecureSession
// is accepted (NewRequester): keys must never go outside a session.
type Session interface {
	VendorDefined(ctx context.Context, req []byte) ([]byte, error)
}

// RootPort programs the host side of an IDE stream. Who can do that
// depends on the platform: a TSM, trusted firmware, or SimRootPort in
// tests. The key is passed by pointer and zeroed by the caller after the
// call returns: an implementation copies it into its trusted boundary.
// There is no default: this package has no RootPort that hands keys to the
// host in the clear, and NewRequester refuses a nil one.
type RootPort interface {
	ProgramKey(ctx context.Context, stream uint8, ks KeySet, d Direction, s SubStream, key *[KeySize]byte, ifv uint64) error
	Go(ctx context.Context, stream uint8, ks KeySet) error
	Stop(ctx context.Context, stream uint8, ks KeySet) error
}

// Requester errors.
var (
	ErrNotSecure          = errors.New("ide: IDE_KM needs an established SPDM secure session (*secchan.SecureSession)")
	ErrNoRootPort         = errors.New("ide: no RootPort: keys for the host side must go to a trusted programmer")
	ErrUnexpectedResponse = errors.New("ide: unexpected IDE_KM response")
	ErrAckMismatch        = errors.New("ide: IDE_KM acknowledgement for another stream, key set, sub-stream or port")
	ErrNotActive          = errors.New("ide: no key set in use on this stream")
)

type streamRef struct{ port, stream uint8 }

// Requester runs IDE_KM over one secure session.
type Requester struct {
	s  *secchan.SecureSession
	v  secchan.Version
	rp RootPort

	mu     sync.Mutex
	active map[streamRef]KeySet
}

// NewRequester returns a requester over sess, which must be an
// established *secchan.SecureSession; v is the connection's negotiated
// SPDM version (secchan.Requester.Negotiated().Version).
func NewRequester(sess Session, v secchan.Version, rp RootPort) (*Requester, error) {
	ss, ok := sess.(*secchan.SecureSession)
	if !ok || ss == nil || ss.Phase() != secchan.PhaseEstablished {
		return nil, ErrNotSecure
	}
	if rp == nil {
		return nil, ErrNoRootPort
	}
	return &Requester{s: ss, v: v, rp: rp, active: map[streamRef]KeySet{}}, nil
}

// exchange sends req (an IDE_KM request object, already marshalled into
// a VENDOR_DEFINED_REQUEST) and returns the response object, which must
// be of type want.
func (r *Requester) exchange(ctx context.Context, req []byte, want uint8) (Message, error) {
	if r.s.Phase() != secchan.PhaseEstablished {
		return nil, ErrNotSecure
	}
	resp, err := r.s.VendorDefined(ctx, req)
	if err != nil {
		return nil, err
	}
	v, body, err := UnwrapResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnexpectedResponse, err)
	}
	if v != r.v {
		return nil, fmt.Errorf("%w: response version %v", ErrUnexpectedResponse, v)
	}
	m, err := Parse(body)
	if err != nil {
		return nil, err
	}
	if m.ObjectID() != want {
		return nil, fmt.Errorf("%w: %s, want %s", ErrUnexpectedResponse, ObjectName(m.ObjectID()), ObjectName(want))
	}
	return m, nil
}

// Query sends QUERY for a port and returns its capabilities.
func (r *Requester) Query(ctx context.Context, port uint8) (*QueryResp, error) {
	m, err := r.exchange(ctx, WrapRequest(r.v, &Query{PortIndex: port}), ObjQueryResp)
	if err != nil {
		return nil, fmt.Errorf("ide: QUERY port %d: %w", port, err)
	}
	q := m.(*QueryResp)
	if q.PortIndex != port {
		return nil, fmt.Errorf("ide: QUERY port %d: %w: QUERY_RESP for port %d", port, ErrAckMismatch, q.PortIndex)
	}
	return q, nil
}

// keyProgRequest builds the whole VENDOR_DEFINED_REQUEST for KEY_PROG in
// one buffer, so that the only copy of the key this package makes can be
// zeroed (secchan's wrapping would leave intermediate copies).
func (r *Requester) keyProgRequest(m *KeyProg) []byte {
	const hdr = 4 + 2 + 1 + 2 + 2 + 1 // SPDM header, StandardID, Len, VendorID, ReqLength, protocol ID
	b := make([]byte, hdr+keyProgSize)
	b[0], b[1] = uint8(r.v), secchan.CodeVendorDefinedReq
	binary.LittleEndian.PutUint16(b[4:], secchan.RegistryPCISIG)
	b[6] = 2
	binary.LittleEndian.PutUint16(b[7:], secchan.VendorIDPCISIG)
	binary.LittleEndian.PutUint16(b[9:], 1+keyProgSize)
	b[11] = secchan.PCIProtocolIDEKM
	body := b[hdr:]
	body[0], body[3], body[5], body[6] = ObjKeyProg, m.StreamID, uint8(m.KSS), m.PortIndex
	PutWireKey(body[keyProgHdr:], &m.Key)
	PutWireIFV(body[keyProgHdr+KeySize:], m.IFV)
	return b
}

// ProgramKeySet makes fresh keys and IFVs for the six direction and
// sub-stream combinations of key set ks, programs each into the device
// (KEY_PROG) and the reverse direction into the root port, and zeroes
// them. A KP_ACK status other than Success is returned as that status
// (errors.Is(err, KPUnsupportedPortIndex), ...).
func (r *Requester) ProgramKeySet(ctx context.Context, port, stream uint8, ks KeySet) error {
	err := r.programAll(ctx, port, stream, ks)
	if errors.Is(err, KPUnspecifiedFailure) {
		// The device refuses to reprogram a key set still in use: an
		// earlier session (this guest's before it lost the session, say)
		// put it in use and never stopped it. Stop it on the device and
		// program it afresh, once; the root port's half is replaced by the
		// new keys anyway.
		if serr := r.goStop(ctx, port, stream, ks, true); serr != nil {
			return errors.Join(err, fmt.Errorf("ide: stopping key set %v still in use: %w", ks, serr))
		}
		err = r.programAll(ctx, port, stream, ks)
	}
	return err
}

func (r *Requester) programAll(ctx context.Context, port, stream uint8, ks KeySet) error {
	for _, d := range Directions {
		for _, s := range SubStreams {
			if err := r.programOne(ctx, port, stream, ks, d, s); err != nil {
				return fmt.Errorf("ide: KEY_PROG stream %d %v port %d: %w", stream, KSS(ks, d, s), port, err)
			}
		}
	}
	return nil
}

func (r *Requester) programOne(ctx context.Context, port, stream uint8, ks KeySet, d Direction, s SubStream) error {
	m := &KeyProg{StreamID: stream, KSS: KSS(ks, d, s), PortIndex: port}
	defer m.zero()
	if _, err := rand.Read(m.Key[:]); err != nil {
		return err
	}
	var ifv [8]byte
	if _, err := rand.Read(ifv[:]); err != nil {
		return err
	}
	m.IFV = binary.LittleEndian.Uint64(ifv[:])
	req := r.keyProgRequest(m)
	resp, err := r.exchange(ctx, req, ObjKPAck)
	clear(req)
	if err != nil {
		return err
	}
	ack := resp.(*KPAck)
	if want := (KeyRef{stream, m.KSS, port}); ack.Ref() != want {
		return fmt.Errorf("%w: KP_ACK for %v", ErrAckMismatch, ack.Ref())
	}
	if err := ack.Status.Err(); err != nil {
		return err
	}
	if err := r.rp.ProgramKey(ctx, stream, ks, d.Reverse(), s, &m.Key, m.IFV); err != nil {
		return fmt.Errorf("root port: %w", err)
	}
	return nil
}

// goStop sends K_SET_GO or K_SET_STOP for the six keys of a key set.
func (r *Requester) goStop(ctx context.Context, port, stream uint8, ks KeySet, stop bool) error {
	for _, d := range Directions {
		for _, s := range SubStreams {
			ref := KeyRef{stream, KSS(ks, d, s), port}
			var m Message = &KSetGo{ref}
			if stop {
				m = &KSetStop{ref}
			}
			resp, err := r.exchange(ctx, WrapRequest(r.v, m), ObjKGoStopAck)
			if err != nil {
				return fmt.Errorf("ide: %s %v: %w", ObjectName(m.ObjectID()), ref, err)
			}
			if got := resp.(*KGoStopAck).KeyRef; got != ref {
				return fmt.Errorf("ide: %s %v: %w: K_GOSTOP_ACK for %v", ObjectName(m.ObjectID()), ref, ErrAckMismatch, got)
			}
		}
	}
	return nil
}

// Go puts key set ks in use on the device (K_SET_GO for each of its six
// keys) and then on the root port.
func (r *Requester) Go(ctx context.Context, port, stream uint8, ks KeySet) error {
	if err := r.goStop(ctx, port, stream, ks, false); err != nil {
		return err
	}
	if err := r.rp.Go(ctx, stream, ks); err != nil {
		return fmt.Errorf("ide: root port GO stream %d %v: %w", stream, ks, err)
	}
	r.mu.Lock()
	r.active[streamRef{port, stream}] = ks
	r.mu.Unlock()
	return nil
}

// StopKeySet stops key set ks on the device (K_SET_STOP, which also
// invalidates its keys) and on the root port.
func (r *Requester) StopKeySet(ctx context.Context, port, stream uint8, ks KeySet) error {
	if err := r.goStop(ctx, port, stream, ks, true); err != nil {
		return err
	}
	if err := r.rp.Stop(ctx, stream, ks); err != nil {
		return fmt.Errorf("ide: root port STOP stream %d %v: %w", stream, ks, err)
	}
	r.mu.Lock()
	if cur, ok := r.active[streamRef{port, stream}]; ok && cur == ks {
		delete(r.active, streamRef{port, stream})
	}
	r.mu.Unlock()
	return nil
}

// Stop stops the key set in use on the stream.
func (r *Requester) Stop(ctx context.Context, port, stream uint8) error {
	ks, ok := r.Active(port, stream)
	if !ok {
		return fmt.Errorf("%w: port %d stream %d", ErrNotActive, port, stream)
	}
	return r.StopKeySet(ctx, port, stream, ks)
}

// Active is the key set this requester last put in use on the stream.
func (r *Requester) Active(port, stream uint8) (KeySet, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ks, ok := r.active[streamRef{port, stream}]
	return ks, ok
}

// Rotate programs the key set not in use, puts it in use, and stops the
// old one, so that traffic under the old keys is refused from then on. It
// returns the key set now in use.
func (r *Requester) Rotate(ctx context.Context, port, stream uint8) (KeySet, error) {
	cur, ok := r.Active(port, stream)
	if !ok {
		return 0, fmt.Errorf("%w: port %d stream %d", ErrNotActive, port, stream)
	}
	next := cur.Other()
	if err := r.ProgramKeySet(ctx, port, stream, next); err != nil {
		return 0, err
	}
	if err := r.Go(ctx, port, stream, next); err != nil {
		return 0, err
	}
	if err := r.StopKeySet(ctx, port, stream, cur); err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.active[streamRef{port, stream}] = next
	r.mu.Unlock()
	return next, nil
}
