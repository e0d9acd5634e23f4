package tunnels

import (
	"fmt"
	"net/netip"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// compile turns a tunnel tree into the rule each switch on it needs.
// meterRate is the rate the first switch polices the sender at.
func compile(topo *te.Topology, t te.Tunnel, dst netip.AddrPort, demoted bool, meterRate uint64) (map[string]southbound.TunnelRule, error) {
	sender, ok := topo.NodeByName(t.Sender)
	if !ok {
		return nil, fmt.Errorf("tunnel %d: unknown sender %q", t.ID, t.Sender)
	}
	parent := map[string]string{}
	children := map[string][]string{}
	for _, e := range t.Edges {
		parent[e[1]] = e[0]
		children[e[0]] = append(children[e[0]], e[1])
	}
	port := func(a, b string) (southbound.Port, error) {
		x, _ := topo.NodeByName(a)
		y, _ := topo.NodeByName(b)
		p, ok := topo.Port(x, y)
		if !ok {
			return 0, fmt.Errorf("tunnel %d: no port from %s to %s", t.ID, a, b)
		}
		return southbound.Port(p), nil
	}
	out := map[string]southbound.TunnelRule{}
	for node, kids := range children {
		id, _ := topo.NodeByName(node)
		if topo.Nodes[id].Kind != te.KindSwitch {
			continue // the sender host
		}
		in, err := port(node, parent[node])
		if err != nil {
			return nil, err
		}
		// Senders mark express packets with their sub-lane's DSCP; the
		// switches rewrite it (to best effort once demoted).
		arrive := southbound.DSCP(t.Sublane, demoted)
		if parent[node] == t.Sender {
			arrive = southbound.DSCP(t.Sublane, false)
		}
		r := southbound.TunnelRule{
			Tunnel:  t.ID,
			Match:   southbound.Match{InPort: in, SrcIP: topo.Nodes[sender].IPv4, DstIP: dst.Addr(), DstPort: dst.Port(), DSCP: arrive},
			Sublane: t.Sublane,
			Demoted: demoted,
		}
		for _, k := range kids {
			p, err := port(node, k)
			if err != nil {
				return nil, err
			}
			r.Out = append(r.Out, p)
		}
		if parent[node] == t.Sender {
			r.Meter = &southbound.Meter{RateBps: meterRate, BurstBytes: uint64(topo.WireBytes(t.LoadsizeBytes))}
		}
		out[node] = r
	}
	return out, nil
}

// rateBps is the meter rate of one packet of wire bytes per period.
func rateBps(wireBytes, periodNs int64) uint64 {
	return uint64((wireBytes*8*1_000_000_000 + periodNs - 1) / periodNs)
}
