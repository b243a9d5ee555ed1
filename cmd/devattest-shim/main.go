// Command devattest-shim is the host operator's daemon: it serves each
// guest mediated access to the DOE mailbox of exactly the VFs assigned to
// it, over the socket framing.
//
//	devattest-shim --config /etc/devattest/shim.yaml
//
// runs the daemon from a configuration file (SIGHUP reloads it, SIGTERM
// and SIGINT stop gracefully). For development,
//
//	devattest-shim --listen ADDR --device socket:HOST:PORT|devsim|sysfs:BDF
//
// serves one VF with a configuration built from the flags, and
//
//	devattest-shim check --config FILE [--json]
//
// is the host operator's preflight: per configured VF, whether the shim
// can serve it and what else may reach its DOE mailbox (see check.go).
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
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/devattest/devattest/cmd/internal/capture"
	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

func main() {
	if cli.IsVersion(os.Args[1:]) {
		fmt.Println(cli.Version(prog))
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(runCheck(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

const prog = "devattest-shim"

func run(args []string, stderr io.Writer) int {
	fs := cli.NewFlagSet(prog, prog+" --config FILE\n       "+prog+" --listen ADDR --device socket:HOST:PORT|devsim|sysfs:BDF\n       "+prog+" check --config FILE [--json]")
	fs.SetOutput(stderr)
	config := fs.String("config", "", "run the daemon from this YAML configuration file (SIGHUP reloads it)")
	listen := fs.String("listen", "", "development: address to serve one guest on: HOST:PORT (loopback only) or unix:PATH")
	device := fs.String("device", "", "development: the VF: socket:HOST:PORT (an spdm-emu-protocol responder), devsim (in-process emulated VF) or sysfs:BDF (real hardware)")
	sysfsRoot := fs.String("sysfs-root", doe.SysfsRoot, "with --device sysfs:BDF: where PCI devices are listed")
	maxObject := fs.Int("max-object", hostshim.DefaultMaxObjectSize, "with --listen: largest request object forwarded, in bytes")
	wait := fs.Duration("wait", hostshim.DefaultWait, "with --listen: how long a connection waits for a mailbox held by another")
	runDir := fs.String("run-dir", "", "with --listen: directory of the VF claim files (default /run/devattest as root, else $XDG_RUNTIME_DIR/devattest or a per-user temporary directory)")
	metricsListen := fs.String("metrics-listen", hostshim.MetricsDisabled, "with --listen: HOST:PORT for /metrics and /healthz (loopback only), or none")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info; overrides log_level of --config)")
	pcap := fs.String("pcap", "", "capture each listener's DOE objects, as the host sees them (secured messages stay encrypted: the shim has no keys), to FILE with the listener's name added (FILE-NAME.pcap)")
	devsimCA := fs.String("devsim-ca-out", "", "with --device devsim: write the emulated VF's root certificate here (DER, or PEM if FILE ends in .pem)")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() != 0 {
		return cli.UsageError(stderr, prog, "unexpected arguments %q", fs.Args())
	}

	var cfg *hostshim.Config
	if *config != "" {
		for _, f := range []string{"listen", "device", "sysfs-root", "max-object", "wait", "run-dir", "metrics-listen", "devsim-ca-out"} {
			if set[f] {
				return cli.Fail(stderr, prog, fmt.Errorf("--config and --%s are mutually exclusive: put it in the configuration file", f))
			}
		}
		c, err := hostshim.LoadConfig(*config)
		if err != nil {
			return cli.Fail(stderr, prog, err)
		}
		cfg = c
	} else {
		c, err := flagConfig(*listen, *device, *sysfsRoot, *maxObject, *wait, *runDir, *metricsListen, *devsimCA)
		if err != nil {
			return cli.Fail(stderr, prog, err)
		}
		cfg = c
	}

	var level slog.LevelVar
	levelFrom := func(c *hostshim.Config) error {
		s := c.LogLevel
		if *logLevel != "" {
			s = *logLevel
		}
		l, err := hostshim.ParseLogLevel(s)
		if err != nil {
			return fmt.Errorf("log level: %w", err)
		}
		level.Set(l)
		return nil
	}
	if err := levelFrom(cfg); err != nil {
		return cli.Fail(stderr, prog, err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: &level}))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Signals are caught before the listeners start: a SIGHUP or SIGTERM
	// sent once a socket exists must not meet the default action, which
	// ends the process. A SIGHUP during start is applied after it.
	ctx, cancel := cli.SignalContext()
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	debug, err := cli.OpenDebug(*pcap, "", capture.ViewShim, stderr)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	defer debug.Close()
	shim, err := hostshim.New(cfg, captureOpener(debug, opener), log, reg)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if *config == "" {
				log.Warn("SIGHUP: no configuration file to reload (started with --listen/--device)")
				continue
			}
			c, err := hostshim.LoadConfig(*config)
			if err == nil {
				err = levelFrom(c)
			}
			if err != nil {
				log.Error("reload refused; the running configuration stays", "config", *config, "err", err)
				continue
			}
			if err := shim.Reload(c); err != nil {
				log.Error("reload partly failed", "config", *config, "err", err)
				continue
			}
			log.Info("configuration reloaded", "config", *config, "listeners", len(c.Listeners))
		}
	}()
	if *config != "" {
		log.Info("shim serving", "config", *config, "listeners", len(cfg.Listeners))
	} else {
		log.Info("shim serving", "listen", shim.Addr("default").String(), "device", *device)
	}
	_ = shim.Run(ctx)
	return 0
}

// flagConfig builds the one-listener configuration of the development
// flags. Its TCP listener must be on loopback, like --metrics-listen; a
// configuration file can serve another address with allow_non_loopback.
func flagConfig(listen, device, sysfsRoot string, maxObject int, wait time.Duration, runDir, metricsListen, devsimCA string) (*hostshim.Config, error) {
	switch {
	case listen == "":
		return nil, errors.New("--listen (or --config) is required")
	case device == "":
		return nil, errors.New("--device is required")
	case maxObject < doe.HeaderSize || maxObject > doe.MaxObjectSize:
		return nil, fmt.Errorf("--max-object must be between %d and %d", doe.HeaderSize, doe.MaxObjectSize)
	case wait <= 0:
		return nil, errors.New("--wait must be positive")
	case devsimCA != "" && device != "devsim":
		return nil, errors.New("--devsim-ca-out goes with --device devsim")
	}
	lc := hostshim.ListenerConfig{Name: "default", MaxObjectBytes: maxObject, Wait: hostshim.Duration{D: wait}}
	network, address, err := doe.ParseAddr(listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if network == "unix" {
		abs, err := filepath.Abs(address)
		if err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
		lc.Listen.Unix = &hostshim.UnixListen{Path: abs}
	} else {
		lc.Listen.TCP = &hostshim.TCPListen{Address: address}
	}
	kind, arg, _ := strings.Cut(device, ":")
	switch kind {
	case "devsim":
		if arg != "" {
			return nil, fmt.Errorf("--device devsim takes no argument, got %q", device)
		}
		lc.VF = hostshim.VFConfig{Backend: hostshim.BackendDevsim, CAOut: devsimCA}
	case "socket":
		lc.VF = hostshim.VFConfig{Backend: hostshim.BackendSocket, Address: arg}
	case "sysfs":
		lc.VF = hostshim.VFConfig{Backend: hostshim.BackendSysfs, BDF: arg}
	default:
		return nil, fmt.Errorf("--device %q: want socket:HOST:PORT, devsim or sysfs:BDF", device)
	}
	if runDir == "" {
		runDir = defaultRunDir()
	}
	cfg := &hostshim.Config{
		RunDir:    runDir,
		SysfsRoot: sysfsRoot,
		Metrics:   hostshim.MetricsConfig{Listen: metricsListen},
		Listeners: []hostshim.ListenerConfig{lc},
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("the flags: %w", err)
	}
	return cfg, nil
}

// defaultRunDir is where the development mode keeps its claim files:
// /run/devattest as root, else under $XDG_RUNTIME_DIR, else a per-user
// directory in the temporary directory.
func defaultRunDir() string {
	if os.Geteuid() == 0 {
		return hostshim.DefaultRunDir
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "devattest")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("devattest-shim-%d", os.Getuid()))
}

// captureOpener wraps each listener's backend so that its exchanges are
// captured (--pcap), one file per listener; a reloaded listener keeps
// its file.
func captureOpener(debug *cli.Debug, open hostshim.BackendOpener) hostshim.BackendOpener {
	return func(ctx context.Context, vf hostshim.VFConfig, protocols []doe.Protocol) (doe.Mailbox, io.Closer, error) {
		w, err := debug.Capture(vf.Listener, true)
		if err != nil {
			return nil, nil, err
		}
		mb, closer, err := open(ctx, vf, protocols)
		if err != nil {
			return nil, nil, err
		}
		return cli.Wrap(mb, w), closer, nil
	}
}

// opener opens the backends: devsim here (hostshim does not import the
// emulator), the others through hostshim.OpenBackend.
func opener(ctx context.Context, vf hostshim.VFConfig, protocols []doe.Protocol) (doe.Mailbox, io.Closer, error) {
	if vf.Backend != hostshim.BackendDevsim {
		return hostshim.OpenBackend(ctx, vf, protocols)
	}
	f, rootDER, _, err := devsim.NewDefaultSPDMVF()
	if err != nil {
		return nil, nil, fmt.Errorf("devsim: %w", err)
	}
	if vf.CAOut != "" {
		out := rootDER
		if strings.HasSuffix(strings.ToLower(vf.CAOut), ".pem") {
			out = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})
		}
		if err := os.WriteFile(vf.CAOut, out, 0o644); err != nil {
			return nil, nil, fmt.Errorf("devsim: writing the root certificate: %w", err)
		}
	}
	return f.Driver(), nopCloser{}, nil
}

// nopCloser closes an emulated VF, which holds nothing to close.
type nopCloser struct{}

func (nopCloser) Close() error { return nil }
