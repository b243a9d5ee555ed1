package platform

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Report is one platform report with everything a verifier needs to check it
// offline. Fields that do not apply to Kind are empty.
type Report struct {
	Kind Kind
	// Raw is the signed object as the platform produced it: the SEV-SNP
	// ATTESTATION_REPORT, the TDX quote (v4, with its PCK chain inside), or
	// the TPM quote's TPMS_ATTEST.
	Raw []byte
	// Certs is the SEV-SNP certificate table (AMD's GUID table: VCEK or
	// VLEK, ASK, ARK, extra platform info) as the firmware returned it.
	Certs []byte
	// Signature is the TPM quote's TPMT_SIGNATURE.
	Signature []byte
	// AKPublic is the TPMT_PUBLIC of the TPM attestation key. A verifier
	// must decide separately whether it trusts this key (EK certificate,
	// credential activation, or a platform report that binds it).
	AKPublic []byte
	// PCRs are the SHA-256 bank values of the quoted PCRs in selection order.
	PCRs []PCRValue
	// EventLog lists the Extend calls in order (TDX and vTPM).
	EventLog []Event
}

// PCRValue is one PCR of the SHA-256 bank.
type PCRValue struct {
	Index  uint32
	Digest []byte
}

// Event is one boot measurement: Digest is what the caller passed to Extend
// (the register is extended with MeasuredDigest(kind, Digest)), Description
// is informational and not measured.
type Event struct {
	Register    uint32
	Digest      []byte
	Description string
}

// Wire format of a marshalled Report (big-endian, version 1):
//
//	u8 version | u8<kind> | u24<raw> | u24<certs> | u16<signature> |
//	u16<ak public> | u8 count, count × (u8 index, u8<digest>) |
//	u16 count, count × (u8 register, u8<digest>, u16<description>)
//
// where x<...> is a length-prefixed byte string with an x-sized length.
const (
	reportFormatVersion = 1
	maxRawSize          = 1 << 20
	maxEvents           = 4096
	maxPCRs             = 24
)

// MarshalBinary encodes r in the format above.
func (r *Report) MarshalBinary() ([]byte, error) {
	if len(r.Raw) > maxRawSize || len(r.Certs) > maxRawSize {
		return nil, fmt.Errorf("platform: report too large")
	}
	if len(r.PCRs) > maxPCRs || len(r.EventLog) > maxEvents {
		return nil, fmt.Errorf("platform: too many PCRs or events")
	}
	var b cryptobyte.Builder
	b.AddUint8(reportFormatVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.Kind)) })
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Raw) })
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Certs) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Signature) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.AKPublic) })
	b.AddUint8(uint8(len(r.PCRs)))
	for _, p := range r.PCRs {
		if p.Index > 0xff {
			return nil, fmt.Errorf("platform: PCR index %d out of range", p.Index)
		}
		b.AddUint8(uint8(p.Index))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(p.Digest) })
	}
	b.AddUint16(uint16(len(r.EventLog)))
	for _, e := range r.EventLog {
		if e.Register > 0xff {
			return nil, fmt.Errorf("platform: register index %d out of range", e.Register)
		}
		b.AddUint8(uint8(e.Register))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Digest) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(e.Description)) })
	}
	return b.Bytes()
}

// UnmarshalBinary decodes data, which must be exactly one encoded Report.
func (r *Report) UnmarshalBinary(data []byte) error {
	s := cryptobyte.String(data)
	var (
		version                      uint8
		kind, raw, certs, sig, akPub cryptobyte.String
		nPCRs                        uint8
		nEvents                      uint16
		out                          Report
	)
	if !s.ReadUint8(&version) || version != reportFormatVersion {
		return fmt.Errorf("%w: unsupported version", ErrMalformedReport)
	}
	if !s.ReadUint8LengthPrefixed(&kind) || !s.ReadUint24LengthPrefixed(&raw) ||
		!s.ReadUint24LengthPrefixed(&certs) || !s.ReadUint16LengthPrefixed(&sig) ||
		!s.ReadUint16LengthPrefixed(&akPub) || !s.ReadUint8(&nPCRs) {
		return fmt.Errorf("%w: truncated header", ErrMalformedReport)
	}
	out.Kind = Kind(kind)
	switch out.Kind {
	case KindSNP, KindTDX, KindTPM:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrMalformedReport, string(kind))
	}
	if len(raw) > maxRawSize || len(certs) > maxRawSize || nPCRs > maxPCRs {
		return fmt.Errorf("%w: field too large", ErrMalformedReport)
	}
	out.Raw, out.Certs = clone(raw), clone(certs)
	out.Signature, out.AKPublic = clone(sig), clone(akPub)
	for range nPCRs {
		var idx uint8
		var d cryptobyte.String
		if !s.ReadUint8(&idx) || !s.ReadUint8LengthPrefixed(&d) {
			return fmt.Errorf("%w: truncated PCR", ErrMalformedReport)
		}
		out.PCRs = append(out.PCRs, PCRValue{Index: uint32(idx), Digest: clone(d)})
	}
	if !s.ReadUint16(&nEvents) || nEvents > maxEvents {
		return fmt.Errorf("%w: bad event count", ErrMalformedReport)
	}
	for range nEvents {
		var reg uint8
		var d, desc cryptobyte.String
		if !s.ReadUint8(&reg) || !s.ReadUint8LengthPrefixed(&d) || !s.ReadUint16LengthPrefixed(&desc) {
			return fmt.Errorf("%w: truncated event", ErrMalformedReport)
		}
		out.EventLog = append(out.EventLog, Event{Register: uint32(reg), Digest: clone(d), Description: string(desc)})
	}
	if !s.Empty() {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformedReport, len(s))
	}
	*r = out
	return nil
}
