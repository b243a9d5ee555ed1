package secchan

import "time"

// SetResponderClock replaces the clock a responder's heartbeat timeout
// reads, for tests.
func SetResponderClock(r *Responder, now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sess.now = now
}
