package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xlane/xlane/controller/loadgen"
	"github.com/xlane/xlane/controller/rtsched"
)

// TestBenchAdmissionsRealtime runs `xlane bench admissions
// --realtime-priority` as a process of its own (it changes the scheduling
// of the whole process) and checks that the load generator and the
// controller it started both ran under SCHED_RR and that the result says
// so.
func TestBenchAdmissionsRealtime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts xlane and xlane-controller")
	}
	if !rtsched.Permitted() {
		t.Skip("SCHED_RR not permitted here (needs root or CAP_SYS_NICE)")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", ".", "../xlane-controller").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "xlane"), "bench", "admissions", "--bin", bin, "--out", out, "--k", "4",
		"--preload", "100", "--requests", "200", "--clients", "4", "--services", "3", "--probe", "0", "--realtime-priority", "1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr.String())
	}
	if !strings.Contains(string(stdout), "scheduling          SCHED_RR priority 1 (--realtime-priority)") {
		t.Errorf("the table does not name the scheduling:\n%s", stdout)
	}
	if !strings.Contains(stderr.String(), "load generator: ") || !strings.Contains(stderr.String(), " threads under SCHED_RR priority 1") {
		t.Errorf("the load generator did not report its threads:\n%s", stderr.String())
	}
	log, err := os.ReadFile(filepath.Join(out, "controller-admissions.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `msg="real-time scheduling" policy=SCHED_RR priority=1`) {
		t.Errorf("the controller did not run under SCHED_RR; its log:\n%s", log)
	}
	var res loadgen.Result
	readJSON(t, filepath.Join(out, "admissions.json"), &res)
	if res.RealtimePriority != 1 || res.Admitted+res.Rejected != 200 {
		t.Errorf("result: realtime priority %d, %d admitted and %d rejected of 200", res.RealtimePriority, res.Admitted, res.Rejected)
	}
	if _, _, err := run(t, "bench", "admissions", "--realtime-priority", "100", "--out", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--realtime-priority: 100") {
		t.Errorf("--realtime-priority 100: %v; want the flag named", err)
	}
}
