package doe

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Discovery (PCIe Base 6.x §6.30.1.1). Request DW: index (7:0), version
// (15:8). Response DW: vendor ID (15:0), data object type (23:16), next
// index (31:24); a next index of 0 ends the walk.

// maxDiscoveryEntries bounds the walk: the index is 8 bits wide.
const maxDiscoveryEntries = 256

// DiscoveryVersion returns the version to put in discovery requests for a
// DOE capability of version capVersion: 2 from capability version 2 on
// (PCIe 6.1), else 0, as Linux drivers/pci/doe.c does.
func DiscoveryVersion(capVersion int) uint8 {
	if capVersion >= 2 {
		return 2
	}
	return 0
}

// EncodeDiscoveryRequest builds the discovery request for index.
func EncodeDiscoveryRequest(index, version uint8) Object {
	p := make([]byte, 4)
	binary.LittleEndian.PutUint32(p, uint32(index)|uint32(version)<<8)
	return Object{Vendor: VendorPCISIG, Type: TypeDiscovery, Payload: p}
}

// DecodeDiscoveryRequest parses a discovery request object.
func DecodeDiscoveryRequest(o Object) (index, version uint8, err error) {
	if o.Protocol() != ProtocolDiscovery {
		return 0, 0, fmt.Errorf("%w: discovery request has protocol %v", ErrMalformed, o.Protocol())
	}
	if len(o.Payload) != 4 {
		return 0, 0, fmt.Errorf("%w: discovery request payload is %d bytes, want 4", ErrMalformed, len(o.Payload))
	}
	dw := binary.LittleEndian.Uint32(o.Payload)
	if dw>>16 != 0 {
		return 0, 0, fmt.Errorf("%w: discovery request reserved bits 31:16 are 0x%04x", ErrMalformed, dw>>16)
	}
	return uint8(dw), uint8(dw >> 8), nil
}

// EncodeDiscoveryResponse builds the discovery response naming p at this
// index, with next as the following index (0 for the last entry).
func EncodeDiscoveryResponse(p Protocol, next uint8) Object {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, uint32(p.Vendor)|uint32(p.Type)<<16|uint32(next)<<24)
	return Object{Vendor: VendorPCISIG, Type: TypeDiscovery, Payload: b}
}

// DecodeDiscoveryResponse parses a discovery response object.
func DecodeDiscoveryResponse(o Object) (p Protocol, next uint8, err error) {
	if o.Protocol() != ProtocolDiscovery {
		return p, 0, fmt.Errorf("%w: discovery response has protocol %v", ErrUnexpectedResponse, o.Protocol())
	}
	if len(o.Payload) != 4 {
		return p, 0, fmt.Errorf("%w: discovery response payload is %d bytes, want 4", ErrMalformed, len(o.Payload))
	}
	dw := binary.LittleEndian.Uint32(o.Payload)
	return Protocol{Vendor: uint16(dw), Type: uint8(dw >> 16)}, uint8(dw >> 24), nil
}

// Discover walks the discovery table of the DOE instance behind mb and
// returns its protocols in index order. A response that names vendor 0xFFFF
// (what QEMU returns past the end), revisits an index, or breaks the walk
// is an error: a device that cannot list its protocols is not to be trusted
// to speak them.
func Discover(ctx context.Context, mb Mailbox, version uint8) ([]Protocol, error) {
	var out []Protocol
	seen := make(map[uint8]bool)
	index := uint8(0)
	for {
		if len(out) >= maxDiscoveryEntries || seen[index] {
			return out, fmt.Errorf("%w: discovery revisits index %d (loop)", ErrMalformed, index)
		}
		seen[index] = true
		req := EncodeDiscoveryRequest(index, version)
		resp, err := mb.Exchange(ctx, req)
		if err != nil {
			return out, fmt.Errorf("doe: discovery index %d: %w", index, err)
		}
		p, next, err := DecodeDiscoveryResponse(resp)
		if err != nil {
			return out, fmt.Errorf("doe: discovery index %d: %w", index, err)
		}
		if p.Vendor == 0xFFFF {
			return out, fmt.Errorf("%w: discovery index %d names no protocol (vendor 0xffff)", ErrMalformed, index)
		}
		out = append(out, p)
		if next == 0 {
			return out, nil
		}
		index = next
	}
}
