package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/xlane/xlane/controller/config"
	"github.com/xlane/xlane/testbed"
	"github.com/xlane/xlane/testbed/ovs"
)

// TestTestbedCLI brings a two-host testbed up without a controller, looks
// at it, runs commands in a host, sends cross traffic, kills its
// ovs-vswitchd (as a crash would) and takes it down: nothing may be left.
func TestTestbedCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, Open vSwitch)")
	}
	if err := ovs.Available(); err != nil {
		t.Skip(err.Error())
	}
	dir := t.TempDir()
	topo := filepath.Join(dir, "ls.json")
	out, _, err := run(t, "te", "gen", "leafspine", "--leaves", "1", "--spines", "1", "--hosts-per-leaf", "2", "--bandwidth", "100000000")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(topo, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := []string{"--name", "cli", "--dir", filepath.Join(dir, "tb")}
	cmd := func(args ...string) string {
		t.Helper()
		out, stderr, err := run(t, append(append([]string{"testbed"}, tb...), args...)...)
		if err != nil {
			t.Fatalf("xlane testbed %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	if out := cmd("up", "--topology", topo, "--controller", "127.0.0.1:1"); !strings.Contains(out, "2 hosts, 2 bridges") {
		t.Errorf("up: %s", out)
	}
	down := false
	defer func() {
		if !down {
			run(t, append([]string{"testbed", "down"}, tb...)...)
		}
	}()
	if _, _, err := run(t, append([]string{"testbed", "up", "--topology", topo}, tb...)...); err == nil || !strings.Contains(err.Error(), "up already") {
		t.Errorf("second up: %v", err)
	}
	st := cmd("status")
	for _, want := range []string{"h1", "xl-cli-h1", "10.1.0.2", "leaf0", "0000000000000002", "ovs-vswitchd running: true"} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	if out := cmd("exec", "h2", "--", "ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, "10.1.0.3/32") {
		t.Errorf("exec in h2: %s", out)
	}
	if out := cmd("load", "--from", "h1", "--to", "h2", "--rate", "10%", "--duration", "300ms"); !strings.Contains(out, "h1 → h2:9") {
		t.Errorf("load: %s", out)
	}
	if _, _, err := run(t, append([]string{"testbed", "load", "--from", "h1", "--to", "h9"}, tb...)...); err == nil || !strings.Contains(err.Error(), "h9") {
		t.Errorf("load to a missing host: %v", err)
	}
	// A crash: ovs-vswitchd dies; down must still remove everything.
	pid, err := os.ReadFile(filepath.Join(dir, "tb", "ovs", "vswitchd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("kill", "-9", strings.TrimSpace(string(pid))).Run(); err != nil {
		t.Fatal(err)
	}
	cmd("down")
	down = true
	ns, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-br", "link").Output()
	if strings.Contains(string(ns), "xl-cli-") || strings.Contains(string(links), "xlcli") {
		t.Errorf("left behind:\n%s\n%s", ns, links)
	}
	if _, err := os.Stat(filepath.Join(dir, "tb")); !os.IsNotExist(err) {
		t.Errorf("state folder left behind: %v", err)
	}
	if _, _, err := run(t, append([]string{"testbed", "status"}, tb...)...); err == nil || !strings.Contains(err.Error(), "not up") {
		t.Errorf("status after down: %v", err)
	}
}

// TestTestbedNeedsRoot runs the CLI as nobody: one line saying why.
func TestTestbedNeedsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		out, _, err := run(t, "testbed", "status")
		if err == nil || !strings.Contains(err.Error(), "needs root") {
			t.Fatalf("status without root: %v %s", err, out)
		}
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed: cannot drop root")
	}
	bin := filepath.Join(t.TempDir(), "xlane")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "testbed", "status").CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err == nil || len(lines) != 1 || !strings.Contains(lines[0], "needs root") {
		t.Errorf("as nobody: err=%v, output:\n%s", err, out)
	}
}

// TestTestbedCLIBMv2 brings a two-host testbed up on BMv2, checks the
// controller configuration it writes, crashes one switch process and
// takes the testbed down: no switch process, namespace or link may stay.
func TestTestbedCLIBMv2(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if err := testbed.BMv2Available(); err != nil {
		t.Skip(err.Error())
	}
	dir := t.TempDir()
	out, _, err := run(t, "te", "gen", "leafspine", "--leaves", "2", "--spines", "1", "--hosts-per-leaf", "1", "--bandwidth", "100000000")
	if err != nil {
		t.Fatal(err)
	}
	topo := write(t, dir, "ls.json", out)
	tb := []string{"--name", "clib", "--dir", filepath.Join(dir, "tb")}
	cmd := func(args ...string) string {
		t.Helper()
		out, stderr, err := run(t, append(append([]string{"testbed"}, tb...), args...)...)
		if err != nil {
			t.Fatalf("xlane testbed %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	if out := cmd("up", "--topology", topo, "--switch", "bmv2"); !strings.Contains(out, "2 hosts, 3 BMv2 switches") || !strings.Contains(out, "xlane-controller --config") {
		t.Errorf("up: %s", out)
	}
	down := false
	defer func() {
		if !down {
			run(t, append([]string{"testbed", "down"}, tb...)...)
		}
	}()
	f, err := os.Open(filepath.Join(dir, "tb", "controller.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(f)
	f.Close()
	if err != nil {
		t.Fatalf("the controller config the testbed wrote: %v", err)
	}
	if cfg.Driver != "p4runtime" || len(cfg.P4Runtime.Switches) != 3 || cfg.P4Runtime.BurstSlack <= 0 {
		t.Errorf("controller config: driver %q, p4runtime %+v", cfg.Driver, cfg.P4Runtime)
	}
	st := cmd("status")
	if n := strings.Count(st, "running, P4Runtime at 127.0.0.1:"); n != 3 {
		t.Errorf("status shows %d running switches, want 3:\n%s", n, st)
	}
	state, err := testbed.Load("clib", filepath.Join(dir, "tb"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, b := range state.Bridges {
		pids = append(pids, b.PID)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil { // a crash
		t.Fatal(err)
	}
	cmd("down")
	down = true
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z") {
			t.Errorf("switch process %d still runs after down", pid)
		}
	}
	ns, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-br", "link").Output()
	if strings.Contains(string(ns), "xl-clib-") || strings.Contains(string(links), "xlclib") {
		t.Errorf("left behind:\n%s\n%s", ns, links)
	}
}
