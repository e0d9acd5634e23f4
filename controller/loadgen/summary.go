package loadgen

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Summary is several runs of one benchmark: the least, median and
// greatest of each figure over the runs (on a machine whose speed drifts,
// one run says little).
type Summary struct {
	Runs          int    `json:"runs"`
	PerSecond     Spread `json:"admissions_per_second"`
	LatencyP99    Spread `json:"latency_p99_ns"`
	UpcallP50     Spread `json:"upcall_p50_ns"`
	UpcallP99     Spread `json:"upcall_p99_ns"`
	ControllerCPU Spread `json:"controller_cpu_per_admission_ns"`
	ClientCPU     Spread `json:"client_cpu_per_admission_ns"`
	MachineMBps   Spread `json:"machine_sha256_mb_per_s"`
	MachineMemNs  Spread `json:"machine_memory_load_ns"`
	ControllerGCs Spread `json:"controller_gc_cycles"` // -1s: not known
	// ControllerWaitP99 is the controller's share of the upcall delay
	// (Result.ControllerWait), per run and pooled over the runs'
	// histograms (0 where not known).
	ControllerWaitP99    Spread        `json:"controller_upcall_wait_p99_ns"`
	ControllerWaitPooled time.Duration `json:"controller_upcall_wait_pooled_p99_ns,omitempty"`
	// Pooled is the upcall delay over all runs' upcalls together. One
	// short run's p99 rests on its slowest 1 %, often a single stall of
	// the machine or a collection that lands in it; pooled, each such
	// event weighs as often as it happens.
	Pooled Pooled `json:"upcalls_pooled"`
}

// Pooled is a delay distribution over several runs.
type Pooled struct {
	Upcalls   int           `json:"upcalls"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
	Max       time.Duration `json:"max_ns"`
	Late      int           `json:"late"` // longer than LateAfter
	LateAfter time.Duration `json:"late_after_ns"`
}

func pool(rs []Result) Pooled {
	var all []time.Duration
	for _, r := range rs {
		all = append(all, r.Delays...)
	}
	slices.Sort(all)
	p := Pooled{Upcalls: len(all), LateAfter: rs[0].LateAfter}
	if len(all) > 0 {
		p.P50, p.P99, p.P999, p.Max = pct(all, 50), pct(all, 99), perMille(all, 999), all[len(all)-1]
	}
	p.Late = late(all, p.LateAfter)
	return p
}

// Spread is the least, median and greatest of a figure over runs (the
// median of an even count is the upper middle one).
type Spread struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func spread(rs []Result, f func(Result) float64) Spread {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return Spread{Min: v[0], Median: v[len(v)/2], Max: v[len(v)-1]}
}

// Summarize the runs rs (at least one).
func Summarize(rs []Result) Summary {
	if len(rs) == 0 {
		return Summary{}
	}
	d := func(f func(Result) time.Duration) func(Result) float64 {
		return func(r Result) float64 { return float64(f(r)) }
	}
	return Summary{
		Runs:                 len(rs),
		PerSecond:            spread(rs, func(r Result) float64 { return r.PerSecond }),
		LatencyP99:           spread(rs, d(func(r Result) time.Duration { return r.LatencyP99 })),
		UpcallP50:            spread(rs, d(func(r Result) time.Duration { return r.UpcallP50 })),
		UpcallP99:            spread(rs, d(func(r Result) time.Duration { return r.UpcallP99 })),
		ControllerCPU:        spread(rs, d(func(r Result) time.Duration { return r.ControllerCPU })),
		ClientCPU:            spread(rs, d(func(r Result) time.Duration { return r.ClientCPU })),
		MachineMBps:          spread(rs, func(r Result) float64 { return r.MachineMBps }),
		MachineMemNs:         spread(rs, func(r Result) float64 { return r.MachineMemNs }),
		ControllerGCs:        spread(rs, func(r Result) float64 { return float64(r.ControllerGCs) }),
		Pooled:               pool(rs),
		ControllerWaitP99:    spread(rs, d(func(r Result) time.Duration { return r.ControllerWaitP99 })),
		ControllerWaitPooled: poolWaits(rs),
	}
}

// poolWaits is the p99 of the runs' controller histograms added up, 0 if
// any run lacks one.
func poolWaits(rs []Result) time.Duration {
	var h Histogram
	for _, r := range rs {
		if r.ControllerWait.Count() == 0 {
			return 0
		}
		var err error
		if h, err = h.Add(r.ControllerWait); err != nil {
			return 0 // controllers of different builds: no pooling
		}
	}
	return h.Quantile(0.99)
}

// Table writes s for people: one row per figure, min / median / max.
func (s Summary) Table(w io.Writer) {
	fmt.Fprintf(w, "%d runs                    %12s %12s %12s\n", s.Runs, "min", "median", "max")
	row := func(name string, sp Spread, f func(float64) string) {
		fmt.Fprintf(w, "%-27s %12s %12s %12s\n", name, f(sp.Min), f(sp.Median), f(sp.Max))
	}
	rate := func(v float64) string { return fmt.Sprintf("%.0f/s", v) }
	dur := func(v float64) string { return time.Duration(v).Round(time.Microsecond).String() }
	row("throughput", s.PerSecond, rate)
	row("request round trip p99", s.LatencyP99, dur)
	row("upcall delay p50", s.UpcallP50, dur)
	row("upcall delay p99", s.UpcallP99, dur)
	if s.ControllerCPU.Max > 0 {
		row("controller CPU/admission", s.ControllerCPU, dur)
	}
	row("load generator CPU/admission", s.ClientCPU, dur)
	if s.MachineMBps.Max > 0 {
		row("machine SHA-256 (one core)", s.MachineMBps, func(v float64) string { return fmt.Sprintf("%.0f MB/s", v) })
		row("machine memory load", s.MachineMemNs, func(v float64) string { return fmt.Sprintf("%.0f ns", v) })
	}
	if s.ControllerGCs.Min >= 0 {
		row("controller collections", s.ControllerGCs, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	}
	if s.ControllerWaitPooled > 0 {
		row("in the controller p99", s.ControllerWaitP99, dur)
	}
	if p := s.Pooled; p.Upcalls > 0 {
		fmt.Fprintf(w, "upcall delay, all %d runs' %d upcalls pooled: p50 %v  p99 %v  p99.9 %v  max %v; %d (%.2f%%) longer than %v\n",
			s.Runs, p.Upcalls, dur(float64(p.P50)), dur(float64(p.P99)), dur(float64(p.P999)), dur(float64(p.Max)),
			p.Late, 100*float64(p.Late)/float64(p.Upcalls), p.LateAfter)
	}
	if s.ControllerWaitPooled > 0 {
		fmt.Fprintf(w, "in the controller, all runs' histograms pooled: p99 %v\n", dur(float64(s.ControllerWaitPooled)))
	}
}
