package loadgen

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ControllerReading is what the controller's metrics say at one moment.
type ControllerReading struct {
	GCs uint64 // garbage collections finished
	// UpcallWait is the controller's histogram of its share of the upcall
	// delay: from a change's commit until its response went to gRPC
	// (metrics.UpcallWaitName).
	UpcallWait Histogram
	// Batches of admissions the controller served, and the requests in
	// them (xlane_admission_batch_size's count and sum).
	Batches, Batched uint64
}

// Histogram is a Prometheus histogram: cumulative counts by upper bound,
// bounds ascending, the last +Inf.
type Histogram []Bucket

// Bucket counts the observations at most Le seconds.
type Bucket struct {
	Le    float64
	Count uint64
}

// bucketJSON writes the bound as Prometheus does, a string: JSON has no
// +Inf.
type bucketJSON struct {
	Le    string `json:"le"`
	Count uint64 `json:"count"`
}

// MarshalJSON implements json.Marshaler.
func (b Bucket) MarshalJSON() ([]byte, error) {
	return json.Marshal(bucketJSON{strconv.FormatFloat(b.Le, 'g', -1, 64), b.Count})
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var j bucketJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	le, err := strconv.ParseFloat(j.Le, 64)
	if err != nil {
		return fmt.Errorf("histogram bucket: le %q: %w", j.Le, err)
	}
	b.Le, b.Count = le, j.Count
	return nil
}

// Count is the number of observations.
func (h Histogram) Count() uint64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Count
}

// Sub is what was observed between reading base and reading h.
func (h Histogram) Sub(base Histogram) (Histogram, error) {
	if len(base) == 0 {
		return h, nil
	}
	if len(base) != len(h) {
		return nil, fmt.Errorf("histogram: %d buckets, %d before", len(h), len(base))
	}
	out := make(Histogram, len(h))
	for i := range h {
		if h[i].Le != base[i].Le || h[i].Count < base[i].Count {
			return nil, fmt.Errorf("histogram: bucket %d (le %g, %d) does not follow le %g, %d", i, h[i].Le, h[i].Count, base[i].Le, base[i].Count)
		}
		out[i] = Bucket{h[i].Le, h[i].Count - base[i].Count}
	}
	return out, nil
}

// Add sums two histograms of the same buckets (pooling runs).
func (h Histogram) Add(o Histogram) (Histogram, error) {
	if len(h) == 0 {
		return o, nil
	}
	if len(o) != len(h) {
		return nil, fmt.Errorf("histogram: adding %d buckets to %d", len(o), len(h))
	}
	out := make(Histogram, len(h))
	for i := range h {
		if h[i].Le != o[i].Le {
			return nil, fmt.Errorf("histogram: bucket %d bounds %g and %g", i, h[i].Le, o[i].Le)
		}
		out[i] = Bucket{h[i].Le, h[i].Count + o[i].Count}
	}
	return out, nil
}

// Quantile estimates the q-quantile (0 < q ≤ 1) as Prometheus'
// histogram_quantile does: linearly within the bucket that holds it, from
// the bucket below's bound (0 for the first). In the +Inf bucket it is the
// highest finite bound. 0 without observations.
func (h Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	lo, below := 0.0, uint64(0)
	for _, b := range h {
		if float64(b.Count) >= rank {
			if math.IsInf(b.Le, 1) {
				return seconds(lo)
			}
			in := b.Count - below
			if in == 0 {
				return seconds(b.Le)
			}
			return seconds(lo + (b.Le-lo)*(rank-float64(below))/float64(in))
		}
		lo, below = b.Le, b.Count
	}
	return seconds(lo)
}

// Above estimates how many observations exceeded d, linearly within the
// bucket that holds d (exact where d is a bound).
func (h Histogram) Above(d time.Duration) float64 {
	n := h.Count()
	s := d.Seconds()
	lo, below := 0.0, uint64(0)
	for _, b := range h {
		if s <= b.Le {
			if math.IsInf(b.Le, 1) {
				return float64(n - below)
			}
			at := float64(below) + float64(b.Count-below)*(s-lo)/(b.Le-lo)
			return float64(n) - at
		}
		lo, below = b.Le, b.Count
	}
	return 0
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
