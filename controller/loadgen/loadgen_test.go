package loadgen_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/server"

	"github.com/xlane/xlane/controller/hostcheck"
	"github.com/xlane/xlane/controller/loadgen"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/topogen"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

func fatTree(t *testing.T, k int) (*tunnels.Controller, string) {
	t.Helper()
	return controller(t, mustFatTree(t, k))
}

func controller(t *testing.T, spec te.TopologySpec) (*tunnels.Controller, string) {
	t.Helper()
	topo, err := te.NewTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	sws := topo.Switches()
	drv := memory.New(sws...)
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: topo, Driver: drv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctl.Close)
	addr, stop := servertest.Serve(t, ctl, "127.0.0.1:0")
	t.Cleanup(stop)
	return ctl, addr
}

func TestRunMeasuresAndCleansUp(t *testing.T) {
	ctl, addr := fatTree(t, 4)
	var progress bytes.Buffer
	var started, ended bool
	reads := 0   // the fake controller CPU clock: one second per reading
	gcReads := 0 // the fake controller's collections: three more per reading
	// and its upcall waits: 100 more within 5 ms, 8 more in (5, 10] ms, 2
	// more above, between the readings
	waits := []loadgen.Histogram{
		{{Le: 0.005, Count: 10}, {Le: 0.01, Count: 10}, {Le: math.Inf(1), Count: 10}},
		{{Le: 0.005, Count: 110}, {Le: 0.01, Count: 118}, {Le: math.Inf(1), Count: 120}},
	}
	before := time.Now()
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: addr, Preload: 150, Requests: 200, Clients: 8, Services: 5, Progress: &progress,
		Timing: func() func() {
			started = true
			return func() { ended = true }
		},
		ControllerCPU: func() (time.Duration, error) { reads++; return time.Duration(reads) * time.Second, nil },
		ControllerMetrics: func() (loadgen.ControllerReading, error) {
			gcReads++
			// and 10 more batches holding 25 more requests per reading
			return loadgen.ControllerReading{GCs: uint64(40 + 3*gcReads), UpcallWait: waits[gcReads-1], Batches: uint64(10 * gcReads), Batched: uint64(25 * gcReads)}, nil
		},
		Probe: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if gcReads != 2 || res.ControllerGCs != 3 || res.ClientGCs < 0 {
		t.Fatalf("collections: controller read %d times, %d counted (want 3); load generator %d", gcReads, res.ControllerGCs, res.ClientGCs)
	}
	// The p99 falls in the +Inf bucket: the highest finite bound.
	if res.ControllerWait.Count() != 110 || res.ControllerWaitP99 != 10*time.Millisecond || res.ControllerWaitLate != 2 {
		t.Fatalf("the controller's upcall waits: %v, p99 %v, %v late", res.ControllerWait, res.ControllerWaitP99, res.ControllerWaitLate)
	}
	var page strings.Builder
	res.Table(&page)
	for _, want := range []string{"in the controller   p99 10ms (1.82% longer than 10ms) of 110 upcalls' delay", "admission batches   2.5 requests each"} {
		if !strings.Contains(page.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, page.String())
		}
	}
	if res.ControllerBatch != 2.5 {
		t.Fatalf("requests per batch %v, want 2.5", res.ControllerBatch)
	}
	if !started || !ended || reads != 2 {
		t.Fatalf("timing hooks: started %v, ended %v, controller CPU read %d times", started, ended, reads)
	}
	if res.ControllerCPU != time.Second/200 || res.ClientCPU <= 0 {
		t.Fatalf("CPU per admission: controller %v (want 5ms), load generator %v", res.ControllerCPU, res.ClientCPU)
	}
	if res.Preloaded != 150 || res.Admitted+res.Rejected != 200 || res.Admitted == 0 {
		t.Fatalf("preloaded %d, admitted %d + rejected %d of 200", res.Preloaded, res.Admitted, res.Rejected)
	}
	if res.PerSecond <= 0 || res.LatencyP50 <= 0 || res.LatencyP99 < res.LatencyP50 || res.Elapsed <= 0 {
		t.Fatalf("timing: %+v", res)
	}
	if started := time.Unix(0, res.Started); started.Before(before) || started.Add(res.Elapsed).After(time.Now()) {
		t.Fatalf("timing started at %v, for %v: not within the run (%v to now)", started, res.Elapsed, before)
	}
	// On a k=4 fat-tree 350 tunnels share links: admissions move others'
	// bounds, and exact bounds (no headroom) are all told.
	if res.Upcalls == 0 || res.UpcallP50 <= 0 || res.UpcallP99 < res.UpcallP50 || res.UpcallMax < res.UpcallP99 {
		t.Fatalf("upcalls: %+v", res)
	}
	if !slices.IsSorted(res.Delays) || len(res.Delays) != res.Upcalls || res.LateAfter != 10*time.Millisecond {
		t.Fatalf("delays: %d sorted %v for %d upcalls, late after %v", len(res.Delays), slices.IsSorted(res.Delays), res.Upcalls, res.LateAfter)
	}
	want := 0
	for _, d := range res.Delays {
		if d > res.LateAfter {
			want++
		}
	}
	if res.Late != want {
		t.Fatalf("late upcalls: %d, want %d", res.Late, want)
	}
	committed := 0
	for _, b := range res.Timeline {
		committed += b.Committed
		if b.Max > res.UpcallMax {
			t.Errorf("slice at %v: greatest delay %v above the run's %v", b.Start, b.Max, res.UpcallMax)
		}
	}
	if committed != res.Upcalls || time.Duration(len(res.Timeline))*loadgen.TimelineWidth < res.Elapsed {
		t.Fatalf("timeline: %d slices holding %d upcalls; the run measured %d over %v", len(res.Timeline), committed, res.Upcalls, res.Elapsed)
	}
	if left := ctl.Tunnels(""); len(left) != 0 {
		t.Fatalf("%d tunnels left after the run", len(left))
	}
	for _, want := range []string{"installing 150 tunnels", "timing 200 admissions", "released"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	var table bytes.Buffer
	res.Table(&table)
	if res.MachineMBps < 1 || res.MachineMemNs <= 0 {
		t.Errorf("machine probe: %v MB/s, %v ns a load", res.MachineMBps, res.MachineMemNs)
	}
	if mode, err := hostcheck.HugePages("/"); err == nil && (res.MachineTHP != mode || !strings.Contains(table.String(), "transparent huge pages "+mode)) {
		t.Errorf("machine probe: transparent huge pages %q, the host's %q", res.MachineTHP, mode)
	}
	if !strings.Contains(table.String(), "admissions/s") || !strings.Contains(table.String(), "CPU per admission   controller 5ms") ||
		!strings.Contains(table.String(), "machine speed       SHA-256 ") || !strings.Contains(table.String(), "collections         controller 3, load generator") {
		t.Errorf("table:\n%s", table.String())
	}
}

func TestRunKeepLeavesTimedTunnels(t *testing.T) {
	ctl, addr := fatTree(t, 4)
	res, err := loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 20, Requests: 30, Clients: 4, Services: 3, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(ctl.Tunnels("")); got != res.Admitted {
		t.Fatalf("%d tunnels left, want the %d timed admissions", got, res.Admitted)
	}
}

func TestRunErrors(t *testing.T) {
	if _, err := loadgen.Run(context.Background(), loadgen.Config{}); err == nil || !strings.Contains(err.Error(), "address") {
		t.Fatalf("no target: %v", err)
	}
	if _, err := loadgen.Run(context.Background(), loadgen.Config{Target: "x:1", Clients: -1}); err == nil || !strings.Contains(err.Error(), "clients -1") {
		t.Fatalf("bad clients: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := loadgen.Run(ctx, loadgen.Config{Target: "127.0.0.1:1", Preload: 1, Requests: 1}); err == nil || !strings.Contains(err.Error(), "topology") {
		t.Fatalf("nothing listening: %v", err)
	}
	// More tunnels than fit: the error says how many did.
	spec, err := topogen.LeafSpine(2, 1, 2, topogen.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	_, addr := controller(t, spec)
	if _, err := loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 3000, Requests: 1, Clients: 8, Services: 2}); err == nil || !strings.Contains(err.Error(), "tunnels fit") {
		t.Fatalf("overfull preload: %v", err)
	}
}

func TestRunOpenLoop(t *testing.T) {
	_, addr := fatTree(t, 4)
	res, err := loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 10, Requests: 100, Clients: 8, Services: 3, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	// 100 requests offered at 200/s take at least half a second.
	if res.Elapsed < 490*time.Millisecond || res.PerSecond > 205 || res.Offered != 200 {
		t.Fatalf("open loop at 200/s: %+v", res)
	}
	var table bytes.Buffer
	res.Table(&table)
	if !strings.Contains(table.String(), "offered             200 admissions/s") {
		t.Errorf("table:\n%s", table.String())
	}
	if _, err := loadgen.Run(context.Background(), loadgen.Config{Target: addr, Rate: -1}); err == nil || !strings.Contains(err.Error(), "rate -1") {
		t.Fatalf("negative rate: %v", err)
	}
}

// TestRunWarmup runs the preload's last admissions at the timed load and
// opens the window after them: at 200/s, 40 warm-up and 100 timed
// admissions, the window lasts the timed half second, not 0.7 s.
func TestRunWarmup(t *testing.T) {
	ctl, addr := fatTree(t, 4)
	var progress bytes.Buffer
	timings, reads := 0, 0
	res, err := loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 60, Warmup: 40, Requests: 100, Clients: 8, Services: 3, Rate: 200,
		Progress:      &progress,
		Timing:        func() func() { timings++; return nil },
		ControllerCPU: func() (time.Duration, error) { reads++; return time.Duration(reads) * time.Second, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed < 490*time.Millisecond || res.Elapsed > 650*time.Millisecond {
		t.Errorf("window %v: want the 0.5 s of the timed admissions only", res.Elapsed)
	}
	if res.Preloaded != 60 || res.Admitted+res.Rejected != 100 || timings != 1 || reads != 2 || res.ControllerCPU != time.Second/100 {
		t.Errorf("preloaded %d (want 60), timed %d+%d (want 100), window opened %d times, CPU read %d times (%v per admission)",
			res.Preloaded, res.Admitted, res.Rejected, timings, reads, res.ControllerCPU)
	}
	for _, want := range []string{"installing 20 tunnels", "timing 100 admissions offered at 200/s by up to 8 clients, after 40 untimed", "released"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	var table bytes.Buffer
	res.Table(&table)
	if !strings.Contains(table.String(), "60 before timing, the last 40 at the timed load") || !strings.Contains(table.String(), "from the warm-up until") {
		t.Errorf("table:\n%s", table.String())
	}
	if left := ctl.Tunnels(""); len(left) != 0 {
		t.Fatalf("%d tunnels left after the run", len(left))
	}
	// Saturated: the window opens when the first timed request is claimed.
	res, err = loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 30, Warmup: 30, Requests: 50, Clients: 4, Services: 3})
	if err != nil || res.Preloaded != 30 || res.Admitted+res.Rejected != 50 || res.Upcalls == 0 {
		t.Fatalf("saturated with a warm-up: %v, %+v", err, res)
	}
	for _, w := range []int{-1, 61} {
		if _, err := loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 60, Warmup: w}); err == nil || !strings.Contains(err.Error(), "warmup") {
			t.Errorf("warmup %d: %v", w, err)
		}
	}
}

func TestRunControllerCPUError(t *testing.T) {
	_, addr := fatTree(t, 4)
	_, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: addr, Preload: 10, Requests: 10, Clients: 2, Services: 2,
		ControllerCPU: func() (time.Duration, error) { return 0, errors.New("no such process") },
	})
	if err == nil || !strings.Contains(err.Error(), "the controller's CPU time: no such process") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunControllerMetricsErrorAndUnknown(t *testing.T) {
	_, addr := fatTree(t, 4)
	_, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: addr, Preload: 10, Requests: 10, Clients: 2, Services: 2,
		ControllerMetrics: func() (loadgen.ControllerReading, error) {
			return loadgen.ControllerReading{}, errors.New("metrics gone")
		},
	})
	if err == nil || !strings.Contains(err.Error(), "the controller's metrics: metrics gone") {
		t.Fatalf("err = %v", err)
	}
	res, err := loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 10, Requests: 10, Clients: 2, Services: 2})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	res.Table(&table)
	if res.ControllerGCs != -1 || strings.Contains(table.String(), "collections         controller") || strings.Contains(table.String(), "in the controller") {
		t.Fatalf("without a reader the controller's collections are unknown: %d\n%s", res.ControllerGCs, table.String())
	}
}

// Summarize takes the least, median (upper middle) and greatest of each
// figure, whatever the runs' order.
func TestSummarize(t *testing.T) {
	rs := []loadgen.Result{
		{PerSecond: 1800, UpcallP99: 9 * time.Millisecond, ControllerCPU: 700 * time.Microsecond, MachineMBps: 1500, MachineMemNs: 90, ControllerGCs: 1},
		{PerSecond: 2100, UpcallP99: 7 * time.Millisecond, ControllerCPU: 600 * time.Microsecond, MachineMBps: 1600, MachineMemNs: 80},
		{PerSecond: 1500, UpcallP99: 12 * time.Millisecond, ControllerCPU: 800 * time.Microsecond, MachineMBps: 900, MachineMemNs: 120, ControllerGCs: 2},
		{PerSecond: 1900, UpcallP99: 8 * time.Millisecond, ControllerCPU: 650 * time.Microsecond, MachineMBps: 1400, MachineMemNs: 100},
	}
	s := loadgen.Summarize(rs)
	if s.Runs != 4 || s.PerSecond != (loadgen.Spread{Min: 1500, Median: 1900, Max: 2100}) || s.UpcallP99 != (loadgen.Spread{Min: 7e6, Median: 9e6, Max: 12e6}) || s.ControllerCPU != (loadgen.Spread{Min: 600e3, Median: 700e3, Max: 800e3}) ||
		s.MachineMBps != (loadgen.Spread{Min: 900, Median: 1500, Max: 1600}) || s.MachineMemNs != (loadgen.Spread{Min: 80, Median: 100, Max: 120}) ||
		s.ControllerGCs != (loadgen.Spread{Min: 0, Median: 1, Max: 2}) {
		t.Fatalf("summary %+v", s)
	}
	var b strings.Builder
	s.Table(&b)
	for _, want := range []string{"4 runs", "1900/s", "9ms", "controller CPU/admission", "1500 MB/s", "machine memory load", "controller collections"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// The pooled delays are every run's upcalls together: a tail that one run
// holds weighs by its share of all upcalls.
func TestSummarizePoolsTheUpcalls(t *testing.T) {
	ms := func(n int, d time.Duration) []time.Duration {
		return slices.Repeat([]time.Duration{d * time.Millisecond}, n)
	}
	quick := ms(1000, 2)                             // a run without a stall
	stalled := slices.Concat(ms(970, 3), ms(30, 20)) // its p99 is 20 ms
	rs := []loadgen.Result{
		{Upcalls: 1000, Delays: quick, LateAfter: 10 * time.Millisecond},
		{Upcalls: 1000, Delays: stalled, LateAfter: 10 * time.Millisecond, Late: 30},
		{Upcalls: 1000, Delays: quick, LateAfter: 10 * time.Millisecond},
		{Upcalls: 1000, Delays: quick, LateAfter: 10 * time.Millisecond},
	}
	// The controller's histograms pool likewise: 99 % of each run's 100
	// waits within 1 ms but one run's 2 % in (1, 4] ms; added up, the p99
	// (rank 396 of 400) is the first of the five in (1, 4] ms: 1 + 3/5 ms.
	inf := math.Inf(1)
	fast := loadgen.Histogram{{Le: 0.001, Count: 99}, {Le: 0.004, Count: 100}, {Le: inf, Count: 100}}
	slow := loadgen.Histogram{{Le: 0.001, Count: 98}, {Le: 0.004, Count: 100}, {Le: inf, Count: 100}}
	for i, h := range []loadgen.Histogram{fast, slow, fast, fast} {
		rs[i].ControllerWait, rs[i].ControllerWaitP99 = h, h.Quantile(0.99)
	}
	if got, want := loadgen.Summarize(rs).ControllerWaitPooled, 1600*time.Microsecond; (got - want).Abs() > time.Microsecond {
		t.Fatalf("the controllers' pooled p99 %v, want %v", got, want)
	}
	p := loadgen.Summarize(rs).Pooled
	// 4,000 upcalls, 30 of them at 20 ms: the 99th percentile is the
	// 3,960th, 3 ms; the 99.9th (the 3,996th) is in the stall.
	want := loadgen.Pooled{Upcalls: 4000, P50: 2 * time.Millisecond, P99: 3 * time.Millisecond, P999: 20 * time.Millisecond, Max: 20 * time.Millisecond, Late: 30, LateAfter: 10 * time.Millisecond}
	if p != want {
		t.Fatalf("pooled %+v, want %+v", p, want)
	}
	var b strings.Builder
	loadgen.Summarize(rs).Table(&b)
	for _, want := range []string{"all 4 runs' 4000 upcalls pooled: p50 2ms  p99 3ms  p99.9 20ms  max 20ms; 30 (0.75%) longer than 10ms",
		"in the controller p99", "in the controller, all runs' histograms pooled: p99 1.6ms"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// stalling serves a real controller's API but for the calls it is told to
// leave unanswered: a request after the first few, or every watch.
type stalling struct {
	*server.Server
	answer     atomic.Int64 // requests answered before the stall
	stallWatch bool
}

func (s *stalling) RequestBandwidth(ctx context.Context, r *pb.RequestBandwidthRequest) (*pb.Resources, error) {
	if s.answer.Add(-1) < 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Server.RequestBandwidth(ctx, r)
}

func (s *stalling) Watch(r *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchResponse]) error {
	if s.stallWatch {
		<-stream.Context().Done()
		return nil
	}
	return s.Server.Watch(r, stream)
}

func serveStalling(t *testing.T, s *stalling) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(server.Options()...)
	pb.RegisterControllerServer(g, s)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// A call the controller never answers fails the run, naming it, instead
// of hanging it.
func TestRunNamesAnUnansweredCall(t *testing.T) {
	topo, err := te.NewTopology(mustFatTree(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: topo, Driver: memory.New(topo.Switches()...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctl.Close)
	s := &stalling{Server: server.New(ctl)}
	s.answer.Store(10)
	addr := serveStalling(t, s)
	start := time.Now()
	_, err = loadgen.Run(context.Background(), loadgen.Config{Target: addr, Preload: 20, Requests: 10, Clients: 2, Services: 2, CallTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "preload request") || !strings.Contains(err.Error(), "unanswered after 300ms") {
		t.Fatalf("run with a lost request: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the run took %v to give up", d)
	}

	w := &stalling{Server: server.New(ctl), stallWatch: true}
	w.answer.Store(1 << 40)
	_, err = loadgen.Run(context.Background(), loadgen.Config{Target: serveStalling(t, w), Preload: 5, Requests: 5, Clients: 2, Services: 2, CallTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "watch of service loadgen-0 not subscribed after 300ms") {
		t.Fatalf("run with a watch that never subscribes: %v", err)
	}
}

func mustFatTree(t *testing.T, k int) te.TopologySpec {
	t.Helper()
	spec, err := topogen.FatTree(k, topogen.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	return spec
}
