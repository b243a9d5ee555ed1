package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/doe"
)

// cdatJSON is the --cdat --json output: the table as read, and its parts.
type cdatJSON struct {
	Length     uint32              `json:"length"`
	Revision   uint8               `json:"revision"`
	Sequence   uint32              `json:"sequence"`
	Structures []cdatStructureJSON `json:"structures"`
	// Table is the whole table in hex, as Linux shows it in
	// /sys/bus/cxl/devices/endpointN/CDAT.
	Table string `json:"table"`
}

type cdatStructureJSON struct {
	Type  uint8  `json:"type"`
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Data  string `json:"data"`
}

// probeCDAT reads a CXL device's CDAT through the mailbox (CXL Table
// Access, vendor 0x1E98 type 2; a shim forwards it when the listener's
// allowed_types has 1e98:02).
func probeCDAT(ctx context.Context, pf probeFlags, stdout, stderr io.Writer) int {
	const prog = "devattest probe"
	c, mb, err := dialProbe(ctx, pf)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer endConn(c, pf.end)
	table, err := doe.ReadCDAT(ctx, mb)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	h, entries, err := doe.ParseCDAT(table) // ReadCDAT checked it already
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	if pf.json {
		out := cdatJSON{Length: h.Length, Revision: h.Revision, Sequence: h.Sequence, Structures: []cdatStructureJSON{}, Table: hex.EncodeToString(table)}
		for _, e := range entries {
			out.Structures = append(out.Structures, cdatStructureJSON{Type: e.Type, Name: doe.CDATTypeName(e.Type), Bytes: len(e.Data), Data: hex.EncodeToString(e.Data)})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return 0
	}
	fmt.Fprintf(stdout, "CDAT at %s: %d bytes, revision %d, sequence %d, checksum ok\n", pf.connect, h.Length, h.Revision, h.Sequence)
	for i, e := range entries {
		fmt.Fprintf(stdout, "  [%d] %-7s %3d bytes  %s\n", i, doe.CDATTypeName(e.Type), len(e.Data), hex.EncodeToString(e.Data[4:]))
	}
	return 0
}
