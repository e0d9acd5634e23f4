package sim

import (
	"math/rand/v2"

	"github.com/xlane/xlane/controller/te"
)

// adversarial targets each tunnel in turn: the target takes the maximum
// delay on every hop, each interferer is phased so its packet reaches a
// shared queue just ahead of the target's, best effort keeps the wire
// busy, and a hill climb then perturbs phases and delay choices, keeping
// whatever makes the target later.
func (s *searcher) restart(k int) {
	steps := s.cfg.ClimbSteps
	if steps <= 0 {
		steps = 8
	}
	sc := s.aligned(k)
	best := s.play(sc, k)
	for range steps {
		cand := s.perturb(sc, k)
		if got := s.play(cand, k); got > best || (got == best && s.rng.IntN(2) == 0) {
			sc, best = cand, got
		}
	}
}

// aligned builds a scenario that lines interferers up against target k.
func (s *searcher) aligned(k int) *scenario {
	sc := s.newScenario()
	tgt := &s.n.tunnels[k]
	for i := range sc.delay[k] {
		sc.delay[k][i] = delayMax
	}
	// Arrival offsets of the target at each of its queues with max delays.
	arr := make(map[te.LinkID]te.Time, len(tgt.links))
	for i, lid := range tgt.links {
		arr[lid] = sc.phase[k] + s.offset(tgt, i, delayMax)
	}
	for m := range s.n.tunnels {
		if m == k {
			continue
		}
		it := &s.n.tunnels[m]
		pol := []uint8{delayMin, delayMax, delayAlternate, delayRandom}[s.rng.IntN(4)]
		for i := range sc.delay[m] {
			sc.delay[m][i] = pol
		}
		// Shared queues, in the interferer's order; pick one at random so
		// restarts explore different meeting points.
		var shared []int
		for i, lid := range it.links {
			if _, ok := arr[lid]; ok {
				shared = append(shared, i)
			}
		}
		if len(shared) == 0 {
			continue
		}
		i := shared[s.rng.IntN(len(shared))]
		want := arr[it.links[i]] - te.Time(s.rng.Int64N(int64(it.tx[i])+1)) - s.offset(it, i, pol)
		sc.phase[m] = mod(want, it.period)
	}
	return sc
}

// offset is when tunnel t's packet reaches the queue of links[i] after
// emission with zero queueing and the given delay policy.
func (s *searcher) offset(t *stunnel, i int, pol uint8) te.Time {
	off := t.nominal[i]
	if pol == delayMax || pol == delayAlternate {
		for p := t.parent[i]; p >= 0; p = t.parent[p] {
			off += s.n.topo.Links[t.links[p]].MaxJitter
		}
	}
	return off
}

// perturb copies sc and nudges the phases of a few tunnels other than k
// by up to a few packet times, sometimes flipping their delay policy.
func (s *searcher) perturb(sc *scenario, k int) *scenario {
	c := &scenario{
		phase: append([]te.Time(nil), sc.phase...),
		delay: make([][]uint8, len(sc.delay)),
		load:  sc.load, until: sc.until, rng: rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64())),
	}
	for m := range sc.delay {
		c.delay[m] = append([]uint8(nil), sc.delay[m]...)
	}
	nt := len(s.n.tunnels)
	for range 1 + s.rng.IntN(max(1, nt/2)) {
		m := s.rng.IntN(nt)
		if m == k && nt > 1 {
			continue
		}
		t := &s.n.tunnels[m]
		span := 4 * (t.tx[0] + s.n.blockTx[t.links[0]])
		c.phase[m] = mod(c.phase[m]+te.Time(s.rng.Int64N(2*int64(span)+1))-span, t.period)
		if s.rng.IntN(4) == 0 && m != k {
			pol := uint8(s.rng.IntN(4))
			for i := range c.delay[m] {
				c.delay[m][i] = pol
			}
		}
	}
	return c
}

func mod(a, m te.Time) te.Time {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}
