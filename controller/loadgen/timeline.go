package loadgen

import (
	"slices"
	"time"
)

// TimelineBin is the upcalls committed in one slice of the timed window:
// how many, and how long they took to reach their services. A run's p99
// is often made by a few such slices (a stall in which nothing commits or
// arrives, then the backlog), which the run's percentiles do not show.
type TimelineBin struct {
	Start     time.Duration `json:"start_ns"` // from the start of timing
	Committed int           `json:"committed"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
}

// TimelineWidth is the slice of a Result's Timeline.
const TimelineWidth = 50 * time.Millisecond

// timeline bins upcalls by commit time from start (Unix ns) to end; empty
// slices are kept, with zero delays (nothing committed then).
func timeline(ups []upcall, start, end int64, width time.Duration) []TimelineBin {
	if end < start || width <= 0 {
		return nil
	}
	n := int((end-start)/int64(width)) + 1
	delays := make([][]time.Duration, n)
	for _, u := range ups {
		if u.at < start || u.at > end {
			continue
		}
		i := int((u.at - start) / int64(width))
		delays[i] = append(delays[i], u.delay)
	}
	out := make([]TimelineBin, n)
	for i, ds := range delays {
		out[i] = TimelineBin{Start: time.Duration(i) * width, Committed: len(ds)}
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		out[i].P50, out[i].P99, out[i].Max = pct(ds, 50), pct(ds, 99), ds[len(ds)-1]
	}
	return out
}
