package tunnels

import (
	"sync"
	"time"
)

// Upcalls before admissions. At saturation one processor runs the engine
// for batch after batch while the other serves everything else, and the
// watch streams that carry the upcalls of earlier batches queue behind
// new requests' work: their services heard of changed bounds 10–20 ms
// late. So a lock holder about to take the next batch first waits, up to
// the holdoff, until every watcher has taken the upcalls handed to it.
// Requests arriving meanwhile join that batch, so the wait costs the
// throughput little (larger batches share the engine's and the store's
// fixed costs). A watcher that the holdoff ran out on is skipped until it
// has taken everything (Drained): one stuck service costs admissions one
// holdoff, not one per batch.

// gate is the holdoff's wait: open while a lock holder waits for the
// watchers; a stream that took everything queued for it closes it once
// no watcher has anything queued.
type gate struct {
	mu    sync.Mutex
	open  chan struct{} // nil unless someone waits
	timer *time.Timer   // reused: one waiter at a time (it holds c.mu)
}

// backlogged reports whether any watcher not marked slow has upcalls it
// has not taken; with markSlow it marks every such watcher slow instead.
// The channels' lengths are the truth: nothing to count, nothing to drift
// when a stream ends with upcalls still queued (its subscription is gone
// from subs once it closes).
func (w *watchers) backlogged(markSlow bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	found := false
	for _, set := range w.subs {
		for s := range set {
			if len(s.c) > 0 && !s.slow.Load() {
				if !markSlow {
					return true
				}
				s.slow.Store(true)
				found = true
			}
		}
	}
	return found
}

// holdoff waits until no watcher has upcalls it has not taken, or for d;
// c.mu is held (so there is one waiter at a time).
func (c *Controller) holdoff(d time.Duration) {
	w := &c.watch
	if d <= 0 || !w.backlogged(false) {
		return
	}
	g := &w.gate
	open := make(chan struct{})
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		if g.open == open {
			g.open = nil
		}
		g.mu.Unlock()
	}()
	// A stream that drained before the gate was set did not look for it.
	if !w.backlogged(false) {
		return
	}
	if g.timer == nil {
		g.timer = time.NewTimer(d)
	} else {
		g.timer.Reset(d)
	}
	defer g.timer.Stop()
	select {
	case <-open:
	case <-g.timer.C:
		w.backlogged(true) // those it ran out on
	}
}

// Drained tells the controller that the subscription's consumer took
// everything queued for it. A consumer that never calls it only makes
// an admission waiting on it wait out the holdoff.
func (s *Subscription) Drained() {
	w := &s.ctl.watch
	if s.slow.Load() && len(s.c) == 0 {
		s.slow.Store(false) // caught up: waited for again
	}
	g := &w.gate
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open == nil || w.backlogged(false) {
		return
	}
	g.mu.Lock()
	if g.open == open {
		close(open)
		g.open = nil
	}
	g.mu.Unlock()
}
