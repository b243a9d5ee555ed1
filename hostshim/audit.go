package hostshim

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// DefaultAuditLinesPerSecond bounds one guest's audit lines per second
// (Options.AuditLinesPerSecond).
const DefaultAuditLinesPerSecond = 50

// auditWindow is the period over which a guest's lines are counted and
// its repeated refusals summed up.
const auditWindow = time.Second

// audit is one guest's audit log: one line per event, at a bounded rate,
// so that a guest cannot fill the host's disk however it behaves.
//
//   - The first refusal of each kind in a window is logged in full; the
//     others of that kind are counted and summed up in one line when the
//     window ends ("N refusals of kind K in the last second").
//   - Any other line (an exchange, a connection coming or going) counts
//     against the guest's lines per window; the excess is dropped,
//     counted in devattest_shim_audit_dropped_total and summed up in one
//     line when the window ends.
//
// So one guest writes at most linesPerWindow + one summary per kind + one
// "dropped" line per second. Every line carries the guest and the VF
// (the logger is made with them).
type audit struct {
	log     *slog.Logger
	metrics vfMetrics
	limit   int // lines per window, summaries excluded

	mu       sync.Mutex
	start    time.Time      // of the current window
	lines    int            // written in the current window
	dropped  int            // dropped in the current window
	repeated map[string]int // refusals counted, not logged, by kind
	seen     map[string]bool
	timer    *time.Timer // flushes the window's summaries when it ends
	closed   bool
}

func newAudit(log *slog.Logger, metrics vfMetrics, limit int) *audit {
	if limit <= 0 {
		limit = DefaultAuditLinesPerSecond
	}
	return &audit{log: log, metrics: metrics, limit: limit, repeated: make(map[string]int), seen: make(map[string]bool)}
}

// event logs one line, unless the guest used up its lines this window.
func (a *audit) event(level slog.Level, msg string, args ...any) {
	a.mu.Lock()
	ok := a.takeLocked(time.Now())
	a.mu.Unlock()
	if ok {
		a.log.Log(context.Background(), level, msg, args...)
	}
}

// refusal logs the first refusal of kind in the window in full (within
// the window's lines) and counts the others for the window's summary.
func (a *audit) refusal(kind, msg string, args ...any) {
	a.mu.Lock()
	now := time.Now()
	a.rollLocked(now)
	if a.seen[kind] {
		a.repeated[kind]++
		a.armLocked(now)
		a.mu.Unlock()
		return
	}
	a.seen[kind] = true
	ok := a.takeLocked(now)
	a.mu.Unlock()
	if ok {
		a.log.Warn(msg, append([]any{"result", kind}, args...)...)
	}
}

// takeLocked takes one line of the window's budget, or counts a drop.
func (a *audit) takeLocked(now time.Time) bool {
	a.rollLocked(now)
	if a.lines < a.limit {
		a.lines++
		return true
	}
	a.dropped++
	a.metrics.incAuditDropped()
	a.armLocked(now)
	return false
}

// rollLocked starts a new window if the current one is over, writing
// the old one's summaries first.
func (a *audit) rollLocked(now time.Time) {
	if now.Sub(a.start) < auditWindow {
		return
	}
	a.flushLocked()
	a.start, a.lines = now, 0
	clear(a.seen)
}

// armLocked makes sure the window's summaries are written when it ends,
// even if the guest falls silent.
func (a *audit) armLocked(now time.Time) {
	if a.timer != nil || a.closed {
		return
	}
	a.timer = time.AfterFunc(a.start.Add(auditWindow).Sub(now), func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.timer = nil
		a.rollLocked(time.Now())
	})
}

// flushLocked writes the summaries of the window and resets its counts.
// Writing under a.mu keeps summaries in order; the handler does not call
// back into the audit.
func (a *audit) flushLocked() {
	kinds := make([]string, 0, len(a.repeated))
	for k := range a.repeated {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		n := a.repeated[k]
		a.log.Warn(fmt.Sprintf("%d refusals of kind %s in the last second", n, k), "result", k, "count", n)
	}
	clear(a.repeated)
	if a.dropped > 0 {
		a.log.Warn(fmt.Sprintf("%d audit lines dropped in the last second: over the guest's %d lines per second", a.dropped, a.limit), "dropped", a.dropped)
		a.dropped = 0
	}
}

// close writes what the current window still holds.
func (a *audit) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	a.flushLocked()
}
