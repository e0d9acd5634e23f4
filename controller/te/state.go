package te

// tunnel is the engine's internal form of a tunnel tree.
type tunnel struct {
	id        uint64
	sender    NodeID
	receivers []NodeID // in request order
	load      int64
	wire      int64 // bytes on the wire
	level     int
	reqPeriod Time

	// hops are the tree's links in topological order: the hop entering
	// hops[i].link's From, if any, is hops[hops[i].parent] with parent < i;
	// parent -1 means the link leaves the sender.
	hops []hop

	derived
	stamp  uint64 // adjustment pass that last visited this tunnel
	report uint64 // operation that last listed this tunnel as changed
	// released is set once the tunnel left the engine, so a change report
	// of the same operation skips it.
	released bool
	tag      any // the caller's (SetTag)
}

// hop is one link of a tunnel's tree with everything X-ADJ reads and
// writes of it next to each other (72 bytes): re-adjusting a tunnel
// then walks one array instead of a cache miss per field and link.
type hop struct {
	link    LinkID
	parent  int32 // index of the hop entering link.From; -1 at the sender
	useIdx  int32 // position in the link's use list of the tunnel's sub-lane
	recv    bool  // link.To is a receiver
	tx      Time  // transmission time on the link
	minLat  Time  // the link's MinLatency
	maxJit  Time  // the link's MaxJitter
	use     *use  // the use entry at useIdx (attach and detach keep it current)
	hopTime       // X-ADJ's result here (valid once derived.timed)
}

// hopTime bounds when a packet reaches the queue of a hop's link
// (relative to its emission; lower sub-lanes need it as release jitter)
// and how long it waits there before its transmission starts.
type hopTime struct {
	inMin, inMax, wait Time
}

// derived is what X-ADJ computes for a tunnel besides its hops' times.
type derived struct {
	period         Time
	minLat, maxLat Time
	timed          bool // X-ADJ has run: the hops' times are valid
}

// result is one X-ADJ run's output: derived plus the hops' times.
type result struct {
	derived
	at []hopTime
}

// same reports whether r is what t holds now.
func (r *result) same(t *tunnel) bool {
	if !t.timed || r.derived != t.derived {
		return false
	}
	for i := range r.at {
		if r.at[i] != t.hops[i].hopTime {
			return false
		}
	}
	return true
}

// use is one tunnel crossing one link. It mirrors the tunnel's timing on
// that link so the hot loops (wait bounds, dirty checks) read one
// contiguous array instead of chasing every tunnel's slices.
type use struct {
	t      *tunnel
	idx    int32 // index into t.hops
	tx     Time  // t.hops[idx].tx
	wait   Time  // t.hops[idx].wait, or -1 before the first analysis
	jit    Time  // t.hops[idx].inMax - inMin
	period Time  // t.period
}

// linkState is the express load on one link.
type linkState struct {
	sameTx []Time // per sub-lane: Σ transmission times of its tunnels
	// waits caches waitBound per sub-lane, keyed by the asking tunnel's own
	// transmission time (tunnels of one size share the result). A change of
	// membership at level L, or of the timing of a level-L tunnel, clears
	// the caches of the levels it can affect.
	waits [][]cachedWait
}

type cachedWait struct {
	selfTx, w Time
}

func (t *tunnel) resources() Resources { return resourcesOf(t.load, &t.derived) }

func resourcesOf(load int64, d *derived) Resources {
	return Resources{
		LoadsizeBytes: load,
		PeriodNs:      d.period.CeilNs(),
		MinLatencyNs:  d.minLat.FloorNs(),
		MaxJitterNs:   d.maxLat.CeilNs() - d.minLat.FloorNs(),
	}
}

func (t *tunnel) rate() float64 {
	return float64(t.wire*8) * float64(Second) / float64(t.reqPeriod)
}
