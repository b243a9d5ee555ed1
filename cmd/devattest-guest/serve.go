package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest"
)

// runServe runs the guest daemon (guest.Service and its HTTP API) until
// SIGTERM or SIGINT.
func runServe(args []string, _, stderr io.Writer) int {
	const prog = "devattest-guest serve"
	fs := cli.NewFlagSet(prog, prog+" --config FILE [--boot-report FILE] [--log-level LEVEL]")
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the guest configuration (YAML)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	bootReport := fs.String("boot-report", "", "the report the one-shot attest wrote earlier in this boot: its boot binding is taken over instead of extending the runtime register again")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	switch {
	case *cfgPath == "":
		return cli.UsageError(stderr, prog, "--config FILE is required")
	case fs.NArg() != 0:
		return cli.UsageError(stderr, prog, "unexpected arguments %q", fs.Args())
	}
	log, err := cli.Logger(stderr, *logLevel)
	if err != nil {
		return cli.UsageError(stderr, prog, "%v", err)
	}

	cfg, err := guest.LoadConfig(*cfgPath)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	if cfg.API.Unix == "" && cfg.API.TCP == "" {
		return cli.Fail(stderr, prog, fmt.Errorf("%w: no api.unix or api.tcp to serve on", guest.ErrConfig))
	}
	var boot *evidence.Report
	if *bootReport != "" {
		b, err := evidence.ReadFile(*bootReport)
		if err != nil {
			return cli.Fail(stderr, prog, fmt.Errorf("--boot-report: %w", err))
		}
		if boot, err = evidence.Unmarshal(b); err != nil {
			return cli.Fail(stderr, prog, fmt.Errorf("--boot-report %s: %w", *bootReport, err))
		}
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	if err := serve(ctx, cfg, boot, log); err != nil {
		return cli.Fail(stderr, prog, err)
	}
	return 0
}

// serve opens the listeners, starts the service and serves until ctx is
// done.
func serve(ctx context.Context, cfg *guest.Config, boot *evidence.Report, log *slog.Logger) error {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	if cfg.API.Unix != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.API.Unix), 0o750); err != nil {
			return err
		}
		ln, err := guest.ListenUnix(cfg.API.Unix)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	if cfg.API.TCP != "" {
		ln, err := guest.ListenTCP(cfg.API.TCP, cfg.API.AllowRemote)
		if err != nil {
			closeAll()
			return err
		}
		lns = append(lns, ln)
	}

	svc, err := guest.NewService(cfg, guest.ServiceOptions{Logger: log, BootReport: boot})
	if err != nil {
		closeAll()
		return err
	}
	defer svc.Close()
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		closeAll()
		return err
	}
	// Devices that fail here are retried by the service; the boot gate is
	// the one-shot attest unit, not the daemon.
	if _, err := svc.Start(ctx, nonce); err != nil {
		log.Warn("boot attestation incomplete", "err", err)
	}

	hs := svc.NewHTTPServer()
	hs.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		log.Info("serving the API", "addr", ln.Addr().String())
		go func() { errc <- hs.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if serr := hs.Shutdown(sctx); serr != nil && err == nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
