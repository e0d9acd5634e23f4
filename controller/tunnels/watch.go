package tunnels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Subscription delivers one service's upcalls in order.
type Subscription struct {
	C       <-chan Upcall
	c       chan Upcall
	once    sync.Once
	dropped bool
	owner   string
	ctl     *Controller
	unsent  atomic.Int64 // queued to c, not yet reported sent
}

// Watch subscribes to the upcalls of service owner.
func (c *Controller) Watch(owner string) *Subscription {
	ch := make(chan Upcall, c.buffer)
	s := &Subscription{C: ch, c: ch, owner: owner, ctl: c}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.end()
		return s
	}
	if c.subs[owner] == nil {
		c.subs[owner] = map[*Subscription]struct{}{}
	}
	c.subscribed(owner, c.clock.Now())
	c.subs[owner][s] = struct{}{}
	return s
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	delete(s.ctl.subs[s.owner], s)
	s.end()
	s.ctl.unsent.Add(-s.unsent.Swap(0)) // what it left is never sent
}

// Sent reports that n upcalls taken from C have gone to the service.
// Until then admissions wait for the watchers (see deliverFirst).
func (s *Subscription) Sent(n int) {
	s.unsent.Add(-int64(n))
	s.ctl.unsent.Add(-int64(n))
}

// Dropped reports whether the subscription ended because it fell behind.
func (s *Subscription) Dropped() bool {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	return s.dropped
}

func (s *Subscription) end() { s.once.Do(func() { close(s.c) }) }

// notify queues an upcall for every watcher of owner; c.mu is held.
func (c *Controller) notify(owner string, u Upcall) {
	c.obs.Upcall(u.Kind, u.Reason)
	for s := range c.subs[owner] {
		select {
		case s.c <- u:
			s.unsent.Add(1)
			c.unsent.Add(1)
		default:
			s.dropped = true
			delete(c.subs[owner], s)
			s.end()
			c.log.Warn("watcher fell behind; dropped", "service", owner)
		}
	}
}

// Unsent is how many upcalls are queued to watchers and not yet sent.
func (c *Controller) Unsent() int64 { return c.unsent.Load() }

// deliverFirst lets the goroutines sending upcalls run before a request
// takes the lock to start more work: a commit wakes its watchers on the
// committing goroutine's processor, where they would otherwise wait for
// the next batch of admissions to finish. Bounded: a watcher that is
// blocked on its stream does not hold requests up for long.
func (c *Controller) deliverFirst() {
	for i := 0; i < 8 && c.unsent.Load() > 0; i++ {
		runtime.Gosched()
	}
}
