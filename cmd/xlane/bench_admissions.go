package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/xlane/xlane/controller/loadgen"
	"github.com/xlane/xlane/controller/metrics"
	"github.com/xlane/xlane/controller/rtsched"
	"github.com/xlane/xlane/controller/te/topogen"
	"github.com/xlane/xlane/testbed/proc"
)

func newBenchAdmissionsCmd() *cobra.Command {
	var cfg loadgen.Config
	var k, gcPercent int
	var headroom float64
	var extra []string
	var bin, out, cpuprofile, clientProfile, traceFile, clientTrace string
	var runs int
	var rates []float64
	var profileFor time.Duration
	cmd := &cobra.Command{
		Use:   "admissions",
		Short: "Admissions per second and upcall delay of a controller, from a separate process",
		Long: `admissions measures a controller through its service API as services see it. Without
--controller it starts xlane-controller (from --bin, else next to this program, else PATH) with
the in-memory driver on a k-ary fat-tree, its API on a Unix socket and its state in a fresh data
directory, and stops it afterwards. It installs --preload tunnels (unicast, the coordination mix
of small periodic messages) owned by --services services, each of which watches its upcalls,
then times --requests admissions from --clients concurrent callers (as fast as they are answered,
or offered at --rate per second), and releases every tunnel
it made. It prints admissions per second, the request round trip, and how long BandwidthChanged
upcalls took from the controller's commit to the watching service; the table and JSON go to --out,
with a plot of the upcall delay over the run by commit time (admissions-timeline.svg and .png).
It counts the upcalls that took longer than --late (the controller's 10 ms target). With
--runs N it measures N times (a fresh controller each time) and adds the least, median and
greatest of each figure — on a machine whose speed drifts, one run says little — and the upcall
delay over all runs' upcalls pooled: one short run's p99 rests on its slowest 1 %, often a
single stall of the machine or a collection that lands in it. With --rates R1,R2,... it sweeps
the offered rate, --runs times at each, and writes a table and a plot of the upcall delay's p99
(as the services saw it and in the controller) and the CPU per admission by rate
(admissions-sweep.txt, .json, .svg and .png). With --realtime-priority N this process and the
controller it starts run under SCHED_RR, as a controller deployed with that option would, with
its services on other hosts: their woken threads then do not wait for a CPU behind each other.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.Progress = cmd.ErrOrStderr()
			if cmd.Flags().Changed("gc-percent") || os.Getenv("GOGC") == "" {
				defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
			}
			if cfg.Late <= 0 {
				return fmt.Errorf("--late: %v; it must be above 0", cfg.Late)
			}
			if runs < 1 {
				return fmt.Errorf("--runs: %d; at least one", runs)
			}
			if len(rates) > 0 {
				if cmd.Flags().Changed("rate") {
					return errors.New("--rate and --rates: give one")
				}
				if len(rates) < 2 {
					return fmt.Errorf("--rates: %v; at least two rates to sweep (or --rate for one)", rates)
				}
				for _, r := range rates {
					if !(r > 0) || math.IsInf(r, 0) {
						return fmt.Errorf("--rates: %v; each must be above 0", r)
					}
				}
				if cpuprofile != "" || clientProfile != "" || traceFile != "" || clientTrace != "" {
					return errors.New("--cpuprofile, --client-cpuprofile, --trace and --client-trace record one run; not with --rates")
				}
			}
			if cfg.Warmup < 0 || cfg.Warmup > cfg.Preload {
				return fmt.Errorf("--warmup: %d; between 0 and --preload (%d), whose last admissions it is", cfg.Warmup, cfg.Preload)
			}
			if cfg.RealtimePriority < 0 || cfg.RealtimePriority > rtsched.MaxPriority {
				return fmt.Errorf("--realtime-priority: %d; 0 (the normal scheduler) or 1 to %d", cfg.RealtimePriority, rtsched.MaxPriority)
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if (cpuprofile != "" || traceFile != "") && cfg.Target != "" {
				return fmt.Errorf("--cpuprofile and --trace record the controller this command starts; without --controller")
			}
			if runs > 1 && (cpuprofile != "" || clientProfile != "" || traceFile != "" || clientTrace != "") {
				return fmt.Errorf("--cpuprofile, --client-cpuprofile, --trace and --client-trace record one run; give --runs 1")
			}
			if p := cfg.RealtimePriority; p > 0 {
				// The services stand in for processes on other hosts: they
				// must not wait behind the controller for a CPU either.
				n, err := rtsched.Apply(p)
				if err != nil {
					return fmt.Errorf("--realtime-priority: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "load generator: %d threads under SCHED_RR priority %d\n", n, p)
				extra = append(extra, fmt.Sprintf("--realtime-priority=%d", p))
			}
			target := cfg.Target
			once := func() (loadgen.Result, error) {
				cfg := cfg
				cfg.Target = target
				var profiled, traced chan error
				var timing []func() func()
				var peakRSS func() (int64, error)
				if cfg.Target == "" {
					stop, target, metricsAddr, pid, err := startBenchController(ctx, cmd, bin, out, k, headroom, extra, cpuprofile != "" || traceFile != "")
					if err != nil {
						return loadgen.Result{}, err
					}
					defer stop()
					cfg.Target = target
					cfg.ControllerCPU = func() (time.Duration, error) { return proc.CPUTime(pid) }
					cfg.ControllerMetrics = func() (loadgen.ControllerReading, error) { return controllerReading(ctx, metricsAddr) }
					peakRSS = func() (int64, error) { return proc.PeakRSS(pid) }
					if cpuprofile != "" {
						profiled = make(chan error, 1)
						timing = append(timing, func() func() {
							go func() { profiled <- fetchDebug(ctx, metricsAddr, "profile", profileFor, cpuprofile) }()
							return nil
						})
					}
					if traceFile != "" {
						traced = make(chan error, 1)
						timing = append(timing, func() func() {
							go func() { traced <- fetchDebug(ctx, metricsAddr, "trace", profileFor, traceFile) }()
							return nil
						})
					}
				}
				// This process's own recordings over the timed admissions.
				for _, rec := range []struct {
					path, what string
					start      func(io.Writer) error
					stop       func()
				}{
					{clientProfile, "client profile", pprof.StartCPUProfile, pprof.StopCPUProfile},
					{clientTrace, "client trace", trace.Start, trace.Stop},
				} {
					if rec.path == "" {
						continue
					}
					f, err := os.Create(rec.path)
					if err != nil {
						return loadgen.Result{}, err
					}
					defer f.Close()
					timing = append(timing, func() func() {
						if err := rec.start(f); err != nil {
							fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", rec.what, err)
							return nil
						}
						return rec.stop
					})
				}
				if len(timing) > 0 {
					cfg.Timing = func() func() {
						var ends []func()
						for _, t := range timing {
							if end := t(); end != nil {
								ends = append(ends, end)
							}
						}
						return func() {
							for _, end := range ends {
								end()
							}
						}
					}
				}
				res, err := loadgen.Run(ctx, cfg)
				if err != nil {
					return loadgen.Result{}, err
				}
				if peakRSS != nil {
					if res.ControllerPeakRSS, err = peakRSS(); err != nil {
						return loadgen.Result{}, err
					}
				}
				if profiled != nil {
					if err := <-profiled; err != nil {
						return loadgen.Result{}, err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (the controller's CPU over the first %v of the timed admissions)\n", cpuprofile, profileFor)
				}
				if traced != nil {
					if err := <-traced; err != nil {
						return loadgen.Result{}, err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (the controller's execution trace over the first %v of the timed admissions)\n", traceFile, profileFor)
				}
				return res, nil
			}
			// measure runs the measurement runs times at cfg's rate; its
			// timelines go to base-N (base alone for one run).
			measure := func(base, label string) ([]loadgen.Result, error) {
				var all []loadgen.Result
				for i := range runs {
					if runs > 1 || label != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "%srun %d of %d\n", label, i+1, runs)
					}
					res, err := once()
					if err != nil {
						return nil, err
					}
					all = append(all, res)
					b := base
					if runs > 1 {
						b += fmt.Sprintf("-%d", i+1)
					}
					if files, err := loadgen.WriteTimeline(b, res); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "no timeline: %v\n", err)
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", strings.Join(files, ", "))
					}
					if runs > 1 || label != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "%srun %d: %.0f admissions/s, upcall delay p99 %v\n", label, i+1, res.PerSecond, res.UpcallP99.Round(time.Microsecond))
					}
				}
				return all, nil
			}
			if len(rates) > 0 {
				var pts []loadgen.SweepPoint
				for _, rate := range rates {
					cfg.Rate = rate
					all, err := measure(filepath.Join(out, fmt.Sprintf("admissions-timeline-%g", rate)), fmt.Sprintf("%g/s: ", rate))
					if err != nil {
						return err
					}
					pts = append(pts, loadgen.SweepPoint{Rate: rate, Summary: loadgen.Summarize(all), Runs: all})
				}
				return writeSweep(cmd.OutOrStdout(), out, pts)
			}
			all, err := measure(filepath.Join(out, "admissions-timeline"), "")
			if err != nil {
				return err
			}
			return writeAdmissions(cmd.OutOrStdout(), out, all)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Target, "controller", "", "the controller's API (host:port or unix:/path); empty: start xlane-controller here")
	f.IntVar(&k, "k", 16, "fat-tree arity of the controller started here")
	f.Float64Var(&headroom, "bound-headroom", 0, "the started controller's --bound-headroom")
	f.StringArrayVar(&extra, "controller-arg", nil, "another flag for the started controller (repeat it for more), e.g. --controller-arg=--watch-coalesce=0")
	f.IntVar(&cfg.Preload, "preload", 10_000, "tunnels installed before timing")
	f.IntVar(&cfg.Warmup, "warmup", 0, "of the preloaded tunnels, request this many last at the timed load (the same clients, rate or concurrency), untimed, so that timing starts on a controller running that load")
	f.IntVar(&cfg.Requests, "requests", 3_000, "timed admissions")
	f.IntVar(&cfg.Clients, "clients", 32, "concurrent requests in flight")
	f.IntVar(&gcPercent, "gc-percent", 400, "this process's garbage-collector target (as GOGC; a GOGC variable wins unless this is given): the load generator shares the CPUs with the controller it measures, so it collects less often, as the controller does by default")
	f.IntVar(&cfg.Services, "services", 50, "service identities holding the tunnels, each watching its upcalls")
	f.Uint64Var(&cfg.Seed, "seed", 1, "request mix seed")
	f.Float64Var(&cfg.Rate, "rate", 0, "offer the timed admissions at this many per second (open loop; 0: as fast as answered)")
	f.DurationVar(&cfg.Late, "late", 10*time.Millisecond, "count the upcalls that took longer than this")
	f.Float64SliceVar(&rates, "rates", nil, "sweep: measure at each of these offered rates (comma-separated, per second; --runs times each) and write a table and a plot of the upcall delay's p99 and the CPU per admission by rate (admissions-sweep.txt, .json, .svg, .png)")
	f.IntVar(&runs, "runs", 1, "repeat the whole measurement (a fresh controller each time, when started here) and report the least, median and greatest of each figure")
	f.StringVar(&bin, "bin", "", "folder holding xlane-controller (default: next to this program, else PATH)")
	f.StringVar(&out, "out", "out", "directory for admissions.txt, admissions.json and the controller's log")
	f.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the started controller during the timed admissions to this file (go tool pprof)")
	f.StringVar(&clientProfile, "client-cpuprofile", "", "write a CPU profile of this process (the load generator) over the timed admissions to this file")
	f.StringVar(&traceFile, "trace", "", "write an execution trace of the started controller during the timed admissions to this file (go tool trace; -pprof=sched shows how long goroutines waited for a processor, by where they were woken)")
	f.StringVar(&clientTrace, "client-trace", "", "write an execution trace of this process (the load generator) over the timed admissions to this file")
	f.DurationVar(&profileFor, "cpuprofile-for", 2*time.Second, "how long --cpuprofile and --trace record, from the start of the timed admissions")
	f.IntVar(&cfg.RealtimePriority, "realtime-priority", 0, "run this process (the services) and the controller it starts under SCHED_RR at this priority (1-99; needs root or CAP_SYS_NICE), as xlane-controller --realtime-priority does (0: the normal scheduler)")
	f.DurationVar(&cfg.Probe, "probe", 200*time.Millisecond, "before timing, hash with SHA-256 on one core for this long and report the rate: the machine's speed at the time, which drifts on a VM (0: skip)")
	return cmd
}

var (
	benchAPIListening = regexp.MustCompile(`msg=listening addr=(\S+)`)
	benchMetrics      = regexp.MustCompile(`msg=metrics addr=(\S+)`)
)

// controllerReading reads the controller's finished garbage collections
// (go_gc_duration_seconds counts one per cycle), the histogram of its
// upcalls' waits and its admission batches from its Prometheus metrics.
func controllerReading(ctx context.Context, addr string) (loadgen.ControllerReading, error) {
	// Three families, not compressed: this is read as the timed admissions
	// start, and the whole page gzipped cost the controller some 70 ms of
	// CPU at 10,000 tunnels on a k=16 fat-tree (three gauges for each of
	// its 6,144 links), most of it encoding what this does not read.
	var r loadgen.ControllerReading
	q := url.Values{"name[]": {"go_gc_duration_seconds", metrics.UpcallWaitName, metrics.AdmissionBatchName}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics?"+q.Encode(), nil)
	if err != nil {
		return r, err
	}
	req.Header.Set("Accept", "text/plain")
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("controller metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("controller metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return r, fmt.Errorf("controller metrics: %w", err)
	}
	gc, ok := fams["go_gc_duration_seconds"]
	if !ok || len(gc.GetMetric()) != 1 || gc.GetMetric()[0].GetSummary() == nil {
		return r, errors.New("controller metrics: no go_gc_duration_seconds summary")
	}
	r.GCs = gc.GetMetric()[0].GetSummary().GetSampleCount()
	// A controller without the histogram (an older build) still gives its
	// collections.
	if w, ok := fams[metrics.UpcallWaitName]; ok {
		if len(w.GetMetric()) != 1 || w.GetMetric()[0].GetHistogram() == nil {
			return r, fmt.Errorf("controller metrics: %s is not one histogram", metrics.UpcallWaitName)
		}
		h := w.GetMetric()[0].GetHistogram()
		for _, b := range h.GetBucket() {
			r.UpcallWait = append(r.UpcallWait, loadgen.Bucket{Le: b.GetUpperBound(), Count: b.GetCumulativeCount()})
		}
		if n := len(r.UpcallWait); n == 0 || !math.IsInf(r.UpcallWait[n-1].Le, 1) {
			r.UpcallWait = append(r.UpcallWait, loadgen.Bucket{Le: math.Inf(1), Count: h.GetSampleCount()})
		}
	}
	if b, ok := fams[metrics.AdmissionBatchName]; ok {
		if len(b.GetMetric()) != 1 || b.GetMetric()[0].GetHistogram() == nil {
			return r, fmt.Errorf("controller metrics: %s is not one histogram", metrics.AdmissionBatchName)
		}
		h := b.GetMetric()[0].GetHistogram()
		r.Batches, r.Batched = h.GetSampleCount(), uint64(h.GetSampleSum())
	}
	return r, nil
}

// fetchDebug records the controller's CPU profile (kind "profile") or
// execution trace ("trace") for d from its metrics address (the daemon
// runs with --pprof) into path.
func fetchDebug(ctx context.Context, metrics, kind string, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", metrics, kind, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("controller %s: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("controller %s: %s", kind, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("controller %s: %w", kind, err)
	}
	return f.Close()
}

// startBenchController runs xlane-controller with the memory driver on a
// fat-tree. Monitoring is slowed to once an hour: nobody sends on the
// benchmark's tunnels, and the monitor would end them as idle.
func startBenchController(ctx context.Context, cmd *cobra.Command, bin, out string, k int, headroom float64, extra []string, profile bool) (stop func(), target, metrics string, pid int, err error) {
	exe, err := proc.Find(bin, "xlane-controller")
	if err != nil {
		return nil, "", "", 0, err
	}
	spec, err := topogen.FatTree(k, topogen.Defaults())
	if err != nil {
		return nil, "", "", 0, err
	}
	dir, err := os.MkdirTemp("", "xlane-bench-")
	if err != nil {
		return nil, "", "", 0, err
	}
	data, err := json.Marshal(spec)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "topology.json"), data, 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", "", 0, err
	}
	// Metrics on a loopback port: the collections counted while timing come
	// from there (and the profiler, when asked for).
	args := []string{"--topology", filepath.Join(dir, "topology.json"), "--data-dir", filepath.Join(dir, "data"),
		"--listen", "unix:" + filepath.Join(dir, "api.sock"), "--driver", "memory", "--metrics-addr", "127.0.0.1:0",
		"--monitor-interval", "1h", "--bound-headroom", strconv.FormatFloat(headroom, 'g', -1, 64)}
	if profile {
		args = append(args, "--pprof")
	}
	args = append(args, extra...)
	c := exec.Command(exe, args...)
	logPath := filepath.Join(out, "controller-admissions.log")
	d, err := proc.Start("xlane-controller", c, logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", "", 0, err
	}
	stop = func() {
		if err := d.Stop(); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "stopping xlane-controller: %v\n", err)
		}
		os.RemoveAll(dir)
	}
	m, err := d.Wait(ctx, benchMetrics, 30*time.Second) // logged before the API
	if err != nil {
		stop()
		return nil, "", "", 0, err
	}
	metrics = m[1]
	m, err = d.Wait(ctx, benchAPIListening, 30*time.Second)
	if err != nil {
		stop()
		return nil, "", "", 0, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "xlane-controller (pid %d): k=%d fat-tree, memory driver, bound headroom %g%s, API %s; log %s\n", d.Pid(), k, headroom, strings.Join(append([]string{""}, extra...), " "), m[1], logPath)
	return stop, m[1], metrics, d.Pid(), nil
}

// writeAdmissions prints the runs (and, for several, their summary) and
// writes the same to admissions.txt and as JSON to admissions.json: one
// run's result, or {summary, runs}.
// writeSweep writes the sweep's table to w and admissions-sweep.txt, every
// run to admissions-sweep.json, and its plot.
func writeSweep(w io.Writer, out string, pts []loadgen.SweepPoint) error {
	txtPath, jsonPath := filepath.Join(out, "admissions-sweep.txt"), filepath.Join(out, "admissions-sweep.json")
	loadgen.SweepTable(w, pts)
	var b strings.Builder
	loadgen.SweepTable(&b, pts)
	if err := os.WriteFile(txtPath, []byte(b.String()), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(pts, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		return err
	}
	files, err := loadgen.WriteSweep(filepath.Join(out, "admissions-sweep"), pts)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s\n", strings.Join(append([]string{txtPath, jsonPath}, files...), ", "))
	return nil
}

func writeAdmissions(w io.Writer, out string, all []loadgen.Result) error {
	table := func(to io.Writer) { all[0].Table(to) }
	var v any = all[0]
	if len(all) > 1 {
		sum := loadgen.Summarize(all)
		table = func(to io.Writer) {
			for i, r := range all {
				fmt.Fprintf(to, "run %d\n", i+1)
				r.Table(to)
				fmt.Fprintln(to)
			}
			sum.Table(to)
		}
		v = struct {
			Summary loadgen.Summary  `json:"summary"`
			Runs    []loadgen.Result `json:"runs"`
		}{sum, all}
	}
	table(w)
	txt, err := os.Create(filepath.Join(out, "admissions.txt"))
	if err != nil {
		return err
	}
	table(txt)
	if err := txt.Close(); err != nil {
		return err
	}
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "admissions.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s, %s\n", filepath.Join(out, "admissions.txt"), filepath.Join(out, "admissions.json"))
	return nil
}
