package latency

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var lat []time.Duration
	for i := 1000; i >= 1; i-- { // 1..1000 µs, reversed: Summarize sorts
		lat = append(lat, time.Duration(i)*time.Microsecond)
	}
	s := Summarize(lat)
	us := time.Microsecond
	if s.Packets != 1000 || s.Min != us || s.P50 != 500*us || s.P99 != 990*us || s.P999 != 999*us || s.Max != 1000*us || s.Mean != 500500*time.Nanosecond {
		t.Fatalf("summary %+v", s)
	}
	if s.JitterMax != 999*us || math.Abs(s.RelJitter-999.0/500.5) > 1e-9 {
		t.Fatalf("jitter %v, relative %v", s.JitterMax, s.RelJitter)
	}
	// σ² of 1..1000 µs is (1000²−1)/12 µs²; λ = 9900 µs.
	v := (1e6 - 1) / 12 * 1e6
	p1 := v / ((9900e3 - 500.5e3) * (9900e3 - 500.5e3))
	if want := 1 - math.Pow(1-p1, 1e5); math.Abs(s.PViolate-want) > 1e-9 {
		t.Fatalf("P = %v, want %v", s.PViolate, want)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("summary of nothing")
	}
	if ViolationBound(10, 1, 5, 10) != 1 {
		t.Fatal("a bound below the mean is always violated")
	}
	if At([]time.Duration{1, 2, 3, 4}, 50) != 2 || At([]time.Duration{1, 2, 3, 4}, 100) != 4 {
		t.Fatal("At")
	}
}
