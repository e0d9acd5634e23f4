package tunnels

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// compile turns a tunnel tree into the rule each switch on it needs.
// meterRate is the rate the first switch polices the sender at. A tree
// has a handful of edges, so it walks them instead of building maps of
// parents and children (a compile per admission: the maps were some
// fifteen allocations of it).
func compile(topo *te.Topology, t te.Tunnel, dst netip.AddrPort, demoted bool, meterRate uint64) (ruleSet, error) {
	sender, ok := topo.NodeByName(t.Sender)
	if !ok {
		return ruleSet{}, fmt.Errorf("tunnel %d: unknown sender %q", t.ID, t.Sender)
	}
	var buf [16][2]te.NodeID
	ids := buf[:0]
	for _, e := range t.Edges {
		a, okA := topo.NodeByName(e[0])
		b, okB := topo.NodeByName(e[1])
		if !okA || !okB {
			return ruleSet{}, fmt.Errorf("tunnel %d: edge %s→%s: unknown node", t.ID, e[0], e[1])
		}
		ids = append(ids, [2]te.NodeID{a, b})
	}
	port := func(x, y te.NodeID) (southbound.Port, error) {
		p, ok := topo.Port(x, y)
		if !ok {
			return 0, fmt.Errorf("tunnel %d: no port from %s to %s", t.ID, topo.Nodes[x].Name, topo.Nodes[y].Name)
		}
		return southbound.Port(p), nil
	}
	out := ruleSet{packed: make([]packedAt, 0, len(ids))}
	var portBuf [16]southbound.Port // the rules' output ports: each edge is one port
	ports := portBuf[:0]
	for i, e := range ids {
		node := e[0]
		if topo.Nodes[node].Kind != te.KindSwitch || slices.ContainsFunc(ids[:i], func(d [2]te.NodeID) bool { return d[0] == node }) {
			continue // the sender host, or a switch already compiled
		}
		j := slices.IndexFunc(ids, func(d [2]te.NodeID) bool { return d[1] == node })
		if j < 0 {
			return ruleSet{}, fmt.Errorf("tunnel %d: switch %s has no edge into it", t.ID, topo.Nodes[node].Name)
		}
		parent := ids[j][0]
		in, err := port(node, parent)
		if err != nil {
			return ruleSet{}, err
		}
		// Senders mark express packets with their sub-lane's DSCP; the
		// switches rewrite it (to best effort once demoted).
		arrive := southbound.DSCP(t.Sublane, demoted)
		if parent == sender {
			arrive = southbound.DSCP(t.Sublane, false)
		}
		r := southbound.TunnelRule{
			Tunnel:  t.ID,
			Match:   southbound.Match{InPort: in, SrcIP: topo.Nodes[sender].IPv4, DstIP: dst.Addr(), DstPort: dst.Port(), DSCP: arrive},
			Sublane: t.Sublane,
			Demoted: demoted,
		}
		first := len(ports)
		for _, d := range ids[i:] {
			if d[0] != node {
				continue
			}
			p, err := port(node, d[1])
			if err != nil {
				return ruleSet{}, err
			}
			ports = append(ports, p)
		}
		r.Out = ports[first:len(ports):len(ports)]
		slices.Sort(r.Out) // ascending: what packs (southbound.PackedRule)
		if parent == sender {
			r.Meter = &southbound.Meter{RateBps: meterRate, BurstBytes: uint64(topo.WireBytes(t.LoadsizeBytes))}
		}
		out.add(node, r) // packed: ports and meter copied
	}
	return out, nil
}

// rateBps is the meter rate of one packet of wire bytes per period.
func rateBps(wireBytes, periodNs int64) uint64 {
	return uint64((wireBytes*8*1_000_000_000 + periodNs - 1) / periodNs)
}
