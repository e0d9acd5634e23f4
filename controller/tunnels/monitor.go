package tunnels

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// MonitorConfig tunes resource monitoring (§3.3).
type MonitorConfig struct {
	Interval time.Duration // between statistics reads; default 1 s
	// A tunnel that sends less than UnusedFraction of its allotted bytes
	// for UnusedIntervals intervals in a row gets twice its period.
	UnusedFraction  float64 // default 0.1
	UnusedIntervals int     // default 10
	// A tunnel that sends nothing for IdleIntervals intervals is terminated.
	IdleIntervals int // default 30
	// A demoted tunnel whose meter keeps dropping for ViolationIntervals
	// intervals is terminated.
	ViolationIntervals int // default 5
}

func (m MonitorConfig) withDefaults() MonitorConfig {
	if m.Interval <= 0 {
		m.Interval = time.Second
	}
	if m.UnusedFraction <= 0 {
		m.UnusedFraction = 0.1
	}
	if m.UnusedIntervals <= 0 {
		m.UnusedIntervals = 10
	}
	if m.IdleIntervals <= 0 {
		m.IdleIntervals = 30
	}
	if m.ViolationIntervals <= 0 {
		m.ViolationIntervals = 5
	}
	return m
}

// usage is what monitoring remembers of a tunnel between intervals.
type usage struct {
	seen                     bool
	packets, bytes, drops    uint64 // last cumulative counters
	idle, unused, violations int    // consecutive intervals
}

// RunMonitor reads statistics every interval until ctx ends.
func (c *Controller) RunMonitor(ctx context.Context, cfg MonitorConfig) error {
	cfg = cfg.withDefaults()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := c.ReconcilePending(ctx); err != nil {
				c.log.Warn("reconciling", "err", err)
			}
			if err := c.MonitorOnce(ctx, cfg); err != nil {
				c.log.Warn("monitoring", "err", err)
			}
		}
	}
}

// MonitorOnce reads every metering switch's statistics once and acts on
// them: demote violators, lengthen the period of tunnels that use little
// of their rate, terminate idle tunnels and persistent violators.
func (c *Controller) MonitorOnce(ctx context.Context, cfg MonitorConfig) error {
	cfg = cfg.withDefaults()
	start := time.Now()
	defer func() { c.obs.MonitorRound(time.Since(start)) }()
	// Which switch meters which tunnel; read without holding the lock.
	c.mu.Lock()
	metered := map[string][]uint64{}
	for id, rec := range c.recs {
		for sw, r := range rec.rules {
			if r.Meter != nil {
				metered[sw] = append(metered[sw], id)
			}
		}
	}
	c.mu.Unlock()
	stats := map[uint64]southbound.TunnelStats{}
	var firstErr error
	for sw, ids := range metered {
		sts, err := c.drv.Stats(ctx, sw)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("stats of %s: %w", sw, err)
			}
			continue
		}
		for _, s := range sts {
			if slices.Contains(ids, s.Tunnel) {
				stats[s.Tunnel] = s
			}
		}
	}
	unlock, err := c.exclusive()
	if err != nil {
		return err
	}
	defer unlock()
	ids := make([]uint64, 0, len(stats))
	for id := range stats {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rec, ok := c.recs[id]
		if !ok {
			continue // released meanwhile
		}
		if err := c.judge(ctx, cfg, rec, stats[id]); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// judge applies one interval's counters to one tunnel.
func (c *Controller) judge(ctx context.Context, cfg MonitorConfig, rec *record, s southbound.TunnelStats) error {
	u := &rec.use
	delta := func(now, before uint64) uint64 {
		if now < before { // counters restarted (switch reconnect)
			return now
		}
		return now - before
	}
	var dp, db, dd uint64
	if u.seen {
		dp, db, dd = delta(s.Packets, u.packets), delta(s.Bytes, u.bytes), delta(s.MeterDrops, u.drops)
	}
	first := !u.seen
	u.seen, u.packets, u.bytes, u.drops = true, s.Packets, s.Bytes, s.MeterDrops
	if first {
		return nil // a baseline, not an interval
	}
	switch {
	case rec.demoted && dd > 0:
		if u.violations++; u.violations >= cfg.ViolationIntervals {
			return c.terminate(ctx, rec, ReasonBWExceeded)
		}
		return nil
	case rec.demoted:
		u.violations = 0
	case dd > 0:
		return c.demote(ctx, rec)
	}
	if dp == 0 {
		if u.idle++; u.idle >= cfg.IdleIntervals {
			return c.terminate(ctx, rec, ReasonBWUnused)
		}
	} else {
		u.idle = 0
	}
	if rec.demoted {
		return nil
	}
	periodUs := (rec.tun.PeriodNs + 999) / 1000
	allotted := float64(rec.tun.LoadsizeBytes) * float64(cfg.Interval.Microseconds()) / float64(periodUs)
	if float64(db) < cfg.UnusedFraction*allotted {
		if u.unused++; u.unused >= cfg.UnusedIntervals && rec.req.PeriodUs < 10_000_000 {
			u.unused = 0
			return c.reclaim(ctx, rec)
		}
	} else {
		u.unused = 0
	}
	return nil
}

// demote takes a violating tunnel out of the express lane: its packets get
// best-effort priority, the tunnels that shared queues with it get their
// smaller bounds, and its service learns its jitter is now unbounded.
func (c *Controller) demote(ctx context.Context, rec *record) error {
	id := rec.tun.ID
	changes, err := c.engine.Release(id)
	if err != nil {
		return teErr(err)
	}
	p := newPlan()
	want, err := compile(c.topo, rec.tun, rec.req.Receiver, true, rec.meter)
	if err == nil {
		p.diff(id, rec.rules, want)
		var ps []pending
		if ps, err = c.planChanges(p, changes, nil); err == nil {
			rec.demoted = true
			if err = c.save(Writes{Put: []StoredTunnel{c.stored(rec, rec.tun)}}); err == nil {
				if err = c.apply(ctx, p); err == nil {
					now := c.clock.Now()
					rec.setRules(want)
					rec.use.violations = 0
					c.stopGrace(id)
					c.commit(ps, now)
					c.notify(rec.owner, Upcall{Kind: BandwidthChanged, TunnelID: id, Resources: c.recResources(rec, now),
						Reason: ReasonBWExceeded, GraceUntil: now})
					c.log.Info("tunnel demoted: its meter dropped packets", "tunnel", id, "service", rec.owner)
					return nil
				}
				rec.demoted = false
				c.saveOrLog(Writes{Put: []StoredTunnel{c.stored(rec, rec.tun)}})
			}
			rec.demoted = false
		}
	}
	if _, ierr := c.engine.Install([]te.Tunnel{rec.tun}); ierr != nil {
		c.log.Error("undo demotion", "tunnel", id, "err", ierr)
	}
	return err
}

// reclaim doubles the period of a tunnel that uses little of its rate.
func (c *Controller) reclaim(ctx context.Context, rec *record) error {
	r := rec.req
	r.PeriodUs = min(2*max(r.PeriodUs, (rec.tun.PeriodNs+999)/1000), 10_000_000)
	tr, err := c.teRequest(r)
	if err != nil {
		return err
	}
	res, err := c.replan(ctx, rec, r, tr)
	if err != nil {
		return err
	}
	c.notify(rec.owner, Upcall{Kind: BandwidthChanged, TunnelID: res.TunnelID, Resources: res,
		Reason: ReasonBWUnused, GraceUntil: c.clock.Now().Add(c.grace)})
	c.log.Info("tunnel period lengthened: it used little of its rate", "tunnel", res.TunnelID, "period_us", res.PeriodUs)
	return nil
}

// terminate ends a tunnel the controller gave up on.
func (c *Controller) terminate(ctx context.Context, rec *record, why Reason) error {
	id := rec.tun.ID
	if err := c.remove(ctx, rec); err != nil {
		return err
	}
	c.notify(rec.owner, Upcall{Kind: BandwidthTerminated, TunnelID: id, Reason: why, GraceUntil: c.clock.Now()})
	c.log.Info("tunnel terminated", "tunnel", id, "service", rec.owner, "reason", why.String())
	return nil
}
