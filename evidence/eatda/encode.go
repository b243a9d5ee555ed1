package eatda

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/secchan"
)

// encMode is RFC 8949 core deterministic encoding: sorted map keys,
// shortest forms, definite lengths.
var encMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options
	}
	return em
}()

// HashAlgorithmType is the draft's hash-algorithm-type for an SPDM
// algorithm name (secchan's names, e.g. "SHA_384"). The draft numbers
// SHA-256 as 0 and the others as SPDM's MeasurementHashAlgo bit values
// shifted right by one.
func HashAlgorithmType(name string) (uint64, bool) {
	v, ok := map[string]uint64{
		"SHA_256": 0, "SHA_384": 2, "SHA_512": 4,
		"SHA3_256": 8, "SHA3_384": 16, "SHA3_512": 32, "SM3_256": 64,
	}[name]
	return v, ok
}

// chainHashSize is the root-hash size in an SPDM chain's header.
func chainHashSize(baseHash string) (int, bool) {
	v, ok := map[string]int{
		"SHA_256": 32, "SHA_384": 48, "SHA_512": 64,
		"SHA3_256": 32, "SHA3_384": 48, "SHA3_512": 64, "SM3_256": 32,
	}[baseHash]
	return v, ok
}

// InterfaceReportOf is the hook for TDISP: it returns the device's
// interface report claim, or nil when the evidence carries none. The
// TDISP work replaces it with the conversion of its evidence field.
var InterfaceReportOf = func(d *evidence.Device) *InterfaceReport { return nil }

// EncodeBody is the claims set of body: the owner's nonce as eat_nonce,
// one SPDM submodule per device that passed, named after its leaf
// certificate (SubmodName), and devattest's private claims.
func EncodeBody(body *evidence.Body) ([]byte, error) {
	t, err := FromBody(body)
	if err != nil {
		return nil, err
	}
	return t.Marshal()
}

// FromBody builds the Token of body (see EncodeBody).
func FromBody(body *evidence.Body) (*Token, error) {
	if n := len(body.Nonce); n < MinNonceSize || n > MaxNonceSize {
		return nil, fmt.Errorf("%w: the owner's nonce has %d bytes, eat_nonce takes %d to %d", ErrEncode, n, MinNonceSize, MaxNonceSize)
	}
	t := &Token{
		Profile: ProfileDevice,
		Nonce:   bytes.Clone(body.Nonce),
		Submods: map[string]*SPDMClaims{},
		Devattest: &Private{
			PolicyDigest: bytes.Clone(body.PolicyDigest),
			Platform:     body.Platform,
			BootBinding:  body.BootBinding,
			BootError:    body.BootError,
			Created:      timeText(body.Created),
		},
	}
	if body.Boot != nil {
		devs := make([][]byte, len(body.Boot.Devices))
		for i, d := range body.Boot.Devices {
			devs[i] = d
		}
		t.Devattest.BootDigests = evidence.BootLog(body.Boot.PolicyDigest, devs)
	}
	for i := range body.Devices {
		d := &body.Devices[i]
		if !d.OK() {
			t.Devattest.Failed = append(t.Devattest.Failed, FailedDevice{Label: d.Label, FailedStep: d.FailedStep, Error: d.Error})
			continue
		}
		name, claims, err := deviceClaims(d)
		if err != nil {
			return nil, fmt.Errorf("%w: device %q: %w", ErrEncode, d.Label, err)
		}
		if prev, dup := t.Submods[name]; dup {
			return nil, fmt.Errorf("%w: devices %q and %q have the same submodule name %q", ErrEncode, prev.Devattest.Label, d.Label, name)
		}
		t.Submods[name] = claims
	}
	if len(t.Submods) == 0 {
		// The draft's submods map must not be empty ("+ device-name").
		return nil, fmt.Errorf("%w: no device passed, and the claims set needs at least one submodule", ErrEncode)
	}
	return t, nil
}

// Marshal encodes t deterministically.
func (t *Token) Marshal() ([]byte, error) {
	b, err := encMode.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return b, nil
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func deviceClaims(d *evidence.Device) (string, *SPDMClaims, error) {
	a, m := d.Algorithms, d.Measurements
	if a == nil || m == nil || len(d.CertChain) == 0 {
		return "", nil, fmt.Errorf("no algorithms, certificate chain or measurements")
	}
	hs, ok := chainHashSize(a.BaseHash)
	if !ok {
		return "", nil, fmt.Errorf("base hash %q has no chain hash size", a.BaseHash)
	}
	if len(d.CertChain) < 4+hs {
		return "", nil, fmt.Errorf("certificate chain of %d bytes is shorter than its header", len(d.CertChain))
	}
	if d.CertSlot != 0 {
		// The draft's certificates map requires the default slot.
		return "", nil, fmt.Errorf("chain from slot %d: the draft's certificates claim requires slot 0", d.CertSlot)
	}
	der := bytes.Clone(d.CertChain[4+hs:])
	name, err := SubmodName(der)
	if err != nil {
		return "", nil, err
	}
	c := &SPDMClaims{
		Profile:         ProfileDeviceSPDM,
		Certificates:    map[uint8][]byte{d.CertSlot: der},
		InterfaceReport: InterfaceReportOf(d),
		Devattest: &DevicePrivate{
			Label:       d.Label,
			SPDMVersion: d.SPDMVersion,
			InSession:   m.InSession,
			Started:     timeText(d.Started),
			Finished:    timeText(d.Finished),
		},
	}
	if err := c.addBlocks(d); err != nil {
		return "", nil, err
	}
	v, err := secchan.ParseVersion(d.SPDMVersion)
	if err != nil {
		return "", nil, err
	}
	if v >= secchan.V12 {
		// From 1.2 on the transcript starts with VCA and the signature
		// is over the combined prefix and the transcript hash.
		if c.VCA, err = vcaPrefix(m.Transcript); err != nil {
			return "", nil, err
		}
		if c.Challenge, err = signatureClaim(d, v); err != nil {
			return "", nil, err
		}
	}
	if s := d.Session; s != nil {
		c.Devattest.Session = &Session{ID: s.ID, AEAD: s.AEAD, Ended: s.Ended}
	}
	if x := d.IDE; x != nil {
		ide := &IDE{Port: x.Port, Stream: x.Stream, KeySet: x.KeySet, SubStreams: x.SubStreams, RootPort: x.RootPort, Steps: [][2]string{}}
		if ide.SubStreams == nil {
			ide.SubStreams = []string{}
		}
		for _, st := range x.Steps {
			ide.Steps = append(ide.Steps, [2]string{st.Name, st.Result})
		}
		c.Devattest.IDE = ide
	}
	for _, e := range d.Events {
		c.Devattest.Events = append(c.Devattest.Events, Event{Time: timeText(e.Time), Kind: e.Kind, Message: e.Message})
	}
	return name, c, nil
}

// addBlocks converts the parsed blocks: those the draft can hold become
// measurements, the rest private OtherBlocks.
func (c *SPDMClaims) addBlocks(d *evidence.Device) error {
	ms := &Measurements{Blocks: map[uint8]Measurement{}}
	alg, algOK := HashAlgorithmType(d.Algorithms.MeasurementHash)
	blocks := append([]evidence.Block(nil), d.Measurements.Blocks...)
	sort.SliceStable(blocks, func(i, j int) bool { return blocks[i].Index < blocks[j].Index })
	for _, b := range blocks {
		if _, dup := ms.Blocks[b.Index]; dup {
			return fmt.Errorf("measurement block %d repeated", b.Index)
		}
		if b.Index < minBlockID || b.Index > maxBlockID || b.TypeCode > maxComponentType {
			c.Devattest.OtherBlocks = append(c.Devattest.OtherBlocks, OtherBlock{Index: b.Index, Type: b.TypeCode, Raw: b.Raw, Value: bytes.Clone(b.Value)})
			continue
		}
		mb := Measurement{ComponentType: b.TypeCode}
		if b.Raw {
			mb.Raw = bytes.Clone(b.Value)
			if mb.Raw == nil {
				mb.Raw = []byte{}
			}
		} else {
			if !algOK {
				return fmt.Errorf("measurement hash %q has no hash-algorithm-type", d.Algorithms.MeasurementHash)
			}
			mb.Digest = &Digest{Alg: alg, Val: bytes.Clone(b.Value)}
		}
		ms.Blocks[b.Index] = mb
	}
	if len(ms.Blocks) > 0 {
		c.Measurements = ms
	}
	return nil
}

// vcaPrefix is the GET_VERSION … ALGORITHMS prefix of a 1.2+ transcript.
func vcaPrefix(t []byte) ([]byte, error) {
	vca, err := secchan.ParseVCA(t)
	if err != nil {
		return nil, fmt.Errorf("the transcript does not start with VCA: %w", err)
	}
	return bytes.Clone(t[:vca.Len]), nil
}

// signatureClaim is the 3807 claim: the MEASUREMENTS signature with both
// nonces, the combined prefix and L1.
func signatureClaim(d *evidence.Device, v secchan.Version) (*Signature, error) {
	m := d.Measurements
	var rsp secchan.Measurements
	n, err := rsp.Decode(m.Response, 0)
	if err != nil {
		return nil, fmt.Errorf("the signed response does not decode: %w", err)
	}
	if n >= len(m.Response) {
		return nil, fmt.Errorf("the response carries no signature")
	}
	if len(m.Nonce) != secchan.NonceSize {
		return nil, fmt.Errorf("requester nonce of %d bytes", len(m.Nonce))
	}
	alg, ok := HashAlgorithmType(d.Algorithms.BaseHash)
	if !ok {
		return nil, fmt.Errorf("base hash %q has no hash-algorithm-type", d.Algorithms.BaseHash)
	}
	return &Signature{
		Slot:           d.CertSlot,
		RequesterNonce: bytes.Clone(m.Nonce),
		ResponderNonce: bytes.Clone(rsp.Nonce[:]),
		CombinedPrefix: CombinedPrefix(v, secchan.ContextMeasurements),
		IL1:            bytes.Clone(m.Transcript),
		BaseHashAlgo:   alg,
		Signature:      bytes.Clone(m.Response[n:]),
	}, nil
}

// CombinedPrefix is DSP0274's 100-byte combined SPDM prefix of version v
// (1.2 or later) for a signing context: "dmtf-spdm-v1.N.*" four times,
// zero bytes, then the context ending at byte 100. It is nil when the
// two do not fit in 100 bytes.
func CombinedPrefix(v secchan.Version, context string) []byte {
	p := bytes.Repeat([]byte(fmt.Sprintf("dmtf-spdm-v%d.%d.*", v>>4, v&0xF)), 4)
	pad := CombinedPrefixSize - len(p) - len(context)
	if pad < 0 {
		return nil
	}
	p = append(p, make([]byte, pad)...)
	return append(p, context...)
}
