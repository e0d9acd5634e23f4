// Package memory is an in-memory southbound.Driver for tests: it keeps
// each switch's rules and routes, records every call, returns statistics
// a test injects, and fails the calls a test tells it to fail.
package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/xlane/xlane/southbound"
)

// ErrInjected is returned by calls a test made fail.
var ErrInjected = errors.New("injected failure")

// Call records one driver call.
type Call struct {
	Op     string // "apply", "stats", "reconcile"
	Switch string
	Batch  southbound.Batch
}

// Driver is the in-memory switch set.
type Driver struct {
	mu       sync.Mutex
	switches map[string]*swState
	calls    []Call
	noCalls  bool             // Record(false): a long-running daemon keeps no call log
	failNext map[string]int   // switch -> number of failing calls ("" = any)
	failAt   map[string][]int // switch -> countdowns to single failing calls
	stats    map[string]map[uint64]southbound.TunnelStats
}

type swState struct {
	// rules by tunnel, packed: a daemon's driver holds one per tunnel per
	// switch, and as TunnelRules they were a third of the heap its
	// collector scanned.
	rules  southbound.RuleMap
	routes southbound.PackedRoutes // packed: not scanned by the collector
}

// New returns a driver that knows the given switches.
func New(switches ...string) *Driver {
	d := &Driver{switches: map[string]*swState{}, failNext: map[string]int{}, failAt: map[string][]int{}, stats: map[string]map[uint64]southbound.TunnelStats{}}
	for _, s := range switches {
		d.switches[s] = &swState{}
	}
	return d
}

var _ southbound.Driver = (*Driver)(nil)

// Local reports that calls never wait on I/O (see southbound.Local).
func (d *Driver) Local() bool { return true }

func (d *Driver) sw(name string) (*swState, error) {
	s, ok := d.switches[name]
	if !ok {
		return nil, fmt.Errorf("unknown switch %q", name)
	}
	return s, nil
}

// failing consumes one injected failure for sw, if any.
func (d *Driver) failing(sw string) bool {
	fail := false
	at := d.failAt[sw][:0]
	for _, k := range d.failAt[sw] {
		switch {
		case k == 1:
			fail = true
		default:
			at = append(at, k-1)
		}
	}
	d.failAt[sw] = at
	if fail {
		return true
	}
	for _, k := range []string{sw, ""} {
		if d.failNext[k] > 0 {
			d.failNext[k]--
			return true
		}
	}
	return false
}

// Apply implements southbound.Driver: all of the batch, or none of it.
func (d *Driver) Apply(ctx context.Context, sw string, b southbound.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(Call{Op: "apply", Switch: sw}, &b)
	s, err := d.sw(sw)
	if err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "apply", Err: err}
	}
	if d.failing(sw) {
		return &southbound.SwitchError{Switch: sw, Op: "apply", Err: ErrInjected}
	}
	for _, id := range b.Delete {
		if !s.rules.Has(id) {
			return &southbound.SwitchError{Switch: sw, Op: "apply", Err: fmt.Errorf("delete tunnel %d: no such rule", id)}
		}
	}
	for _, id := range b.Delete {
		s.rules.Delete(id)
	}
	for _, r := range b.Put {
		s.rules.Put(r)
	}
	return nil
}

// Stats implements southbound.Driver with the injected statistics.
func (d *Driver) Stats(ctx context.Context, sw string) ([]southbound.TunnelStats, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(Call{Op: "stats", Switch: sw}, nil)
	if _, err := d.sw(sw); err != nil {
		return nil, &southbound.SwitchError{Switch: sw, Op: "stats", Err: err}
	}
	if d.failing(sw) {
		return nil, &southbound.SwitchError{Switch: sw, Op: "stats", Err: ErrInjected}
	}
	out := slices.Collect(maps.Values(d.stats[sw]))
	slices.SortFunc(out, func(a, b southbound.TunnelStats) int { return cmp.Compare(a.Tunnel, b.Tunnel) })
	return out, nil
}

// Reconcile implements southbound.Driver.
func (d *Driver) Reconcile(ctx context.Context, sw string, want southbound.SwitchState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(Call{Op: "reconcile", Switch: sw}, nil)
	s, err := d.sw(sw)
	if err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "reconcile", Err: err}
	}
	if d.failing(sw) {
		return &southbound.SwitchError{Switch: sw, Op: "reconcile", Err: ErrInjected}
	}
	s.rules = southbound.NewRuleMap(len(want.Rules))
	for _, r := range want.Rules {
		s.rules.Put(r)
	}
	s.routes = southbound.PackRoutes(want.Routes)
	return nil
}

// FailNext makes the next n calls on sw fail ("" for any switch).
func (d *Driver) FailNext(sw string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failNext[sw] += n
}

// FailAt makes the k-th next call on sw (1 = the next one) fail.
func (d *Driver) FailAt(sw string, k int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failAt[sw] = append(d.failAt[sw], k)
}

// SetStats sets the statistics Stats returns for one tunnel on one switch.
func (d *Driver) SetStats(sw string, st southbound.TunnelStats) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stats[sw] == nil {
		d.stats[sw] = map[uint64]southbound.TunnelStats{}
	}
	d.stats[sw][st.Tunnel] = st
}

// Rules returns a switch's rules ordered by tunnel id.
func (d *Driver) Rules(sw string) []southbound.TunnelRule {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.switches[sw]
	if !ok {
		return nil
	}
	out := slices.AppendSeq(make([]southbound.TunnelRule, 0, s.rules.Len()), s.rules.All())
	slices.SortFunc(out, func(a, b southbound.TunnelRule) int { return cmp.Compare(a.Tunnel, b.Tunnel) })
	return out
}

// Routes returns a switch's best-effort routes.
func (d *Driver) Routes(sw string) []southbound.Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.switches[sw]; ok {
		return s.routes.Unpack()
	}
	return nil
}

// Record turns the call log on (the default) or off. A daemon running on
// this driver turns it off: the log would grow with every call.
func (d *Driver) Record(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noCalls = !on
	if !on {
		d.calls = nil
	}
}

func (d *Driver) record(c Call, b *southbound.Batch) {
	if d.noCalls {
		return
	}
	if b != nil {
		c.Batch = cloneBatch(*b)
	}
	d.calls = append(d.calls, c)
}

// Calls returns the recorded calls.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func cloneBatch(b southbound.Batch) southbound.Batch {
	c := southbound.Batch{Delete: slices.Clone(b.Delete)}
	for _, r := range b.Put {
		c.Put = append(c.Put, r.Clone())
	}
	return c
}
