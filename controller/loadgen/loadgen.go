// Package loadgen drives a controller's service API as many services would:
// it fills the topology with tunnels, times concurrent admissions while
// every service watches its upcalls, and releases everything it made.
// `xlane bench admissions` runs it against a controller daemon in another
// process, which is how services reach a controller.
package loadgen

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/hostcheck"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/workload"
	"github.com/xlane/xlane/controller/tunnels"
)

// Config says what to run.
type Config struct {
	Target  string // the controller's API: host:port or unix:/path
	Preload int    // tunnels installed before timing (default 10,000)
	// Warmup of the preloaded tunnels are requested last, just before
	// timing, the way the timed ones are (the same clients, the same rate
	// or concurrency), with nothing measured: the timed window then opens
	// on a controller already running at the timed load, not on the
	// preload's end (its graces ending, its garbage, idle caches).
	Warmup   int
	Requests int    // timed admissions (default 3,000)
	Clients  int    // concurrent requests in flight (default 32)
	Services int    // service identities; each holds a share of the tunnels and watches its upcalls (default 50)
	Seed     uint64 // request mix seed (default 1)
	// Rate, when above 0, offers the timed admissions at this many per
	// second (open loop) instead of as fast as the clients get answers; a
	// request's round trip then counts from when it was due, so waiting
	// for a free client counts too.
	Rate float64
	// Keep leaves the timed admissions' tunnels installed (the preloaded
	// ones are always released at the end).
	Keep bool
	Dial []grpc.DialOption // e.g. TLS credentials; none: plain text
	// Timing, when set, is called as the timed admissions start (to
	// profile the controller over them, say); the function it returns, if
	// any, as they end.
	Timing func() (end func())
	// ControllerCPU, when set, reads the CPU time the controller's process
	// has used so far; the result then carries its share per admission.
	ControllerCPU func() (time.Duration, error)
	// ControllerMetrics, when set, reads the controller's metrics: the
	// result then counts its garbage collections while upcalls were
	// measured (a cycle there lengthens the upcall delay tail) and gives
	// its share of the upcall delay, from its own histogram.
	ControllerMetrics func() (ControllerReading, error)
	// Probe, when above 0, is how long to time a fixed computation on one
	// core, and then random loads from memory, just before timing
	// (Result.MachineMBps, MachineMemNs): this VM's speed drifts by half
	// within minutes, and runs compare only at a known speed.
	Probe time.Duration
	// Late is the upcall delay the result counts upcalls beyond
	// (Result.Late; default 10 ms, the controller's target).
	Late time.Duration
	// CallTimeout is how long one call — a request, a release, a watch's
	// subscription — may go unanswered before the run fails naming it
	// (default 30 s): a lost request would otherwise hang the run.
	CallTimeout time.Duration
	// RealtimePriority is reported only: the SCHED_RR priority this
	// process (and a controller it started) ran under; 0 the normal
	// scheduler.
	RealtimePriority int
	Progress         io.Writer // progress lines; nil: none
}

func (c *Config) defaults() {
	if c.Preload == 0 {
		c.Preload = 10_000
	}
	if c.Requests == 0 {
		c.Requests = 3_000
	}
	if c.Clients == 0 {
		c.Clients = 32
	}
	if c.Services == 0 {
		c.Services = 50
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Late == 0 {
		c.Late = 10 * time.Millisecond
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 30 * time.Second
	}
}

// Result is what the timed admissions measured.
type Result struct {
	Target    string `json:"target"`
	Preloaded int    `json:"preloaded"`
	Warmup    int    `json:"warmup,omitempty"` // of the preloaded, requested last at the timed load
	// RealtimePriority is Config's: the SCHED_RR priority of the run, 0 none.
	RealtimePriority int           `json:"realtime_priority,omitempty"`
	Requests         int           `json:"requests"`
	Admitted         int           `json:"admitted"`
	Rejected         int           `json:"rejected"` // no valid tree (ResourceExhausted)
	Clients          int           `json:"clients"`
	Offered          float64       `json:"offered_per_second,omitempty"` // Config.Rate
	Elapsed          time.Duration `json:"elapsed_ns"`
	PerSecond        float64       `json:"admissions_per_second"`
	// Started is when timing started (the Timeline's zero), as Unix
	// nanoseconds: it lines the run up with other recordings of the
	// machine.
	Started int64 `json:"started_unix_ns"`
	// Round trip of one RequestBandwidth call.
	LatencyP50 time.Duration `json:"latency_p50_ns"`
	LatencyP99 time.Duration `json:"latency_p99_ns"`
	// BandwidthChanged upcalls the controller committed while admissions
	// were timed, and how long each took from the commit (its resources'
	// not_before) to the watching service.
	Upcalls   int           `json:"upcalls"`
	UpcallP50 time.Duration `json:"upcall_p50_ns"`
	UpcallP99 time.Duration `json:"upcall_p99_ns"`
	UpcallMax time.Duration `json:"upcall_max_ns"`
	// Late counts the upcalls that took longer than LateAfter
	// (Config.Late).
	Late      int           `json:"upcalls_late"`
	LateAfter time.Duration `json:"late_after_ns"`
	// CPU time per timed admission: this process (the clients and their
	// watch streams) and, when known, the controller's process. On a
	// machine the two share, their sum bounds the rate.
	ClientCPU     time.Duration `json:"client_cpu_per_admission_ns"`
	ControllerCPU time.Duration `json:"controller_cpu_per_admission_ns,omitempty"`
	// ControllerPeakRSS is the controller process's peak resident memory
	// (bytes), when the caller knows it.
	ControllerPeakRSS int64 `json:"controller_peak_rss_bytes,omitempty"`
	// MachineMBps is SHA-256 on one core just before timing, MachineMemNs
	// a dependent load from a random place in 64 MiB (Config.Probe).
	MachineMBps  float64 `json:"machine_sha256_mb_per_s,omitempty"`
	MachineMemNs float64 `json:"machine_memory_load_ns,omitempty"`
	// MachineTHP is the kernel's transparent huge page mode then: a page
	// fault cost 12.6 µs on the VM measured, and "always" saved the
	// controller most of them (package hostcheck).
	MachineTHP string `json:"machine_transparent_hugepage,omitempty"`
	// Garbage collections finished from the start of timing (of the
	// warm-up, when there is one) until the upcalls were collected, in the
	// controller (-1: not known) and here.
	ControllerGCs int `json:"controller_gc_cycles"`
	ClientGCs     int `json:"client_gc_cycles"`
	// ControllerWait is the controller's share of the upcall delay over
	// the same span (from the change's commit until the response went to
	// gRPC; its histogram, so its quantiles are estimates): what the
	// services measure adds the transport and their own scheduling, here
	// on the CPUs the controller uses. Its p99, and how many upcalls
	// waited longer than LateAfter in the controller.
	ControllerWait     Histogram     `json:"controller_upcall_wait,omitempty"`
	ControllerWaitP99  time.Duration `json:"controller_upcall_wait_p99_ns,omitempty"`
	ControllerWaitLate float64       `json:"controller_upcall_wait_late,omitempty"`
	// ControllerBatch is how many requests the controller's admission
	// batches held on average over the same span: a batch shares its
	// store write, its lock holding and its wake-ups, so CPU per admission
	// falls as batches grow.
	ControllerBatch float64 `json:"controller_requests_per_batch,omitempty"`
	// Timeline is the upcalls by commit time, in slices of TimelineWidth.
	Timeline []TimelineBin `json:"timeline,omitempty"`
	// Delays are the measured upcalls' delays, sorted: Summarize pools
	// them over runs.
	Delays []time.Duration `json:"-"`
}

// Table writes r for people.
func (r Result) Table(w io.Writer) {
	fmt.Fprintf(w, "controller          %s\n", r.Target)
	if r.RealtimePriority > 0 {
		fmt.Fprintf(w, "scheduling          SCHED_RR priority %d (--realtime-priority)\n", r.RealtimePriority)
	}
	if r.Warmup > 0 {
		fmt.Fprintf(w, "tunnels installed   %d before timing, the last %d at the timed load\n", r.Preloaded, r.Warmup)
	} else {
		fmt.Fprintf(w, "tunnels installed   %d before timing\n", r.Preloaded)
	}
	fmt.Fprintf(w, "admissions          %d requested by %d concurrent clients, %d admitted, %d rejected\n", r.Requests, r.Clients, r.Admitted, r.Rejected)
	if r.Offered > 0 {
		fmt.Fprintf(w, "offered             %.0f admissions/s (open loop)\n", r.Offered)
	}
	fmt.Fprintf(w, "throughput          %.0f admissions/s (%v)\n", r.PerSecond, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "request round trip  p50 %v  p99 %v\n", r.LatencyP50.Round(time.Microsecond), r.LatencyP99.Round(time.Microsecond))
	fmt.Fprintf(w, "upcalls             %d (%.2f per admission)  delay p50 %v  p99 %v  max %v\n", r.Upcalls,
		float64(r.Upcalls)/float64(max(1, r.Requests)), r.UpcallP50.Round(time.Microsecond), r.UpcallP99.Round(time.Microsecond), r.UpcallMax.Round(time.Microsecond))
	if r.Upcalls > 0 {
		fmt.Fprintf(w, "late upcalls        %d (%.2f%%) took longer than %v\n", r.Late, 100*float64(r.Late)/float64(r.Upcalls), r.LateAfter)
	}
	if r.ControllerCPU > 0 {
		fmt.Fprintf(w, "CPU per admission   controller %v  load generator %v\n", r.ControllerCPU.Round(time.Microsecond), r.ClientCPU.Round(time.Microsecond))
	} else {
		fmt.Fprintf(w, "CPU per admission   load generator %v\n", r.ClientCPU.Round(time.Microsecond))
	}
	if r.ControllerBatch > 0 {
		fmt.Fprintf(w, "admission batches   %.1f requests each in the controller\n", r.ControllerBatch)
	}
	if r.ControllerPeakRSS > 0 {
		fmt.Fprintf(w, "controller memory   peak RSS %.0f MiB\n", float64(r.ControllerPeakRSS)/(1<<20))
	}
	measured := "while upcalls were measured"
	if r.Warmup > 0 {
		measured = "from the warm-up until upcalls were measured"
	}
	if n := r.ControllerWait.Count(); n > 0 {
		fmt.Fprintf(w, "in the controller   p99 %v (%.2f%% longer than %v) of %d upcalls' delay, from its histogram %s\n",
			r.ControllerWaitP99.Round(10*time.Microsecond), 100*r.ControllerWaitLate/float64(n), r.LateAfter, n, measured)
	}
	if r.ControllerGCs >= 0 {
		fmt.Fprintf(w, "collections         controller %d, load generator %d %s\n", r.ControllerGCs, r.ClientGCs, measured)
	} else {
		fmt.Fprintf(w, "collections         load generator %d %s\n", r.ClientGCs, measured)
	}
	if r.MachineMBps > 0 {
		thp := ""
		if r.MachineTHP != "" {
			thp = ", transparent huge pages " + r.MachineTHP
		}
		fmt.Fprintf(w, "machine speed       SHA-256 %.0f MB/s on one core, %.0f ns a memory load%s, just before timing\n", r.MachineMBps, r.MachineMemNs, thp)
	}
}

// probe is how fast one core hashes with SHA-256 (MB/s) over d: a fixed
// computation that tells the machine's speed at the time.
func probe(d time.Duration) float64 {
	buf := make([]byte, 64<<10)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		sha256.Sum256(buf)
		n += len(buf)
	}
	return float64(n) / time.Since(start).Seconds() / 1e6
}

// memProbe is how long a load takes (ns) that depends on the one before,
// from random places in 64 MiB, over d: memory latency beyond the caches,
// which a VM's neighbours move while its cores compute as fast as ever.
func memProbe(d time.Duration) float64 {
	const n = 16 << 20 // uint32s
	next := make([]uint32, n)
	for i := range next {
		next[i] = uint32(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := n - 1; i > 0; i-- { // Sattolo: one cycle through all
		j := rng.IntN(i)
		next[i], next[j] = next[j], next[i]
	}
	x, loads := uint32(0), 0
	start := time.Now()
	for time.Since(start) < d {
		for range 4096 {
			x = next[x]
		}
		loads += 4096
	}
	if x == n { // never: keeps the chase from being optimised away
		loads++
	}
	return float64(time.Since(start).Nanoseconds()) / float64(loads)
}

// upcall is one BandwidthChanged a service saw; pointer-free, so a
// long log costs the collector nothing to scan.
type upcall struct {
	at    int64 // committed, Unix ns
	delay time.Duration
}

// upcallLog is one service's upcalls while admissions are timed: each
// watcher appends to its own, so the load generator's watchers do not
// contend on a lock while the controller is measured.
// expectedUpcalls is room for the BandwidthChanged upcalls of one
// admission on a k=16 fat-tree holding 10,000 tunnels (about 41; more on
// smaller topologies, where the logs grow as needed).
const expectedUpcalls = 48

type upcallLog struct {
	mu   sync.Mutex
	recs []upcall
}

// Run runs the load; it releases every tunnel it made before it returns,
// also when it fails.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	if cfg.Target == "" {
		return Result{}, errors.New("loadgen: no controller address")
	}
	if cfg.Rate < 0 {
		return Result{}, fmt.Errorf("loadgen: rate %g: must not be negative", cfg.Rate)
	}
	if cfg.Preload < 0 || cfg.Requests < 1 || cfg.Clients < 1 || cfg.Services < 1 {
		return Result{}, fmt.Errorf("loadgen: preload %d, requests %d, clients %d, services %d: need preload ≥ 0 and the rest ≥ 1",
			cfg.Preload, cfg.Requests, cfg.Clients, cfg.Services)
	}
	if cfg.Warmup < 0 || cfg.Warmup > cfg.Preload {
		return Result{}, fmt.Errorf("loadgen: warmup %d: must be between 0 and the preload (%d); the warm-up admissions are the preload's last", cfg.Warmup, cfg.Preload)
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", args...)
		}
	}
	clients := make([]*client.Client, cfg.Services)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		c, err := client.Dial(cfg.Target, fmt.Sprintf("loadgen-%d", i), cfg.Dial...)
		if err != nil {
			return Result{}, fmt.Errorf("loadgen: %w", err)
		}
		clients[i] = c
	}
	hosts, ips, sublanes, err := topology(ctx, clients[0])
	if err != nil {
		return Result{}, err
	}
	mix := workload.Coordination()
	mix.MulticastShare = 0 // unicast: a multicast tunnel needs a group's members first
	toReq := func(r te.Request, port uint16) tunnels.Request {
		return tunnels.Request{Sender: ips[r.Sender], Receiver: netip.AddrPortFrom(ips[r.Receivers[0]], port),
			LoadsizeBytes: r.LoadsizeBytes, PeriodUs: r.PeriodNs / 1000, Sublane: r.Sublane}
	}

	// Every service watches its upcalls from the start; they are kept
	// only while admissions are timed.
	logs := make([]upcallLog, len(clients))
	var recording atomic.Bool
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopWatch(); wg.Wait() }()
	watchErr := make(chan error, len(clients))
	for i, c := range clients {
		ul := &logs[i]
		ready := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			err := c.Watch(wctx, func(u tunnels.Upcall) {
				if !recording.Load() || u.Kind != tunnels.BandwidthChanged || u.Resources.NotBefore.IsZero() {
					return
				}
				at := u.Resources.NotBefore
				d := time.Since(at)
				ul.mu.Lock()
				ul.recs = append(ul.recs, upcall{at.UnixNano(), d})
				ul.mu.Unlock()
			}, func(bool) { once.Do(func() { close(ready) }) })
			if err != nil && wctx.Err() == nil {
				watchErr <- fmt.Errorf("loadgen: watch: %w", err)
			}
			once.Do(func() { close(ready) })
		}()
		select {
		case <-ready:
		case err := <-watchErr:
			return Result{}, err
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(cfg.CallTimeout):
			return Result{}, fmt.Errorf("loadgen: the watch of service loadgen-%d not subscribed after %v", i, cfg.CallTimeout)
		}
	}

	owned := make([][]uint64, len(clients)) // tunnels to release, per service
	var ownedMu sync.Mutex
	keep := func(svc int, id uint64) {
		ownedMu.Lock()
		owned[svc] = append(owned[svc], id)
		ownedMu.Unlock()
	}
	defer func() {
		n := 0
		for _, ids := range owned {
			n += len(ids)
		}
		if n == 0 {
			return
		}
		progress("releasing %d tunnels", n)
		start := time.Now()
		if err := releaseAll(context.WithoutCancel(ctx), clients, owned, cfg.Clients, cfg.CallTimeout); err != nil {
			progress("release: %v", err)
			return
		}
		progress("released %d tunnels in %v", n, time.Since(start).Round(time.Millisecond))
	}()

	// Preload: draw requests until enough fit.
	res := Result{Target: cfg.Target, Requests: cfg.Requests, Clients: cfg.Clients, Offered: cfg.Rate, Warmup: cfg.Warmup, RealtimePriority: cfg.RealtimePriority}
	if fast := cfg.Preload - cfg.Warmup; fast > 0 {
		progress("installing %d tunnels with %d clients", fast, cfg.Clients)
		pool := workload.Draw(hosts, sublanes, mix, 3*fast, cfg.Seed)
		var next, got atomic.Int64
		left := atomic.Int64{} // preload slots not yet claimed by a request in flight
		left.Store(int64(fast))
		start := time.Now()
		stopTicker := ticker(func() {
			n := got.Load()
			progress("  %d/%d installed (%.0f/s)", n, fast, float64(n)/time.Since(start).Seconds())
		})
		err := parallel(ctx, cfg.Clients, func(ctx context.Context) error {
			for {
				if left.Add(-1) < 0 {
					left.Add(1)
					return nil
				}
				i := next.Add(1) - 1
				if i >= int64(len(pool)) {
					return nil
				}
				svc := int(i) % len(clients)
				cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
				r, err := clients[svc].RequestBandwidth(cctx, toReq(pool[i], uint16(1000+i%50_000)))
				cancel()
				switch {
				case err == nil:
					keep(svc, r.TunnelID)
					got.Add(1)
				case status.Code(err) == codes.ResourceExhausted:
					left.Add(1) // the slot is free again
				default:
					return fmt.Errorf("loadgen: preload request %d%s: %w", i, unanswered(err, cfg.CallTimeout), err)
				}
			}
		})
		stopTicker()
		if err != nil {
			return Result{}, err
		}
		res.Preloaded = int(got.Load())
		if res.Preloaded < fast {
			return Result{}, fmt.Errorf("loadgen: only %d of %d tunnels fit (%d requests drawn)", res.Preloaded, fast, len(pool))
		}
		progress("installed %d tunnels in %v", res.Preloaded, time.Since(start).Round(time.Millisecond))
	}

	// Timed admissions, after the warm-up ones: one schedule, one set of
	// clients; the window opens when the first timed one is due (at a
	// rate) or claimed (saturated).
	warm := cfg.Warmup
	draws := workload.Draw(hosts, sublanes, mix, warm+cfg.Requests, cfg.Seed+1)
	lat := make([]time.Duration, cfg.Requests)
	var next, admitted, rejected, warmed atomic.Int64
	if cfg.Rate > 0 {
		progress("timing %d admissions offered at %.0f/s by up to %d clients, after %d untimed", cfg.Requests, cfg.Rate, cfg.Clients, warm)
	} else {
		progress("timing %d admissions with %d clients, after %d untimed", cfg.Requests, cfg.Clients, warm)
	}
	if cfg.Probe > 0 {
		res.MachineMBps, res.MachineMemNs = probe(cfg.Probe), memProbe(cfg.Probe)
		res.MachineTHP, _ = hostcheck.HugePages("/") // "" where there is none
	}
	// This process does not collect while it measures: it stands in for
	// services on other hosts, and its collections (of the preload's
	// garbage and the memory probe's 64 MiB, in every other run) took a
	// processor from their watch streams: p99 upcall 8.4-12.5 ms in those
	// runs against 7.7-8.9 ms in the others, a series of twelve. So it
	// collects now, and then only past a memory limit well above what
	// timing allocates, until the upcalls are in.
	defer quiet()()
	// Room for the upcalls to come, made before timing: growing these logs
	// while timing was 7 % of this process's CPU, work no service does.
	for i := range logs {
		l := &logs[i]
		l.mu.Lock()
		l.recs = slices.Grow(l.recs[:0], cfg.Requests*expectedUpcalls/len(logs))
		l.mu.Unlock()
	}
	// The controller's collections and upcall waits are counted from here,
	// before any warm-up: reading them is a metrics scrape, which would
	// cost the controller a few milliseconds at the window's start.
	gcs0, ctl0, err := readings(cfg.ControllerMetrics)
	if err != nil {
		return Result{}, err
	}
	// begin opens the window: what is measured counts from start.
	var (
		start      time.Time
		cpu0       [2]time.Duration
		endTiming  func()
		stopTicker = func() {}
	)
	begin := func() error {
		if cfg.Timing != nil {
			endTiming = cfg.Timing()
		}
		var err error
		if cpu0, err = cpuTimes(cfg.ControllerCPU); err != nil {
			return err
		}
		recording.Store(true)
		stopTicker = ticker(func() {
			progress("  %d/%d answered", admitted.Load()+rejected.Load(), cfg.Requests)
		})
		return nil
	}
	if warm == 0 {
		if err := begin(); err != nil {
			return Result{}, err
		}
	}
	sched := time.Now() // when the first admission is due, at a rate
	start = sched
	err = parallel(ctx, cfg.Clients, func(ctx context.Context) error {
		for {
			i := next.Add(1) - 1
			if i >= int64(len(draws)) {
				return nil
			}
			svc := int(i) % len(clients)
			t0 := time.Now()
			if cfg.Rate > 0 {
				t0 = sched.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
				if d := time.Until(t0); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			if warm > 0 && i == int64(warm) {
				if err := begin(); err != nil {
					return err
				}
				start = t0 // when due; saturated, now
				if cfg.Rate == 0 {
					start = time.Now()
					t0 = start
				}
			}
			cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
			r, err := clients[svc].RequestBandwidth(cctx, toReq(draws[i], uint16(51_000+i%10_000)))
			cancel()
			if i < int64(warm) {
				switch {
				case err == nil:
					keep(svc, r.TunnelID)
					warmed.Add(1)
				case status.Code(err) != codes.ResourceExhausted:
					return fmt.Errorf("loadgen: warm-up request %d%s: %w", i, unanswered(err, cfg.CallTimeout), err)
				}
				continue
			}
			lat[i-int64(warm)] = time.Since(t0)
			switch {
			case err == nil:
				admitted.Add(1)
				if !cfg.Keep {
					keep(svc, r.TunnelID)
				}
			case status.Code(err) == codes.ResourceExhausted:
				rejected.Add(1)
			default:
				return fmt.Errorf("loadgen: timed request %d%s: %w", i-int64(warm), unanswered(err, cfg.CallTimeout), err)
			}
		}
	})
	end := time.Now()
	res.Preloaded += int(warmed.Load())
	cpu1, cpuErr := cpuTimes(cfg.ControllerCPU)
	if endTiming != nil {
		endTiming()
	}
	stopTicker()
	if err != nil {
		return Result{}, err
	}
	if cpuErr != nil {
		return Result{}, cpuErr
	}
	res.ClientCPU = (cpu1[0] - cpu0[0]) / time.Duration(cfg.Requests)
	res.ControllerCPU = (cpu1[1] - cpu0[1]) / time.Duration(cfg.Requests)
	res.Elapsed, res.Started = end.Sub(start), start.UnixNano()
	res.Admitted, res.Rejected = int(admitted.Load()), int(rejected.Load())
	res.PerSecond = float64(cfg.Requests) / res.Elapsed.Seconds()
	slices.Sort(lat)
	res.LatencyP50, res.LatencyP99 = pct(lat, 50), pct(lat, 99)

	// Upcalls committed during the timed window arrive shortly after it.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-watchErr:
		return Result{}, err
	default:
	}
	recording.Store(false)
	gcs1, ctl1, err := readings(cfg.ControllerMetrics)
	if err != nil {
		return Result{}, err
	}
	res.ClientGCs, res.ControllerGCs = int(gcs1-gcs0), -1
	if cfg.ControllerMetrics != nil {
		res.ControllerGCs = int(ctl1.GCs - ctl0.GCs)
		if res.ControllerWait, err = ctl1.UpcallWait.Sub(ctl0.UpcallWait); err != nil {
			return Result{}, fmt.Errorf("loadgen: the controller's upcall waits: %w", err)
		}
		res.ControllerWaitP99, res.ControllerWaitLate = res.ControllerWait.Quantile(0.99), res.ControllerWait.Above(cfg.Late)
		if n := ctl1.Batches - ctl0.Batches; n > 0 {
			res.ControllerBatch = float64(ctl1.Batched-ctl0.Batched) / float64(n)
		}
	}
	var delays []time.Duration
	var all []upcall
	for i := range logs {
		l := &logs[i]
		l.mu.Lock()
		for _, u := range l.recs {
			if u.at >= start.UnixNano() && u.at <= end.UnixNano() {
				delays = append(delays, u.delay)
				all = append(all, u)
			}
		}
		l.mu.Unlock()
	}
	res.Timeline = timeline(all, start.UnixNano(), end.UnixNano(), TimelineWidth)
	slices.Sort(delays)
	res.Upcalls, res.Delays, res.LateAfter = len(delays), delays, cfg.Late
	if len(delays) > 0 {
		res.UpcallP50, res.UpcallP99, res.UpcallMax = pct(delays, 50), pct(delays, 99), delays[len(delays)-1]
	}
	res.Late = late(delays, cfg.Late)
	return res, nil
}

// quiet collects, then turns collection off but for a memory limit 4 GiB
// above the live heap; the function it returns restores both settings.
func quiet() (restore func()) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcPercent := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(int64(ms.HeapAlloc) + 4<<30)
	return func() {
		debug.SetGCPercent(gcPercent)
		debug.SetMemoryLimit(limit)
	}
}

// readings reads how many collections this process has finished and,
// with controller, the controller's metrics.
func readings(controller func() (ControllerReading, error)) (uint64, ControllerReading, error) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	var c ControllerReading
	if controller != nil {
		var err error
		if c, err = controller(); err != nil {
			return 0, c, fmt.Errorf("loadgen: the controller's metrics: %w", err)
		}
	}
	return s[0].Value.Uint64(), c, nil
}

// cpuTimes reads this process's CPU time and, with controller, the
// controller's.
func cpuTimes(controller func() (time.Duration, error)) ([2]time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return [2]time.Duration{}, fmt.Errorf("loadgen: getrusage: %w", err)
	}
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if controller == nil {
		return [2]time.Duration{self, 0}, nil
	}
	c, err := controller()
	if err != nil {
		return [2]time.Duration{}, fmt.Errorf("loadgen: the controller's CPU time: %w", err)
	}
	return [2]time.Duration{self, c}, nil
}

// topology asks the controller for its hosts (names, addresses) and
// sub-lane count.
func topology(ctx context.Context, c *client.Client) ([]string, map[string]netip.Addr, int, error) {
	t, err := c.Topology(ctx)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("loadgen: reading the topology: %w", err)
	}
	var hosts []string
	ips := map[string]netip.Addr{}
	for _, n := range t.Nodes {
		if n.Kind != "host" {
			continue
		}
		ip, err := netip.ParseAddr(n.Ipv4)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("loadgen: host %s: address %q: %w", n.Name, n.Ipv4, err)
		}
		hosts = append(hosts, n.Name)
		ips[n.Name] = ip
	}
	if len(hosts) < 2 || t.Sublanes < 1 {
		return nil, nil, 0, fmt.Errorf("loadgen: the topology has %d hosts and %d sub-lanes; need 2 and 1", len(hosts), t.Sublanes)
	}
	return hosts, ips, int(t.Sublanes), nil
}

// parallel runs f in n goroutines and returns the first error; the others
// see their context cancelled.
func parallel(ctx context.Context, n int, f func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, n)
	for range n {
		go func() {
			err := f(ctx)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// releaseAll releases every tunnel in owned (per service) with n workers.
func releaseAll(ctx context.Context, clients []*client.Client, owned [][]uint64, n int, timeout time.Duration) error {
	type job struct {
		svc int
		id  uint64
	}
	var jobs []job
	for svc, ids := range owned {
		for _, id := range ids {
			jobs = append(jobs, job{svc, id})
		}
	}
	var next atomic.Int64
	return parallel(ctx, n, func(ctx context.Context) error {
		for {
			i := next.Add(1) - 1
			if i >= int64(len(jobs)) {
				return nil
			}
			j := jobs[i]
			cctx, cancel := context.WithTimeout(ctx, timeout)
			err := clients[j.svc].ReleaseBandwidth(cctx, j.id)
			cancel()
			if err != nil && status.Code(err) != codes.NotFound {
				return fmt.Errorf("releasing tunnel %d%s: %w", j.id, unanswered(err, timeout), err)
			}
		}
	})
}

// unanswered says so when err is a call's deadline passing.
func unanswered(err error, after time.Duration) string {
	if status.Code(err) == codes.DeadlineExceeded {
		return fmt.Sprintf(" unanswered after %v", after)
	}
	return ""
}

// ticker calls f every second until the returned function is called.
func ticker(f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func pct(sorted []time.Duration, p int) time.Duration {
	return perMille(sorted, 10*p)
}

func perMille(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/1000)]
}

// late counts the sorted delays above d.
func late(sorted []time.Duration, d time.Duration) int {
	i, _ := slices.BinarySearch(sorted, d+1)
	return len(sorted) - i
}
