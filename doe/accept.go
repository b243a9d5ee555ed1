package doe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// acceptor is the connection bookkeeping Server and Relay share: an accept
// loop with back-off on temporary errors, one goroutine per connection,
// and a Close that stops the listeners, ends every connection and waits
// for their handlers.
type acceptor struct {
	mu        sync.Mutex
	ctx       context.Context
	cancel    context.CancelFunc
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
	closed    bool
	listeners []net.Listener
}

// initLocked prepares the zero value; the caller holds mu.
func (a *acceptor) initLocked() {
	if a.ctx == nil {
		a.ctx, a.cancel = context.WithCancel(context.Background())
		a.conns = make(map[net.Conn]struct{})
	}
}

// serve accepts on ln until close or a permanent accept error, handing
// each connection to handle with a context that close cancels.
func (a *acceptor) serve(ln net.Listener, what string, handle func(ctx context.Context, conn net.Conn)) error {
	a.mu.Lock()
	a.initLocked()
	if a.closed {
		a.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	a.listeners = append(a.listeners, ln)
	ctx := a.ctx
	a.mu.Unlock()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if a.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("doe: %s accept: %w", what, err)
		}
		backoff = 0
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			_ = conn.Close()
			return nil
		}
		a.conns[conn] = struct{}{}
		a.wg.Add(1)
		a.mu.Unlock()
		go func() {
			defer a.wg.Done()
			handle(ctx, conn)
			a.mu.Lock()
			delete(a.conns, conn)
			a.mu.Unlock()
		}()
	}
}

func (a *acceptor) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// close stops accepting, ends every connection and waits for the handlers.
func (a *acceptor) close() {
	a.mu.Lock()
	a.initLocked()
	a.closed = true
	a.cancel()
	for _, ln := range a.listeners {
		_ = ln.Close()
	}
	for c := range a.conns {
		_ = c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}
