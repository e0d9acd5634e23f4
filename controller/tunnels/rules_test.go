package tunnels

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound"
)

// compileByMaps is compile as it was first written, with maps of parents
// and children: the reference the edge-walking version must equal.
func compileByMaps(topo *te.Topology, t te.Tunnel, dst netip.AddrPort, demoted bool, meterRate uint64) map[string]southbound.TunnelRule {
	sender, _ := topo.NodeByName(t.Sender)
	parent := map[string]string{}
	children := map[string][]string{}
	for _, e := range t.Edges {
		parent[e[1]] = e[0]
		children[e[0]] = append(children[e[0]], e[1])
	}
	port := func(a, b string) southbound.Port {
		x, _ := topo.NodeByName(a)
		y, _ := topo.NodeByName(b)
		p, _ := topo.Port(x, y)
		return southbound.Port(p)
	}
	out := map[string]southbound.TunnelRule{}
	for node, kids := range children {
		id, _ := topo.NodeByName(node)
		if topo.Nodes[id].Kind != te.KindSwitch {
			continue
		}
		arrive := southbound.DSCP(t.Sublane, demoted)
		if parent[node] == t.Sender {
			arrive = southbound.DSCP(t.Sublane, false)
		}
		r := southbound.TunnelRule{
			Tunnel:  t.ID,
			Match:   southbound.Match{InPort: port(node, parent[node]), SrcIP: topo.Nodes[sender].IPv4, DstIP: dst.Addr(), DstPort: dst.Port(), DSCP: arrive},
			Sublane: t.Sublane,
			Demoted: demoted,
		}
		for _, k := range kids {
			r.Out = append(r.Out, port(node, k))
		}
		slices.Sort(r.Out)
		if parent[node] == t.Sender {
			r.Meter = &southbound.Meter{RateBps: meterRate, BurstBytes: uint64(topo.WireBytes(t.LoadsizeBytes))}
		}
		out[node] = r
	}
	return out
}

func TestCompileMatchesTheTree(t *testing.T) {
	topo, hosts := tetest.FatTree(t, 4)
	eng := te.NewEngine(topo)
	dst := netip.MustParseAddrPort("239.1.2.3:7000")
	for i, rcvs := range [][]string{
		{hosts[1]},                      // same edge switch
		{hosts[15]},                     // another pod
		{hosts[1], hosts[2], hosts[15]}, // a tree branching at several switches
		{hosts[4], hosts[8], hosts[12]}, // one receiver in every other pod
		{hosts[2], hosts[3], hosts[6], hosts[7], hosts[10]},
	} {
		tun, _, err := eng.Admit(te.Request{Sender: hosts[0], Receivers: rcvs, LoadsizeBytes: 100, PeriodNs: 1_000_000, Sublane: i % 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, demoted := range []bool{false, true} {
			got, err := compile(topo, tun, dst, demoted, 12345)
			if err != nil {
				t.Fatalf("tunnel %v: %v", tun.Edges, err)
			}
			if want := compileByMaps(topo, tun, dst, demoted, 12345); !reflect.DeepEqual(byName(topo, got), want) {
				t.Fatalf("tunnel %v, demoted %v:\n got %+v\nwant %+v", tun.Edges, demoted, byName(topo, got), want)
			}
			meters := 0
			for _, r := range byName(topo, got) {
				if r.Meter != nil {
					meters++
				}
			}
			if meters != 1 {
				t.Fatalf("tunnel %v: %d meters, want 1 (at the first switch)", tun.Edges, meters)
			}
		}
	}
}

func TestCompileNamesABrokenTree(t *testing.T) {
	topo, hosts := tetest.FatTree(t, 4)
	dst := netip.MustParseAddrPort("10.0.0.2:7000")
	far, _, err := te.NewEngine(topo).Admit(te.Request{Sender: hosts[0], Receivers: []string{hosts[15]}, LoadsizeBytes: 100, PeriodNs: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	astray := far.Edges[len(far.Edges)-1][0] // the last switch, sending to a host it has no link to
	for _, c := range []struct {
		name string
		tun  te.Tunnel
		want string
	}{
		{"unknown sender", te.Tunnel{ID: 1, Sender: "nobody"}, `unknown sender "nobody"`},
		{"unknown node", te.Tunnel{ID: 2, Sender: hosts[0], Edges: [][2]string{{hosts[0], "nowhere"}}}, "unknown node"},
		{"no link", te.Tunnel{ID: 3, Sender: hosts[0], Edges: append(far.Edges[:len(far.Edges)-1:len(far.Edges)-1], [2]string{astray, hosts[1]})}, "no port from " + astray + " to " + hosts[1]},
		{"no edge in", te.Tunnel{ID: 4, Sender: hosts[0], Edges: far.Edges[1:]}, "has no edge into it"},
	} {
		_, err := compile(topo, c.tun, dst, false, 1)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestReusedPlanHoldsOnlyItsOperation(t *testing.T) {
	topo, _ := tetest.FatTree(t, 4)
	sw := func(i int) te.NodeID { id, _ := topo.NodeByName(topo.Switches()[i]); return id }
	name := func(i int) string { return topo.Switches()[i] }
	rule := func(id uint64, out southbound.Port) southbound.TunnelRule {
		return southbound.TunnelRule{Tunnel: id, Out: []southbound.Port{out}}
	}
	set := func(rs ...any) ruleSet {
		var s ruleSet
		for i := 0; i < len(rs); i += 2 {
			s.add(sw(rs[i].(int)), rs[i+1].(southbound.TunnelRule))
		}
		return s
	}
	p := newPlan()
	p.diff(topo, 1, ruleSet{}, set(1, rule(1, 1), 2, rule(1, 2)))
	p.diff(topo, 2, set(3, rule(2, 3)), ruleSet{})
	p.reset()
	p.diff(topo, 3, set(1, rule(3, 1), 4, rule(3, 4)), set(1, rule(3, 5)))
	want := map[string]southbound.Batch{
		name(1): {Put: []southbound.TunnelRule{rule(3, 5)}, Delete: []uint64{}},
		name(4): {Put: []southbound.TunnelRule{}, Delete: []uint64{3}},
	}
	wantUndo := map[string]southbound.Batch{
		name(1): {Put: []southbound.TunnelRule{rule(3, 1)}, Delete: []uint64{}},
		name(4): {Put: []southbound.TunnelRule{rule(3, 4)}, Delete: []uint64{}},
	}
	for name, c := range map[string]struct {
		got  map[string]*southbound.Batch
		want map[string]southbound.Batch
	}{"do": {p.do, want}, "undo": {p.undo, wantUndo}} {
		if len(c.got) != len(c.want) {
			t.Fatalf("%s: switches %v, want those of %v", name, c.got, c.want)
		}
		for sw, w := range c.want {
			g := c.got[sw]
			if g == nil || !reflect.DeepEqual(normal(*g), normal(w)) {
				t.Fatalf("%s %s: %+v, want %+v", name, sw, g, w)
			}
		}
	}
}

// normal treats empty and nil slices alike.
func normal(b southbound.Batch) southbound.Batch {
	if len(b.Put) == 0 {
		b.Put = nil
	}
	if len(b.Delete) == 0 {
		b.Delete = nil
	}
	return b
}
