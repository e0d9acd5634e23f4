package tunnels

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// plan collects the switch changes of one operation and their inverses.
type plan struct {
	do, undo map[string]*southbound.Batch
	free     []*southbound.Batch // emptied by reset, for the next use
}

func newPlan() *plan {
	return &plan{do: map[string]*southbound.Batch{}, undo: map[string]*southbound.Batch{}}
}

// reset empties p for another operation and keeps its memory: a batch of
// admissions touches some twenty switches, and a fresh plan each time was
// some thirty allocations an admission (a heap profile of the daemon). Drivers copy what they keep
// (southbound.Driver), so nothing applied refers to p's slices.
func (p *plan) reset() {
	for _, m := range [2]map[string]*southbound.Batch{p.do, p.undo} {
		for _, b := range m {
			clear(b.Put) // the rules' ports and meters are not kept alive
			b.Put, b.Delete = b.Put[:0], b.Delete[:0]
			p.free = append(p.free, b)
		}
		clear(m)
	}
}

func (p *plan) batch(m map[string]*southbound.Batch, sw string) *southbound.Batch {
	b, ok := m[sw]
	if !ok {
		if n := len(p.free); n > 0 {
			b, p.free = p.free[n-1], p.free[:n-1]
		} else {
			b = &southbound.Batch{}
		}
		m[sw] = b
	}
	return b
}

// diff adds what turns tunnel id's installed rules (have) into want.
func (p *plan) diff(topo *te.Topology, id uint64, have, want ruleSet) {
	for sw := range want.switches {
		if want.same(sw, have) {
			continue
		}
		name := topo.Nodes[sw].Name
		r, _ := want.at(sw)
		b := p.batch(p.do, name)
		b.Put = append(b.Put, r)
		u := p.batch(p.undo, name)
		if o, ok := have.at(sw); ok {
			u.Put = append(u.Put, o)
		} else {
			u.Delete = append(u.Delete, id)
		}
	}
	for sw := range have.switches {
		if !want.has(sw) {
			name := topo.Nodes[sw].Name
			b, u := p.batch(p.do, name), p.batch(p.undo, name)
			b.Delete = append(b.Delete, id)
			o, _ := have.at(sw)
			u.Put = append(u.Put, o)
		}
	}
}

// diffRate adds what sets the meter of tunnel id's installed rules (have)
// to rate: the metering switch's rule, nothing else (TE never moves
// another tunnel's tree).
func (p *plan) diffRate(topo *te.Topology, id uint64, have ruleSet, rate uint64) {
	sw, old, ok := have.meter()
	if !ok || old == rate {
		return
	}
	o, _ := have.at(sw) // a copy, its meter its own
	r := o
	r.Meter = &southbound.Meter{RateBps: rate, BurstBytes: o.Meter.BurstBytes}
	name := topo.Nodes[sw].Name
	u := p.batch(p.undo, name)
	u.Put = append(u.Put, o)
	b := p.batch(p.do, name)
	b.Put = append(b.Put, r)
}

// apply programs every switch of the plan as one unit, all switches at
// once (drivers take concurrent calls for different switches): if one
// fails, the switches that were programmed get the inverse batch.
func (c *Controller) apply(ctx context.Context, p *plan) error {
	switches := make([]string, 0, len(p.do))
	for sw, b := range p.do {
		if !b.Empty() {
			switches = append(switches, sw)
		}
	}
	slices.Sort(switches)
	errs := c.each(switches, func(sw string) error { return c.drv.Apply(ctx, sw, *p.do[sw]) })
	var failed []error
	var done []string
	for i, sw := range switches {
		if errs[i] != nil {
			failed = append(failed, fmt.Errorf("programming %s: %w", sw, errs[i]))
		} else {
			done = append(done, sw)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	undo := c.each(done, func(sw string) error { return c.drv.Apply(context.WithoutCancel(ctx), sw, *p.undo[sw]) })
	var undoErrs []error
	for i, err := range undo {
		if err != nil {
			undoErrs = append(undoErrs, err)
			c.needsReconcile[done[i]] = true
		}
	}
	if len(undoErrs) > 0 {
		c.log.Error("rollback failed; switches will be reconciled", "err", errors.Join(undoErrs...))
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(failed...))
}

// each runs f for every switch concurrently and returns the errors in
// order; one switch, or a driver without I/O, runs inline.
func (c *Controller) each(switches []string, f func(sw string) error) []error {
	errs := make([]error, len(switches))
	if l, ok := c.drv.(southbound.Local); len(switches) == 1 || ok && l.Local() {
		for i, sw := range switches {
			errs[i] = f(sw)
		}
		return errs
	}
	var wg sync.WaitGroup
	for i, sw := range switches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(sw)
		}()
	}
	wg.Wait()
	return errs
}
