package sim

import (
	"math"
	"math/rand/v2"

	"github.com/xlane/xlane/controller/te"
)

// Delay policies for one tunnel on one link.
const (
	delayRandom    uint8 = iota // uniform in [min, min+jitter]
	delayMin                    // always min
	delayMax                    // always min + jitter
	delayAlternate              // max for even sequence numbers, min for odd: squeezes gaps
)

// scenario is what one run varies: phases and per-hop delay choices.
type scenario struct {
	phase []te.Time  // per tunnel, in [0, period)
	delay [][]uint8  // per tunnel, per link index
	load  float64    // best-effort load per link; ≥ 1 keeps every link backlogged
	until te.Time    // last emission time
	rng   *rand.Rand // for random delays and best-effort arrivals
}

// qpkt is a queued express packet.
type qpkt struct {
	k, i, seq int32
}

// fifo is a growable ring buffer.
type fifo struct {
	buf        []qpkt
	head, size int
}

func (q *fifo) push(p qpkt) {
	if q.size == len(q.buf) {
		nb := make([]qpkt, max(8, 2*len(q.buf)))
		for j := 0; j < q.size; j++ {
			nb[j] = q.buf[(q.head+j)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = p
	q.size++
}

func (q *fifo) pop() qpkt {
	p := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return p
}

type linkRun struct {
	queues  []fifo // per sub-lane
	xbytes  int64  // express bytes queued or in transmission
	busy    bool
	cur     qpkt
	curBE   bool
	beQueue int
	// beSince >= 0 while a backlogged best-effort train occupies the link:
	// max-size frames back to back from beSince, computed lazily instead of
	// one event per frame.
	beSince te.Time
}

// observed is what one run saw per tunnel.
type observed struct {
	minLat, maxLat te.Time
	delivered      int64
	emitted        int64
	violations     int64
	drops          int64
	firstViolation te.Time // latency of the first violating packet
}

// runStats counts work done.
type runStats struct {
	hops    int64 // packet transmissions on links (express)
	packets int64 // express packets emitted
}

const beQueueCap = 32

// runner is the mutable state of one simulation run.
type runner struct {
	n       *network
	sc      *scenario
	obs     []observed
	st      *runStats
	h       *eventHeap
	emits   eventHeap // emissions, one per tunnel: kept apart so the hot heap stays shallow
	links   []linkRun
	seqs    []int32
	backlog bool
	beStop  te.Time
}

// simulate runs one scenario and fills obs (one entry per tunnel).
func (n *network) simulate(sc *scenario, obs []observed, st *runStats, h *eventHeap) {
	r := &runner{n: n, sc: sc, obs: obs, st: st, h: h,
		links: make([]linkRun, len(n.topo.Links)), seqs: make([]int32, len(n.tunnels))}
	for i := range r.links {
		r.links[i].queues = make([]fifo, n.topo.Sublanes)
		r.links[i].beSince = -1
	}
	for k := range obs {
		obs[k] = observed{minLat: math.MaxInt64, maxLat: math.MinInt64}
	}
	h.ev = h.ev[:0]
	r.emits.ev = make([]event, 0, len(n.tunnels))
	for k := range n.tunnels {
		if sc.phase[k] <= sc.until {
			r.emits.push(sc.phase[k], evEmit, event{k: int32(k)})
		}
	}
	// Best effort runs only on links express traffic uses (elsewhere it
	// cannot delay anything) and stops once every express packet has had
	// time to arrive, so a run ends.
	r.backlog = sc.load >= 1
	r.beStop = sc.until
	for _, t := range n.tunnels {
		r.beStop = max(r.beStop, sc.until+2*t.hi)
	}
	if sc.load > 0 {
		for lid := range r.links {
			if len(n.shares[lid]) == 0 {
				continue
			}
			if r.backlog {
				r.links[lid].beSince = 0
			} else {
				h.push(n.beGap(lid, sc), evBestEffort, event{k: int32(lid)})
			}
		}
	}
	for h.len() > 0 || r.emits.len() > 0 {
		var ev event
		if h.len() == 0 || (r.emits.len() > 0 && r.emits.ev[0].key < h.ev[0].key) {
			ev = r.emits.pop()
		} else {
			ev = h.pop()
		}
		now := ev.time()
		switch ev.kind() {
		case evEmit:
			r.emit(ev.k, now)
		case evTxDone:
			r.txDone(int(ev.k), now)
		case evArrive:
			k, i := ev.k, ev.i
			t := &n.tunnels[k]
			if t.recv[i] {
				r.deliver(k, t, now-(sc.phase[k]+te.Time(ev.pseq)*t.period))
			}
			for _, c := range t.children[i] {
				r.enqueue(k, c, ev.pseq, now)
			}
		case evBestEffort:
			lid := int(ev.k)
			lr := &r.links[lid]
			if lr.beQueue < beQueueCap {
				lr.beQueue++
				if !lr.busy {
					r.start(lid, now)
				}
			}
			if next := now + n.beGap(lid, sc); next <= sc.until {
				h.push(next, evBestEffort, event{k: int32(lid)})
			}
		}
	}
}

func (r *runner) emit(k int32, now te.Time) {
	t := &r.n.tunnels[k]
	seq := r.seqs[k]
	r.seqs[k]++
	r.obs[k].emitted++
	r.st.packets++
	for _, i := range t.first {
		r.enqueue(k, i, seq, now)
	}
	if next := now + t.period; next <= r.sc.until {
		r.emits.push(next, evEmit, event{k: k})
	}
}

// start picks the next frame for an idle link: the highest non-empty
// express sub-lane, else best effort.
func (r *runner) start(lid int, now te.Time) {
	lr := &r.links[lid]
	for lv := range lr.queues {
		if lr.queues[lv].size > 0 {
			p := lr.queues[lv].pop()
			lr.busy, lr.cur, lr.curBE = true, p, false
			r.h.push(now+r.n.tunnels[p.k].tx[p.i], evTxDone, event{k: int32(lid)})
			return
		}
	}
	lr.busy = false
	if r.backlog && now <= r.beStop && len(r.n.shares[lid]) > 0 {
		lr.beSince = now
		return
	}
	if lr.beQueue > 0 && now <= r.beStop {
		lr.beQueue--
		lr.busy, lr.curBE = true, true
		r.h.push(now+r.n.blockTx[lid], evTxDone, event{k: int32(lid)})
	}
}

// wake handles an express arrival at a link that is not transmitting
// express traffic: either it starts now, or after the best-effort frame
// on the wire.
func (r *runner) wake(lid int, now te.Time) {
	lr := &r.links[lid]
	if lr.beSince < 0 {
		r.start(lid, now)
		return
	}
	since, c := lr.beSince, r.n.blockTx[lid]
	lr.beSince = -1
	m := (now - since) / c         // frame on the wire (one ending now is followed by the next)
	last := (r.beStop - since) / c // last frame that starts
	if m > last {
		r.start(lid, now) // the train ended before now
		return
	}
	lr.busy, lr.curBE = true, true
	r.h.push(since+(m+1)*c, evTxDone, event{k: int32(lid)})
}

func (r *runner) enqueue(k, i int32, seq int32, now te.Time) {
	t := &r.n.tunnels[k]
	lid := t.links[i]
	lr := &r.links[lid]
	if lr.xbytes+t.wire > r.n.topo.Links[lid].QueueBytes {
		r.obs[k].drops++
		return
	}
	lr.xbytes += t.wire
	lr.queues[t.level].push(qpkt{k: k, i: i, seq: seq})
	if !lr.busy {
		r.wake(int(lid), now)
	}
}

func (r *runner) txDone(lid int, now te.Time) {
	lr := &r.links[lid]
	if !lr.curBE {
		p := lr.cur
		t := &r.n.tunnels[p.k]
		lr.xbytes -= t.wire
		r.st.hops++
		l := &r.n.topo.Links[lid]
		d := l.MinLatency
		switch r.sc.delay[p.k][p.i] {
		case delayRandom:
			if l.MaxJitter > 0 {
				d += te.Time(r.sc.rng.Int64N(int64(l.MaxJitter) + 1))
			}
		case delayMax:
			d += l.MaxJitter
		case delayAlternate:
			if p.seq%2 == 0 {
				d += l.MaxJitter
			}
		}
		if len(t.children[p.i]) == 0 {
			// A leaf only records the delivery: no event needed.
			r.deliver(p.k, t, now+d-(r.sc.phase[p.k]+te.Time(p.seq)*t.period))
		} else {
			r.h.push(now+d, evArrive, event{k: p.k, i: p.i, pseq: p.seq})
		}
	}
	r.start(lid, now)
}

func (r *runner) deliver(k int32, t *stunnel, lat te.Time) {
	o := &r.obs[k]
	o.delivered++
	o.minLat = min(o.minLat, lat)
	o.maxLat = max(o.maxLat, lat)
	if lat < t.lo || lat > t.hi {
		if o.violations == 0 {
			o.firstViolation = lat
		}
		o.violations++
	}
}

// beGap draws the next best-effort arrival on a link: Poisson arrivals of
// max-size frames at the configured share of the link's rate.
func (n *network) beGap(lid int, sc *scenario) te.Time {
	mean := float64(n.blockTx[lid]) / sc.load
	return te.Time(sc.rng.ExpFloat64()*mean) + 1
}
