package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/xlane/xlane/controller/te"
)

// Config selects what Run explores.
type Config struct {
	Seed uint64
	// Duration is how long senders emit in each run; 0 picks eight times
	// the longest period.
	Duration te.Time
	// BestEffortLoad is the best-effort share of every link (0 to 1); at 1
	// every link stays backlogged with max-size frames, so express packets
	// always find one on the wire.
	BestEffortLoad float64
	// Adversarial searches phases and delays per tunnel instead of drawing
	// them at random.
	Adversarial bool
	// Runs is the number of random runs, or of adversarial restarts over
	// all tunnels (each restart targets one tunnel, round-robin); 0 means 1
	// random run, or 2 restarts per tunnel.
	Runs int
	// ClimbSteps is the number of hill-climbing perturbations after each
	// adversarial restart (default 8).
	ClimbSteps int
	// Progress, when set, is called after every run.
	Progress func(done, total int)
}

// TunnelReport is what the simulator saw of one tunnel over all runs.
type TunnelReport struct {
	ID          uint64  `json:"id"`
	Emitted     int64   `json:"emitted"`
	Delivered   int64   `json:"delivered"`
	MinObserved int64   `json:"min_observed_ns"`
	MaxObserved int64   `json:"max_observed_ns"`
	BoundMin    int64   `json:"bound_min_ns"`
	BoundMax    int64   `json:"bound_max_ns"`
	Violations  int64   `json:"violations"`
	Drops       int64   `json:"express_drops"`
	Tightness   float64 `json:"tightness"` // max observed / bound max
	// observed extremes in picoseconds, for exact comparisons
	minPs, maxPs te.Time
}

// Report summarises a simulation.
type Report struct {
	Mode       string         `json:"mode"`
	Runs       int            `json:"runs"`
	Packets    int64          `json:"packets"`
	PacketHops int64          `json:"packet_hops"`
	Violations int64          `json:"violations"`
	Drops      int64          `json:"express_drops"`
	Tunnels    []TunnelReport `json:"tunnels"`
}

// OK reports whether no packet left its bound and none was dropped.
func (r *Report) OK() bool { return r.Violations == 0 && r.Drops == 0 }

// Tightness returns the median and maximum tightness over tunnels that
// delivered packets.
func (r *Report) Tightness() (median, maxT float64) {
	var ts []float64
	for _, t := range r.Tunnels {
		if t.Delivered > 0 {
			ts = append(ts, t.Tightness)
		}
	}
	if len(ts) == 0 {
		return 0, 0
	}
	slices.Sort(ts)
	return ts[len(ts)/2], ts[len(ts)-1]
}

// Run simulates the tunnels over the topology.
func Run(ctx context.Context, topo *te.Topology, tunnels []te.Tunnel, cfg Config) (*Report, error) {
	if cfg.BestEffortLoad < 0 || math.IsNaN(cfg.BestEffortLoad) {
		return nil, fmt.Errorf("best-effort load %v: must be between 0 and 1", cfg.BestEffortLoad)
	}
	if cfg.Duration < 0 {
		return nil, fmt.Errorf("duration %v: must not be negative", cfg.Duration)
	}
	n, err := prepare(topo, tunnels)
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	s := &searcher{n: n, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	s.until = cfg.Duration
	if s.until == 0 {
		for _, t := range n.tunnels {
			s.until = max(s.until, 8*t.period)
		}
	}
	s.agg = make([]observed, len(n.tunnels))
	for k := range s.agg {
		s.agg[k] = observed{minLat: math.MaxInt64, maxLat: math.MinInt64}
	}
	s.obs = make([]observed, len(n.tunnels))
	rep := &Report{Mode: "random"}
	if cfg.Adversarial {
		rep.Mode = "adversarial"
	}
	if len(n.tunnels) > 0 {
		if cfg.Adversarial {
			err = s.adversarial(ctx)
		} else {
			err = s.random(ctx)
		}
		if err != nil {
			return nil, err
		}
	}
	rep.Runs = s.runs
	rep.Packets, rep.PacketHops = s.stats.packets, s.stats.hops
	for k, t := range n.tunnels {
		o := s.agg[k]
		tr := TunnelReport{
			ID: t.id, Emitted: o.emitted, Delivered: o.delivered, Violations: o.violations, Drops: o.drops,
			BoundMin: int64(t.lo / te.Nanosecond), BoundMax: int64(t.hi / te.Nanosecond),
		}
		if o.delivered > 0 {
			tr.minPs, tr.maxPs = o.minLat, o.maxLat
			tr.MinObserved, tr.MaxObserved = o.minLat.FloorNs(), o.maxLat.CeilNs()
			if t.hi > 0 {
				tr.Tightness = float64(o.maxLat) / float64(t.hi)
			}
		}
		rep.Violations += o.violations
		rep.Drops += o.drops
		rep.Tunnels = append(rep.Tunnels, tr)
	}
	return rep, nil
}

type searcher struct {
	n     *network
	cfg   Config
	rng   *rand.Rand
	until te.Time
	agg   []observed
	obs   []observed
	stats runStats
	heap  eventHeap
	runs  int
}

func (s *searcher) newScenario() *scenario {
	sc := &scenario{
		phase: make([]te.Time, len(s.n.tunnels)),
		delay: make([][]uint8, len(s.n.tunnels)),
		load:  s.cfg.BestEffortLoad,
		until: s.until,
		rng:   rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64())),
	}
	for k, t := range s.n.tunnels {
		sc.phase[k] = te.Time(s.rng.Int64N(int64(t.period)))
		sc.delay[k] = make([]uint8, len(t.links))
	}
	return sc
}

// play runs one scenario, folds it into the aggregate, and returns the
// worst latency seen for tunnel k.
func (s *searcher) play(sc *scenario, k int) te.Time {
	s.n.simulate(sc, s.obs, &s.stats, &s.heap)
	s.runs++
	for j, o := range s.obs {
		a := &s.agg[j]
		a.emitted += o.emitted
		a.delivered += o.delivered
		a.violations += o.violations
		a.drops += o.drops
		if o.delivered > 0 {
			a.minLat = min(a.minLat, o.minLat)
			a.maxLat = max(a.maxLat, o.maxLat)
		}
	}
	if k < 0 || s.obs[k].delivered == 0 {
		return math.MinInt64
	}
	return s.obs[k].maxLat
}

func (s *searcher) random(ctx context.Context) error {
	runs := max(1, s.cfg.Runs)
	for r := range runs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		sc := s.newScenario() // all delays delayRandom
		s.play(sc, -1)
		if s.cfg.Progress != nil {
			s.cfg.Progress(r+1, runs)
		}
	}
	return nil
}
