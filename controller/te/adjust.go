package te

import "fmt"

// waitBound bounds how long a packet of a sub-lane `level` tunnel whose
// own transmission takes selfTx can wait in the queue of link l before its
// transmission starts (docs/te.md, "Queueing bound"):
//
//	w = B + S + Σ_{h higher} (1 + ⌈(w + J_h)/π_h⌉)·C_h
//
// B is one max-size frame already on the wire (non-preemptive blocking), S
// the other same-level tunnels (at most one packet each, FIFO), and each
// higher-level tunnel h contributes the packet it may already have queued
// plus every packet that can arrive while we wait, given its period π_h
// and its arrival jitter J_h at this queue. Iterated to the least fixed
// point as in response-time analysis.
func (e *Engine) waitBound(lid LinkID, level int, selfTx Time) (Time, error) {
	ls := &e.links[lid]
	if w, ok := ls.cached(level, selfTx); ok {
		return w, nil
	}
	w, err := e.computeWait(lid, level, selfTx)
	if err != nil {
		return 0, err
	}
	ls.waits[level] = append(ls.waits[level], cachedWait{selfTx, w})
	return w, nil
}

func (e *Engine) computeWait(lid LinkID, level int, selfTx Time) (Time, error) {
	ls := &e.links[lid]
	base := e.blocking[lid] + ls.sameTx[level] - selfTx
	if level == 0 {
		return base, nil
	}
	// Every higher-level tunnel counts at least twice once w > 0 (the packet
	// it may have queued, and one arrival in (t, t+w]): start there.
	w := base
	for lv := 0; lv < level; lv++ {
		w += 2 * ls.sameTx[lv]
	}
	for iter := 0; ; iter++ {
		next := base
		for lv := 0; lv < level; lv++ {
			us := *e.usesOf(lid, lv)
			for i := range us {
				u := &us[i]
				if x := w + u.jit; x <= u.period {
					next += 2 * u.tx // the common case, without a division
				} else {
					next += Time(1+ceilDiv(x, u.period)) * u.tx
				}
			}
		}
		if next == w {
			return w, nil
		}
		if next > MaxPeriod || iter > 10000 {
			return 0, fmt.Errorf("%w: sub-lane %d on link %s has no finite queueing bound (higher sub-lanes use it up)",
				ErrInfeasible, level, e.topo.LinkName(lid))
		}
		w = next
	}
}

func ceilDiv(a, b Time) int64 {
	if a <= 0 {
		return 0
	}
	return int64((a + b - 1) / b)
}

// analyze runs X-ADJ (Alg. 1) for one tunnel against the current link
// state and writes the result to d (whose slices it reuses). Tunnels of
// higher sub-lanes must already be up to date.
func (e *Engine) analyze(t *tunnel, d *result) error {
	n := len(t.hops)
	if cap(d.at) >= n {
		d.at = d.at[:n]
	} else {
		d.at = make([]hopTime, n)
	}
	at := d.at
	first := true
	known := t.timed // links not dirtied at this level keep their wait
	for i := range t.hops {
		h := &t.hops[i]
		var w Time
		if known && int(e.dirty[h.link]) > t.level {
			w = h.wait
		} else {
			var err error
			if w, err = e.waitBound(h.link, t.level, h.tx); err != nil {
				return err
			}
		}
		a := &at[i]
		a.wait = w
		if p := h.parent; p >= 0 {
			ph, pa := &t.hops[p], &at[p]
			a.inMin = pa.inMin + ph.tx + ph.minLat
			a.inMax = pa.inMax + pa.wait + ph.tx + ph.minLat + ph.maxJit
		} else {
			a.inMin, a.inMax = 0, 0
		}
		if h.recv {
			lo := a.inMin + h.tx + h.minLat
			hi := a.inMax + w + h.tx + h.minLat + h.maxJit
			if first || lo < d.minLat {
				d.minLat = lo
			}
			if first || hi > d.maxLat {
				d.maxLat = hi
			}
			first = false
		}
	}
	// Period lower bound Δ̄ (Alg. 1 line 15), bottom-up: consecutive packets
	// must never share a queue, so the gap between them has to absorb the
	// queueing and the jitter of every hop below.
	var buf [32]Time
	var below []Time
	if n <= len(buf) {
		below = buf[:n]
		clear(below)
	} else {
		below = make([]Time, n)
	}
	var root Time
	for i := n - 1; i >= 0; i-- {
		h := &t.hops[i]
		di := at[i].wait + max(h.tx, h.maxJit+below[i])
		if p := h.parent; p >= 0 {
			below[p] = max(below[p], di)
		} else {
			root = max(root, di)
		}
	}
	period := max(t.reqPeriod, NsToTime(root.CeilNs()))
	if period > MaxPeriod {
		return fmt.Errorf("%w: tunnel %d would need a period of %d ns, above the 10 s limit", ErrInfeasible, t.id, period.CeilNs())
	}
	d.period = period
	d.timed = true
	return nil
}

func (ls *linkState) cached(level int, selfTx Time) (Time, bool) {
	for _, c := range ls.waits[level] {
		if c.selfTx == selfTx {
			return c.w, true
		}
	}
	return 0, false
}
