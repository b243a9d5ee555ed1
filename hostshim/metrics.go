package hostshim

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Error kinds, the values of the kind label of devattest_shim_errors_total
// and of the result field of the audit log's exchange lines.
const (
	KindNotAllowed  = "not_allowed"  // object type outside the allowlist
	KindTooLarge    = "too_large"    // request over MaxObjectSize
	KindRateLimited = "rate_limited" // connection over its exchange rate
	KindTimeout     = "timeout"      // no answer within the deadline (doe.ErrTimeout)
	KindDeviceError = "device_error" // the DOE Error bit (doe.ErrDeviceError)
	KindBusy        = "busy"         // the mailbox stayed Busy (doe.ErrBusy)
	KindAbortFailed = "abort_failed" // an abort did not bring the mailbox to idle
	// another user drove the VF's mailbox (doe.ErrForeignActivity)
	KindForeignActivity = "foreign_activity"
	KindBackend         = "backend" // any other backend failure (upstream down, ...)

	KindMalformed      = "malformed"           // a frame or object that does not parse
	KindUnknownCommand = "unknown_command"     // a socket command the shim does not know
	KindWrongTransport = "wrong_transport"     // a NORMAL frame on a transport other than PCI_DOE
	KindDisconnected   = "client_disconnected" // the client left during its exchange
	// KindGuestDeviceError is a DOE Error the guest's own request caused:
	// one abort cleared it, so it is the guest's failure, not the VF's.
	KindGuestDeviceError = "guest_device_error"
	// KindTooManyConnections: a connection over the listener's
	// max_connections, refused at once (connections_refused_total).
	KindTooManyConnections = "too_many_connections"
)

// Metrics are the shim's Prometheus metrics, shared by the Mediators of
// every VF (the vf label tells them apart). A nil *Metrics records nothing.
type Metrics struct {
	exchanges   *prometheus.CounterVec   // vf, result
	errors      *prometheus.CounterVec   // vf, kind
	seconds     *prometheus.HistogramVec // vf
	busy        *prometheus.CounterVec   // vf
	aborts      *prometheus.CounterVec   // vf
	wedged      *prometheus.GaugeVec     // vf
	connections *prometheus.GaugeVec     // vf
	refusedConn *prometheus.CounterVec   // vf, reason
	preempted   *prometheus.CounterVec   // vf
	dropped     *prometheus.CounterVec   // vf
	acceptPause *prometheus.GaugeVec     // vf
}

// NewMetrics creates the shim's metrics and registers them with reg (nil:
// not registered, useful in tests). It panics if they are registered
// already, as prometheus.MustRegister does: create one Metrics per
// registry and share it between Mediators.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devattest_shim_exchanges_total",
			Help: "DOE exchanges requested by guests, by VF and result (ok or an error kind).",
		}, []string{"vf", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devattest_shim_errors_total",
			Help: "Exchanges and frames refused or failed, by VF and kind (not_allowed, too_large, rate_limited, malformed, unknown_command, wrong_transport, client_disconnected, guest_device_error, timeout, device_error, busy, abort_failed, foreign_activity, backend).",
		}, []string{"vf", "kind"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "devattest_shim_exchange_seconds",
			Help:    "Time of exchanges forwarded to the VF's mailbox.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 10), // 50 µs .. ~13 s
		}, []string{"vf"}),
		busy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devattest_shim_busy_total",
			Help: "Connections refused because another connection held the VF's mailbox beyond the wait.",
		}, []string{"vf"}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devattest_shim_aborts_total",
			Help: "Aborts the shim issued to recover a VF's mailbox after a failed exchange.",
		}, []string{"vf"}),
		wedged: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "devattest_shim_vf_wedged",
			Help: "1 while a VF's mailbox has failed MaxConsecutiveFailures exchanges in a row.",
		}, []string{"vf"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "devattest_shim_connections",
			Help: "Connections currently holding a VF's mailbox (0 or 1).",
		}, []string{"vf"}),
		refusedConn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devattest_shim_connections_refused_total",
			Help: "Connections refused at accept, by VF and reason (too_many_connections: over the listener's max_connections).",
		}, []string{"vf", "reason"}),
		preempted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devattest_shim_preempted_total",
			Help: "Connections that lost the VF's mailbox after holding it for max_hold while another waited.",
		}, []string{"vf"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devattest_shim_audit_dropped_total",
			Help: "Audit lines dropped because a guest exceeded its audit lines per second (each window's drops are summed up in one line).",
		}, []string{"vf"}),
		acceptPause: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "devattest_shim_accept_paused",
			Help: "1 while a listener cannot accept because the process is out of file descriptors (it retries with back-off).",
		}, []string{"vf"}),
	}
	if reg != nil {
		reg.MustRegister(m.exchanges, m.errors, m.seconds, m.busy, m.aborts, m.wedged, m.connections, m.refusedConn, m.preempted, m.dropped, m.acceptPause)
	}
	return m
}

// ForgetVF drops every series of vf, for a VF no longer served (after a
// reload removed it).
func (m *Metrics) ForgetVF(vf string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"vf": vf}
	m.exchanges.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
	m.seconds.DeletePartialMatch(l)
	m.busy.DeletePartialMatch(l)
	m.aborts.DeletePartialMatch(l)
	m.wedged.DeletePartialMatch(l)
	m.connections.DeletePartialMatch(l)
	m.refusedConn.DeletePartialMatch(l)
	m.preempted.DeletePartialMatch(l)
	m.dropped.DeletePartialMatch(l)
	m.acceptPause.DeletePartialMatch(l)
}

// vfMetrics are the series of one VF, resolved once so that an exchange
// does no label lookups. The zero value (nil series) records nothing.
type vfMetrics struct {
	m           *Metrics
	vf          string
	ok          prometheus.Counter
	seconds     prometheus.Observer
	busy        prometheus.Counter
	aborts      prometheus.Counter
	wedged      prometheus.Gauge
	connections prometheus.Gauge
	preempted   prometheus.Counter
	dropped     prometheus.Counter
	acceptPause prometheus.Gauge
}

func (m *Metrics) forVF(vf string) vfMetrics {
	if m == nil {
		return vfMetrics{}
	}
	v := vfMetrics{
		m:           m,
		vf:          vf,
		ok:          m.exchanges.WithLabelValues(vf, "ok"),
		seconds:     m.seconds.WithLabelValues(vf),
		busy:        m.busy.WithLabelValues(vf),
		aborts:      m.aborts.WithLabelValues(vf),
		wedged:      m.wedged.WithLabelValues(vf),
		connections: m.connections.WithLabelValues(vf),
		preempted:   m.preempted.WithLabelValues(vf),
		dropped:     m.dropped.WithLabelValues(vf),
		acceptPause: m.acceptPause.WithLabelValues(vf),
	}
	// Start the series at zero so that dashboards see them before the
	// first event.
	v.wedged.Set(0)
	v.acceptPause.Set(0)
	return v
}

func (v vfMetrics) success(seconds float64) {
	if v.m == nil {
		return
	}
	v.ok.Inc()
	v.seconds.Observe(seconds)
}

// failure counts one exchange that did not succeed; forwarded says it
// reached the backend (and so has a duration worth observing).
func (v vfMetrics) failure(kind string, forwarded bool, seconds float64) {
	if v.m == nil {
		return
	}
	v.m.exchanges.WithLabelValues(v.vf, kind).Inc()
	v.m.errors.WithLabelValues(v.vf, kind).Inc()
	if forwarded {
		v.seconds.Observe(seconds)
	}
}

func (v vfMetrics) incBusy() {
	if v.busy != nil {
		v.busy.Inc()
	}
}

func (v vfMetrics) incAborts() {
	if v.aborts != nil {
		v.aborts.Inc()
	}
}

func (v vfMetrics) setWedged(w bool) {
	if v.wedged == nil {
		return
	}
	if w {
		v.wedged.Set(1)
	} else {
		v.wedged.Set(0)
	}
}

func (v vfMetrics) addConnections(d float64) {
	if v.connections != nil {
		v.connections.Add(d)
	}
}

func (v vfMetrics) incPreempted() {
	if v.preempted != nil {
		v.preempted.Inc()
	}
}

func (v vfMetrics) incAuditDropped() {
	if v.dropped != nil {
		v.dropped.Inc()
	}
}

func (v vfMetrics) refusedConnection(reason string) {
	if v.m != nil {
		v.m.refusedConn.WithLabelValues(v.vf, reason).Inc()
	}
}

func (v vfMetrics) setAcceptPaused(p bool) {
	if v.acceptPause == nil {
		return
	}
	if p {
		v.acceptPause.Set(1)
	} else {
		v.acceptPause.Set(0)
	}
}
