package tunnels

import (
	"fmt"
	"time"
)

// Service is a registered service: one that requested a tunnel or
// watched its upcalls. Registrations are stored and survive restarts, and
// outlive the service's tunnels.
type Service struct {
	Name       string    `json:"name"`
	Registered time.Time `json:"registered"`
	// LastSubscribed is when the service last opened a watch stream.
	LastSubscribed time.Time `json:"last_subscribed,omitzero"`
}

// ServiceInfo is a registration with what the service holds now.
type ServiceInfo struct {
	Service
	Tunnels  int    // tunnels it owns (demoted ones included)
	RateBps  uint64 // the express rate of its tunnels, as its quota counts it
	Watching int    // watch streams open now
	Quota    Quota  // its limits; zero fields are unlimited
}

// register returns the write that registers owner if it is new, and
// records it; c.mu is held. The caller saves the write (or forgets the
// registration if the save fails).
func (c *Controller) register(owner string, now time.Time) (Service, bool) {
	if _, ok := c.services[owner]; ok {
		return Service{}, false
	}
	s := Service{Name: owner, Registered: now}
	c.services[owner] = s
	return s, true
}

// subscribed records a new watch stream of owner and saves it; c.mu is
// held. A failed save is logged: the watch works, the registration is
// written with the service's next operation or watch.
func (c *Controller) subscribed(owner string, now time.Time) {
	s, ok := c.services[owner]
	if !ok {
		s = Service{Name: owner, Registered: now}
	}
	s.LastSubscribed = now
	c.services[owner] = s
	if err := c.save(Writes{Services: []Service{s}}); err != nil {
		c.log.Error("saving a service registration", "service", owner, "err", err)
	}
}

// ServiceInfo returns the registration of service name and what it holds.
func (c *Controller) ServiceInfo(name string) (ServiceInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.services[name]
	if !ok {
		return ServiceInfo{}, fmt.Errorf("%w: service %q is not registered (it has requested no tunnel and never watched)", ErrNotFound, name)
	}
	info := ServiceInfo{Service: s, Watching: c.watch.watching(name)}
	for _, rec := range c.recs {
		if rec.owner == name {
			info.Tunnels++
			info.RateBps += rateBps(c.topo.WireBytes(rec.req.LoadsizeBytes), rec.req.PeriodUs*1000)
		}
	}
	if c.quota != nil {
		info.Quota = c.quota(name)
	}
	return info, nil
}
