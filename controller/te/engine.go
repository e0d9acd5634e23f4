package te

import (
	"fmt"
	"math"
	"slices"
)

// Engine holds an allocation (a set of tunnels) over one topology and keeps
// it valid as tunnels come and go. It is not safe for concurrent use: the
// controller serialises operations on it.
type Engine struct {
	topo  *Topology
	links []linkState
	// uses[lid*Sublanes+lv] lists the sub-lane lv tunnels on link lid.
	uses [][]use
	// dirty[lid]: tunnels at sub-lanes ≥ it on link lid need re-adjusting
	// in the current pass (clean: noDirt). One byte per link keeps the
	// whole array in cache while X-ADJ checks every hop of a tunnel.
	dirty    []uint8
	blocking []Time    // per link: one max-size frame (non-preemptive blocking)
	hot      []hotLink // per link: what the path search reads
	// The in-links of node x are inArcs[inOff[x]:inOff[x+1]]: one array
	// the search walks without a slice header per node, reading a link's
	// tail before its hot record.
	inOff    []int32
	inArcs   []arc
	nodeHost []bool // per node
	tunnels  map[uint64]*tunnel
	nextID   uint64
	pass     uint64
	op       uint64
	stats    Stats
	next     result // scratch result of analyze

	// scratch for one adjustment pass
	dirtyList []LinkID
	touched   []touchedTunnel
	undoAt    []hopTime // the touched tunnels' hop times before the operation
	scratch   optScratch

	// fullSearch makes X-OPT's searches cover the whole graph instead of
	// stopping at the sender; tests use it to check the shortcut.
	fullSearch bool

	// For A* in unicast plans: hop counts from each sender, the least
	// latency, jitter and blocking of any link, the fastest link.
	hops         map[NodeID][]uint16
	minLinkBase  Time
	maxBandwidth int64
}

// Stats counts the engine's work since it was created.
type Stats struct {
	Analyzed uint64 // X-ADJ runs of single tunnels
	Changed  uint64 // of which changed the tunnel's timing
}

// Stats returns the work counters.
func (e *Engine) Stats() Stats { return e.stats }

type touchedTunnel struct {
	t   *tunnel
	old derived
	at  int // its old hop times are undoAt[at:at+len(t.hops)]
}

// NewEngine returns an engine with no tunnels.
func NewEngine(topo *Topology) *Engine {
	e := &Engine{
		topo:     topo,
		links:    make([]linkState, len(topo.Links)),
		blocking: make([]Time, len(topo.Links)),
		tunnels:  make(map[uint64]*tunnel),
		nextID:   1,
	}
	e.uses = make([][]use, len(topo.Links)*topo.Sublanes)
	e.dirty = make([]uint8, len(topo.Links))
	for i := range e.links {
		e.links[i] = linkState{
			sameTx: make([]Time, topo.Sublanes),
			waits:  make([][]cachedWait, topo.Sublanes),
		}
		e.dirty[i] = noDirt
		e.blocking[i] = TxTime(topo.MaxFrameBytes, topo.Links[i].BandwidthBps)
		l := &topo.Links[i]
		base := l.MinLatency + l.MaxJitter + e.blocking[i]
		if i == 0 || base < e.minLinkBase {
			e.minLinkBase = base
		}
		e.maxBandwidth = max(e.maxBandwidth, l.BandwidthBps)
	}
	e.initHot()
	e.hops = map[NodeID][]uint16{}
	return e
}

// Topology returns the engine's topology.
func (e *Engine) Topology() *Topology { return e.topo }

// Len is the number of tunnels held.
func (e *Engine) Len() int { return len(e.tunnels) }

// noDirt marks a clean link in Engine.dirty (above every sub-lane).
const noDirt = math.MaxUint8

// usesOf is the list of sub-lane lv tunnels on link lid.
func (e *Engine) usesOf(lid LinkID, lv int) *[]use {
	return &e.uses[int(lid)*e.topo.Sublanes+lv]
}

// fillHops copies the links' constants into t's hops.
func (e *Engine) fillHops(t *tunnel) {
	for i := range t.hops {
		h := &t.hops[i]
		l := &e.topo.Links[h.link]
		h.tx = TxTime(t.wire, l.BandwidthBps)
		h.minLat, h.maxJit = l.MinLatency, l.MaxJitter
	}
}

// attach adds t's packets to the load of every link of its tree.
func (e *Engine) attach(t *tunnel) {
	if len(t.hops) > 0 && t.hops[0].tx == 0 {
		e.fillHops(t)
	}
	r := t.rate()
	for i := range t.hops {
		h := &t.hops[i]
		lid := h.link
		e.invalidate(lid, t.level)
		us := e.usesOf(lid, t.level)
		h.useIdx = int32(len(*us))
		grown := len(*us) == cap(*us)
		*us = append(*us, use{t: t, idx: int32(i), tx: h.tx})
		if grown { // a new array: every entry moved
			for j := range *us {
				u := &(*us)[j]
				u.t.hops[u.idx].use = u
			}
		} else {
			h.use = &(*us)[h.useIdx]
		}
		e.links[lid].sameTx[t.level] += h.tx
		e.syncCum(lid)
		hl := &e.hot[lid]
		hl.total += t.wire
		hl.rate += r
	}
	e.syncUses(t)
}

// syncUses copies t's timing into its entries in the links' use lists.
func (e *Engine) syncUses(t *tunnel) {
	for i := range t.hops {
		h := &t.hops[i]
		u := h.use
		if t.timed {
			u.wait, u.jit, u.period = h.wait, h.inMax-h.inMin, t.period
		} else {
			u.wait, u.jit, u.period = -1, 0, 1
		}
	}
}

// detach undoes attach.
func (e *Engine) detach(t *tunnel) {
	r := t.rate()
	for i := range t.hops {
		h := &t.hops[i]
		lid := h.link
		e.invalidate(lid, t.level)
		p := e.usesOf(lid, t.level)
		us := *p
		pos := h.useIdx
		last := len(us) - 1
		if int(pos) != last {
			moved := us[last]
			us[pos] = moved
			mh := &moved.t.hops[moved.idx]
			mh.useIdx, mh.use = pos, &us[pos]
		}
		us[last] = use{} // the released tunnel is not kept reachable from here
		*p = us[:last]
		h.use = nil
		e.links[lid].sameTx[t.level] -= h.tx
		e.syncCum(lid)
		hl := &e.hot[lid]
		hl.total -= t.wire
		hl.rate -= r
		if last == 0 && hl.total == 0 {
			hl.rate = 0 // forget float drift once a link is empty
		}
	}
}

// revalidate keeps the cached wait bounds of levels ≥ level on link lid
// that a higher-level tunnel's change of arrival jitter (oldJ → newJ) and
// period (oldP → newP) cannot move, and drops the rest. A cached w is the
// least fixed point of w = base + Σ n_h(w)·C_h. If the change only raises
// n_h pointwise (more jitter, shorter period) and leaves n_h(w) itself as
// it was, w is still a fixed point and nothing below it can be one, since
// the right-hand side only grew. Anything else is recomputed.
func (e *Engine) revalidate(lid LinkID, level int, oldJ, oldP, newJ, newP Time) {
	ls := &e.links[lid]
	grows := newJ >= oldJ && newP <= oldP
	for lv := level; lv < len(ls.waits); lv++ {
		if !grows {
			ls.waits[lv] = ls.waits[lv][:0]
			continue
		}
		kept := ls.waits[lv][:0]
		for _, c := range ls.waits[lv] {
			if arrivals(c.w, oldJ, oldP) == arrivals(c.w, newJ, newP) {
				kept = append(kept, c)
			}
		}
		ls.waits[lv] = kept
	}
}

// arrivals is how many packets of a higher-level tunnel can be served
// ahead of one that waits w (see waitBound). Mostly w+j is within one
// period: no division then (revalidating after an admission asks this
// a thousand times).
func arrivals(w, j, p Time) int64 {
	switch x := w + j; {
	case x <= 0:
		return 1
	case x <= p:
		return 2
	default:
		return 1 + ceilDiv(x, p)
	}
}

// invalidate drops the cached wait bounds that a change at `level` on
// link lid can affect: its own level and every lower-priority one.
func (e *Engine) invalidate(lid LinkID, level int) {
	ls := &e.links[lid]
	for lv := level; lv < len(ls.waits); lv++ {
		ls.waits[lv] = ls.waits[lv][:0]
	}
}

func (e *Engine) markDirty(lid LinkID, level int) {
	e.invalidate(lid, level)
	e.markDirtyKeep(lid, level)
}

// markDirtyKeep marks without touching the caches (the caller revalidated
// them).
func (e *Engine) markDirtyKeep(lid LinkID, level int) {
	if level < int(e.dirty[lid]) {
		if e.dirty[lid] == noDirt {
			e.dirtyList = append(e.dirtyList, lid)
		}
		e.dirty[lid] = uint8(level)
	}
}

// readjust re-runs X-ADJ for every tunnel the dirty links can affect,
// level by level from the highest priority down. A tunnel whose timing
// windows change dirties its links for the sub-lanes below it; same-level
// tunnels only see each other's sizes, so they need no second round. On
// error every visited tunnel gets its old parameters back.
func (e *Engine) readjust() error { return e.readjustMode(false) }

// readjustMode with force re-runs X-ADJ for every tunnel on a dirty link,
// even where its queueing bound did not change.
func (e *Engine) readjustMode(force bool) error {
	e.pass++
	start := len(e.touched)
	defer func() {
		for _, lid := range e.dirtyList {
			e.dirty[lid] = noDirt
		}
		e.dirtyList = e.dirtyList[:0]
	}()
	for level := 0; level < e.topo.Sublanes; level++ {
		n := len(e.dirtyList)
		for k := 0; k < n; k++ {
			lid := e.dirtyList[k]
			if int(e.dirty[lid]) > level {
				continue
			}
			ls := &e.links[lid]
			us := *e.usesOf(lid, level)
			for ui := range us {
				u := &us[ui]
				// A tunnel's result is a function of its per-link waits: if
				// the wait here is unchanged, this link gives no reason to
				// re-run X-ADJ (another dirty link of the tunnel may).
				if u.wait >= 0 && !force {
					w, ok := ls.cached(level, u.tx)
					if !ok {
						var err error
						if w, err = e.waitBound(lid, level, u.tx); err != nil {
							e.restoreTouched(start)
							return err
						}
					}
					if w == u.wait {
						continue
					}
				}
				t := u.t
				if t.stamp == e.pass {
					continue
				}
				t.stamp = e.pass
				e.stats.Analyzed++
				if err := e.analyze(t, &e.next); err != nil {
					e.restoreTouched(start)
					return err
				}
				if e.next.same(t) {
					continue // nothing moved: nothing below can move either
				}
				e.stats.Changed++
				old, at := t.derived, len(e.undoAt)
				all := !old.timed || old.period != e.next.period
				for i := range t.hops {
					h := &t.hops[i]
					e.undoAt = append(e.undoAt, h.hopTime)
					if n := e.next.at[i]; all || n != h.hopTime {
						h.hopTime = n
						// Mirror only what moved: the use entries of the
						// other hops live elsewhere in memory.
						h.use.wait, h.use.jit, h.use.period = n.wait, n.inMax-n.inMin, e.next.period
					}
				}
				t.derived = e.next.derived
				e.touched = append(e.touched, touchedTunnel{t: t, old: old, at: at})
				if level+1 < e.topo.Sublanes {
					// Lower sub-lanes see this tunnel through its period and
					// its arrival window at each queue: dirty only what moved.
					oldAt := e.undoAt[at:]
					for i := range t.hops {
						h := &t.hops[i]
						l2 := h.link
						if !old.timed {
							e.markDirty(l2, level+1) // attach already cleared the caches
							continue
						}
						oldJ, newJ := oldAt[i].inMax-oldAt[i].inMin, h.inMax-h.inMin
						if oldJ == newJ && old.period == t.period {
							continue // lower levels see only jitter and period
						}
						e.revalidate(l2, level+1, oldJ, old.period, newJ, t.period)
						e.markDirtyKeep(l2, level+1)
					}
				}
			}
		}
	}
	return nil
}

// resetTouched starts a new operation: the previous one can no longer be
// undone.
func (e *Engine) resetTouched() {
	clear(e.touched)
	e.touched = e.touched[:0]
	e.undoAt = e.undoAt[:0]
}

func (e *Engine) restoreTouched(start int) {
	for i := len(e.touched) - 1; i >= start; i-- {
		tt := &e.touched[i]
		t := tt.t
		t.derived = tt.old
		for j := range t.hops {
			t.hops[j].hopTime = e.undoAt[tt.at+j]
		}
		e.syncUses(t)
		for j := range t.hops {
			e.invalidate(t.hops[j].link, t.level+1)
		}
	}
	if start < len(e.touched) {
		e.undoAt = e.undoAt[:e.touched[start].at]
	}
	e.touched = e.touched[:start]
}

// changes lists the tunnels (other than skip) that the current operation
// touched and whose service-visible resources differ from before it, in
// the order it touched them (the same for the same operations; sorting
// them by id was a tenth of an admission).
func (e *Engine) changes(skip uint64) []Change { return e.changesInto(nil, skip) }

// changesInto is changes appended to dst[:0] when it has the room (a
// caller's buffer, reused from one admission to the next: some 47 changes
// an admission at 10,000 tunnels, the engine's largest allocation).
func (e *Engine) changesInto(dst []Change, skip uint64) []Change {
	e.op++
	// Count what the walk below reports: one allocation of the exact size.
	n := 0
	for _, tt := range e.touched {
		t := tt.t
		if t.id == skip || !tt.old.timed || t.report == e.op {
			continue
		}
		t.report = e.op // a tunnel's first entry holds its old bounds
		if !t.released && resourcesOf(t.load, &tt.old) != t.resources() {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	e.op++
	out := dst[:0]
	if cap(out) < n {
		out = make([]Change, 0, n)
	}
	for _, tt := range e.touched {
		t := tt.t
		if t.id == skip || !tt.old.timed || t.report == e.op {
			continue
		}
		t.report = e.op
		if t.released {
			continue
		}
		o, n := resourcesOf(t.load, &tt.old), t.resources()
		if o != n {
			out = append(out, Change{ID: t.id, Old: o, New: n, t: t})
		}
	}
	return out
}

// Admit plans a tree for req with X-OPT, adjusts every affected tunnel with
// X-ADJ, and returns the new tunnel and the resources of existing tunnels
// that changed. On error nothing changes.
func (e *Engine) Admit(req Request) (Tunnel, []Change, error) {
	return e.AdmitInto(nil, req)
}

// AdmitInto is Admit with the changes appended to buf[:0] when it has the
// room; nothing else keeps buf.
func (e *Engine) AdmitInto(buf []Change, req Request) (Tunnel, []Change, error) {
	r, err := e.topo.resolve(req)
	if err != nil {
		return Tunnel{}, nil, err
	}
	e.resetTouched()
	t, err := e.plan(r, e.nextID)
	if err != nil {
		return Tunnel{}, nil, err
	}
	if err := e.insert(t); err != nil {
		return Tunnel{}, nil, err
	}
	e.nextID++
	return e.export(t), e.changesInto(buf, t.id), nil
}

// insert attaches t and readjusts; on failure it leaves the engine as before.
func (e *Engine) insert(t *tunnel) error {
	e.attach(t)
	for i := range t.hops {
		e.markDirty(t.hops[i].link, t.level)
	}
	if err := e.readjust(); err != nil {
		e.detach(t)
		return &RejectError{Reason: err.Error(), Err: ErrInfeasible}
	}
	e.tunnels[t.id] = t
	return nil
}

// Release removes a tunnel and returns the tunnels whose resources improved.
func (e *Engine) Release(id uint64) ([]Change, error) {
	t, ok := e.tunnels[id]
	if !ok {
		return nil, fmt.Errorf("release %d: %w", id, ErrUnknownTunnel)
	}
	e.resetTouched()
	e.detach(t)
	delete(e.tunnels, id)
	t.released = true
	for i := range t.hops {
		e.markDirty(t.hops[i].link, t.level)
	}
	if err := e.readjust(); err != nil {
		// Removing load never lengthens a bound; reaching this is a bug.
		panic(fmt.Sprintf("te: readjust after release failed: %v", err))
	}
	return e.changes(id), nil
}

// Change replaces tunnel id's parameters atomically: either the new
// request holds (same id, possibly a new tree) or everything stays as it
// was and an error is returned.
func (e *Engine) Change(id uint64, req Request) (Tunnel, []Change, error) {
	old, ok := e.tunnels[id]
	if !ok {
		return Tunnel{}, nil, fmt.Errorf("change %d: %w", id, ErrUnknownTunnel)
	}
	r, err := e.topo.resolve(req)
	if err != nil {
		return Tunnel{}, nil, err
	}
	if r.sender != old.sender {
		return Tunnel{}, nil, fieldErr("sender", req.Sender, "a change cannot move the tunnel to another sender (was %s)", e.topo.Nodes[old.sender].Name)
	}
	e.resetTouched()
	// Plan and adjust without the old tunnel, then either keep the result
	// or put the old tunnel back; both end in a state X-ADJ computed.
	e.detach(old)
	delete(e.tunnels, id)
	old.released = true
	for i := range old.hops {
		e.markDirty(old.hops[i].link, old.level)
	}
	if err := e.readjust(); err != nil {
		panic(fmt.Sprintf("te: readjust after detach failed: %v", err))
	}
	t, err := e.plan(r, id)
	if err == nil {
		err = e.insert(t)
	}
	if err != nil {
		old.released = false
		if rerr := e.insert(old); rerr != nil {
			panic(fmt.Sprintf("te: restoring tunnel %d failed: %v", id, rerr))
		}
		return Tunnel{}, nil, err
	}
	return e.export(t), e.changes(id), nil
}

// Tunnel returns one tunnel.
func (e *Engine) Tunnel(id uint64) (Tunnel, bool) {
	t, ok := e.tunnels[id]
	if !ok {
		return Tunnel{}, false
	}
	return e.export(t), true
}

// Current returns the resources of a changed tunnel now (later
// operations may have moved them again), and false once it left the
// engine. A caller going through the change lists of several operations
// pays no lookup by id while the tunnel is the one the change saw.
func (e *Engine) Current(ch Change) (Resources, bool) {
	if t := ch.t; t != nil && !t.released {
		return t.resources(), true
	}
	return e.Resources(ch.ID) // gone, or replaced by a change of its own
}

// SetTag attaches the caller's tag to tunnel id (false if there is no
// such tunnel). A tunnel that a Change replaces starts without one.
func (e *Engine) SetTag(id uint64, tag any) bool {
	t, ok := e.tunnels[id]
	if ok {
		t.tag = tag
	}
	return ok
}

// TagOf returns the tag of a changed tunnel if it is still the one the
// change saw (nil otherwise: ask by id).
func (e *Engine) TagOf(ch Change) any {
	if t := ch.t; t != nil && !t.released {
		return t.tag
	}
	return nil
}

// Resources returns one tunnel's service-visible parameters.
func (e *Engine) Resources(id uint64) (Resources, bool) {
	t, ok := e.tunnels[id]
	if !ok {
		return Resources{}, false
	}
	return t.resources(), true
}

// Tunnels returns every tunnel, ordered by id.
func (e *Engine) Tunnels() []Tunnel {
	ids := make([]uint64, 0, len(e.tunnels))
	for id := range e.tunnels {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Tunnel, len(ids))
	for i, id := range ids {
		out[i] = e.export(e.tunnels[id])
	}
	return out
}

func (e *Engine) export(t *tunnel) Tunnel {
	res := t.resources()
	out := Tunnel{
		ID:                t.id,
		Sender:            e.topo.Nodes[t.sender].Name,
		LoadsizeBytes:     t.load,
		Sublane:           t.level,
		PeriodNs:          res.PeriodNs,
		MinLatencyNs:      res.MinLatencyNs,
		MaxJitterNs:       res.MaxJitterNs,
		RequestedPeriodNs: t.reqPeriod.CeilNs(),
	}
	// Sized up front: an export per admission, and growing by append was
	// five allocations where two do.
	out.Receivers = make([]string, len(t.receivers))
	for i, r := range t.receivers {
		out.Receivers[i] = e.topo.Nodes[r].Name
	}
	out.Edges = make([][2]string, len(t.hops))
	for i, h := range t.hops {
		l := &e.topo.Links[h.link]
		out.Edges[i] = [2]string{e.topo.Nodes[l.From].Name, e.topo.Nodes[l.To].Name}
	}
	return out
}
