package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

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
	// Workers is the number of goroutines running jobs (0: one per CPU).
	Workers int
	// Progress, when set, is called after every job, from one goroutine.
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
	until := cfg.Duration
	if until == 0 {
		for _, t := range n.tunnels {
			until = max(until, 8*t.period)
		}
	}
	rep := &Report{Mode: "random"}
	if cfg.Adversarial {
		rep.Mode = "adversarial"
	}
	s := newSearcher(n, cfg, until)
	if len(n.tunnels) > 0 {
		if err := runJobs(ctx, n, cfg, until, s); err != nil {
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

// searcher is one worker's state. Jobs (a random run, or an adversarial
// restart with its hill climb) draw from their own seed, so the merged
// result does not depend on which worker ran which job.
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

func newSearcher(n *network, cfg Config, until te.Time) *searcher {
	s := &searcher{n: n, cfg: cfg, until: until, agg: make([]observed, len(n.tunnels)), obs: make([]observed, len(n.tunnels))}
	for k := range s.agg {
		s.agg[k] = observed{minLat: math.MaxInt64, maxLat: math.MinInt64}
	}
	return s
}

// merge folds another worker's results into s.
func (s *searcher) merge(o *searcher) {
	s.fold(o.agg)
	s.runs += o.runs
	s.stats.hops += o.stats.hops
	s.stats.packets += o.stats.packets
}

func (s *searcher) fold(obs []observed) {
	for j, o := range obs {
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
}

// job runs job number r.
func (s *searcher) job(r int) {
	s.rng = rand.New(rand.NewPCG(s.cfg.Seed, uint64(r)))
	if s.cfg.Adversarial {
		s.restart(r % len(s.n.tunnels))
	} else {
		s.play(s.newScenario(), -1) // all delays delayRandom
	}
}

// runJobs spreads the jobs over Workers goroutines (default: one per CPU)
// and merges their results into into.
func runJobs(ctx context.Context, n *network, cfg Config, until te.Time, into *searcher) error {
	jobs := max(1, cfg.Runs)
	if cfg.Adversarial && cfg.Runs <= 0 {
		jobs = 2 * len(n.tunnels)
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, jobs)
	next := make(chan int)
	done := make(chan struct{})
	ws := make([]*searcher, workers)
	var wg sync.WaitGroup
	for w := range ws {
		ws[w] = newSearcher(n, cfg, until)
		wg.Add(1)
		go func(s *searcher) {
			defer wg.Done()
			for r := range next {
				s.job(r)
				done <- struct{}{}
			}
		}(ws[w])
	}
	var err error
	go func() {
		defer close(next)
		for r := range jobs {
			select {
			case next <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for d := 1; d <= jobs; d++ {
		select {
		case <-done:
			if cfg.Progress != nil {
				cfg.Progress(d, jobs)
			}
			continue
		case <-ctx.Done():
			err = fmt.Errorf("simulate: %w", ctx.Err())
		}
		break
	}
	// Drain so workers finishing a job are not stuck sending.
	go func() {
		for range done {
		}
	}()
	wg.Wait()
	close(done)
	if err != nil {
		return err
	}
	for _, w := range ws {
		into.merge(w)
	}
	return nil
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
	s.fold(s.obs)
	if k < 0 || s.obs[k].delivered == 0 {
		return math.MinInt64
	}
	return s.obs[k].maxLat
}
