package eatda

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// decMode is strict: duplicate map keys, indefinite lengths and tags are
// refused, depth and sizes bounded.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   maxDepth,
		MaxArrayElements:  maxArrayElems,
		MaxMapPairs:       maxPairs,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
		DefaultMapType:    nil,
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}.DecMode()
	if err != nil {
		panic(err) // static options
	}
	return dm
}()

// tagUCCS is the CBOR tag of an unprotected claims set (RFC 9781).
const tagUCCS = 601

// Decode parses a claims set strictly (untagged, or tagged 601 as a
// UCCS) and checks it against the draft's CDDL. Claims it does not know
// are ignored, as EAT requires; a submodule of another profile is kept
// only by name (Other).
func Decode(b []byte) (*Token, error) {
	if len(b) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrDecode, len(b), MaxTokenSize)
	}
	b = stripUCCSTag(b)
	var raw struct {
		Profile   string                     `cbor:"265,keyasint"`
		Nonce     []byte                     `cbor:"10,keyasint"`
		Submods   map[string]cbor.RawMessage `cbor:"266,keyasint"`
		Devattest *Private                   `cbor:"-65537,keyasint,omitempty"`
	}
	if err := decMode.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	t := &Token{Profile: raw.Profile, Nonce: raw.Nonce, Submods: map[string]*SPDMClaims{}, Devattest: raw.Devattest}
	for name, rm := range raw.Submods {
		var p struct {
			Profile string `cbor:"265,keyasint"`
		}
		if err := decMode.Unmarshal(rm, &p); err != nil {
			return nil, fmt.Errorf("%w: submodule %q: %w", ErrDecode, name, err)
		}
		switch p.Profile {
		case ProfileDeviceSPDM:
			var c SPDMClaims
			if err := decMode.Unmarshal(rm, &c); err != nil {
				return nil, fmt.Errorf("%w: submodule %q: %w", ErrDecode, name, err)
			}
			t.Submods[name] = &c
		case ProfilePCIeLegacy:
			t.Other = append(t.Other, name)
		default:
			return nil, fmt.Errorf("%w: submodule %q has profile %q", ErrInvalid, name, p.Profile)
		}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func stripUCCSTag(b []byte) []byte {
	// 601 = major type 6, two-byte argument: d9 02 59.
	if len(b) >= 3 && b[0] == 0xd9 && b[1] == 0x02 && b[2] == 0x59 {
		return b[3:]
	}
	return b
}

// Validate checks t against the draft's CDDL.
func (t *Token) Validate() error {
	if t.Profile != ProfileDevice {
		return fmt.Errorf("%w: eat_profile %q (want %q)", ErrInvalid, t.Profile, ProfileDevice)
	}
	if n := len(t.Nonce); n < MinNonceSize || n > MaxNonceSize {
		return fmt.Errorf("%w: eat_nonce of %d bytes (want %d to %d)", ErrInvalid, n, MinNonceSize, MaxNonceSize)
	}
	if len(t.Submods)+len(t.Other) == 0 {
		return fmt.Errorf("%w: no submodules", ErrInvalid)
	}
	for name, c := range t.Submods {
		if err := c.validate(); err != nil {
			return fmt.Errorf("%w: submodule %q: %v", ErrInvalid, name, err)
		}
	}
	return nil
}

func (c *SPDMClaims) validate() error {
	if c == nil {
		return fmt.Errorf("empty")
	}
	if c.Profile != ProfileDeviceSPDM {
		return fmt.Errorf("eat_profile %q", c.Profile)
	}
	if c.Measurements == nil && c.Certificates == nil {
		return fmt.Errorf("neither measurements nor certificates")
	}
	if c.Challenge != nil && c.Certificates == nil {
		return fmt.Errorf("a challenge without certificates")
	}
	if c.Certificates != nil {
		if _, ok := c.Certificates[0]; !ok {
			return fmt.Errorf("certificates without the default slot 0")
		}
		for slot := range c.Certificates {
			if slot > 7 {
				return fmt.Errorf("certificate slot %d", slot)
			}
		}
	}
	if m := c.Measurements; m != nil {
		if len(m.Blocks) == 0 {
			return fmt.Errorf("an empty measurements map")
		}
		for id, mb := range m.Blocks {
			if id < minBlockID || id > maxBlockID {
				return fmt.Errorf("measurement block id %d (want %d..%d)", id, minBlockID, maxBlockID)
			}
			if mb.ComponentType > maxComponentType {
				return fmt.Errorf("block %d: component type %d", id, mb.ComponentType)
			}
			if (mb.Digest == nil) == (mb.Raw == nil) {
				return fmt.Errorf("block %d: want exactly one of digest and raw value", id)
			}
			if d := mb.Digest; d != nil {
				switch d.Alg.(type) {
				case uint64, string:
				default:
					return fmt.Errorf("block %d: digest algorithm is %T, want uint or text", id, d.Alg)
				}
			}
		}
		if m.Signature != nil {
			if err := m.Signature.validate(); err != nil {
				return fmt.Errorf("measurements signature: %v", err)
			}
		}
	}
	if s := c.Challenge; s != nil {
		if err := s.validate(); err != nil {
			return fmt.Errorf("challenge: %v", err)
		}
	}
	if r := c.InterfaceReport; r != nil {
		if bytes.Equal(mustMarshal(r), []byte{0xa0}) {
			return fmt.Errorf("an empty device interface report")
		}
	}
	return nil
}

func (s *Signature) validate() error {
	switch {
	case s.Slot > 7:
		return fmt.Errorf("slot %d", s.Slot)
	case len(s.RequesterNonce) != 32 || len(s.ResponderNonce) != 32:
		return fmt.Errorf("nonces of %d and %d bytes (want 32)", len(s.RequesterNonce), len(s.ResponderNonce))
	case len(s.CombinedPrefix) != CombinedPrefixSize:
		return fmt.Errorf("combined SPDM prefix of %d bytes (want %d)", len(s.CombinedPrefix), CombinedPrefixSize)
	}
	switch s.BaseHashAlgo {
	case 0, 2, 4, 8, 16, 32, 64:
	default:
		return fmt.Errorf("base-hash-algo %d", s.BaseHashAlgo)
	}
	return nil
}

func mustMarshal(v any) []byte {
	b, _ := encMode.Marshal(v)
	return b
}

// MarshalCBOR writes the blocks by index (and "signature" if set).
func (m Measurements) MarshalCBOR() ([]byte, error) {
	out := make(map[any]any, len(m.Blocks)+1)
	for k, v := range m.Blocks {
		out[uint64(k)] = v
	}
	if m.Signature != nil {
		out["signature"] = m.Signature
	}
	return encMode.Marshal(out)
}

// UnmarshalCBOR reads blocks by uint index and the "signature" entry.
func (m *Measurements) UnmarshalCBOR(b []byte) error {
	var raw map[any]cbor.RawMessage
	if err := decMode.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = Measurements{Blocks: map[uint8]Measurement{}}
	for k, v := range raw {
		switch k := k.(type) {
		case uint64:
			if k > 255 {
				return fmt.Errorf("measurement block id %d", k)
			}
			var mb Measurement
			if err := decMode.Unmarshal(v, &mb); err != nil {
				return fmt.Errorf("block %d: %w", k, err)
			}
			m.Blocks[uint8(k)] = mb
		case string:
			if k != "signature" {
				return fmt.Errorf("measurements key %q", k)
			}
			m.Signature = new(Signature)
			if err := decMode.Unmarshal(v, m.Signature); err != nil {
				return fmt.Errorf("signature: %w", err)
			}
		default:
			return fmt.Errorf("measurements key of type %T", k)
		}
	}
	return nil
}
