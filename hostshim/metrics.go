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
			Help: "Exchanges refused or failed, by VF and kind (not_allowed, too_large, rate_limited, timeout, device_error, busy, abort_failed, foreign_activity, backend).",
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
	}
	if reg != nil {
		reg.MustRegister(m.exchanges, m.errors, m.seconds, m.busy, m.aborts, m.wedged, m.connections)
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
	}
	// Start the series at zero so that dashboards see them before the
	// first event.
	v.wedged.Set(0)
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
