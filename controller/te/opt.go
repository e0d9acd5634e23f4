package te

import (
	"fmt"
	"math"
	"slices"
)

// optScratch is reused across X-OPT runs to keep admission allocation-free
// in the common case.
type optScratch struct {
	dist    [][]float64 // per receiver: weighted distance from each node to it
	next    [][]LinkID  // per receiver: first link on that shortest path
	inTree  []bool
	depth   []float64
	linkOf  []int32 // per tree node: index of the hop entering it (-1 at the sender)
	tree    []NodeID
	done    []bool // per receiver: attached
	pq      distHeap
	visited []bool
	astar   astar
}

// eligible reports whether link lid can carry one more packet of size wire
// at rate bps without breaking ≈-validity; if not, why.
func (e *Engine) eligible(lid LinkID, wire int64, bps float64) (bool, string) {
	l := &e.topo.Links[lid]
	h := &e.hot[lid]
	if h.total+wire > l.QueueBytes {
		return false, fmt.Sprintf("express queue full: %d of %d B reserved, %d B more requested", h.total, l.QueueBytes, wire)
	}
	if limit := e.topo.MaxExpressShare * float64(l.BandwidthBps); h.rate+bps > limit*(1+1e-12) {
		return false, fmt.Sprintf("express share exhausted: %.0f of %.0f bit/s reserved, %.0f bit/s more requested", h.rate, limit, bps)
	}
	return true, ""
}

// weight is the X-OPT edge weight (Alg. 2 lines 4–6): the latency the new
// packet can meet on this link, counting the traffic that can delay it
// (its own and higher sub-lanes) and one blocking frame. In picoseconds.
func (e *Engine) weight(lid LinkID, wire int64, level int) float64 {
	h := &e.hot[lid]
	return float64(h.base + TxTime(wire, h.bw) + h.cum[level])
}

// plan builds a tree for r with X-OPT (Alg. 2): shortest paths in the graph
// of ≈-valid links, attaching first the receiver that is most expensive to
// reach, where the cost of reaching receiver u through tree node v is the
// path's weight plus how much it lengthens the tree's longest path.
func (e *Engine) plan(r resolved, id uint64) (*tunnel, error) {
	topo := e.topo
	nn := len(topo.Nodes)
	sc := &e.scratch
	bps := float64(r.wire*8) * float64(Second) / float64(r.period)
	k := len(r.receivers)
	for len(sc.dist) < k {
		sc.dist = append(sc.dist, nil)
		sc.next = append(sc.next, nil)
	}
	// A unicast plan reads only the sender's distance and path: A* finds
	// them settling few nodes. A tree also reads the distances of the
	// nodes already in it, which only a (shortcut) Dijkstra provides.
	var a *astar
	if k == 1 && !e.fullSearch {
		a = e.newAstar(r, bps)
	}
	for i, rcv := range r.receivers {
		sc.dist[i] = resizeF(sc.dist[i], nn)
		sc.next[i] = resizeL(sc.next[i], nn)
		e.shortest(rcv, r, bps, sc.dist[i], sc.next[i], true, !e.fullSearch, a)
	}
	sc.inTree = resizeB(sc.inTree, nn)
	sc.depth = resizeF(sc.depth, nn)
	if len(sc.linkOf) < nn {
		sc.linkOf = make([]int32, nn)
	}
	clear(sc.inTree)
	// The tree's nodes, the hop entering each and the receivers attached
	// live in scratch (valid for tree nodes only): a plan per admission.
	treeNodes := append(sc.tree[:0], r.sender)
	defer func() { sc.tree = treeNodes[:0] }()
	sc.inTree[r.sender] = true
	sc.depth[r.sender] = 0
	sc.linkOf[r.sender] = -1
	longest := 0.0
	t := &tunnel{
		id: id, sender: r.sender, receivers: r.receivers, load: r.load, wire: r.wire,
		level: r.level, reqPeriod: r.period,
	}
	attached := resizeB(sc.done, k)
	sc.done = attached
	clear(attached)
	for left := k; left > 0; left-- {
		bestU, bestV := -1, NodeID(-1)
		bestCost := -1.0
		for i := range k {
			if attached[i] {
				continue
			}
			d := sc.dist[i]
			v, c := NodeID(-1), math.Inf(1)
			for _, x := range treeNodes {
				if x != r.sender && topo.Nodes[x].Kind == KindHost {
					continue // hosts do not forward
				}
				if math.IsInf(d[x], 1) {
					continue
				}
				cx := d[x] + math.Max(0, sc.depth[x]+d[x]-longest)
				if cx < c {
					v, c = x, cx
				}
			}
			if v < 0 {
				return nil, e.unreachable(r, i, treeNodes, bps)
			}
			if c > bestCost {
				bestU, bestV, bestCost = i, v, c
			}
		}
		// Walk the shortest path from bestV; restart at the last tree node
		// it crosses so the result stays a tree.
		u := r.receivers[bestU]
		next := sc.next[bestU]
		start, n := bestV, 0
		for x := bestV; x != u; x = topo.Links[next[x]].To {
			if sc.inTree[x] {
				start, n = x, 0
			}
			n++
		}
		t.hops = slices.Grow(t.hops, n) // a unicast tunnel's hops in one allocation
		for x := start; x != u; {
			lid := next[x]
			to := topo.Links[lid].To
			parent := sc.linkOf[x]
			sc.linkOf[to] = int32(len(t.hops))
			t.hops = append(t.hops, hop{link: lid, parent: parent, recv: to == u})
			sc.inTree[to] = true
			sc.depth[to] = sc.depth[x] + e.weight(lid, r.wire, r.level)
			longest = math.Max(longest, sc.depth[to])
			treeNodes = append(treeNodes, to)
			x = to
		}
		attached[bestU] = true
	}
	return t, nil
}

// shortestTo runs Dijkstra on the reversed graph from dst, filling dist and
// next (the first link on a shortest path from each node to dst). Hosts
// other than the sender are never crossed. With onlyEligible, links that
// would break ≈-validity are skipped.
func (e *Engine) shortestTo(dst NodeID, r resolved, bps float64, dist []float64, next []LinkID, onlyEligible bool) {
	e.shortest(dst, r, bps, dist, next, onlyEligible, false, nil)
}

// shortest is shortestTo, optionally stopping once the sender is settled.
// With a (see astar) it is A*: only nodes that can lie on a shortest path
// to the sender are settled, which is all a unicast plan reads. Equal-cost
// choices go to the lower link id, so every search order picks the same
// paths. Distances are sums of integer picoseconds, exact in float64.
func (e *Engine) shortest(dst NodeID, r resolved, bps float64, dist []float64, next []LinkID, onlyEligible, stopAtSender bool, a *astar) {
	sc := &e.scratch
	for i := range dist {
		dist[i] = math.Inf(1)
		next[i] = -1
	}
	sc.visited = resizeB(sc.visited, len(dist))
	clear(sc.visited)
	ub := math.Inf(1)
	if a != nil {
		ub = e.bound(dst, r, bps, a)
	}
	var txBw int64 = -1
	var tx Time
	dist[dst] = 0
	sc.pq = sc.pq[:0]
	sc.pq.push(distItem{dst, a.est(dst)})
	for len(sc.pq) > 0 {
		it := sc.pq.pop()
		x := it.node
		if sc.visited[x] {
			continue
		}
		if stopAtSender && sc.visited[r.sender] && it.d > dist[r.sender] {
			// Every node still queued is farther than the sender: none
			// can be on a shortest path to it, nor tie with one.
			return
		}
		sc.visited[x] = true
		if x == r.sender && stopAtSender && a == nil {
			// Every node settled later is at least as far from dst as the
			// sender, and X-OPT never prefers attaching through a tree node
			// farther than the sender (its cost only adds depth), so the
			// rest of the graph cannot change the plan.
			return
		}
		if x != dst && e.nodeHost[x] {
			continue // a host may start a path, never relay one
		}
		for _, arc := range e.inArcs[e.inOff[x]:e.inOff[x+1]] {
			y := arc.from
			if arc.fromHost && y != r.sender {
				continue
			}
			if a != nil {
				// Every link weighs at least a.step: a node whose lower
				// bound already exceeds a known path cannot be on a
				// shortest one (ties stay), so its link is not read.
				if lb := dist[x] + a.step + a.est(y); lb > ub || math.IsInf(lb, 1) {
					continue
				}
			}
			lid := arc.lid
			hl := &e.hot[lid]
			if onlyEligible && !hl.fits(r.wire, bps) {
				continue
			}
			if hl.bw != txBw { // links of one speed share the transmission time
				txBw, tx = hl.bw, TxTime(r.wire, hl.bw)
			}
			nd := dist[x] + float64(hl.base+tx+hl.cum[r.level])
			switch {
			case nd < dist[y]:
				dist[y] = nd
				next[y] = lid
				sc.pq.push(distItem{y, nd + a.est(y)})
			case nd == dist[y] && lid < next[y]:
				next[y] = lid // equal cost: the lower link, in any search order
			}
		}
	}
}

// astar is what a unicast search knows of the sender: the fewest links
// from it to every node, and the least weight any link can have for this
// packet. Their product is a consistent lower bound of a node's weighted
// distance from the sender (a link's weight is at least one step).
type astar struct {
	hops []uint16
	step float64
}

func (e *Engine) newAstar(r resolved, bps float64) *astar {
	a := &e.scratch.astar
	a.hops = e.hopsFrom(r.sender)
	a.step = 0
	if e.maxBandwidth > 0 {
		a.step = float64(e.minLinkBase + TxTime(r.wire, e.maxBandwidth))
	}
	return a
}

// est is the lower bound for node n (0 without A*, +Inf if the sender
// cannot reach n).
func (a *astar) est(n NodeID) float64 {
	if a == nil {
		return 0
	}
	if h := a.hops[n]; h != unreachableHops {
		return float64(h) * a.step
	}
	return math.Inf(1)
}

// bound is the weight of one eligible path from the sender to dst, found
// greedily backwards along fewest-hop links, or +Inf if that walk gets
// stuck. It caps the search: no node beyond it needs relaxing.
func (e *Engine) bound(dst NodeID, r resolved, bps float64, a *astar) float64 {
	x, g := dst, 0.0
	for x != r.sender {
		hx := a.hops[x]
		if hx == unreachableHops || hx == 0 || (x != dst && e.nodeHost[x]) {
			return math.Inf(1)
		}
		best, bestW := NodeID(-1), Time(0)
		for _, arc := range e.inArcs[e.inOff[x]:e.inOff[x+1]] {
			if a.hops[arc.from] != hx-1 || (arc.fromHost && arc.from != r.sender) {
				continue
			}
			hl := &e.hot[arc.lid]
			if !hl.fits(r.wire, bps) {
				continue
			}
			if w := hl.base + TxTime(r.wire, hl.bw) + hl.cum[r.level]; best < 0 || w < bestW {
				best, bestW = arc.from, w
			}
		}
		if best < 0 {
			return math.Inf(1)
		}
		g += float64(bestW)
		x = best
	}
	return g
}

const unreachableHops = math.MaxUint16

// hopsFrom returns the fewest links from sender to every node (any node
// may relay: a lower bound), cached per sender while the cache is small.
func (e *Engine) hopsFrom(sender NodeID) []uint16 {
	if hs, ok := e.hops[sender]; ok {
		return hs
	}
	topo := e.topo
	hs := make([]uint16, len(topo.Nodes))
	for i := range hs {
		hs[i] = unreachableHops
	}
	hs[sender] = 0
	queue := []NodeID{sender}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, lid := range topo.Out[x] {
			y := topo.Links[lid].To
			if hs[y] == unreachableHops {
				hs[y] = hs[x] + 1
				queue = append(queue, y)
			}
		}
	}
	// Keep at most 16 MiB of hop tables (all senders of a k=16 fat-tree).
	if (len(e.hops)+1)*len(hs)*2 <= 16<<20 {
		e.hops[sender] = hs
	}
	return hs
}

// unreachable builds the rejection for receiver i: either the topology has
// no path at all, or every path crosses a link ≈-validity rules out, and
// the first such link on the shortest unconstrained path is named.
func (e *Engine) unreachable(r resolved, i int, tree []NodeID, bps float64) error {
	topo := e.topo
	rcv := r.receivers[i]
	nn := len(topo.Nodes)
	dist := make([]float64, nn)
	next := make([]LinkID, nn)
	e.shortestTo(rcv, r, bps, dist, next, false)
	from, best := NodeID(-1), math.Inf(1)
	for _, x := range tree {
		if x != r.sender && topo.Nodes[x].Kind == KindHost {
			continue
		}
		if dist[x] < best {
			from, best = x, dist[x]
		}
	}
	if from < 0 {
		return fieldErr(fmt.Sprintf("receivers[%d]", i), topo.Nodes[rcv].Name, "not reachable from sender %s in the topology", topo.Nodes[r.sender].Name)
	}
	for x := from; x != rcv; x = topo.Links[next[x]].To {
		if ok, why := e.eligible(next[x], r.wire, bps); !ok {
			return &RejectError{
				Reason:     fmt.Sprintf("receiver %s: %s", topo.Nodes[rcv].Name, why),
				Bottleneck: topo.LinkName(next[x]),
				Err:        ErrNoValidTree,
			}
		}
	}
	// The unconstrained shortest path is fine, but some other detour is
	// needed; name any ineligible link around the receiver's frontier.
	return &RejectError{Reason: fmt.Sprintf("receiver %s unreachable over links with express capacity left", topo.Nodes[rcv].Name), Err: ErrNoValidTree}
}

type distItem struct {
	node NodeID
	d    float64
}

// distHeap is a binary min-heap by distance, ties by node id.
type distHeap []distItem

func (a distItem) less(b distItem) bool { return a.d < b.d || (a.d == b.d && a.node < b.node) }

func (h *distHeap) push(it distItem) {
	*h = append(*h, it)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q[i].less(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *distHeap) pop() distItem {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q[r].less(q[l]) {
			m = r
		}
		if !q[m].less(q[i]) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

func resizeF(s []float64, n int) []float64 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float64, n)
}

func resizeL(s []LinkID, n int) []LinkID {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]LinkID, n)
}

func resizeB(s []bool, n int) []bool {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]bool, n)
}
