package hostshim_test

import (
	"testing"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

func TestParseProtocol(t *testing.T) {
	for in, want := range map[string]doe.Protocol{
		"discovery":   doe.ProtocolDiscovery,
		"cma":         doe.ProtocolCMA,
		"CMA":         doe.ProtocolCMA,
		"secured-cma": doe.ProtocolSecuredCMA,
		"0001:01":     doe.ProtocolCMA,
		"1e98:02":     doe.ProtocolCDAT,
		"1E98:2":      doe.ProtocolCDAT,
		"ffff:ff":     {Vendor: 0xffff, Type: 0xff},
	} {
		got, err := hostshim.ParseProtocol(in)
		if err != nil || got != want {
			t.Errorf("ParseProtocol(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "spdmx", "1e98", "1e98:", ":02", "10000:01", "0001:100", "0001:0x1", "g001:01", "0001:01:02", "-001:01"} {
		if got, err := hostshim.ParseProtocol(bad); err == nil {
			t.Errorf("ParseProtocol(%q) = %v, want an error", bad, got)
		}
	}
}
