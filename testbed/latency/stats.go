// Package latency is the main job's measurement (paper §6.2–6.3, Table 2):
// one-way latencies of periodic packets across the testbed under cross
// traffic and CPU load, for X-Lane's lane core, for X-Lane without endhost
// tuning (X-Lane₀) and for the regular system, summarised, written as
// text and JSON, and plotted.
package latency

import (
	"math"
	"slices"
	"time"
)

// Summary describes one variant's latencies.
type Summary struct {
	Packets   int           `json:"packets"`
	Min       time.Duration `json:"min_ns"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
	Max       time.Duration `json:"max_ns"`
	Mean      time.Duration `json:"mean_ns"`
	JitterMax time.Duration `json:"jitter_max_ns"` // δmax: max − min
	// RelJitter is (max − min) / mean.
	RelJitter float64 `json:"relative_jitter"`
	// PViolate is the paper's bound on the probability that among the next
	// 100,000 packets one exceeds 10 × p99 (§6.3; i.i.d. assumption).
	PViolate float64 `json:"p_10x_p99_in_100k"`
}

// Summarize computes the summary of latencies (it sorts them).
func Summarize(lat []time.Duration) Summary {
	if len(lat) == 0 {
		return Summary{}
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(math.Ceil(p*float64(len(lat))))-1] }
	var sum, sq float64
	for _, d := range lat {
		sum += float64(d)
	}
	mean := sum / float64(len(lat))
	for _, d := range lat {
		sq += (float64(d) - mean) * (float64(d) - mean)
	}
	s := Summary{Packets: len(lat), Min: lat[0], P50: q(0.5), P99: q(0.99), P999: q(0.999), Max: lat[len(lat)-1],
		Mean: time.Duration(mean), JitterMax: lat[len(lat)-1] - lat[0]}
	if mean > 0 {
		s.RelJitter = float64(s.JitterMax) / mean
	}
	s.PViolate = ViolationBound(mean, sq/float64(len(lat)), 10*float64(s.P99), 100_000)
	return s
}

// ViolationBound is §6.3's metric: with P1 ≤ σ²/(λ − mean)² for one packet,
// the chance that one of n exceeds λ is at most 1 − (1 − P1)^n.
func ViolationBound(mean, variance, lambda float64, n int) float64 {
	if lambda <= mean {
		return 1
	}
	p1 := min(1, variance/((lambda-mean)*(lambda-mean)))
	return 1 - math.Pow(1-p1, float64(n))
}

// Percentiles are the tail points the plots show.
var Percentiles = []float64{50, 90, 99, 99.9, 99.99, 99.999, 100}

// At returns the latency at percentile p of sorted latencies.
func At(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
