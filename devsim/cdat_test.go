package devsim_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
)

// TestCXLFunctionCDAT reads the default table through the register-level
// driver, as a host reads a CXL device's.
func TestCXLFunctionCDAT(t *testing.T) {
	table := devsim.DefaultCDAT()
	f, err := devsim.NewCXLFunction(table)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := f.Driver()
	protos, err := doe.Discover(ctx, d, 0)
	if err != nil || !slices.Equal(protos, []doe.Protocol{doe.ProtocolDiscovery, doe.ProtocolCDAT}) {
		t.Fatalf("discovery = %v, %v", protos, err)
	}
	got, err := doe.ReadCDAT(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, table) {
		t.Fatalf("read % x\nwant % x", got, table)
	}
	h, structs, err := doe.ParseCDAT(got)
	if err != nil || h.Length != 16+5*24 || len(structs) != 5 || structs[0].Type != devsim.CDATTypeDSMAS || structs[4].Type != devsim.CDATTypeDSEMTS {
		t.Fatalf("ParseCDAT = %+v, %d structures, %v", h, len(structs), err)
	}

	// A handle past the end: the device sets Error; the driver aborts and
	// the mailbox works again.
	_, err = d.Exchange(ctx, doe.EncodeCDATRequest(6))
	if !errors.Is(err, doe.ErrDeviceError) {
		t.Fatalf("CDAT entry 6 of 6 = %v, want ErrDeviceError", err)
	}
	if _, err := doe.ReadCDAT(ctx, d); err != nil {
		t.Fatalf("after the error: %v", err)
	}
}

func TestNewCDATHandlerRefusesBadTables(t *testing.T) {
	bad := devsim.DefaultCDAT()
	bad[5]++ // checksum
	if _, err := devsim.NewCDATHandler(bad); !errors.Is(err, doe.ErrMalformed) {
		t.Fatalf("NewCDATHandler(bad checksum) = %v, want ErrMalformed", err)
	}
	if _, err := devsim.NewCXLFunction(bad[:8]); err == nil {
		t.Fatal("NewCXLFunction accepted an 8-byte table")
	}
}
