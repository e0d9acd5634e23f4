package tunnels

import (
	"sync"
	"sync/atomic"
)

// Subscription delivers one service's upcalls in order.
type Subscription struct {
	C       <-chan Upcall
	c       chan Upcall
	once    sync.Once
	dropped bool // under the controller's watch.mu
	// slow is set when an admission's holdoff ran out with upcalls of this
	// watcher still queued; holdoffs skip it until it has taken them all.
	slow  atomic.Bool
	owner string
	ctl   *Controller
}

// watchers holds the subscriptions and what is on its way to them and to
// waiting requesters. Operations queue upcalls (and the ends of requests
// they served) under the controller's lock, in commit order; the
// goroutines are woken by flush, watchers first: after the lock is
// released (a hand-off each, a tenth of an admission's time, that no
// longer holds up the next operation), or by a lock holder about to run
// the engine, which then yields its processor to them (admitQueued).
type watchers struct {
	mu   sync.Mutex                            // subs, and each Subscription's dropped
	subs map[string]map[*Subscription]struct{} // service -> watchers

	omu    sync.Mutex // outbox, ends
	outbox []delivery
	ends   []func()
	spare  []delivery // the outbox before last, for reuse
	// dmu is held by the one goroutine delivering (flush): it takes the
	// outbox whole, so upcalls leave in the order they were queued.
	dmu sync.Mutex

	gate gate // the admissions' holdoff (holdoff.go)
}

type delivery struct {
	owner string
	u     Upcall
}

// Watch subscribes to the upcalls of service owner.
func (c *Controller) Watch(owner string) *Subscription {
	ch := make(chan Upcall, c.buffer)
	s := &Subscription{C: ch, c: ch, owner: owner, ctl: c}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.closed {
		s.end()
		return s
	}
	if w.subs[owner] == nil {
		w.subs[owner] = map[*Subscription]struct{}{}
	}
	c.subscribed(owner, c.clock.Now())
	w.subs[owner][s] = struct{}{}
	return s
}

// Close ends the subscription.
func (s *Subscription) Close() {
	w := &s.ctl.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.subs[s.owner], s)
	s.end()
}

// Dropped reports whether the subscription ended because it fell behind.
func (s *Subscription) Dropped() bool {
	w := &s.ctl.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	return s.dropped
}

func (s *Subscription) end() { s.once.Do(func() { close(s.c) }) }

// watching is how many subscriptions owner has.
func (w *watchers) watching(owner string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.subs[owner])
}

// endAll ends every subscription (the controller is closing).
func (w *watchers) endAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, set := range w.subs {
		for s := range set {
			s.end()
		}
	}
	w.subs = map[string]map[*Subscription]struct{}{}
}

// notify queues an upcall for every watcher of owner; c.mu is held, and
// the operation flushes after releasing it.
func (c *Controller) notify(owner string, u Upcall) {
	c.obs.Upcall(u.Kind, u.Reason)
	w := &c.watch
	w.omu.Lock()
	w.outbox = append(w.outbox, delivery{owner, u})
	w.omu.Unlock()
}

// later queues end (the release of a served batch's requesters) to run at
// the next flush, after the upcalls queued before it; c.mu is held.
func (c *Controller) later(end func()) {
	w := &c.watch
	w.omu.Lock()
	w.ends = append(w.ends, end)
	w.omu.Unlock()
}

// flush delivers the queued upcalls and then runs the queued ends, unless
// another goroutine is flushing: that one leaves only once nothing is
// queued, so nothing queued before this call is left behind. c.mu may
// be held: nothing here takes it.
func (c *Controller) flush() {
	w := &c.watch
	if !w.dmu.TryLock() {
		return
	}
	for {
		w.omu.Lock()
		batch, ends := w.outbox, w.ends
		if len(batch) == 0 && len(ends) == 0 {
			// Released under omu: whatever is queued after this check finds
			// dmu free when its operation flushes.
			w.dmu.Unlock()
			w.omu.Unlock()
			return
		}
		w.outbox, w.ends = w.spare[:0], nil
		w.omu.Unlock()
		if len(batch) > 0 {
			w.deliver(batch, c)
		}
		for _, end := range ends {
			end()
		}
		clear(batch) // no times or strings kept alive by the spare
		w.omu.Lock()
		w.spare = batch[:0]
		w.omu.Unlock()
	}
}

// deliver hands each upcall to its service's watchers; one that fell a
// whole buffer behind is ended (it re-subscribes and lists its tunnels).
func (w *watchers) deliver(batch []delivery, c *Controller) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range batch {
		d := &batch[i]
		for s := range w.subs[d.owner] {
			select {
			case s.c <- d.u:
			default:
				s.dropped = true
				delete(w.subs[d.owner], s)
				s.end()
				c.log.Warn("watcher fell behind; dropped", "service", d.owner)
			}
		}
	}
}
