package te

import "testing"

func TestPortsFollowCableOrder(t *testing.T) {
	topo := lineTopo(t, 1) // links h1->s1, s1->h1, s1->h2, h2->s1
	id := func(n string) NodeID { x, _ := topo.NodeByName(n); return x }
	for _, c := range []struct {
		node, nb string
		port     uint32
	}{{"h1", "s1", 1}, {"s1", "h1", 1}, {"s1", "h2", 2}, {"h2", "s1", 1}} {
		if p, ok := topo.Port(id(c.node), id(c.nb)); !ok || p != c.port {
			t.Errorf("port %s->%s = %d, %v; want %d", c.node, c.nb, p, ok, c.port)
		}
	}
	if _, ok := topo.Port(id("h1"), id("h2")); ok {
		t.Error("port between unconnected nodes")
	}
}

func TestSwitchesListsOnlySwitches(t *testing.T) {
	topo := lineTopo(t, 1) // h1, s1, h2
	if got := topo.Switches(); len(got) != 1 || got[0] != "s1" {
		t.Fatalf("Switches() = %v, want [s1]", got)
	}
}
