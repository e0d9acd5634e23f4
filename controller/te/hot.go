package te

// hotLink is what a path search reads of one link, in one record: a
// search relaxes thousands of links per request, and the Link, the
// linkState and the per-sub-lane sums otherwise sit in three places in
// memory, each a cache miss on a large topology. It holds the link's
// reservation (queue bytes and rate), which the engine keeps here only.
type hotLink struct {
	base     Time    // MinLatency + MaxJitter + one blocking frame
	bw       int64   // bit/s
	queue    int64   // express queue bytes
	limitTol float64 // express share of bw, with eligible's tolerance
	total    int64   // Σ wire bytes of the tunnels on the link
	rate     float64 // Σ wire bits / requested period of those tunnels
	// cum[lv] is Σ sameTx of sub-lanes 0..lv: a packet at level lv waits
	// for the traffic of its own and higher sub-lanes.
	cum [MaxSublanes]Time
}

// initHot fills the static part of the links' records.
func (e *Engine) initHot() {
	topo := e.topo
	e.hot = make([]hotLink, len(topo.Links))
	for i := range topo.Links {
		l := &topo.Links[i]
		e.hot[i] = hotLink{
			base:     l.MinLatency + l.MaxJitter + e.blocking[i],
			bw:       l.BandwidthBps,
			queue:    l.QueueBytes,
			limitTol: topo.MaxExpressShare * float64(l.BandwidthBps) * (1 + 1e-12),
		}
	}
	e.nodeHost = make([]bool, len(topo.Nodes))
	for i, n := range topo.Nodes {
		e.nodeHost[i] = n.Kind == KindHost
	}
	e.inOff = make([]int32, len(topo.Nodes)+1)
	e.inArcs = make([]arc, 0, len(topo.Links))
	for x, in := range topo.In {
		e.inOff[x] = int32(len(e.inArcs))
		for _, lid := range in {
			from := topo.Links[lid].From
			e.inArcs = append(e.inArcs, arc{lid: lid, from: from, fromHost: e.nodeHost[from]})
		}
	}
	e.inOff[len(topo.Nodes)] = int32(len(e.inArcs))
}

// arc is an in-link of a node as the search sees it first.
type arc struct {
	lid      LinkID
	from     NodeID
	fromHost bool
}

// syncCum recomputes a link's cumulative sub-lane sums after its sameTx
// changed.
func (e *Engine) syncCum(lid LinkID) {
	h := &e.hot[lid]
	var s Time
	for lv, tx := range e.links[lid].sameTx {
		s += tx
		h.cum[lv] = s
	}
}

// fits is eligible without the reason: the search's test.
func (h *hotLink) fits(wire int64, bps float64) bool {
	return h.total+wire <= h.queue && h.rate+bps <= h.limitTol
}
