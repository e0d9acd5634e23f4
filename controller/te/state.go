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

	// links are in topological order: the link entering links[i].From, if
	// any, is links[parent[i]] with parent[i] < i; parent[i] = -1 means
	// links[i] leaves the sender.
	links  []LinkID
	parent []int32
	recv   []bool  // links[i].To is a receiver
	useIdx []int32 // position in linkState.uses[level] of links[i]

	derived
	stamp uint64 // adjustment pass that last visited this tunnel
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

func (d *derived) clone() derived {
	c := *d
	c.inMin = append([]Time(nil), d.inMin...)
	c.inMax = append([]Time(nil), d.inMax...)
	c.wait = append([]Time(nil), d.wait...)
	return c
}

func (d *derived) sameWindows(o *derived) bool {
	if d.period != o.period || len(d.inMin) != len(o.inMin) {
		return false
	}
	for i := range d.inMin {
		if d.inMin[i] != o.inMin[i] || d.inMax[i] != o.inMax[i] {
			return false
		}
	}
	return true
}

// use is one tunnel crossing one link.
type use struct {
	t   *tunnel
	idx int32 // index into t.links
}

// linkState is the express load on one link.
type linkState struct {
	uses       [][]use // per sub-lane
	sameTx     []Time  // per sub-lane: Σ transmission times of its tunnels
	totalBytes int64   // Σ wire bytes of all tunnels (≈-validity, queue)
	rate       float64 // Σ wire bits / requested period (≈-validity, share)
	dirty      int     // adjustment pass: tunnels at level ≥ dirty need recomputing
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
