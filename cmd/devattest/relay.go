package main

import (
	"io"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/doe"
)

// runRelay serves a doe.Relay: a stand-in for a hostile host between a
// guest and the shim (flags and wiring only; doe.ParseRelayMode documents
// the modes).
func runRelay(args []string, stdout, stderr io.Writer) int {
	const prog = "devattest relay"
	fs := cli.NewFlagSet("relay", "devattest relay --listen ADDR --upstream ADDR [--mode MODE]")
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "address to serve the guest on: HOST:PORT or unix:PATH")
	upstream := fs.String("upstream", "", "the shim's (or a device's) address: HOST:PORT or unix:PATH")
	modeFlag := fs.String("mode", "pass", "pass, tamper:N:DIR:BIT, drop:N:DIR, replay:N, reorder[:N] or delay:MS (DIR: up or down)")
	timeout := fs.Duration("timeout", 0, "bound on dialing upstream, each write and each wait for the device (default 10s)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	switch {
	case fs.NArg() != 0:
		return cli.UsageError(stderr, prog, "unexpected arguments after the flags")
	case *listen == "":
		return cli.UsageError(stderr, prog, "--listen is required")
	case *upstream == "":
		return cli.UsageError(stderr, prog, "--upstream is required")
	case *timeout < 0:
		return cli.UsageError(stderr, prog, "--timeout must not be negative")
	}
	if _, _, err := doe.ParseAddr(*upstream); err != nil {
		return cli.Fail(stderr, prog, err)
	}
	mode, err := doe.ParseRelayMode(*modeFlag)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	log, err := cli.Logger(stderr, *logLevel)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	ln, err := doe.Listen(ctx, *listen)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	r := &doe.Relay{Upstream: *upstream, Mode: mode, Logger: log, Timeout: *timeout}
	log.Info("relay serving", "listen", ln.Addr().String(), "upstream", *upstream, "mode", mode.String())
	go func() {
		<-ctx.Done()
		r.Close()
	}()
	if err := r.Serve(ln); err != nil {
		return cli.Fail(stderr, prog, err)
	}
	log.Info("relay stopped")
	return 0
}
