package tunnels

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// Store keeps the controller's state durable. Save applies one batch of
// writes atomically; the controller saves before it touches a switch.
type Store interface {
	Save(w Writes) error
	Load() (Snapshot, error)
}

// StoredTunnel is one tunnel as the store keeps it: only what X-ADJ needs
// to recompute it (owner, request, tree, requested period), so another
// tunnel's admission, which changes this one's bounds, writes nothing.
type StoredTunnel struct {
	Owner   string    `json:"owner"`
	Request Request   `json:"request"`
	Tunnel  te.Tunnel `json:"tunnel"`
	Demoted bool      `json:"demoted,omitempty"`
}

// Snapshot is the whole stored state.
type Snapshot struct {
	Tunnels  []StoredTunnel
	Services []Service
	Groups   map[netip.AddrPort][]netip.Addr
	NextID   uint64 // above every id ever stored
}

// Writes is one atomic batch.
type Writes struct {
	Put    []StoredTunnel
	Delete []uint64
	Groups map[netip.AddrPort][]netip.Addr // replaced wholesale; an empty list deletes
	// Services are registrations to put (added or updated).
	Services []Service
}

func (c *Controller) stored(rec *record, t te.Tunnel) StoredTunnel {
	if t.RequestedPeriodNs == 0 {
		t.RequestedPeriodNs = rec.req.PeriodUs * 1000
	}
	t.PeriodNs, t.MinLatencyNs, t.MaxJitterNs = t.RequestedPeriodNs, 0, 0
	return StoredTunnel{Owner: rec.owner, Request: rec.req, Tunnel: t, Demoted: rec.demoted}
}

// save writes w if the controller has a store.
func (c *Controller) save(w Writes) error {
	if c.store == nil {
		return nil
	}
	if err := c.store.Save(w); err != nil {
		return fmt.Errorf("%w: saving state: %w", ErrUnavailable, err)
	}
	return nil
}

// restore loads the stored state into a new controller: the engine gets
// the stored trees back (same ids), and every switch is reconciled to
// the rules they need.
func (c *Controller) restore(ctx context.Context) error {
	snap, err := c.store.Load()
	if err != nil {
		return fmt.Errorf("tunnels: load state: %w", err)
	}
	for _, s := range snap.Services {
		c.services[s.Name] = s
	}
	for g, ms := range snap.Groups {
		c.groups[g] = map[netip.Addr]bool{}
		for _, m := range ms {
			c.groups[g][m] = true
		}
	}
	var ts []te.Tunnel
	var express []StoredTunnel
	for _, st := range snap.Tunnels {
		x := st.Tunnel
		if x.RequestedPeriodNs == 0 {
			x.RequestedPeriodNs = st.Request.PeriodUs * 1000
		}
		if st.Demoted {
			// Out of the engine; forwarded at best effort with its meter.
			rec := &record{owner: st.Owner, req: st.Request, tun: x, demoted: true}
			var err error
			var rules ruleSet
			if rules, err = compile(c.topo, x, st.Request.Receiver, true, c.meterRate(x)); err != nil {
				return err
			}
			c.setRules(rec, rules)
			c.recs[x.ID] = rec
			continue
		}
		ts = append(ts, x)
		express = append(express, st)
	}
	installed, err := c.engine.Install(ts)
	if err != nil {
		return fmt.Errorf("tunnels: stored tunnels do not fit the topology: %w", err)
	}
	c.engine.SetNextID(snap.NextID)
	for i, st := range express {
		rec := &record{owner: st.Owner, req: st.Request, tun: c.promise(installed[i])}
		var rules ruleSet
		if rules, err = c.rulesFor(rec, installed[i], c.meterRate(installed[i])); err != nil {
			return err
		}
		c.setRules(rec, rules)
		c.recs[installed[i].ID] = rec
		c.engine.SetTag(installed[i].ID, rec)
	}
	// Tunnels stored before registrations were kept: their owners are
	// registered now.
	var reg []Service
	for _, rec := range c.recs {
		if s, isNew := c.register(rec.owner, c.clock.Now()); isNew {
			reg = append(reg, s)
		}
	}
	if len(reg) > 0 {
		if err := c.save(Writes{Services: reg}); err != nil {
			return fmt.Errorf("tunnels: registering the owners of stored tunnels: %w", err)
		}
	}
	// A switch that is not reachable yet (OpenFlow switches connect to the
	// controller after it starts) stays marked; its connection or the
	// monitoring loop reconciles it later.
	if err := c.reconcileAll(ctx); err != nil {
		c.log.Warn("not every switch reconciled at start; will retry", "err", err)
	}
	return nil
}

// desired is the full state one switch should hold.
func (c *Controller) desired(sw string) southbound.SwitchState {
	st := southbound.SwitchState{Routes: c.routes[sw].Unpack()}
	id, ok := c.topo.NodeByName(sw)
	for _, rec := range c.recs {
		if r, has := rec.rules.at(id); ok && has {
			st.Rules = append(st.Rules, r)
		}
	}
	slices.SortFunc(st.Rules, func(a, b southbound.TunnelRule) int { return int(a.Tunnel - b.Tunnel) })
	return st
}

// switches lists the topology's switch names.
func (c *Controller) switches() []string { return c.topo.Switches() }

// ReconcileAll makes every switch equal to the desired state: tunnel rules
// and best-effort routes. The daemon calls it at start.
func (c *Controller) ReconcileAll(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconcileAll(ctx)
}

// reconcileAll makes every switch equal to the desired state.
func (c *Controller) reconcileAll(ctx context.Context) error {
	var firstErr error
	for _, sw := range c.switches() {
		if err := c.drv.Reconcile(ctx, sw, c.desired(sw)); err != nil {
			c.needsReconcile[sw] = true
			c.log.Warn("reconcile failed", "switch", sw, "err", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		delete(c.needsReconcile, sw)
	}
	return firstErr
}

// Reconcile makes one switch equal to the desired state; the driver calls
// it after the switch (re)connects.
func (c *Controller) Reconcile(ctx context.Context, sw string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.drv.Reconcile(ctx, sw, c.desired(sw)); err != nil {
		c.needsReconcile[sw] = true
		return err
	}
	delete(c.needsReconcile, sw)
	return nil
}

// Desired returns the express state switch sw should hold now.
func (c *Controller) Desired(sw string) southbound.SwitchState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.desired(sw)
}

// Switches lists the topology's switches.
func (c *Controller) Switches() []string { return c.switches() }

// Topology is the network the controller plans on.
func (c *Controller) Topology() *te.Topology { return c.topo }

// ReconcilePending reconciles the switches a failed rollback left
// uncertain; the monitoring loop calls it every round.
func (c *Controller) ReconcilePending(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var firstErr error
	for sw := range c.needsReconcile {
		if err := c.drv.Reconcile(ctx, sw, c.desired(sw)); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("reconcile %s: %w", sw, err)
			}
			continue
		}
		delete(c.needsReconcile, sw)
		c.log.Info("switch reconciled", "switch", sw)
	}
	return firstErr
}
