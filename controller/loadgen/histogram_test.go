package loadgen

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	// 100 observations: 90 at most 1 ms, 8 in (1, 10] ms, 2 above 10 ms.
	h := Histogram{{0.001, 90}, {0.01, 98}, {0.1, 100}, {math.Inf(1), 100}}
	base := Histogram{{0.001, 10}, {0.01, 10}, {0.1, 10}, {math.Inf(1), 10}}
	sum, err := h.Add(base)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sum.Sub(base)
	if err != nil {
		t.Fatal(err)
	}
	if d.Count() != 100 {
		t.Fatalf("count %d, want 100", d.Count())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 555 * time.Microsecond},   // 50 of the first 90, in (0, 1 ms]
		{0.94, 5500 * time.Microsecond}, // 4 of 8 in (1, 10] ms
		{0.99, 55 * time.Millisecond},   // 1 of 2 in (10, 100] ms
		{1, 100 * time.Millisecond},     // the top of the last finite bucket
	} {
		if got := d.Quantile(c.q); (got - c.want).Abs() > time.Microsecond {
			t.Errorf("quantile %v: %v, want %v", c.q, got, c.want)
		}
	}
	if got := d.Above(10 * time.Millisecond); got != 2 {
		t.Errorf("above 10 ms: %v, want 2 (a bound: exact)", got)
	}
	if got := d.Above(55 * time.Millisecond); math.Abs(got-1) > 1e-9 {
		t.Errorf("above 55 ms: %v, want 1 (half the bucket)", got)
	}
	if got := (Histogram{{0.001, 0}, {math.Inf(1), 3}}).Quantile(0.5); got != time.Millisecond {
		t.Errorf("in +Inf: %v, want the highest finite bound", got)
	}
	if _, err := d.Sub(Histogram{{0.002, 1}, {0.01, 1}, {0.1, 1}, {math.Inf(1), 1}}); err == nil {
		t.Error("bounds differ: no error")
	}
	if _, err := base.Sub(h); err == nil {
		t.Error("counts went down: no error")
	}
	if _, err := d.Add(Histogram{{0.001, 1}}); err == nil {
		t.Error("bucket counts differ: no error")
	}
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(data, &back); err != nil || !slices.Equal(back, d) {
		t.Errorf("JSON %s read back as %v, %v", data, back, err)
	}
	if err := json.Unmarshal([]byte(`[{"le":"soon","count":1}]`), &back); err == nil || !strings.Contains(err.Error(), `le "soon"`) {
		t.Errorf("a bound not a number: %v", err)
	}
	if (Histogram{}).Quantile(0.99) != 0 || (Histogram{}).Above(time.Millisecond) != 0 {
		t.Error("empty histogram: want zeros")
	}
}
