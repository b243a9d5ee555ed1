package ide

// The device side of IDE_KM (PCIe Base 6.x §6.33.3): state per port,
// stream, key set, direction and sub-stream. The responder answers inside
// an SPDM session (Handle has secchan.VendorHandler's signature) and
// exposes the programmed keys to the simulated link only, through
// KeySource (Port), never over the wire.
//
// Answers:
//   - QUERY for a port it has: QUERY_RESP with that port's registers.
//   - KEY_PROG: KP_ACK with Success, IncorrectLength (not 47 bytes),
//     UnsupportedPortIndex (no such port), UnsupportedValue (a reserved
//     field or key_sub_stream value that is not allowed) or
//     UnspecifiedFailure (the key set is in use: stop it first).
//   - K_SET_GO / K_SET_STOP: K_GOSTOP_ACK. K_GOSTOP_ACK has no status, so
//     a GO for a key that was never programmed, or a port it lacks, is an
//     SPDM ERROR (UnexpectedRequest / InvalidRequest), as libspdm's
//     sample device fails such a request.
//   - Anything that is not PCI-SIG IDE_KM: ERROR(UnsupportedRequest).

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/devattest/devattest/secchan"
)

// PortInfo describes one port as QUERY_RESP reports it.
type PortInfo struct {
	Index                 uint8
	DevFunc, Bus, Segment uint8
	Cap, Control          uint32
	Link                  []LinkStream
	Selective             []SelectiveStream
}

// ResponderConfig lists the ports of the device.
type ResponderConfig struct {
	Ports []PortInfo
}

// DefaultResponderConfig is a device with ports 0 and 1 (spdm-emu's
// requester uses port index 1), each with IDE_KM, one link IDE stream
// block (one TC) and one selective IDE stream with one address
// association block.
func DefaultResponderConfig() ResponderConfig {
	var cfg ResponderConfig
	for i := range uint8(2) {
		cfg.Ports = append(cfg.Ports, PortInfo{
			Index: i,
			Cap:   CapLinkIDE | CapSelectiveIDE | CapIDEKM, // 1 TC, 1 selective stream, AES-GCM-256
			Link:  []LinkStream{{}},
			Selective: []SelectiveStream{{
				Cap:  1, // one address association block
				Addr: [][3]uint32{{}},
			}},
		})
	}
	return cfg
}

type port struct {
	info PortInfo
	keys keyTable
}

// Responder is the IDE_KM responder of one device.
type Responder struct {
	mu      sync.Mutex
	ports   map[uint8]*port
	maxPort uint8
}

// NewResponder checks cfg: port indexes distinct, register blocks matching
// the capability register.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	r := &Responder{ports: map[uint8]*port{}}
	for _, p := range cfg.Ports {
		if _, dup := r.ports[p.Index]; dup {
			return nil, fmt.Errorf("ide: port index %d listed twice", p.Index)
		}
		if len(p.Link) != LinkCount(p.Cap) || len(p.Selective) != SelectiveCount(p.Cap) {
			return nil, fmt.Errorf("ide: port %d: %d link and %d selective blocks, capability 0x%08x announces %d and %d",
				p.Index, len(p.Link), len(p.Selective), p.Cap, LinkCount(p.Cap), SelectiveCount(p.Cap))
		}
		for i, s := range p.Selective {
			if len(s.Addr) != int(s.Cap&selCapAddrBlocksMask) {
				return nil, fmt.Errorf("ide: port %d selective stream %d: %d address blocks, its capability says %d", p.Index, i, len(s.Addr), s.Cap&selCapAddrBlocksMask)
			}
		}
		r.ports[p.Index] = &port{info: p}
		r.maxPort = max(r.maxPort, p.Index)
	}
	if len(r.ports) == 0 {
		return nil, errors.New("ide: a responder needs at least one port")
	}
	return r, nil
}

// Errors of Handle, sent as the SPDM ERROR they wrap.
var (
	ErrNoSuchPort = fmt.Errorf("%w: IDE_KM port index not supported", secchan.ErrCodeInvalidRequest)
	ErrNotProgram = fmt.Errorf("%w: K_SET_GO for a key that was not programmed", secchan.ErrCodeUnexpectedRequest)
)

// Handle answers one VENDOR_DEFINED_REQUEST (secchan.VendorHandler).
// Outside a session (sessionID 0) nothing is answered: keys must never
// travel in the clear.
func (r *Responder) Handle(_ context.Context, sessionID uint32, req []byte) ([]byte, error) {
	v, body, err := UnwrapRequest(req)
	if err != nil {
		if errors.Is(err, ErrNotIDEKM) {
			return nil, fmt.Errorf("%w: %w", secchan.ErrCodeUnsupportedRequest, err)
		}
		return nil, fmt.Errorf("%w: %w", secchan.ErrCodeInvalidRequest, err)
	}
	if sessionID == 0 {
		return nil, fmt.Errorf("%w: IDE_KM outside a secure session", secchan.ErrCodeSessionRequired)
	}
	resp, err := r.respond(body)
	if err != nil {
		return nil, err
	}
	return WrapResponse(v, resp), nil
}

func (r *Responder) respond(body []byte) (Message, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(body) > 0 && body[0] == ObjKeyProg {
		return r.keyProg(body), nil
	}
	m, err := Parse(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", secchan.ErrCodeInvalidRequest, err)
	}
	switch m := m.(type) {
	case *Query:
		p := r.ports[m.PortIndex]
		if p == nil {
			return nil, ErrNoSuchPort
		}
		i := p.info
		return &QueryResp{PortIndex: i.Index, DevFunc: i.DevFunc, Bus: i.Bus, Segment: i.Segment, MaxPortIndex: r.maxPort,
			Cap: i.Cap, Control: i.Control, Link: i.Link, Selective: i.Selective}, nil
	case *KSetGo:
		p := r.ports[m.PortIndex]
		if p == nil {
			return nil, ErrNoSuchPort
		}
		k := m.KSS
		if !p.keys.goKey(m.StreamID, k.KeySet(), k.Direction(), k.SubStream()) {
			return nil, fmt.Errorf("%w: %v", ErrNotProgram, m.KeyRef)
		}
		return &KGoStopAck{m.KeyRef}, nil
	case *KSetStop:
		p := r.ports[m.PortIndex]
		if p == nil {
			return nil, ErrNoSuchPort
		}
		k := m.KSS
		p.keys.stop(m.StreamID, k.KeySet(), k.Direction(), k.SubStream())
		return &KGoStopAck{m.KeyRef}, nil
	}
	return nil, fmt.Errorf("%w: %s is not a request", secchan.ErrCodeUnsupportedRequest, ObjectName(m.ObjectID()))
}

// keyProg answers KEY_PROG, always with a KP_ACK once the fields it
// echoes are there.
func (r *Responder) keyProg(b []byte) Message {
	if len(b) < keyProgHdr {
		ack := &KPAck{Status: KPIncorrectLength}
		if len(b) > 3 {
			ack.StreamID = b[3]
		}
		if len(b) > 5 {
			ack.KSS = KeySubStream(b[5])
		}
		return ack
	}
	ack := &KPAck{StreamID: b[3], KSS: KeySubStream(b[5]), PortIndex: b[6]}
	var m KeyProg
	_, err := m.Decode(b)
	defer m.zero()
	switch {
	case len(b) != keyProgSize:
		ack.Status = KPIncorrectLength
	case err != nil:
		ack.Status = KPUnsupportedValue
	case r.ports[m.PortIndex] == nil:
		ack.Status = KPUnsupportedPortIndex
	default:
		k := m.KSS
		if !r.ports[m.PortIndex].keys.program(m.StreamID, k.KeySet(), k.Direction(), k.SubStream(), &m.Key, m.IFV) {
			ack.Status = KPUnspecifiedFailure
		}
	}
	clear(b[keyProgHdr:min(len(b), keyProgSize)])
	return ack
}

func (m *KeyProg) zero() { clear(m.Key[:]); m.IFV = 0 }

// Port returns the key source of one port, for the simulated link.
func (r *Responder) Port(index uint8) (KeySource, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ports[index] == nil {
		return nil, false
	}
	return portKeys{r, index}, true
}

// Reset forgets every key, as a function reset does.
func (r *Responder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.ports {
		p.keys.zero()
	}
}

type portKeys struct {
	r     *Responder
	index uint8
}

func (p portKeys) ActiveKeySet(stream uint8, d Direction, s SubStream) (KeySet, bool) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	return p.r.ports[p.index].keys.activeKeySet(stream, d, s)
}

func (p portKeys) LinkKey(stream uint8, ks KeySet, d Direction, s SubStream) (LinkKey, bool) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	return p.r.ports[p.index].keys.linkKey(stream, ks, d, s)
}
