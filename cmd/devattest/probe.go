package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/doe"
)

type probeFlags struct {
	connect      string
	discovery    bool
	cdat         bool
	discoveryVer uint
	raw          string
	json         bool
	timeout      time.Duration
	end          string
	trustAnchor  string
	version      string
	hash         string
	asym         string
	slot         uint8
	session      bool
	ide          bool
	idePort      uint8
	ideStream    uint8
	tdisp        bool
	tdispID      uint32
	mutualAuth   string
	psk          []byte
	pskHint      string
	pcap         string
	keylog       string
	debug        *cli.Debug
}

// protocolJSON is one entry of the --json protocol list.
type protocolJSON struct {
	Vendor uint16 `json:"vendor"`
	Type   uint8  `json:"type"`
	Name   string `json:"name"`
}

type discoveryJSON struct {
	Protocols []protocolJSON `json:"protocols"`
	Error     *string        `json:"error"`
}

func runProbe(args []string, stdout, stderr io.Writer) int {
	var pf probeFlags
	fs := cli.NewFlagSet("probe", "devattest probe [--connect ADDR] (--discovery | --raw HEX | --trust-anchor FILE [--version V] [--hash LIST] [--asym LIST]) [--json] [--pcap FILE [--keylog FILE]]")
	fs.SetOutput(stderr)
	fs.StringVar(&pf.connect, "connect", "127.0.0.1:2323", "socket-framing peer: HOST:PORT or unix:PATH")
	fs.BoolVar(&pf.discovery, "discovery", false, "list the DOE protocols of the mailbox")
	fs.UintVar(&pf.discoveryVer, "discovery-version", 0, "version field of discovery requests (0, or 2 for DOE capability version 2)")
	fs.BoolVar(&pf.cdat, "cdat", false, "read a CXL device's CDAT (CXL Table Access) and list its structures")
	fs.StringVar(&pf.raw, "raw", "", "send one whole DOE object given in hex (header included) and print the response")
	fs.BoolVar(&pf.json, "json", false, "print a JSON object for scripts")
	fs.DurationVar(&pf.timeout, "timeout", 10*time.Second, "deadline for the whole probe")
	fs.StringVar(&pf.trustAnchor, "trust-anchor", "", "authenticate the device over SPDM against the root certificate(s) in FILE (PEM or DER)")
	fs.StringVar(&pf.version, "version", "", "offer only this SPDM version: 1.0, 1.1, 1.2 or 1.3 (default: all)")
	fs.StringVar(&pf.hash, "hash", "", "base hash algorithms to offer, e.g. SHA_256,SHA_384 (default: SHA-256/384/512)")
	fs.StringVar(&pf.asym, "asym", "", "signature algorithms to offer, e.g. ECDSA_P256,ECDSA_P384 (default: all supported)")
	slot := fs.Uint("slot", 0, "certificate slot to authenticate with (0-7)")
	fs.BoolVar(&pf.session, "session", false, "after authentication, open a secure session: heartbeat, key updates, measurements inside, END_SESSION")
	pskHex := fs.String("psk", "", "open the session with this pre-shared key (hex) instead of KEY_EXCHANGE")
	fs.StringVar(&pf.pskHint, "psk-hint", "", "PSK hint sent with --psk (libspdm's sample: TestPskHint; a trailing NUL is added with --psk-hint-nul)")
	fs.BoolVar(&pf.ide, "ide", false, "inside the session, program IDE keys (QUERY, K0, GO, rotate to K1, STOP)")
	idePort := fs.Uint("ide-port", 0, "IDE_KM port index for --ide")
	ideStream := fs.Uint("ide-stream", 0, "IDE stream ID for --ide")
	fs.BoolVar(&pf.tdisp, "tdisp", false, "after --ide (whose K1 then stays in use), run the TDISP lifecycle: version, capabilities, lock on the IDE stream, report, start, stop, the state at each step")
	tdispID := fs.Uint64("tdisp-function-id", 0xBEEF, "TDISP interface function ID for --tdisp (spdm-emu's and devsim's: 0xBEEF)")
	fs.StringVar(&pf.mutualAuth, "mutual-auth", "", "CHAIN,KEY: the requester's certificate chain (concatenated DER, root first) and key (PEM), for responders that ask for mutual authentication")
	hintNUL := fs.Bool("psk-hint-nul", false, "append a NUL byte to --psk-hint, as libspdm's sample hint has")
	fs.StringVar(&pf.pcap, "pcap", "", "capture every DOE object exchanged to FILE (classic pcap, link type 292, as DMTF spdm-emu writes; read it with devattest dump or spdm_dump)")
	fs.StringVar(&pf.keylog, "keylog", "", "DANGER: append each session's secret to FILE (mode 0600) so that devattest dump or spdm_dump can decrypt the capture; for debugging only")
	fs.StringVar(&pf.end, "end", "shutdown", "how to end the connection: shutdown (SHUTDOWN; libspdm's spdm_responder_emu then exits) or continue (CONTINUE; it keeps serving)")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	const prog = "devattest probe"
	switch {
	case fs.NArg() != 0:
		return cli.UsageError(stderr, prog, "unexpected arguments %q", fs.Args())
	case btoi(pf.discovery)+btoi(pf.cdat)+btoi(pf.raw != "")+btoi(pf.trustAnchor != "") != 1:
		return cli.UsageError(stderr, prog, "give exactly one of --discovery, --cdat, --raw HEX or --trust-anchor FILE")
	case *slot > 7:
		return cli.UsageError(stderr, prog, "--slot must be 0 to 7")
	case pf.discoveryVer > 255:
		return cli.UsageError(stderr, prog, "--discovery-version must fit in a byte")
	case pf.timeout <= 0:
		return cli.UsageError(stderr, prog, "--timeout must be positive")
	case pf.end != "shutdown" && pf.end != "continue":
		return cli.UsageError(stderr, prog, "--end %q: want shutdown or continue", pf.end)
	}
	if pf.keylog != "" && pf.trustAnchor == "" {
		return cli.Fail(stderr, prog, errors.New("--keylog goes with --trust-anchor (only SPDM sessions have secrets)"))
	}
	debug, err := cli.OpenDebug(pf.pcap, pf.keylog, capture.ViewProbe, stderr)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer debug.Close()
	pf.debug = debug
	ctx, cancel := context.WithTimeout(context.Background(), pf.timeout)
	defer cancel()
	pf.slot = uint8(*slot)
	if *pskHex != "" {
		k, err := cli.DecodeHex("--psk", *pskHex)
		if err != nil {
			return cli.UsageError(stderr, prog, "%v", err)
		}
		pf.psk = k
	}
	if *hintNUL {
		pf.pskHint += "\x00"
	}
	if (pf.psk != nil || pf.pskHint != "") && !pf.session {
		return cli.UsageError(stderr, prog, "--psk and --psk-hint go with --session")
	}
	if *idePort > 255 || *ideStream > 255 {
		return cli.UsageError(stderr, prog, "--ide-port and --ide-stream must fit in a byte")
	}
	pf.idePort, pf.ideStream = uint8(*idePort), uint8(*ideStream)
	if *tdispID > 0xFFFFFFFF {
		return cli.UsageError(stderr, prog, "--tdisp-function-id must fit in 32 bits")
	}
	pf.tdispID = uint32(*tdispID)
	if pf.tdisp && !pf.ide {
		return cli.UsageError(stderr, prog, "--tdisp goes with --ide (LOCK_INTERFACE binds the keyed IDE stream)")
	}
	if pf.ide && !pf.session {
		return cli.UsageError(stderr, prog, "--ide goes with --session (keys travel only inside a secure session)")
	}
	if pf.mutualAuth != "" && pf.trustAnchor == "" {
		return cli.UsageError(stderr, prog, "--mutual-auth goes with --trust-anchor (it answers a responder's request during authentication or a session)")
	}
	if pf.session && pf.trustAnchor == "" {
		return cli.UsageError(stderr, prog, "--session needs --trust-anchor (the session follows authentication)")
	}
	switch {
	case pf.raw != "":
		return probeRaw(ctx, pf, stdout, stderr)
	case pf.cdat:
		return probeCDAT(ctx, pf, stdout, stderr)
	case pf.trustAnchor != "":
		return probeSPDM(ctx, pf, stdout, stderr)
	}
	return probeDiscovery(ctx, pf, stdout, stderr)
}

func probeDiscovery(ctx context.Context, pf probeFlags, stdout, stderr io.Writer) int {
	protos, err := discover(ctx, pf, uint8(pf.discoveryVer))
	if pf.json {
		out := discoveryJSON{Protocols: []protocolJSON{}}
		for _, p := range protos {
			out.Protocols = append(out.Protocols, protocolJSON{Vendor: p.Vendor, Type: p.Type, Name: p.Name()})
		}
		if err != nil {
			msg := err.Error()
			out.Error = &msg
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else if err == nil {
		fmt.Fprintf(stdout, "DOE protocols at %s:\n", pf.connect)
		for i, p := range protos {
			fmt.Fprintf(stdout, "  [%d] %04x:%02x  %s\n", i, p.Vendor, p.Type, p.Name())
		}
	}
	if err != nil {
		return cli.Fail(stderr, "devattest probe", err)
	}
	return 0
}

func discover(ctx context.Context, pf probeFlags, version uint8) ([]doe.Protocol, error) {
	c, mb, err := dialProbe(ctx, pf)
	if err != nil {
		return nil, err
	}
	defer endConn(c, pf.end)
	return doe.Discover(ctx, mb, version)
}

// dialProbe connects to the peer and returns the connection and the
// mailbox to use over it: the connection itself, or with --pcap the
// connection with every exchange captured.
func dialProbe(ctx context.Context, pf probeFlags) (*doe.SocketClient, doe.Mailbox, error) {
	w, err := pf.debug.Capture(pf.connect, false)
	if err != nil {
		return nil, nil, err
	}
	c, err := doe.Dial(ctx, pf.connect)
	if err != nil {
		return nil, nil, err
	}
	return c, cli.Wrap(c, w), nil
}

// endConn ends the connection the way --end asks.
func endConn(c *doe.SocketClient, end string) {
	if end == "continue" {
		_ = c.Release()
		return
	}
	_ = c.Close()
}

func probeRaw(ctx context.Context, pf probeFlags, stdout, stderr io.Writer) int {
	const prog = "devattest probe"
	b, err := cli.DecodeHex("--raw", strings.Join(strings.Fields(pf.raw), ""))
	if err != nil {
		return cli.UsageError(stderr, prog, "%v", err)
	}
	req, err := doe.Decode(b)
	if err != nil {
		return cli.Fail(stderr, prog, fmt.Errorf("--raw: %w", err))
	}
	c, mb, err := dialProbe(ctx, pf)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer endConn(c, pf.end)
	resp, err := mb.Exchange(ctx, req)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	enc, _ := resp.Encode() // a decoded object always encodes
	if pf.json {
		out := struct {
			Vendor   uint16 `json:"vendor"`
			Type     uint8  `json:"type"`
			Name     string `json:"name"`
			Response string `json:"response"`
		}{resp.Vendor, resp.Type, resp.Protocol().Name(), hex.EncodeToString(enc)}
		_ = json.NewEncoder(stdout).Encode(out)
		return 0
	}
	fmt.Fprintf(stdout, "response: %s, %d DW\n%s\n", resp.Protocol(), resp.DWCount(), hex.EncodeToString(enc))
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
