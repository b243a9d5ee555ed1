package guest

// The guest daemon (DESIGN.md, "When to measure").
//
//  1. Start attests every device once, keeping each device's connection
//     and secure session open, and does the boot binding (runtime register
//     extends) exactly once, then takes the boot report.
//  2. A loop per device re-measures it every interval inside the live
//     session (signed GET_MEASUREMENTS), compares the blocks with the last
//     ones and records a change as an event. Any failure (session lost,
//     device reset, connection closed) drops the connection and
//     re-establishes it: reconnect, re-authenticate, new session, re-key
//     IDE if configured.
//  3. Report measures every device afresh with the SPDM nonce derived from
//     the owner's nonce and takes a platform report over the evidence.
//
// Locking: each device's I/O is serialized by its sem (a one-slot
// channel, so waiting for it honours a deadline); its public state is
// guarded by mu, never held during I/O. The platform attester is
// serialized by platMu. Every device operation runs under a deadline.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/devattest/devattest/evidence"
	"github.com/devattest/devattest/guest/platform"
	"github.com/devattest/devattest/secchan"
)

// Report nonce bounds for the daemon's API.
const (
	MinReportNonce = 16
	MaxReportNonce = 64
)

// ErrReportNonce: a report nonce is not MinReportNonce to MaxReportNonce bytes.
var ErrReportNonce = fmt.Errorf("guest: the nonce must be %d to %d bytes", MinReportNonce, MaxReportNonce)

// Event kinds recorded per device.
const (
	EventAttested      = "attested"
	EventChanged       = "measurement changed"
	EventFailed        = "failed"
	EventSessionLost   = "session lost"
	EventReestablished = "re-established"
)

const (
	defaultDeviceTimeout = 30 * time.Second
	maxRetryInterval     = 10 * time.Second
	maxEvents            = 64
)

// Event is something that happened to a device.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// DeviceState is a device's state as the API shows it.
type DeviceState struct {
	Label        string    `json:"label"`
	Required     bool      `json:"required"`
	Status       string    `json:"status"` // evidence.StatusOK, StatusFailed or "pending"
	LastMeasured time.Time `json:"last_measured,omitzero"`
	FailedStep   string    `json:"failed_step,omitempty"`
	Error        string    `json:"error,omitempty"`
	SessionID    uint32    `json:"session_id,omitempty"`
	Sessions     int       `json:"sessions"` // sessions established so far
	Events       []Event   `json:"events"`
}

// StatusPending: the device has not been attested yet.
const StatusPending = "pending"

// ServiceOptions adjust a Service; the zero value uses the configuration.
type ServiceOptions struct {
	// Attester is the platform attester; nil opens cfg.Platform (and
	// Close closes it).
	Attester platform.Attester
	// Logger receives the service's log (default slog.Default()).
	Logger *slog.Logger
	// Interval overrides cfg.RemeasureInterval.
	Interval time.Duration
	// DeviceTimeout bounds each device operation (default 30s).
	DeviceTimeout time.Duration
	// BootReport, if set, is the report of the one-shot attest that ran
	// earlier in this boot. The service then does not extend the runtime
	// register again; it takes over that report's event log, so that its
	// own reports replay to the register.
	BootReport *evidence.Report
}

// ErrServiceClosed: the service was closed and answers no more reports.
var ErrServiceClosed = errors.New("guest: service closed")

// Service is the guest daemon: it keeps a secure session with every
// device, re-measures periodically and answers report requests.
type Service struct {
	cfg        *Config
	att        platform.Attester
	ownAtt     bool
	log        *slog.Logger
	interval   time.Duration
	devTimeout time.Duration
	bootReport *evidence.Report
	devs       []*device

	platMu sync.Mutex // serializes the platform attester

	mu          sync.Mutex
	started     bool
	closed      bool
	bootBinding string
	// boot is what the runtime register holds (the boot attestation's
	// policy digest and evidence) when bootBinding is extended; later
	// reports carry it so a verifier can replay the event log.
	boot   *evidence.Boot
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// device is one device's connection and state.
type device struct {
	cfg DeviceConfig

	sem  chan struct{} // one slot: holds the right to do I/O
	conn *devConn      // under sem
	base evidence.Device
	// lastBlocks are the last measurement blocks (under sem).
	lastBlocks []evidence.Block

	mu    sync.Mutex // guards state and unreported
	state DeviceState
	// unreported are the events since the last report that carried them.
	unreported []evidence.DeviceEvent
}

// NewService makes a service for cfg (anchors loaded, as LoadConfig does).
func NewService(cfg *Config, o ServiceOptions) (*Service, error) {
	s := &Service{cfg: cfg, att: o.Attester, log: o.Logger, interval: o.Interval, devTimeout: o.DeviceTimeout, bootReport: o.BootReport}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.interval <= 0 {
		s.interval = cfg.RemeasureInterval
	}
	if s.interval <= 0 {
		s.interval = DefaultRemeasureInterval
	}
	if s.devTimeout <= 0 {
		s.devTimeout = defaultDeviceTimeout
	}
	if s.att == nil {
		att, err := platform.New(cfg.Platform, platform.Options{})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPlatform, err)
		}
		s.att, s.ownAtt = att, true
	}
	for _, dc := range cfg.Devices {
		dc.IDE = dc.IDE || cfg.IDE
		dc.TDISP = dc.TDISP || cfg.TDISP
		s.devs = append(s.devs, &device{
			cfg: dc, sem: make(chan struct{}, 1),
			state: DeviceState{Label: dc.Label, Required: dc.IsRequired(), Status: StatusPending, Events: []Event{}},
		})
	}
	return s, nil
}

// Start attests every device once with ownerNonce, does the boot binding
// and takes the boot report, then starts the re-measurement loops, which
// run until ctx is done or Close. The boot report is returned even on
// error; the error names each failed required device and any platform
// failure, as AttestWith's does. Failed devices are retried by their
// loops.
func (s *Service) Start(ctx context.Context, ownerNonce []byte) (*evidence.Report, error) {
	if len(ownerNonce) == 0 || len(ownerNonce) > evidence.MaxNonceSize {
		return nil, ErrNonce
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrServiceClosed
	}
	if s.started {
		s.mu.Unlock()
		return nil, errors.New("guest: service already started")
	}
	s.started = true
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-lctx.Done():
		}
	}()

	devs, errs := s.measureAll(ctx, ownerNonce)
	var failures []error
	for i, err := range errs {
		if err != nil && s.devs[i].cfg.IsRequired() {
			failures = append(failures, err)
		}
	}
	body := newBody(s.att, ownerNonce, PolicyDigest(s.cfg), devs)
	s.platMu.Lock()
	if boot := s.bootReport; boot != nil {
		bb, err := adoptBootBinding(s.att, boot)
		body.BootBinding = bb
		if err != nil {
			body.BootError = err.Error()
			failures = append(failures, fmt.Errorf("%w: boot binding: %w", ErrPlatform, err))
		}
		if bb == evidence.BootBindingExtended {
			body.Boot = bootOf(boot)
		}
	} else if err := bootBinding(ctx, s.att, body); err != nil {
		body.BootBinding, body.BootError = evidence.BootBindingFailed, err.Error()
		failures = append(failures, fmt.Errorf("%w: boot binding: %w", ErrPlatform, err))
	}
	rep, err := sealReport(ctx, s.att, body)
	s.platMu.Unlock()
	if rep == nil {
		return nil, err
	}
	if err != nil {
		failures = append(failures, err)
	}
	s.mu.Lock()
	s.bootBinding = body.BootBinding
	if s.bootBinding == evidence.BootBindingExtended {
		s.boot = bootOf(rep)
	}
	s.mu.Unlock()
	s.log.Info("boot attestation done", "devices", len(devs), "boot_binding", body.BootBinding, "failures", len(failures))

	for _, d := range s.devs {
		s.wg.Go(func() { s.loop(lctx, d) })
	}
	return rep, errors.Join(failures...)
}

// Close stops the loops, ends every session and closes the attester if
// the service opened it.
func (s *Service) Close() error {
	s.mu.Lock()
	cancel := s.cancel
	s.closed = true
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
	for _, d := range s.devs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if d.acquire(ctx) == nil {
			if d.conn != nil {
				_ = d.conn.ss.End(ctx)
				d.conn.close()
				d.conn = nil
			}
			d.release()
		}
		cancel()
	}
	if s.ownAtt {
		return s.att.Close()
	}
	return nil
}

// Report measures every device afresh with the SPDM nonce derived from
// ownerNonce (MinReportNonce to MaxReportNonce bytes) and takes a platform
// report over evidence.UserData. A device that fails is recorded as
// failed in the report; the error is non-nil only for a bad nonce or a
// platform failure. Platform.BootBinding is the boot-time outcome, and
// Boot carries the boot evidence the runtime register holds (not this
// report's), so that a verifier replays the event log against it.
func (s *Service) Report(ctx context.Context, ownerNonce []byte) (*evidence.Report, error) {
	if len(ownerNonce) < MinReportNonce || len(ownerNonce) > MaxReportNonce {
		return nil, ErrReportNonce
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrServiceClosed
	}
	devs, _ := s.measureAll(ctx, ownerNonce)
	for i, d := range s.devs {
		devs[i].Events = d.pendingEvents()
	}
	s.mu.Lock()
	bb, boot := s.bootBinding, s.boot
	s.mu.Unlock()
	body := newBody(s.att, ownerNonce, PolicyDigest(s.cfg), devs)
	if bb == "" {
		bb = evidence.BootBindingNone
	}
	body.BootBinding, body.Boot = bb, boot
	s.platMu.Lock()
	rep, err := sealReport(ctx, s.att, body)
	s.platMu.Unlock()
	if err != nil {
		return rep, err
	}
	for i, d := range s.devs {
		d.reported(len(devs[i].Events))
	}
	return rep, nil
}

// Devices returns every device's state, in configuration order.
func (s *Service) Devices() []DeviceState {
	out := make([]DeviceState, len(s.devs))
	for i, d := range s.devs {
		d.mu.Lock()
		out[i] = d.state
		out[i].Events = slices.Clone(d.state.Events)
		d.mu.Unlock()
	}
	return out
}

// Unhealthy returns the labels of required devices that are not ok.
func (s *Service) Unhealthy() []string {
	var out []string
	for _, st := range s.Devices() {
		if st.Required && st.Status != evidence.StatusOK {
			out = append(out, st.Label)
		}
	}
	return out
}

// measureAll measures every device concurrently with ownerNonce.
func (s *Service) measureAll(ctx context.Context, ownerNonce []byte) ([]evidence.Device, []error) {
	devs := make([]evidence.Device, len(s.devs))
	errs := make([]error, len(s.devs))
	var wg sync.WaitGroup
	for i, d := range s.devs {
		wg.Go(func() { devs[i], errs[i] = s.measureDevice(ctx, d, ownerNonce) })
	}
	wg.Wait()
	return devs, errs
}

// measureDevice waits for the device and measures it (measureLocked).
func (s *Service) measureDevice(ctx context.Context, d *device, ownerNonce []byte) (evidence.Device, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.devTimeout)
	defer cancel()
	if err := d.acquire(ctx); err != nil {
		err = fmt.Errorf("waiting for the device: %w", err)
		ev := evidence.Device{Label: d.cfg.Label, CertSlot: certSlot, Status: evidence.StatusFailed,
			FailedStep: StepMeasurements, Error: err.Error(), Started: time.Now().UTC(), Finished: time.Now().UTC()}
		return ev, &DeviceError{Label: d.cfg.Label, Step: StepMeasurements, Err: err}
	}
	defer d.release()
	return s.measureLocked(ctx, d, ownerNonce)
}

// measureLocked (the caller holds d.sem) makes sure the device has a live
// session, re-establishing it if needed, and runs a signed GET_MEASUREMENTS
// inside it with the SPDM nonce derived from ownerNonce. A measurement
// that fails on an existing session drops it and tries once more on a new
// one.
func (s *Service) measureLocked(ctx context.Context, d *device, ownerNonce []byte) (evidence.Device, error) {
	nonce := SPDMNonce(d.cfg.Label, ownerNonce)
	started := time.Now().UTC()
	if d.conn != nil {
		m, err := s.measureConn(ctx, d, nonce)
		if err == nil {
			if err := s.recheckTDISP(ctx, d); err != nil {
				s.drop(ctx, d)
				return s.failed(d, StepTDISP, err, started)
			}
			return s.measured(ctx, d, m, started, ownerNonce)
		}
		s.log.Warn("device session lost", "device", d.cfg.Label, "err", err)
		d.record(Event{Kind: EventSessionLost, Message: err.Error()})
		d.conn.close()
		d.conn = nil
	}
	d.mu.Lock()
	hadSession := d.state.Sessions > 0
	d.mu.Unlock()
	if step, err := s.establish(ctx, d); err != nil {
		return s.failed(d, step, err, started)
	}
	m, err := s.measureConn(ctx, d, nonce)
	if err != nil {
		d.conn.close()
		d.conn = nil
		return s.failed(d, StepMeasurements, err, started)
	}
	// IDE keys only for a device that passes its policy so far.
	ev := d.base
	ev.Measurements = m
	if err := enforce(&d.cfg, ev, ownerNonce, beforeKeys...); err != nil {
		s.drop(ctx, d)
		return s.failed(d, StepPolicy, err, started)
	}
	if step, err := s.keyIDE(ctx, d); err != nil {
		return s.failed(d, step, err, started)
	}
	if hadSession {
		s.log.Info("device session re-established", "device", d.cfg.Label, "session", secchan.FormatSessionID(d.base.Session.ID))
		d.record(Event{Kind: EventReestablished, Message: "new session " + secchan.FormatSessionID(d.base.Session.ID)})
	}
	return s.measured(ctx, d, m, started, ownerNonce)
}

// measured turns a measurement into the device's evidence and, if the
// device passes its policy (enforce), records the success. A device that
// fails its policy keeps no session: it is ended (its keys zeroed) and the
// next measurement starts afresh.
func (s *Service) measured(ctx context.Context, d *device, m *evidence.Measurements, started time.Time, ownerNonce []byte) (evidence.Device, error) {
	ev := d.base
	ev.Session = &evidence.Session{ID: d.base.Session.ID, AEAD: d.base.Session.AEAD}
	ev.Measurements = m
	ev.Status = evidence.StatusOK
	ev.Started, ev.Finished = started, time.Now().UTC()
	if err := enforce(&d.cfg, ev, ownerNonce, standing(ev)...); err != nil {
		s.drop(ctx, d)
		return s.failed(d, StepPolicy, err, started)
	}
	return s.succeeded(d, ev), nil
}

// drop ends the device's session (zeroing its keys) and closes the
// connection.
func (s *Service) drop(ctx context.Context, d *device) {
	ectx, cancel := context.WithTimeout(ctx, s.devTimeout)
	_ = d.conn.ss.End(ectx)
	cancel()
	d.conn.close()
	d.conn = nil
}

// keyIDE keys IDE over the new session if the device is configured for
// it, recording the result in d.base; on failure the session is dropped.
func (s *Service) keyIDE(ctx context.Context, d *device) (string, error) {
	if !d.cfg.IDE {
		return "", nil
	}
	kctx, cancel := context.WithTimeout(ctx, s.devTimeout)
	defer cancel()
	ideState, err := keyIDE(kctx, d.conn.ss, d.conn.neg.Version, d.cfg.TDISP)
	d.base.IDE = ideState
	if err != nil {
		s.drop(ctx, d)
		return StepIDE, err
	}
	if !d.cfg.TDISP {
		return "", nil
	}
	d.base.TDISP, err = bindTDISP(kctx, d.conn.ss, d.conn.neg.Version, &d.cfg, ideState.Stream)
	if err != nil {
		s.drop(ctx, d)
		return StepTDISP, err
	}
	return "", nil
}

// measureConn measures inside the live session under the device timeout.
func (s *Service) measureConn(ctx context.Context, d *device, nonce [32]byte) (*evidence.Measurements, error) {
	ctx, cancel := context.WithTimeout(ctx, s.devTimeout)
	defer cancel()
	return d.conn.measure(ctx, nonce)
}

// establish opens a new connection and session; it sets d.conn and
// d.base on success. IDE is keyed after the first measurement (keyIDE).
func (s *Service) establish(ctx context.Context, d *device) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.devTimeout)
	defer cancel()
	base := evidence.Device{Label: d.cfg.Label, CertSlot: certSlot}
	c, step, err := openDevice(ctx, &d.cfg, &base)
	if err != nil {
		d.base = base
		return step, err
	}
	d.conn, d.base = c, base
	d.mu.Lock()
	d.state.Sessions++
	d.state.SessionID = c.ss.ID()
	d.mu.Unlock()
	return "", nil
}

// succeeded records the measurement in ev, compares it with the last one
// and returns ev.
func (s *Service) succeeded(d *device, ev evidence.Device) evidence.Device {
	m := ev.Measurements
	for _, c := range compareBlocks(d.lastBlocks, m.Blocks) {
		s.log.Warn("device measurement changed", "device", d.cfg.Label, "change", c)
		d.record(Event{Kind: EventChanged, Message: c})
	}
	first := d.lastBlocks == nil
	d.lastBlocks = slices.Clone(m.Blocks)

	d.mu.Lock()
	wasOK := d.state.Status == evidence.StatusOK
	d.state.Status, d.state.FailedStep, d.state.Error = evidence.StatusOK, "", ""
	d.state.LastMeasured = ev.Finished
	d.mu.Unlock()
	if first || !wasOK {
		s.log.Info("device attested", "device", d.cfg.Label, "blocks", len(m.Blocks))
		d.record(Event{Kind: EventAttested, Message: fmt.Sprintf("%d signed measurement blocks in session %s", len(m.Blocks), secchan.FormatSessionID(ev.Session.ID))})
	}
	return ev
}

// failed records a failure and returns the device's evidence.
func (s *Service) failed(d *device, step string, err error, started time.Time) (evidence.Device, error) {
	ev := d.base
	ev.Label, ev.CertSlot = d.cfg.Label, certSlot
	ev.Measurements = nil
	ev.Status, ev.FailedStep, ev.Error = evidence.StatusFailed, step, err.Error()
	ev.Started, ev.Finished = started, time.Now().UTC()

	d.mu.Lock()
	same := d.state.Status == evidence.StatusFailed && d.state.FailedStep == step && d.state.Error == err.Error()
	d.state.Status, d.state.FailedStep, d.state.Error = evidence.StatusFailed, step, err.Error()
	d.state.SessionID = 0
	d.mu.Unlock()
	if !same { // one event per distinct failure, not one per retry
		s.log.Error("device failed", "device", d.cfg.Label, "step", step, "err", err)
		d.record(Event{Kind: EventFailed, Message: fmt.Sprintf("%s: %v", step, err)})
	}
	return ev, &DeviceError{Label: d.cfg.Label, Step: step, Err: err}
}

// loop re-measures d every interval (sooner while it is failed) until
// ctx is done.
func (s *Service) loop(ctx context.Context, d *device) {
	retry := min(s.interval, maxRetryInterval)
	next := s.interval
	d.mu.Lock()
	if d.state.Status != evidence.StatusOK {
		next = retry
	}
	d.mu.Unlock()
	t := time.NewTimer(next)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nonce, err := randomNonce()
		if err == nil {
			_, err = s.measureDevice(ctx, d, nonce)
		}
		next = s.interval
		if err != nil {
			next = retry
		}
		t.Reset(next)
	}
}

func (d *device) acquire(ctx context.Context) error {
	select {
	case d.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *device) release() { <-d.sem }

// record appends an event, keeping the last maxEvents, both in the state
// the API shows and among the events the next report carries.
func (d *device) record(e Event) {
	e.Time = time.Now().UTC()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state.Events = append(d.state.Events, e)
	if n := len(d.state.Events); n > maxEvents {
		d.state.Events = slices.Delete(d.state.Events, 0, n-maxEvents)
	}
	d.unreported = append(d.unreported, evidence.DeviceEvent{Time: e.Time, Kind: e.Kind, Message: e.Message})
	if n := len(d.unreported); n > maxEvents {
		d.unreported = slices.Delete(d.unreported, 0, n-maxEvents)
	}
}

// pendingEvents returns the events not yet carried by a report.
func (d *device) pendingEvents() []evidence.DeviceEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.unreported)
}

// reported drops the first n pending events once a report carried them.
func (d *device) reported(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unreported = slices.Delete(d.unreported, 0, min(n, len(d.unreported)))
}

// compareBlocks describes how cur differs from last (nil last: no
// comparison).
func sameBlock(a, b evidence.Block) bool {
	return a.Index == b.Index && a.Type == b.Type && a.TypeCode == b.TypeCode && a.Raw == b.Raw && bytes.Equal(a.Value, b.Value)
}

func compareBlocks(last, cur []evidence.Block) []string {
	if last == nil {
		return nil
	}
	var out []string
	prev := map[uint8]evidence.Block{}
	for _, b := range last {
		prev[b.Index] = b
	}
	for _, b := range cur {
		p, ok := prev[b.Index]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("measurement index %d appeared", b.Index))
		case !sameBlock(p, b):
			out = append(out, fmt.Sprintf("measurement index %d changed", b.Index))
		}
		delete(prev, b.Index)
	}
	for _, b := range last {
		if _, ok := prev[b.Index]; ok {
			out = append(out, fmt.Sprintf("measurement index %d disappeared", b.Index))
		}
	}
	return out
}
