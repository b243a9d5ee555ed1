package main

import (
	"errors"
	"flag"
	"io"
	"time"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
)

func runDevsim(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("devsim", "devattest devsim [--listen ADDR] [--delay D]")
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2323", "address to serve on: HOST:PORT or unix:PATH")
	delay := fs.Duration("delay", 0, "hold each DOE response back this long (a slow device)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		return cli.Fail(stderr, "devattest devsim", errors.New("unexpected arguments after the flags"))
	}
	if *delay < 0 || *delay > 10*time.Second {
		return cli.Fail(stderr, "devattest devsim", errors.New("--delay must be between 0 and 10s"))
	}
	log, err := cli.Logger(stderr, *logLevel)
	if err != nil {
		return cli.Fail(stderr, "devattest devsim", err)
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()

	vf := devsim.NewVF()
	vf.SetFaults(devsim.Faults{Delay: *delay})
	ln, err := doe.Listen(ctx, *listen)
	if err != nil {
		return cli.Fail(stderr, "devattest devsim", err)
	}
	srv := &doe.Server{Mailbox: vf.Driver(), Logger: log}
	log.Info("devsim serving an emulated VF", "listen", ln.Addr().String(), "protocols", len(vf.Protocols()))
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil {
		return cli.Fail(stderr, "devattest devsim", err)
	}
	log.Info("devsim stopped")
	return 0
}
