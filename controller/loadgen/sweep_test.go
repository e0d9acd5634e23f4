package loadgen

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSweep(t *testing.T) {
	inf := math.Inf(1)
	point := func(rate float64, p99 time.Duration, late int, ctlCPU time.Duration) SweepPoint {
		// 1,000 upcalls a run, of which late took 20 ms; the controller held
		// each 1 ms but one in a hundred 4 ms.
		delays := make([]time.Duration, 1000)
		for i := range delays {
			delays[i] = p99 / 2
			if i >= 1000-late {
				delays[i] = 20 * time.Millisecond
			}
		}
		wait := Histogram{{0.001, 990}, {0.004, 1000}, {inf, 1000}}
		r := Result{Offered: rate, PerSecond: rate * 0.99, Upcalls: 1000, Delays: delays, LateAfter: 10 * time.Millisecond, Late: late,
			ControllerCPU: ctlCPU, ClientCPU: ctlCPU / 2, ControllerWait: wait, ControllerWaitP99: wait.Quantile(0.99), ControllerBatch: rate / 500}
		rs := []Result{r, r}
		return SweepPoint{Rate: rate, Summary: Summarize(rs), Runs: rs}
	}
	pts := []SweepPoint{point(500, 4*time.Millisecond, 0, 800*time.Microsecond), point(1000, 6*time.Millisecond, 5, 600*time.Microsecond), point(2000, 8*time.Millisecond, 30, 500*time.Microsecond)}
	var b strings.Builder
	SweepTable(&b, pts)
	for _, want := range []string{
		"      500       495         2ms   0.00%           1ms       800µs       400µs       1.0",
		"     2000      1980        20ms   3.00%           1ms       500µs       250µs       4.0",
		"(2 run(s) a rate;",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	base := filepath.Join(t.TempDir(), "sweep")
	files, err := WriteSweep(base, pts)
	if err != nil || len(files) != 2 {
		t.Fatalf("files %v, %v", files, err)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil || !strings.Contains(string(svg), "in the controller (commit to gRPC)") || !strings.Contains(string(svg), "load generator (the services)") {
		t.Fatalf("svg (%d bytes, %v) lacks a legend", len(svg), err)
	}
	if st, err := os.Stat(base + ".png"); err != nil || st.Size() < 1000 {
		t.Fatalf("png: %v", err)
	}
	if _, err := WriteSweep(base, pts[:1]); err == nil {
		t.Fatal("one rate: no error")
	}
	if strings.Contains(b.String(), "SCHED_RR") {
		t.Errorf("a sweep under the normal scheduler names SCHED_RR:\n%s", b.String())
	}
	// Under SCHED_RR the table's note and the plot's title say so.
	for i := range pts {
		for j := range pts[i].Runs {
			pts[i].Runs[j].RealtimePriority = 2
		}
	}
	b.Reset()
	SweepTable(&b, pts)
	if !strings.Contains(b.String(), "their medians; SCHED_RR priority 2)") {
		t.Errorf("table does not name the scheduling:\n%s", b.String())
	}
	if _, err := WriteSweep(base, pts); err != nil {
		t.Fatal(err)
	}
	if svg, err := os.ReadFile(base + ".svg"); err != nil || !strings.Contains(string(svg), "SCHED_RR priority 2") {
		t.Errorf("svg title does not name the scheduling (%v)", err)
	}
}
