package hostshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/devattest/devattest/doe"
)

// BackendOpener opens the Mailbox of a listener's VF and what closes it.
// The binary supplies it, so that hostshim needs no emulator: cmd wires
// devsim in and passes the other backends to OpenBackend.
type BackendOpener func(ctx context.Context, vf VFConfig, protocols []doe.Protocol) (doe.Mailbox, io.Closer, error)

// serverTimeoutSlack is how much longer than exchange_timeout the
// doe.Server lets one exchange run: time for the Mediator's recovery abort.
const serverTimeoutSlack = 3 * time.Second

// sysfsOpenTimeout bounds finding the DOE instance of a sysfs VF.
const sysfsOpenTimeout = 10 * time.Second

// OpenBackend is the BackendOpener for the backends hostshim knows: sysfs
// (OpenSysfsBackend under vf.SysfsRoot, on the instance that offers the
// listener's protocols) and socket (SocketBackend).
func OpenBackend(ctx context.Context, vf VFConfig, protocols []doe.Protocol) (doe.Mailbox, io.Closer, error) {
	switch vf.Backend {
	case BackendSysfs:
		ctx, cancel := context.WithTimeout(ctx, sysfsOpenTimeout)
		defer cancel()
		b, err := OpenSysfsBackend(ctx, vf.SysfsRoot, vf.BDF, protocols)
		if err != nil {
			return nil, nil, err
		}
		return b, b, nil
	case BackendSocket:
		addr := vf.Canonical // the address the claim names, not a name that may resolve elsewhere later
		if addr == "" {
			addr = vf.Address
		}
		b := &SocketBackend{Addr: addr}
		return b, b, nil
	}
	return nil, nil, fmt.Errorf("hostshim: backend %q is not available in this binary", vf.Backend)
}

// fdBase is the file descriptors the shim needs besides its listeners:
// standard streams, the runtime's poller, the metrics listener and its
// scrapes, the configuration file, with room to spare.
const fdBase = 32

// FDBudget is how many file descriptors cfg can use at most: fdBase,
// and per listener its socket, its claim, its backend and max_connections
// connections. The README compares it with the unit's LimitNOFILE.
func FDBudget(cfg *Config) int {
	n := fdBase
	for _, l := range cfg.Listeners {
		n += 3 + l.MaxConnections
	}
	return n
}

// checkFDBudget warns when cfg could need more file descriptors than the
// process may open: accept then pauses (and recovers) under a flood.
func checkFDBudget(cfg *Config, log *slog.Logger) {
	limit, ok := fdLimit()
	if need := FDBudget(cfg); ok && uint64(need) > limit {
		log.Warn("the listeners' file descriptor budget exceeds RLIMIT_NOFILE: raise LimitNOFILE or lower max_connections", "budget", need, "limit", limit)
	}
}

// Shim is the host daemon: one mediated listener per configured VF, and
// an HTTP listener for /metrics and /healthz.
//
// Life of a listener: start (driver check, claim, backend, Mediator,
// socket, serve) → serving → stop (close the socket; let each connection
// finish its exchange in flight, up to shutdown_grace; close the rest;
// close the Mediator, the backend, release the claim). Reload stops the
// listeners whose configuration changed or went away and starts the new
// and changed ones; the others keep serving their connections.
//
// Locks: op serialises Reload and Shutdown; mu guards the maps and cfg
// and is never held while a listener starts or stops.
type Shim struct {
	open     BackendOpener
	log      *slog.Logger
	metrics  *Metrics
	gatherer prometheus.Gatherer

	op sync.Mutex

	mu        sync.Mutex
	cfg       *Config
	listeners map[string]*listener
	failed    map[string]error // listeners that could not start
	http      *http.Server
	httpLn    net.Listener
	shutdown  bool
}

// New checks cfg, then starts every listener and the metrics listener. A
// failure (a VF claimed by another process, a socket in use, a kernel
// driver bound to the VF) undoes what was started and is returned.
func New(cfg *Config, open BackendOpener, log *slog.Logger, reg prometheus.Registerer) (*Shim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if open == nil {
		open = OpenBackend
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	g, ok := reg.(prometheus.Gatherer)
	if !ok {
		g = prometheus.DefaultGatherer
	}
	s := &Shim{
		open:      open,
		log:       log,
		metrics:   NewMetrics(reg),
		gatherer:  g,
		listeners: make(map[string]*listener),
		failed:    make(map[string]error),
	}
	checkFDBudget(cfg, log)
	if err := s.startHTTP(cfg.Metrics); err != nil {
		return nil, err
	}
	for _, lc := range cfg.Listeners {
		l, err := s.start(lc, cfg.RunDir)
		if err != nil {
			s.stopAll(cfg.ShutdownGrace.D)
			s.stopHTTP()
			return nil, err
		}
		s.listeners[lc.Name] = l
	}
	s.cfg = cfg
	return s, nil
}

// Run serves until ctx is done, then shuts down gracefully.
func (s *Shim) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// Shutdown stops every listener gracefully (each connection finishes its
// exchange in flight, within shutdown_grace), releases the claims and
// backends, and stops the metrics listener. Calling it again does nothing.
func (s *Shim) Shutdown() {
	s.op.Lock()
	defer s.op.Unlock()
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return
	}
	s.shutdown = true
	grace := s.cfg.ShutdownGrace.D
	s.mu.Unlock()
	s.log.Info("shim stopping")
	s.stopAll(grace)
	s.stopHTTP()
	s.log.Info("shim stopped")
}

func (s *Shim) stopAll(grace time.Duration) {
	s.mu.Lock()
	ls := s.listeners
	s.listeners = make(map[string]*listener)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { l.stop(grace) })
	}
	wg.Wait()
}

// Config returns the configuration in force.
func (s *Shim) Config() *Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Addr is the address listener name serves on (nil if it does not).
func (s *Shim) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.listeners[name]; l != nil {
		return l.ln.Addr()
	}
	return nil
}

// MetricsAddr is the address of the /metrics and /healthz listener (nil
// when disabled).
func (s *Shim) MetricsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Reload applies cfg. A configuration that does not validate changes
// nothing and the error names each bad key. Otherwise listeners whose
// configuration is unchanged keep serving with their connections; changed
// and removed ones are stopped (their in-flight exchanges finish, their
// connections close, their claims are released) before the new and
// changed ones start. A listener that fails to start is reported in the
// error and by /healthz, and is tried again on the next Reload.
func (s *Shim) Reload(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.op.Lock()
	defer s.op.Unlock()
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return errors.New("hostshim: the shim is shut down")
	}
	checkFDBudget(cfg, s.log)
	old := s.cfg
	want := make(map[string]ListenerConfig)
	for _, lc := range cfg.Listeners {
		want[lc.Name] = lc
	}
	var stop []*listener
	for name, l := range s.listeners {
		lc, ok := want[name]
		if ok && old.RunDir == cfg.RunDir && sameListener(l.cfg, lc) {
			continue
		}
		stop = append(stop, l)
		delete(s.listeners, name)
	}
	var start []ListenerConfig
	for _, lc := range cfg.Listeners {
		if s.listeners[lc.Name] == nil {
			start = append(start, lc)
		}
	}
	s.failed = make(map[string]error)
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, l := range stop {
		wg.Go(func() {
			l.stop(old.ShutdownGrace.D)
			if lc, ok := want[l.cfg.Name]; !ok || lc.VF.ID() != l.cfg.VF.ID() {
				s.metrics.ForgetVF(l.cfg.VF.ID())
			}
			if _, ok := want[l.cfg.Name]; ok {
				s.log.Info("listener stopped for its new configuration", "listener", l.cfg.Name)
			} else {
				s.log.Info("listener removed", "listener", l.cfg.Name)
			}
		})
	}
	wg.Wait()

	var errs []error
	for _, lc := range start {
		l, err := s.start(lc, cfg.RunDir)
		s.mu.Lock()
		if err != nil {
			s.failed[lc.Name] = err
			errs = append(errs, fmt.Errorf("listeners %s: %w", lc.Name, err))
		} else {
			s.listeners[lc.Name] = l
		}
		s.mu.Unlock()
	}
	if old.Metrics != cfg.Metrics {
		s.stopHTTP()
		if err := s.startHTTP(cfg.Metrics); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// sameListener says whether a running listener can stay as it is.
func sameListener(a, b ListenerConfig) bool {
	norm := func(l ListenerConfig) ListenerConfig {
		l.ExchangeTimeout = Duration{D: l.ExchangeTimeout.D}
		l.Wait = Duration{D: l.Wait.D}
		l.IdleTimeout = Duration{D: l.IdleTimeout.D}
		l.MaxHold = Duration{D: l.MaxHold.D}
		return l
	}
	a, b = norm(a), norm(b)
	return a.Name == b.Name && a.Guest == b.Guest && a.VF == b.VF &&
		eqPtr(a.Listen.Vsock, b.Listen.Vsock) && eqPtr(a.Listen.Unix, b.Listen.Unix) && eqPtr(a.Listen.TCP, b.Listen.TCP) &&
		slices.Equal(a.AllowedTypes, b.AllowedTypes) && a.MaxObjectBytes == b.MaxObjectBytes &&
		a.Rate == b.Rate && a.Burst == b.Burst && a.ExchangeTimeout == b.ExchangeTimeout && a.Wait == b.Wait &&
		a.MaxConsecutiveFailures == b.MaxConsecutiveFailures && a.MaxConnections == b.MaxConnections &&
		a.IdleTimeout == b.IdleTimeout && a.MaxHold == b.MaxHold && a.AuditLinesPerSecond == b.AuditLinesPerSecond
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// listener is one running guest-facing listener.
type listener struct {
	cfg    ListenerConfig
	log    *slog.Logger
	claim  *Claim
	closer io.Closer
	med    *Mediator
	srv    *doe.Server
	ln     *drainListener
	done   chan struct{} // closed when Serve returns

	mu       sync.Mutex
	stopping bool
	serveErr error
}

// start brings one listener up, or undoes what it did and fails.
func (s *Shim) start(lc ListenerConfig, runDir string) (_ *listener, err error) {
	vfID := lc.VF.ID()
	log := s.log.With("listener", lc.Name)
	var undo []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()
	if lc.VF.Backend == BackendSysfs && !lc.VF.AllowKernelDriver {
		if err := CheckDriver(lc.VF.SysfsRoot, lc.VF.BDF, nil); err != nil {
			return nil, err
		}
	}
	claim, err := ClaimVF(runDir, vfID)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = claim.Release() })

	allowed := make([]doe.Protocol, 0, len(lc.AllowedTypes))
	for _, t := range lc.AllowedTypes {
		p, err := ParseProtocol(t)
		if err != nil {
			return nil, err
		}
		allowed = append(allowed, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sysfsOpenTimeout+time.Second)
	defer cancel()
	backend, closer, err := s.open(ctx, lc.VF, allowed)
	if err != nil {
		return nil, fmt.Errorf("hostshim: opening %s: %w", vfID, err)
	}
	if closer != nil {
		undo = append(undo, func() { _ = closer.Close() })
	}
	med := NewMediator(backend, Options{
		VF:                     vfID,
		Guest:                  lc.Guest,
		Allowed:                allowed,
		MaxObjectSize:          lc.MaxObjectBytes,
		Wait:                   lc.Wait.D,
		ExchangeTimeout:        lc.ExchangeTimeout.D,
		Rate:                   lc.Rate,
		Burst:                  lc.Burst,
		MaxHold:                lc.MaxHold.D,
		AuditLinesPerSecond:    lc.AuditLinesPerSecond,
		MaxConsecutiveFailures: lc.MaxConsecutiveFailures,
		Logger:                 log,
		Metrics:                s.metrics,
	})
	undo = append(undo, med.Close)

	raw, err := Listen(ctx, lc.Listen, log)
	if err != nil {
		return nil, err
	}
	if pf, ok := raw.(*peerFilter); ok {
		pf.audit = med.audit
	}
	l := &listener{
		cfg:    lc,
		log:    log,
		claim:  claim,
		closer: closer,
		med:    med,
		ln:     newDrainListener(raw, med, lc.MaxConnections),
		done:   make(chan struct{}),
	}
	// The frame bound stays at one maximal DOE object, so an oversize
	// request reaches the mediator and gets its reason on a connection
	// that stays up. The Mediator enforces exchange_timeout and then
	// aborts the mailbox; the server's bound is a backstop above that,
	// so that a device's timeout is counted as the device's failure.
	l.srv = &doe.Server{
		Connect:         med.Connect,
		ExchangeTimeout: lc.ExchangeTimeout.D + serverTimeoutSlack,
		IdleTimeout:     lc.IdleTimeout.D,
		Logger:          med.log,
		Audited:         true, // the Mediator audits, once per event
	}
	go l.serve()
	log.Info("listener serving", "listen", lc.Listen.String(), "vf", vfID, "guest", lc.Guest, "allowed", lc.AllowedTypes)
	return l, nil
}

func (l *listener) serve() {
	defer close(l.done)
	err := l.srv.Serve(l.ln)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return
	}
	if err == nil {
		err = errors.New("stopped serving")
	}
	l.serveErr = err
	l.log.Error("listener failed", "err", err)
}

// health is nil while the listener serves and its VF works.
func (l *listener) health() error {
	l.mu.Lock()
	err := l.serveErr
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("not serving: %w", err)
	}
	return errors.Join(l.ln.health(), l.med.Health())
}

// stop closes the socket, lets the connections finish their exchanges in
// flight for up to grace, closes the rest, and frees the VF.
func (l *listener) stop(grace time.Duration) {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	_ = l.ln.Close()
	l.med.Close() // connections waiting for the mailbox are refused
	l.ln.drain()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	if !l.ln.wait(ctx) {
		l.log.Warn("connections still open after the shutdown grace; closing them", "grace", grace)
	}
	cancel()
	_ = l.srv.Close()
	<-l.done
	if l.closer != nil {
		if err := l.closer.Close(); err != nil {
			l.log.Warn("closing the backend", "err", err)
		}
	}
	if err := l.claim.Release(); err != nil {
		l.log.Warn("releasing the claim", "err", err)
	}
	l.log.Info("listener stopped")
}

// Health is nil when every listener serves and every VF works; otherwise
// it lists each problem.
func (s *Shim) Health() error {
	s.mu.Lock()
	var names []string
	for n := range s.listeners {
		names = append(names, n)
	}
	for n := range s.failed {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		if err := s.failed[n]; err != nil {
			errs = append(errs, fmt.Errorf("listener %s: not serving: %w", n, err))
		} else if err := s.listeners[n].health(); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", n, err))
		}
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

func (s *Shim) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Health(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Shim) startHTTP(mc MetricsConfig) error {
	if mc.Listen == MetricsDisabled {
		return nil
	}
	ln, err := net.Listen("tcp", mc.Listen)
	if err != nil {
		return fmt.Errorf("hostshim: metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", s.healthz)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	s.http, s.httpLn = srv, ln
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener failed", "err", err)
		}
	}()
	s.log.Info("metrics and health serving", "listen", ln.Addr().String(), "paths", strings.Join([]string{"/metrics", "/healthz"}, " "))
	return nil
}

func (s *Shim) stopHTTP() {
	s.mu.Lock()
	srv := s.http
	s.http, s.httpLn = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
