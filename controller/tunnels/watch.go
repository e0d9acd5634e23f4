package tunnels

import "sync"

// Subscription delivers one service's upcalls in order.
type Subscription struct {
	C       <-chan Upcall
	c       chan Upcall
	once    sync.Once
	dropped bool
	owner   string
	ctl     *Controller
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
		default:
			s.dropped = true
			delete(c.subs[owner], s)
			s.end()
			c.log.Warn("watcher fell behind; dropped", "service", owner)
		}
	}
}
