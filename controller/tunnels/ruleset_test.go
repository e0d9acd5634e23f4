package tunnels

import (
	"slices"
	"testing"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound"
)

// byName is s as a map by switch name (copies).
func byName(topo *te.Topology, s ruleSet) map[string]southbound.TunnelRule {
	out := map[string]southbound.TunnelRule{}
	for sw := range s.switches {
		out[topo.Nodes[sw].Name], _ = s.at(sw)
	}
	return out
}

// A rule set keeps packed rules and those that do not pack (ports above
// southbound.MaxPackedPort) side by side; every operation sees both.
func TestRuleSetPackedAndWide(t *testing.T) {
	meter := func(rate uint64) *southbound.Meter { return &southbound.Meter{RateBps: rate, BurstBytes: 100} }
	narrow := southbound.TunnelRule{Tunnel: 1, Out: []southbound.Port{2, 3}, Meter: meter(10)}
	wide := southbound.TunnelRule{Tunnel: 1, Out: []southbound.Port{2, 300}}
	var s ruleSet
	s.add(5, narrow)
	s.add(6, wide)
	if s.len() != 2 || len(s.packed) != 1 || len(s.wide) != 1 || !s.has(5) || !s.has(6) || s.has(7) {
		t.Fatalf("set %+v", s)
	}
	for sw, want := range map[te.NodeID]southbound.TunnelRule{5: narrow, 6: wide} {
		if got, ok := s.at(sw); !ok || !got.Equal(want) {
			t.Fatalf("at %d: %+v", sw, got)
		}
	}
	wide.Out[1] = 301 // add kept its own ports
	if got, _ := s.at(6); got.Out[1] != 300 {
		t.Fatalf("the set shares ports with its caller: %v", got.Out)
	}
	if sw, rate, ok := s.meter(); !ok || sw != 5 || rate != 10 {
		t.Fatalf("meter at %d, rate %d, %v", sw, rate, ok)
	}
	r := ruleSet{packed: slices.Clone(s.packed), wide: slices.Clone(s.wide)}
	if !r.setRate(99) {
		t.Fatal("setRate found no meter")
	}
	if sw, rate, _ := r.meter(); sw != 5 || rate != 99 {
		t.Fatalf("setRate: meter at %d rate %d", sw, rate)
	}
	if s.equal(r) || !s.same(6, r) || s.same(5, r) {
		t.Fatalf("the sets compare wrong after setRate")
	}
	// The meter on a rule that does not pack: a new meter, not the old one
	// changed (a batch may hold it).
	var w ruleSet
	w.add(8, southbound.TunnelRule{Tunnel: 2, Out: []southbound.Port{400}, Meter: meter(7)})
	old := w.wide[0].r.Meter
	if !w.setRate(70) || old.RateBps != 7 {
		t.Fatalf("wide setRate changed the old meter: %d", old.RateBps)
	}
	if sw, rate, _ := w.meter(); sw != 8 || rate != 70 {
		t.Fatalf("wide setRate: meter at %d rate %d", sw, rate)
	}
	var none ruleSet
	none.add(9, southbound.TunnelRule{Tunnel: 3, Out: []southbound.Port{1}})
	if none.setRate(5) {
		t.Fatal("setRate on rules without a meter")
	}
	var again ruleSet
	again.add(6, southbound.TunnelRule{Tunnel: 1, Out: []southbound.Port{2, 300}})
	again.add(5, narrow)
	if !s.equal(again) || s.equal(w) || (ruleSet{}).equal(s) {
		t.Fatal("equal compares wrong")
	}
}

// A plan's diff puts and deletes wide rules as it does packed ones.
func TestDiffWideRules(t *testing.T) {
	topo, _ := tetest.FatTree(t, 4)
	a, _ := topo.NodeByName(topo.Switches()[0])
	b, _ := topo.NodeByName(topo.Switches()[1])
	var have, want ruleSet
	have.add(a, southbound.TunnelRule{Tunnel: 3, Out: []southbound.Port{300}})
	have.add(b, southbound.TunnelRule{Tunnel: 3, Out: []southbound.Port{1}})
	want.add(a, southbound.TunnelRule{Tunnel: 3, Out: []southbound.Port{1, 300}})
	want.add(b, southbound.TunnelRule{Tunnel: 3, Out: []southbound.Port{1}})
	p := newPlan()
	p.diff(topo, 3, have, want)
	do, undo := p.do[topo.Nodes[a].Name], p.undo[topo.Nodes[a].Name]
	if len(p.do) != 1 || len(do.Put) != 1 || len(do.Put[0].Out) != 2 || len(undo.Put) != 1 || undo.Put[0].Out[0] != 300 {
		t.Fatalf("do %+v, undo %+v", p.do, p.undo)
	}
	p.reset()
	p.diff(topo, 3, want, ruleSet{})
	if len(p.do) != 2 || len(p.do[topo.Nodes[a].Name].Delete) != 1 || !p.undo[topo.Nodes[a].Name].Put[0].Equal(southbound.TunnelRule{Tunnel: 3, Out: []southbound.Port{1, 300}}) {
		t.Fatalf("release: do %+v, undo %+v", p.do, p.undo)
	}
}
