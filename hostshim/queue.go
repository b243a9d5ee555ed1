package hostshim

import (
	"context"
	"errors"
	"sync"
	"time"
)

// fifoLock is a VF's mailbox as connections see it: held by at most one
// connection, with the others waiting in arrival order. A channel or a
// sync.Mutex would do the exclusion but not the order: Go's runtime wakes
// channel and mutex waiters in an order it does not promise, and a guest
// that keeps reconnecting could starve another.
type fifoLock struct {
	mu      sync.Mutex
	held    bool
	holder  string // the holder's name, for the audit log only
	waiters []*waiter
	closed  bool
}

type waiter struct {
	name  string
	ready chan struct{} // closed when state leaves waiting
	state waitState
}

type waitState int

const (
	waiting waitState = iota
	granted
	refused // the lock was closed
)

var (
	errWaitExpired = errors.New("wait expired")
	errLockClosed  = errors.New("closed")
)

// acquire takes the lock for name, waiting at most wait and until ctx
// ends. Waiters are granted the lock strictly in the order they called
// acquire. If it has to wait, queued is called first (outside the lock)
// with the holder's name and the waiter's place in the queue (1 = next).
func (l *fifoLock) acquire(ctx context.Context, name string, wait time.Duration, queued func(holder string, place int)) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errLockClosed
	}
	if !l.held && len(l.waiters) == 0 {
		l.held, l.holder = true, name
		l.mu.Unlock()
		return nil
	}
	w := &waiter{name: name, ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	holder, place := l.holder, len(l.waiters)
	l.mu.Unlock()
	if queued != nil {
		queued(holder, place)
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
	case <-timer.C:
		err = errWaitExpired
	case <-ctx.Done():
		err = ctx.Err()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	switch w.state {
	case granted:
		if err == nil || errors.Is(err, errWaitExpired) {
			// Handed over just as the wait ran out: take it.
			return nil
		}
		l.releaseLocked() // ctx ended: pass it on
		return err
	case refused:
		return errLockClosed
	}
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			break
		}
	}
	return err
}

// release hands the lock to the longest waiter, or frees it.
func (l *fifoLock) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked()
}

func (l *fifoLock) releaseLocked() {
	if len(l.waiters) == 0 {
		l.held, l.holder = false, ""
		return
	}
	w := l.waiters[0]
	l.waiters[0] = nil
	l.waiters = l.waiters[1:]
	w.state = granted
	l.holder = w.name
	close(w.ready)
}

// waiting is how many connections wait for the lock.
func (l *fifoLock) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiters)
}

// currentHolder names the holder ("" when free).
func (l *fifoLock) currentHolder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

// close refuses every waiter and every later acquire; the holder keeps the
// lock until it releases.
func (l *fifoLock) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, w := range l.waiters {
		w.state = refused
		close(w.ready)
	}
	l.waiters = nil
}
