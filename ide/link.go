package ide

// A simulated IDE link (PCIe Base 6.x §6.33.4-6.33.6). Each end protects
// TLPs with AES-GCM-256 under the key that IDE_KM programmed for the
// stream, key set, direction and sub-stream, with a 96-bit MAC.
//
//  1. The sender takes the key set in use for its TX direction on the
//     sub-stream, and its invocation counter n for that key (0 for a
//     newly programmed key).
//  2. Nonce (96 bits, most significant byte first, as AES-GCM takes it):
//     the 32-bit fixed field, 0 for PCIe, then the 64-bit invocation
//     field IFV + n, big-endian. IFV is the value KEY_PROG carried. The
//     invocation field never wraps: at 2^64-1 the key is exhausted and
//     the sender refuses (ErrCounterExhausted) until it is replaced.
//  3. AAD: the IDE prefix the TLP carries (stream ID, sub-stream, key set)
//     and the TLP header; the plaintext is the TLP data.
//  4. The receiver accepts a TLP only under the key set in use for its RX
//     direction on that sub-stream (a key set stopped by a rotation is
//     stale: ErrKeySetNotInUse), recomputes the nonce from its own
//     counter, which is never sent, and opens. A replayed or reordered TLP
//     meets a counter that has moved on and fails like a wrong key
//     (ErrIntegrity). Only a TLP that opens advances the counter.
//
// Each LinkEnd is one port's view; its keys come from a KeySource: the
// device's IDE_KM Responder (Responder.Port) or a SimRootPort.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// MACSize is IDE's MAC length (96 bits).
const MACSize = 12

// Link errors.
var (
	ErrNoKey            = errors.New("ide link: no key in use for this stream and sub-stream")
	ErrKeySetNotInUse   = errors.New("ide link: TLP under a key set that is not in use (stale or not yet GO)")
	ErrIntegrity        = errors.New("ide link: TLP failed its integrity check (wrong key, replay or tampering)")
	ErrCounterExhausted = errors.New("ide link: invocation field exhausted, a new key is needed")
)

// TLP is a protected TLP as it crosses the simulated link: the IDE
// prefix fields, the header in the clear, and the encrypted data with the
// MAC appended.
type TLP struct {
	Stream uint8
	Sub    SubStream
	KeySet KeySet
	Header []byte
	Data   []byte
}

func (t *TLP) aad() []byte {
	return append([]byte{t.Stream, uint8(t.Sub), uint8(t.KeySet)}, t.Header...)
}

type ctrKey struct {
	stream uint8
	ks     KeySet
	sub    SubStream
}

type counter struct {
	gen uint64
	n   uint64
}

// LinkEnd is one end of a simulated IDE link.
type LinkEnd struct {
	keys   KeySource
	mu     sync.Mutex
	tx, rx map[ctrKey]*counter
}

// NewLinkEnd returns a link end that uses keys.
func NewLinkEnd(keys KeySource) *LinkEnd {
	return &LinkEnd{keys: keys, tx: map[ctrKey]*counter{}, rx: map[ctrKey]*counter{}}
}

func (e *LinkEnd) counter(m map[ctrKey]*counter, k ctrKey, gen uint64) *counter {
	c := m[k]
	if c == nil || c.gen != gen {
		c = &counter{gen: gen}
		m[k] = c
	}
	return c
}

// nonce is the 96-bit IV: fixed field 0, then IFV + n big-endian.
func nonce(ifv, n uint64) ([12]byte, error) {
	var iv [12]byte
	if n > math.MaxUint64-ifv {
		return iv, ErrCounterExhausted
	}
	binary.BigEndian.PutUint64(iv[4:], ifv+n)
	return iv, nil
}

func gcm(k *LinkKey) (cipher.AEAD, error) {
	b, err := aes.NewCipher(k.Key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithTagSize(b, MACSize)
}

// Send protects one TLP on the sub-stream with the key set in use for TX.
func (e *LinkEnd) Send(stream uint8, sub SubStream, header, data []byte) (TLP, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ks, ok := e.keys.ActiveKeySet(stream, TX, sub)
	if !ok {
		return TLP{}, fmt.Errorf("%w: TX stream %d %v", ErrNoKey, stream, sub)
	}
	k, ok := e.keys.LinkKey(stream, ks, TX, sub)
	if !ok {
		return TLP{}, fmt.Errorf("%w: TX stream %d %v %v", ErrNoKey, stream, ks, sub)
	}
	defer k.Zero()
	c := e.counter(e.tx, ctrKey{stream, ks, sub}, k.Gen)
	iv, err := nonce(k.IFV, c.n)
	if err != nil {
		return TLP{}, err
	}
	a, err := gcm(&k)
	if err != nil {
		return TLP{}, err
	}
	t := TLP{Stream: stream, Sub: sub, KeySet: ks, Header: append([]byte(nil), header...)}
	t.Data = a.Seal(nil, iv[:], data, t.aad())
	c.n++
	return t, nil
}

// Receive checks and decrypts one TLP with the key set in use for RX.
func (e *LinkEnd) Receive(t TLP) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ks, ok := e.keys.ActiveKeySet(t.Stream, RX, t.Sub)
	if !ok {
		return nil, fmt.Errorf("%w: RX stream %d %v", ErrNoKey, t.Stream, t.Sub)
	}
	if ks != t.KeySet {
		return nil, fmt.Errorf("%w: TLP under %v, %v in use", ErrKeySetNotInUse, t.KeySet, ks)
	}
	k, ok := e.keys.LinkKey(t.Stream, ks, RX, t.Sub)
	if !ok {
		return nil, fmt.Errorf("%w: RX stream %d %v %v", ErrNoKey, t.Stream, ks, t.Sub)
	}
	defer k.Zero()
	c := e.counter(e.rx, ctrKey{t.Stream, ks, t.Sub}, k.Gen)
	iv, err := nonce(k.IFV, c.n)
	if err != nil {
		return nil, err
	}
	a, err := gcm(&k)
	if err != nil {
		return nil, err
	}
	out, err := a.Open(nil, iv[:], t.Data, t.aad())
	if err != nil {
		return nil, ErrIntegrity
	}
	c.n++
	return out, nil
}

// SimRootPort is the root port of the simulated link: a RootPort that
// keeps its keys in this process, for tests and devsim. It stands for
// whatever the platform trusts to program a real root port (a TSM,
// trusted firmware); it never hands keys to the host.
type SimRootPort struct {
	mu   sync.Mutex
	keys keyTable
}

var _ RootPort = (*SimRootPort)(nil)
var _ KeySource = (*SimRootPort)(nil)

// ProgramKey implements RootPort.
func (p *SimRootPort) ProgramKey(_ context.Context, stream uint8, ks KeySet, d Direction, s SubStream, key *[KeySize]byte, ifv uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.keys.program(stream, ks, d, s, key, ifv) {
		return fmt.Errorf("ide: root port stream %d: %v %v %v is in use", stream, ks, d, s)
	}
	return nil
}

// Go implements RootPort.
func (p *SimRootPort) Go(_ context.Context, stream uint8, ks KeySet) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range Directions {
		for _, s := range SubStreams {
			if !p.keys.goKey(stream, ks, d, s) {
				return fmt.Errorf("ide: root port stream %d: %v %v %v not programmed", stream, ks, d, s)
			}
		}
	}
	return nil
}

// Stop implements RootPort.
func (p *SimRootPort) Stop(_ context.Context, stream uint8, ks KeySet) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range Directions {
		for _, s := range SubStreams {
			p.keys.stop(stream, ks, d, s)
		}
	}
	return nil
}

// ActiveKeySet implements KeySource.
func (p *SimRootPort) ActiveKeySet(stream uint8, d Direction, s SubStream) (KeySet, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys.activeKeySet(stream, d, s)
}

// LinkKey implements KeySource.
func (p *SimRootPort) LinkKey(stream uint8, ks KeySet, d Direction, s SubStream) (LinkKey, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys.linkKey(stream, ks, d, s)
}

// Zero forgets every key.
func (p *SimRootPort) Zero() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys.zero()
}

// CheckLink sends sample TLPs on every sub-stream of the stream in both
// directions between two link ends and checks each arrives intact.
func CheckLink(device, rootPort *LinkEnd, stream uint8) error {
	for _, s := range SubStreams {
		for _, dir := range []struct {
			name     string
			from, to *LinkEnd
		}{{"device to root port", device, rootPort}, {"root port to device", rootPort, device}} {
			for i := range 3 {
				hdr := []byte{0x40, 0x00, 0x00, byte(i), 0x01, 0x00, 0x00, 0x0F}
				data := fmt.Appendf(nil, "sample TLP %d %v %s", i, s, dir.name)
				t, err := dir.from.Send(stream, s, hdr, data)
				if err != nil {
					return fmt.Errorf("%s, %v: send: %w", dir.name, s, err)
				}
				got, err := dir.to.Receive(t)
				if err != nil {
					return fmt.Errorf("%s, %v: receive: %w", dir.name, s, err)
				}
				if string(got) != string(data) {
					return fmt.Errorf("%s, %v: data differs", dir.name, s)
				}
			}
		}
	}
	return nil
}

// DeviceLink is the device end of a simulated link as the root port
// reaches it: Exchange delivers t, which the root port protected with its
// TX key, to the device's port; the device opens it with its RX key and
// answers with the same payload under its own TX key (the same header and
// sub-stream), for the root port to open with its RX key. A refusal is
// the device's typed link error (ErrKeySetNotInUse, ErrIntegrity, ...).
// NewLocalLink is one in this process; NewRemoteLink one over DOE.
type DeviceLink interface {
	Exchange(ctx context.Context, port uint8, t TLP) (TLP, error)
}

type localLink struct{ end *LinkEnd }

// NewLocalLink returns the device end of a simulated link over one port's
// keys in this process (an in-process devsim: Responder.Port). It ignores
// Exchange's port: dev already is that port's keys.
func NewLocalLink(dev KeySource) DeviceLink { return localLink{NewLinkEnd(dev)} }

func (l localLink) Exchange(_ context.Context, _ uint8, t TLP) (TLP, error) { return l.end.echo(t) }

// echo is the device end's answer to a TLP: open it, send its payload
// back on the same sub-stream.
func (e *LinkEnd) echo(t TLP) (TLP, error) {
	data, err := e.Receive(t)
	if err != nil {
		return TLP{}, err
	}
	defer clear(data)
	return e.Send(t.Stream, t.Sub, t.Header, data)
}

// CheckDeviceLink sends sample TLPs from the root port's end on every
// sub-stream of the stream to the device end of link (port: the device's
// IDE port) and checks that each comes back intact: both directions of
// every sub-stream, the device's half of the work done wherever its keys
// are.
func CheckDeviceLink(ctx context.Context, link DeviceLink, port uint8, rootPort *LinkEnd, stream uint8) error {
	for _, s := range SubStreams {
		for i := range 3 {
			hdr := []byte{0x40, 0x00, 0x00, byte(i), 0x01, 0x00, 0x00, 0x0F}
			data := fmt.Appendf(nil, "sample TLP %d %v round trip", i, s)
			if err := roundTrip(ctx, link, port, rootPort, stream, s, hdr, data); err != nil {
				return err
			}
		}
	}
	return nil
}

func roundTrip(ctx context.Context, link DeviceLink, port uint8, rootPort *LinkEnd, stream uint8, s SubStream, hdr, data []byte) error {
	t, err := rootPort.Send(stream, s, hdr, data)
	if err != nil {
		return fmt.Errorf("root port to device, %v: send: %w", s, err)
	}
	back, err := link.Exchange(ctx, port, t)
	if err != nil {
		return fmt.Errorf("root port to device, %v: %w", s, err)
	}
	if back.Stream != stream || back.Sub != s || string(back.Header) != string(hdr) {
		return fmt.Errorf("device to root port, %v: came back as stream %d %v header % x", s, back.Stream, back.Sub, back.Header)
	}
	got, err := rootPort.Receive(back)
	if err != nil {
		return fmt.Errorf("device to root port, %v: receive: %w", s, err)
	}
	if string(got) != string(data) {
		return fmt.Errorf("device to root port, %v: data differs", s)
	}
	return nil
}
