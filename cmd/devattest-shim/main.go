// Command devattest-shim is the host operator's daemon: it serves a guest
// mediated access to one VF's DOE mailbox over the socket framing.
package main

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

const prog = "devattest-shim"

func run(args []string, stderr io.Writer) int {
	fs := cli.NewFlagSet(prog, prog+" --listen ADDR --device socket:HOST:PORT|devsim|sysfs:BDF")
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "address to serve the guest on: HOST:PORT or unix:PATH")
	device := fs.String("device", "", "the VF: socket:HOST:PORT (an spdm-emu-protocol responder), devsim (in-process emulated VF) or sysfs:BDF (real hardware)")
	sysfsRoot := fs.String("sysfs-root", doe.SysfsRoot, "where PCI devices are listed (for sysfs:BDF)")
	maxObject := fs.Int("max-object", hostshim.DefaultMaxObjectSize, "largest request object forwarded, in bytes")
	wait := fs.Duration("wait", 5*time.Second, "how long a connection waits for a mailbox held by another")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	devsimCA := fs.String("devsim-ca-out", "", "with --device devsim: write the emulated VF's root certificate here (DER, or PEM if FILE ends in .pem)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() != 0:
		return cli.Fail(stderr, prog, fmt.Errorf("unexpected arguments %q", fs.Args()))
	case *listen == "":
		return cli.Fail(stderr, prog, errors.New("--listen is required"))
	case *device == "":
		return cli.Fail(stderr, prog, errors.New("--device is required"))
	case *maxObject < doe.HeaderSize || *maxObject > doe.MaxObjectSize:
		return cli.Fail(stderr, prog, fmt.Errorf("--max-object must be between %d and %d", doe.HeaderSize, doe.MaxObjectSize))
	case *wait <= 0:
		return cli.Fail(stderr, prog, errors.New("--wait must be positive"))
	case *devsimCA != "" && *device != "devsim":
		return cli.Fail(stderr, prog, errors.New("--devsim-ca-out goes with --device devsim"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(*logLevel))); err != nil {
		return cli.Fail(stderr, prog, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel))
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, cancel := cli.SignalContext()
	defer cancel()
	backend, closeBackend, err := openBackend(ctx, *device, *sysfsRoot, *devsimCA)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer closeBackend()

	med := hostshim.NewMediator(backend, hostshim.Options{VF: *device, MaxObjectSize: *maxObject, Wait: *wait, Logger: log})
	ln, err := doe.Listen(ctx, *listen)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	// The frame bound stays at one maximal DOE object, so an oversize request
	// reaches the mediator and gets its reason on a connection that stays up.
	srv := &doe.Server{Connect: med.Connect, Logger: log}
	log.Info("shim serving", "listen", ln.Addr().String(), "device", *device)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil {
		return cli.Fail(stderr, prog, err)
	}
	log.Info("shim stopped")
	return 0
}

// openBackend turns --device into the Mailbox the shim mediates.
func openBackend(ctx context.Context, device, sysfsRoot, devsimCA string) (doe.Mailbox, func(), error) {
	kind, arg, _ := strings.Cut(device, ":")
	switch kind {
	case "devsim":
		if arg != "" {
			return nil, nil, fmt.Errorf("--device devsim takes no argument, got %q", device)
		}
		vf, rootDER, _, err := devsim.NewDefaultSPDMVF()
		if err != nil {
			return nil, nil, fmt.Errorf("--device devsim: %w", err)
		}
		if devsimCA != "" {
			out := rootDER
			if strings.HasSuffix(strings.ToLower(devsimCA), ".pem") {
				out = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})
			}
			if err := os.WriteFile(devsimCA, out, 0o644); err != nil {
				return nil, nil, fmt.Errorf("--devsim-ca-out: %w", err)
			}
		}
		return vf.Driver(), func() {}, nil
	case "socket":
		if _, _, err := doe.ParseAddr(arg); err != nil {
			return nil, nil, fmt.Errorf("--device %s: %w", device, err)
		}
		b := &hostshim.SocketBackend{Addr: arg}
		return b, func() { b.Close() }, nil
	case "sysfs":
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		b, err := hostshim.OpenSysfsBackend(dctx, sysfsRoot, arg)
		if err != nil {
			return nil, nil, fmt.Errorf("--device %s: %w", device, err)
		}
		return b, func() { b.Close() }, nil
	}
	return nil, nil, fmt.Errorf("--device %q: want socket:HOST:PORT, devsim or sysfs:BDF", device)
}
