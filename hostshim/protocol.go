package hostshim

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/devattest/devattest/doe"
)

// ParseProtocol reads a protocol as the configuration names it:
// "discovery", "cma", "secured-cma", or "VVVV:TT" in hex (vendor ID,
// data object type), e.g. "1e98:02" for CXL Table Access.
func ParseProtocol(s string) (doe.Protocol, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "discovery":
		return doe.ProtocolDiscovery, nil
	case "cma", "spdm", "cma/spdm":
		return doe.ProtocolCMA, nil
	case "secured-cma", "secured-spdm", "secured-cma/spdm":
		return doe.ProtocolSecuredCMA, nil
	}
	v, t, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(v) == 0 || len(v) > 4 || len(t) == 0 || len(t) > 2 {
		return doe.Protocol{}, fmt.Errorf("hostshim: protocol %q: want discovery, cma, secured-cma or VVVV:TT in hex", s)
	}
	vendor, err := strconv.ParseUint(v, 16, 16)
	if err != nil {
		return doe.Protocol{}, fmt.Errorf("hostshim: protocol %q: vendor ID: %w", s, err)
	}
	typ, err := strconv.ParseUint(t, 16, 8)
	if err != nil {
		return doe.Protocol{}, fmt.Errorf("hostshim: protocol %q: data object type: %w", s, err)
	}
	return doe.Protocol{Vendor: uint16(vendor), Type: uint8(typ)}, nil
}
