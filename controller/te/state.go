package te

import "slices"

// tunnel is the engine's internal form of a tunnel tree.
type tunnel struct {
	id        uint64
	sender    NodeID
	receivers []NodeID // in request order
	load      int64
	wire      int64 // bytes on the wire
	level     int
	reqPeriod Time

	// links are in topological order: the link entering links[i].From, if
	// any, is links[parent[i]] with parent[i] < i; parent[i] = -1 means
	// links[i] leaves the sender.
	links  []LinkID
	parent []int32
	recv   []bool  // links[i].To is a receiver
	tx     []Time  // transmission time on links[i]
	useIdx []int32 // position in linkState.uses[level] of links[i]

	derived
	spare  derived // buffers of an earlier result, reused by the next change
	stamp  uint64  // adjustment pass that last visited this tunnel
	report uint64  // operation that last listed this tunnel as changed
	// released is set once the tunnel left the engine, so a change report
	// of the same operation skips it.
	released bool
}

// derived is what X-ADJ computes for a tunnel.
type derived struct {
	period         Time
	minLat, maxLat Time
	// inMin/inMax bound when a packet reaches the queue of links[i],
	// relative to its emission; lower sub-lanes need them as release jitter.
	inMin, inMax []Time
	wait         []Time // queueing bound at links[i] (before transmission starts)
}

// equal reports whether two results are the same.
func (d *derived) equal(o *derived) bool {
	return d.period == o.period && d.minLat == o.minLat && d.maxLat == o.maxLat &&
		slices.Equal(d.inMin, o.inMin) && slices.Equal(d.inMax, o.inMax) && slices.Equal(d.wait, o.wait)
}

// copyInto copies d into spare's buffers when they are large enough, or
// into one fresh allocation.
func copyInto(spare derived, d *derived) derived {
	n := len(d.inMin)
	if cap(spare.inMin) >= n && cap(spare.inMax) >= n && cap(spare.wait) >= n {
		c := *d
		c.inMin = append(spare.inMin[:0], d.inMin...)
		c.inMax = append(spare.inMax[:0], d.inMax...)
		c.wait = append(spare.wait[:0], d.wait...)
		return c
	}
	buf := make([]Time, 3*n)
	c := *d
	c.inMin = buf[0:n:n]
	c.inMax = buf[n : 2*n : 2*n]
	c.wait = buf[2*n : 3*n : 3*n]
	copy(c.inMin, d.inMin)
	copy(c.inMax, d.inMax)
	copy(c.wait, d.wait)
	return c
}

// use is one tunnel crossing one link. It mirrors the tunnel's timing on
// that link so the hot loops (wait bounds, dirty checks) read one
// contiguous array instead of chasing every tunnel's slices.
type use struct {
	t      *tunnel
	idx    int32 // index into t.links
	tx     Time  // t.tx[idx]
	wait   Time  // t.wait[idx], or -1 before the first analysis
	jit    Time  // t.inMax[idx] - t.inMin[idx]
	period Time  // t.period
}

// linkState is the express load on one link.
type linkState struct {
	uses   [][]use // per sub-lane
	sameTx []Time  // per sub-lane: Σ transmission times of its tunnels
	dirty  int     // adjustment pass: tunnels at level ≥ dirty need recomputing
	// waits caches waitBound per sub-lane, keyed by the asking tunnel's own
	// transmission time (tunnels of one size share the result). A change of
	// membership at level L, or of the timing of a level-L tunnel, clears
	// the caches of the levels it can affect.
	waits [][]cachedWait
}

type cachedWait struct {
	selfTx, w Time
}

func (t *tunnel) resources() Resources {
	return Resources{
		LoadsizeBytes: t.load,
		PeriodNs:      t.period.CeilNs(),
		MinLatencyNs:  t.minLat.FloorNs(),
		MaxJitterNs:   t.maxLat.CeilNs() - t.minLat.FloorNs(),
	}
}

func (t *tunnel) rate() float64 {
	return float64(t.wire*8) * float64(Second) / float64(t.reqPeriod)
}
