package main

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/trace"
	"slices"
	"strings"
	"testing"

	"github.com/xlane/xlane/controller/loadgen"
)

// TestBenchAdmissionsDaemon runs `xlane bench admissions` against the
// xlane-controller it starts (a real process on a Unix socket), with both
// CPU profiles and both execution traces, and checks what it writes.
func TestBenchAdmissionsDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts xlane-controller")
	}
	bin := buildController(t)
	out := t.TempDir()
	prof, clientProf := filepath.Join(out, "controller.prof"), filepath.Join(out, "client.prof")
	ctlTrace, clientTrace := filepath.Join(out, "controller.trace"), filepath.Join(out, "client.trace")
	stdout, stderr, err := run(t, "bench", "admissions", "--bin", bin, "--out", out, "--k", "4",
		"--preload", "100", "--warmup", "50", "--requests", "300", "--clients", "4", "--services", "3",
		"--cpuprofile", prof, "--cpuprofile-for", "1s", "--client-cpuprofile", clientProf, "--trace", ctlTrace, "--client-trace", clientTrace)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"admissions/s", "CPU per admission   controller", "controller memory   peak RSS", "collections         controller ", "in the controller   p99", "admission batches"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	var res loadgen.Result
	readJSON(t, filepath.Join(out, "admissions.json"), &res)
	if res.Preloaded != 100 || res.Admitted+res.Rejected != 300 || res.ControllerCPU <= 0 || res.ClientCPU <= 0 || res.ControllerPeakRSS < 1<<20 || res.ControllerGCs < 0 {
		t.Fatalf("result: %+v", res)
	}
	// The controller's histogram spans the measured upcalls' sends (from
	// before the warm-up to after the last came in; a wait is recorded
	// just after its response went to gRPC, so the last few may follow
	// their arrival).
	if n := res.ControllerWait.Count(); res.Upcalls == 0 || n < uint64(res.Upcalls-res.Upcalls/100) || res.ControllerWaitP99 <= 0 {
		t.Fatalf("%d upcalls measured, %d in the controller's histogram (p99 %v)", res.Upcalls, n, res.ControllerWaitP99)
	}
	for _, p := range []string{prof, clientProf, filepath.Join(out, "controller-admissions.log"), filepath.Join(out, "admissions-timeline.svg"), filepath.Join(out, "admissions-timeline.png")} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (empty or missing)", p, err)
		}
	}
	if trace.IsEnabled() {
		t.Error("the load generator's trace is still running after the command")
	}
	// An execution trace starts with its header ("go 1.26 trace").
	for _, p := range []string{ctlTrace, clientTrace} {
		if data, err := os.ReadFile(p); err != nil || !strings.HasPrefix(string(data), "go 1.") || len(data) < 1000 {
			t.Errorf("%s: %d bytes, %v: not an execution trace", p, len(data), err)
		}
	}
}

// --runs repeats the measurement with a fresh controller each time and
// writes every run and their summary.
func TestBenchAdmissionsRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts xlane-controller")
	}
	bin := buildController(t)
	out := t.TempDir()
	stdout, stderr, err := run(t, "bench", "admissions", "--bin", bin, "--out", out, "--k", "4",
		"--preload", "50", "--requests", "100", "--clients", "4", "--services", "2", "--runs", "2")
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "2 runs") || !strings.Contains(stdout, "run 2") || strings.Count(stderr, "xlane-controller (pid") != 2 {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	var got struct {
		Summary loadgen.Summary  `json:"summary"`
		Runs    []loadgen.Result `json:"runs"`
	}
	readJSON(t, filepath.Join(out, "admissions.json"), &got)
	if got.Summary.Runs != 2 || len(got.Runs) != 2 || got.Summary.PerSecond.Min <= 0 || got.Summary.PerSecond.Min > got.Summary.PerSecond.Max {
		t.Fatalf("admissions.json: %+v", got)
	}
	if p := got.Summary.Pooled; p.Upcalls != got.Runs[0].Upcalls+got.Runs[1].Upcalls || p.Late != got.Runs[0].Late+got.Runs[1].Late || !strings.Contains(stdout, "upcalls pooled") {
		t.Fatalf("pooled upcalls %+v, runs' %d and %d\n%s", p, got.Runs[0].Upcalls, got.Runs[1].Upcalls, stdout)
	}
	for _, f := range []string{"admissions-timeline-1.svg", "admissions-timeline-2.png"} { // one plot per run
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (empty or missing)", f, err)
		}
	}
	if _, _, err := run(t, "bench", "admissions", "--out", t.TempDir(), "--runs", "0"); err == nil || !strings.Contains(err.Error(), "--runs") {
		t.Fatalf("--runs 0: %v", err)
	}
	if _, _, err := run(t, "bench", "admissions", "--out", t.TempDir(), "--late", "0s"); err == nil || !strings.Contains(err.Error(), "--late") {
		t.Fatalf("--late 0s: %v", err)
	}
	if _, _, err := run(t, "bench", "admissions", "--out", t.TempDir(), "--preload", "10", "--warmup", "11"); err == nil || !strings.Contains(err.Error(), "--warmup") {
		t.Fatalf("--warmup above --preload: %v", err)
	}
}

// buildController builds xlane-controller into a temporary folder.
func buildController(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../xlane-controller").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// controllerReading reads the controller's collections and upcall waits
// from its metrics, asks for just those families, and names what is wrong
// when it cannot.
func TestControllerReading(t *testing.T) {
	const gc = "# TYPE go_gc_duration_seconds summary\ngo_gc_duration_seconds{quantile=\"0\"} 1e-05\ngo_gc_duration_seconds_sum 0.002\ngo_gc_duration_seconds_count 17\n"
	const batches = "# TYPE xlane_admission_batch_size histogram\nxlane_admission_batch_size_bucket{le=\"1\"} 2\nxlane_admission_batch_size_bucket{le=\"+Inf\"} 4\nxlane_admission_batch_size_sum 11\nxlane_admission_batch_size_count 4\n"
	const waits = "# TYPE xlane_upcall_wait_seconds histogram\nxlane_upcall_wait_seconds_bucket{le=\"0.001\"} 90\nxlane_upcall_wait_seconds_bucket{le=\"0.01\"} 99\nxlane_upcall_wait_seconds_bucket{le=\"+Inf\"} 100\nxlane_upcall_wait_seconds_sum 0.3\nxlane_upcall_wait_seconds_count 100\n"
	for _, c := range []struct {
		body, want string
		gcs        uint64
		waits      loadgen.Histogram
		batched    uint64
	}{
		{gc + waits + batches, "", 17, loadgen.Histogram{{Le: 0.001, Count: 90}, {Le: 0.01, Count: 99}, {Le: math.Inf(1), Count: 100}}, 11},
		{gc, "", 17, nil, 0}, // a controller without the histograms
		{"# TYPE go_goroutines gauge\ngo_goroutines 12\n", "no go_gc_duration_seconds summary", 0, nil, 0},
		{"go_gc_duration_seconds_count many\n", "controller metrics: text format parsing error", 0, nil, 0},
		{gc + "# TYPE xlane_upcall_wait_seconds gauge\nxlane_upcall_wait_seconds 3\n", "xlane_upcall_wait_seconds is not one histogram", 0, nil, 0},
		{gc + "# TYPE xlane_admission_batch_size counter\nxlane_admission_batch_size 3\n", "xlane_admission_batch_size is not one histogram", 0, nil, 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" || !slices.Equal(r.URL.Query()["name[]"], []string{"go_gc_duration_seconds", "xlane_upcall_wait_seconds", "xlane_admission_batch_size"}) {
				http.Error(w, "want the three families: "+r.URL.String(), http.StatusBadRequest)
				return
			}
			io.WriteString(w, c.body)
		}))
		r, err := controllerReading(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
		srv.Close()
		if c.want == "" && (err != nil || r.GCs != c.gcs || !slices.Equal(r.UpcallWait, c.waits) || r.Batched != c.batched || r.Batches != c.batched/11*4) || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("body %q: %+v, %v; want %d and %v, error %q", c.body, r, err, c.gcs, c.waits, c.want)
		}
	}
}

// --rates sweeps the offered rate: each rate measured --runs times, one
// row and one point a rate.
func TestBenchAdmissionsSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts xlane-controller")
	}
	bin := buildController(t)
	out := t.TempDir()
	stdout, stderr, err := run(t, "bench", "admissions", "--bin", bin, "--out", out, "--k", "4",
		"--preload", "50", "--requests", "60", "--clients", "4", "--services", "2", "--rates", "150,300")
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if strings.Count(stderr, "xlane-controller (pid") != 2 || !strings.Contains(stderr, "150/s: run 1 of 1") || !strings.Contains(stderr, "300/s: run 1 of 1") {
		t.Fatalf("one controller a rate:\n%s", stderr)
	}
	var pts []loadgen.SweepPoint
	readJSON(t, filepath.Join(out, "admissions-sweep.json"), &pts)
	if len(pts) != 2 || pts[0].Rate != 150 || pts[1].Rate != 300 || len(pts[1].Runs) != 1 || pts[1].Runs[0].Offered != 300 || pts[0].Summary.PerSecond.Median > 160 {
		t.Fatalf("sweep points: %+v", pts)
	}
	txt, err := os.ReadFile(filepath.Join(out, "admissions-sweep.txt"))
	if err != nil || !strings.Contains(string(txt), "offered/s") || strings.Count(string(txt), "\n") != 4 || !strings.Contains(stdout, string(txt)) {
		t.Fatalf("admissions-sweep.txt (%v):\n%s\nstdout:\n%s", err, txt, stdout)
	}
	for _, f := range []string{"admissions-sweep.svg", "admissions-sweep.png", "admissions-timeline-150.svg", "admissions-timeline-300.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (empty or missing)", f, err)
		}
	}
	for _, c := range []struct{ args, want string }{
		{"--rates 100,200 --rate 100", "--rate and --rates"},
		{"--rates 100", "at least two rates"},
		{"--rates 100,-5", "each must be above 0"},
		{"--rates 100,200 --cpuprofile x.prof", "not with --rates"},
	} {
		if _, _, err := run(t, append([]string{"bench", "admissions", "--out", t.TempDir()}, strings.Fields(c.args)...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.args, err, c.want)
		}
	}
}

// readJSON decodes the JSON file at path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
