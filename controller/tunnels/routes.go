package tunnels

import (
	"net/netip"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// bestEffortRoutes computes the static best-effort forwarding of the
// topology: at every switch, a /32 route to every host through the
// neighbour on a shortest path (fewest hops, hosts never forwarding; ties
// go to the lower port). Static, not learned: MAC learning or ECMP would
// move traffic under the bounds the TE engine computed.
// They are kept packed: without pointers, the garbage collector does not
// scan them.
func bestEffortRoutes(topo *te.Topology) map[string]southbound.PackedRoutes {
	all := map[string][]southbound.Route{}
	n := len(topo.Nodes)
	dist := make([]int, n)
	for _, h := range topo.Nodes {
		if h.Kind != te.KindHost {
			continue
		}
		for i := range dist {
			dist[i] = -1
		}
		// Breadth-first search backwards from the host over switches.
		dist[h.ID] = 0
		queue := []te.NodeID{h.ID}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for _, lid := range topo.In[x] {
				y := topo.Links[lid].From
				if dist[y] >= 0 || topo.Nodes[y].Kind != te.KindSwitch {
					continue
				}
				dist[y] = dist[x] + 1
				queue = append(queue, y)
			}
		}
		dst := netip.PrefixFrom(h.IPv4, 32)
		for _, s := range topo.Nodes {
			if s.Kind != te.KindSwitch || dist[s.ID] < 0 {
				continue
			}
			var best uint32
			for _, lid := range topo.Out[s.ID] {
				nb := topo.Links[lid].To
				if dist[nb] != dist[s.ID]-1 || (nb != h.ID && topo.Nodes[nb].Kind != te.KindSwitch) {
					continue
				}
				if p, ok := topo.Port(s.ID, nb); ok && (best == 0 || p < best) {
					best = p
				}
			}
			if best != 0 {
				all[s.Name] = append(all[s.Name], southbound.Route{Dst: dst, Out: southbound.Port(best)})
			}
		}
	}
	out := make(map[string]southbound.PackedRoutes, len(all))
	for sw, rs := range all {
		out[sw] = southbound.PackRoutes(rs)
	}
	return out
}
