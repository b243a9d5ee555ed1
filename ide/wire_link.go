package ide

// The simulated IDE link carried over DOE. A real IDE link is the PCIe
// link itself: the root port and the device each hold their own keys and
// only protected TLPs cross between them. This file models exactly that
// between two processes: the root-port end (a probe or guest holding a
// SimRootPort) sends a TLP protected by its TX key inside a DOE object of
// LinkProtocol; the device end (devsim, holding the keys IDE_KM
// programmed into it) checks and decrypts it with its RX key and answers
// with its verdict and, when the TLP opened, the same payload protected
// by its own TX key, which the root port opens with its RX key. No key
// ever crosses; a TLP that crosses is what a bus analyser would see.
//
// LinkProtocol is a simulation-only protocol under devsim's emulator
// vendor ID (0x1234). It is not a PCI-SIG protocol and no real device
// offers it: on real hardware the link is checked by the hardware. The
// host shim's default allowlist does not forward it, which is right.
//
// Wire format (one DOE object payload, request and response alike; all
// lengths little-endian, as DOE and IDE_KM lay out their fields):
//
//	offset size  field
//	0      1     op: 0x01 HELLO (is there a device end for this port?),
//	             0x02 TLP (deliver one protected TLP, get one back)
//	1      1     request: the device's IDE_KM port index
//	             response: status (LinkStatus: 0 OK, 1 no key, 2 key set
//	             not in use, 3 integrity, 4 counter exhausted, 5 no port)
//	2      1     stream ID                        (0 without a TLP)
//	3      1     bits 1:0 sub-stream (0 PR, 1 NPR, 2 CPL; 3 reserved),
//	             bit 2 key set (0 K0, 1 K1), bits 7:3 reserved, 0
//	4      2     TLP header length in bytes: whole DWs, 4..64 (0 without a TLP)
//	6      2     data length: ciphertext + 12-byte MAC,
//	             12..4096+12 (0 without a TLP)
//	8      h     TLP header (in the clear; with the prefix fields, the AAD)
//	8+h    d     ciphertext with the MAC appended
//	8+h+d  0..3  zero padding to a DW boundary, as DOE requires
//
// A request carries a TLP exactly when its op is TLP; a response carries
// one exactly when its op is TLP and its status is OK. Decoding is exact:
// the payload length must equal what the fields say, padding and reserved
// bits must be zero, and without a TLP bytes 2..7 must be zero.
//
// The device end answers a request it cannot parse with a handler error
// (the DOE Error bit, as a device does); every link verdict, failure
// included, is a well-formed response, so that a failed check is told
// apart from a refusal on the way (a shim that does not forward the type).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/devattest/devattest/doe"
)

// LinkProtocol is the DOE protocol of the simulated IDE link: devsim's
// emulator vendor ID 0x1234 (devsim.VendorID), type 0x49 ('I').
// Simulation only; not PCI-SIG.
var LinkProtocol = doe.Protocol{Vendor: 0x1234, Type: 0x49}

func init() { doe.RegisterName(LinkProtocol, "simulated IDE link (devsim, test only)") }

// Ops of LinkProtocol.
const (
	LinkOpHello uint8 = 0x01
	LinkOpTLP   uint8 = 0x02
)

// LinkStatus is the device end's verdict on a LinkProtocol request.
type LinkStatus uint8

const (
	LinkOK               LinkStatus = 0
	LinkNoKey            LinkStatus = 1 // ErrNoKey
	LinkKeySetNotInUse   LinkStatus = 2 // ErrKeySetNotInUse
	LinkIntegrity        LinkStatus = 3 // ErrIntegrity
	LinkCounterExhausted LinkStatus = 4 // ErrCounterExhausted
	LinkNoPort           LinkStatus = 5 // ErrNoLinkPort
	linkStatusMax                   = LinkNoPort
)

// Bounds of the wire encoding.
const (
	linkHeadSize = 8
	// MaxLinkHeader bounds a TLP header on the simulated link (bytes).
	MaxLinkHeader = 64
	// MaxLinkData bounds a TLP's data on the simulated link (bytes, before
	// the MAC): PCIe's largest Max_Payload_Size.
	MaxLinkData = 4096
	// MaxLinkPayload is the largest LinkProtocol payload.
	MaxLinkPayload = linkHeadSize + MaxLinkHeader + MaxLinkData + MACSize + 3
)

// More link errors.
var (
	ErrNoLinkPort    = errors.New("ide link: the device has no IDE port with that index")
	ErrLinkMalformed = errors.New("ide link: malformed simulated-link object")
)

func (s LinkStatus) String() string {
	switch s {
	case LinkOK:
		return "OK"
	case LinkNoKey:
		return "no key"
	case LinkKeySetNotInUse:
		return "key set not in use"
	case LinkIntegrity:
		return "integrity check failed"
	case LinkCounterExhausted:
		return "counter exhausted"
	case LinkNoPort:
		return "no such port"
	}
	return fmt.Sprintf("LinkStatus(%d)", uint8(s))
}

// Err is the link error the status stands for (nil for LinkOK).
func (s LinkStatus) Err() error {
	switch s {
	case LinkOK:
		return nil
	case LinkNoKey:
		return ErrNoKey
	case LinkKeySetNotInUse:
		return ErrKeySetNotInUse
	case LinkIntegrity:
		return ErrIntegrity
	case LinkCounterExhausted:
		return ErrCounterExhausted
	case LinkNoPort:
		return ErrNoLinkPort
	}
	return fmt.Errorf("%w: status %d", ErrLinkMalformed, uint8(s))
}

// linkStatusOf maps a link end's error to its status; ok is false for an
// error that is not a link verdict.
func linkStatusOf(err error) (LinkStatus, bool) {
	for _, s := range []LinkStatus{LinkNoKey, LinkKeySetNotInUse, LinkIntegrity, LinkCounterExhausted, LinkNoPort} {
		if errors.Is(err, s.Err()) {
			return s, true
		}
	}
	return 0, false
}

// LinkRequest is a LinkProtocol request. TLP is set exactly when Op is
// LinkOpTLP.
type LinkRequest struct {
	Op   uint8
	Port uint8
	TLP  *TLP
}

// LinkResponse is a LinkProtocol response. TLP is set exactly when Op is
// LinkOpTLP and Status is LinkOK.
type LinkResponse struct {
	Op     uint8
	Status LinkStatus
	TLP    *TLP
}

// Marshal encodes the request (DW-padded).
func (r *LinkRequest) Marshal() ([]byte, error) {
	if err := checkOpTLP(r.Op, r.TLP, r.Op == LinkOpTLP); err != nil {
		return nil, err
	}
	return encodeLink(r.Op, r.Port, r.TLP)
}

// Marshal encodes the response (DW-padded).
func (r *LinkResponse) Marshal() ([]byte, error) {
	if r.Status > linkStatusMax {
		return nil, fmt.Errorf("%w: status %d", ErrLinkMalformed, uint8(r.Status))
	}
	if err := checkOpTLP(r.Op, r.TLP, r.Op == LinkOpTLP && r.Status == LinkOK); err != nil {
		return nil, err
	}
	return encodeLink(r.Op, uint8(r.Status), r.TLP)
}

// ParseLinkRequest decodes a request payload exactly.
func ParseLinkRequest(b []byte) (*LinkRequest, error) {
	op, port, t, err := decodeLink(b)
	if err != nil {
		return nil, err
	}
	if err := checkOpTLP(op, t, op == LinkOpTLP); err != nil {
		return nil, err
	}
	return &LinkRequest{Op: op, Port: port, TLP: t}, nil
}

// ParseLinkResponse decodes a response payload exactly.
func ParseLinkResponse(b []byte) (*LinkResponse, error) {
	op, st, t, err := decodeLink(b)
	if err != nil {
		return nil, err
	}
	s := LinkStatus(st)
	if s > linkStatusMax {
		return nil, fmt.Errorf("%w: status %d", ErrLinkMalformed, st)
	}
	if err := checkOpTLP(op, t, op == LinkOpTLP && s == LinkOK); err != nil {
		return nil, err
	}
	return &LinkResponse{Op: op, Status: s, TLP: t}, nil
}

func checkOpTLP(op uint8, t *TLP, want bool) error {
	if op != LinkOpHello && op != LinkOpTLP {
		return fmt.Errorf("%w: op 0x%02x", ErrLinkMalformed, op)
	}
	if (t != nil) != want {
		if want {
			return fmt.Errorf("%w: op 0x%02x without the TLP it needs", ErrLinkMalformed, op)
		}
		return fmt.Errorf("%w: op 0x%02x carries a TLP it must not", ErrLinkMalformed, op)
	}
	return nil
}

func pad4(n int) int { return (n + 3) &^ 3 }

func encodeLink(op, b1 uint8, t *TLP) ([]byte, error) {
	if t == nil {
		return []byte{op, b1, 0, 0, 0, 0, 0, 0}, nil
	}
	h, d := len(t.Header), len(t.Data)
	switch {
	case t.Sub > CPL:
		return nil, fmt.Errorf("%w: sub-stream %d", ErrLinkMalformed, uint8(t.Sub))
	case t.KeySet > K1:
		return nil, fmt.Errorf("%w: key set %d", ErrLinkMalformed, uint8(t.KeySet))
	case h < 4 || h > MaxLinkHeader || h%4 != 0:
		return nil, fmt.Errorf("%w: a TLP header of %d bytes (want whole DWs, 4 to %d)", ErrLinkMalformed, h, MaxLinkHeader)
	case d < MACSize || d > MaxLinkData+MACSize:
		return nil, fmt.Errorf("%w: %d bytes of TLP data with MAC (want %d to %d)", ErrLinkMalformed, d, MACSize, MaxLinkData+MACSize)
	}
	b := make([]byte, pad4(linkHeadSize+h+d))
	b[0], b[1], b[2], b[3] = op, b1, t.Stream, uint8(t.Sub)|uint8(t.KeySet)<<2
	binary.LittleEndian.PutUint16(b[4:], uint16(h))
	binary.LittleEndian.PutUint16(b[6:], uint16(d))
	copy(b[linkHeadSize:], t.Header)
	copy(b[linkHeadSize+h:], t.Data)
	return b, nil
}

func decodeLink(b []byte) (op, b1 uint8, t *TLP, err error) {
	if len(b) < linkHeadSize {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte head", ErrLinkMalformed, len(b), linkHeadSize)
	}
	if len(b) > MaxLinkPayload {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, over the %d-byte bound", ErrLinkMalformed, len(b), MaxLinkPayload)
	}
	op, b1 = b[0], b[1]
	h, d := int(binary.LittleEndian.Uint16(b[4:])), int(binary.LittleEndian.Uint16(b[6:]))
	if h == 0 && d == 0 {
		if b[2] != 0 || b[3] != 0 || len(b) != linkHeadSize {
			return 0, 0, nil, fmt.Errorf("%w: no TLP, but %d bytes with stream 0x%02x, prefix 0x%02x", ErrLinkMalformed, len(b), b[2], b[3])
		}
		return op, b1, nil, nil
	}
	switch {
	case b[3]&^0x07 != 0:
		return 0, 0, nil, fmt.Errorf("%w: prefix byte 0x%02x has reserved bits set", ErrLinkMalformed, b[3])
	case SubStream(b[3]&3) > CPL:
		return 0, 0, nil, fmt.Errorf("%w: sub-stream 3 is reserved", ErrLinkMalformed)
	case h < 4 || h > MaxLinkHeader || h%4 != 0:
		return 0, 0, nil, fmt.Errorf("%w: header length %d (want whole DWs, 4 to %d)", ErrLinkMalformed, h, MaxLinkHeader)
	case d < MACSize || d > MaxLinkData+MACSize:
		return 0, 0, nil, fmt.Errorf("%w: data length %d (want %d to %d)", ErrLinkMalformed, d, MACSize, MaxLinkData+MACSize)
	case len(b) != pad4(linkHeadSize+h+d):
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, the lengths say %d", ErrLinkMalformed, len(b), pad4(linkHeadSize+h+d))
	}
	for _, p := range b[linkHeadSize+h+d:] {
		if p != 0 {
			return 0, 0, nil, fmt.Errorf("%w: non-zero padding", ErrLinkMalformed)
		}
	}
	t = &TLP{
		Stream: b[2],
		Sub:    SubStream(b[3] & 3),
		KeySet: KeySet(b[3] >> 2 & 1),
		Header: append([]byte(nil), b[linkHeadSize:linkHeadSize+h]...),
		Data:   append([]byte(nil), b[linkHeadSize+h:linkHeadSize+h+d]...),
	}
	return op, b1, t, nil
}

// LinkPorts gives the device end the keys of each of the device's IDE
// ports; *Responder is one.
type LinkPorts interface {
	Port(index uint8) (KeySource, bool)
}

var _ LinkPorts = (*Responder)(nil)

// linkDevice is the device end of the simulated link: one LinkEnd per
// port, so that invocation counters persist across requests.
type linkDevice struct {
	ports LinkPorts
	mu    sync.Mutex
	ends  map[uint8]*LinkEnd
}

// DeviceLinkHandler returns the DOE handler of LinkProtocol for a device
// whose keys are ports (devsim registers it on its IDE-capable VF). The
// request names the port; the TLP is opened with that port's RX key and
// the payload goes back under its TX key. Keys stay with ports.
func DeviceLinkHandler(ports LinkPorts) func(context.Context, doe.Object) (doe.Object, error) {
	d := &linkDevice{ports: ports, ends: map[uint8]*LinkEnd{}}
	return d.handle
}

func (d *linkDevice) end(port uint8) (*LinkEnd, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.ends[port]; e != nil {
		return e, true
	}
	ks, ok := d.ports.Port(port)
	if !ok {
		return nil, false
	}
	e := NewLinkEnd(ks)
	d.ends[port] = e
	return e, true
}

func (d *linkDevice) handle(ctx context.Context, req doe.Object) (doe.Object, error) {
	if err := ctx.Err(); err != nil {
		return doe.Object{}, err
	}
	if req.Protocol() != LinkProtocol {
		return doe.Object{}, fmt.Errorf("%w: %v is not the simulated link", ErrLinkMalformed, req.Protocol())
	}
	r, err := ParseLinkRequest(req.Payload)
	if err != nil {
		return doe.Object{}, err
	}
	resp := LinkResponse{Op: r.Op}
	if e, ok := d.end(r.Port); !ok {
		resp.Status = LinkNoPort
	} else if r.Op == LinkOpTLP {
		t, err := e.echo(*r.TLP)
		if err != nil {
			s, ok := linkStatusOf(err)
			if !ok {
				return doe.Object{}, err
			}
			resp.Status = s
		} else {
			resp.TLP = &t
		}
	}
	b, err := resp.Marshal()
	if err != nil {
		return doe.Object{}, err
	}
	return doe.Object{Vendor: LinkProtocol.Vendor, Type: LinkProtocol.Type, Payload: b}, nil
}

// RemoteDevice is the device end of the simulated link reached over a
// doe.Mailbox (the probe's socket client, a driver): it implements
// DeviceLink by sending protected TLPs as LinkProtocol objects.
type RemoteDevice struct {
	mb doe.Mailbox
}

var _ DeviceLink = (*RemoteDevice)(nil)

// NewRemoteLink returns the device end of the simulated link behind mb.
func NewRemoteLink(mb doe.Mailbox) *RemoteDevice { return &RemoteDevice{mb: mb} }

func (d *RemoteDevice) exchange(ctx context.Context, req *LinkRequest) (*LinkResponse, error) {
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	obj := doe.Object{Vendor: LinkProtocol.Vendor, Type: LinkProtocol.Type, Payload: b}
	out, err := d.mb.Exchange(ctx, obj)
	if err != nil {
		return nil, fmt.Errorf("ide link over DOE: %w", err)
	}
	if err := doe.CheckResponse(obj, out); err != nil {
		return nil, fmt.Errorf("ide link over DOE: %w", err)
	}
	resp, err := ParseLinkResponse(out.Payload)
	if err != nil {
		return nil, err
	}
	if resp.Op != req.Op {
		return nil, fmt.Errorf("%w: op 0x%02x answered with op 0x%02x", ErrLinkMalformed, req.Op, resp.Op)
	}
	if err := resp.Status.Err(); err != nil {
		return nil, fmt.Errorf("device end, port %d: %w", req.Port, err)
	}
	return resp, nil
}

// Hello asks whether the device end serves port. An error wrapping
// doe.ErrRefused means something on the way (a shim) does not forward
// LinkProtocol; ErrNoLinkPort, that the device has no such port.
func (d *RemoteDevice) Hello(ctx context.Context, port uint8) error {
	_, err := d.exchange(ctx, &LinkRequest{Op: LinkOpHello, Port: port})
	return err
}

// Exchange implements DeviceLink.
func (d *RemoteDevice) Exchange(ctx context.Context, port uint8, t TLP) (TLP, error) {
	resp, err := d.exchange(ctx, &LinkRequest{Op: LinkOpTLP, Port: port, TLP: &t})
	if err != nil {
		return TLP{}, err
	}
	return *resp.TLP, nil
}
