package tune

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeHost writes a /proc and /sys tree: 4 CPUs, a PCI NIC eth0 with two
// MSI interrupts on every CPU, RPS to all CPUs, an idle state with exit
// latency, the NMI watchdog on, the NIC on NUMA node 1 and CPU 2 on 0.
func fakeHost(t *testing.T, cmdline string) Host {
	t.Helper()
	root := t.TempDir()
	put := func(p, v string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("proc/cmdline", cmdline)
	put("sys/devices/system/cpu/online", "0-3")
	put("sys/devices/system/cpu/isolated", "")
	put("sys/devices/system/cpu/cpuidle/current_driver", "intel_idle")
	put("sys/devices/system/cpu/cpu2/cpuidle/state0/name", "POLL")
	put("sys/devices/system/cpu/cpu2/cpuidle/state0/latency", "0")
	put("sys/devices/system/cpu/cpu2/cpuidle/state0/disable", "0")
	put("sys/devices/system/cpu/cpu2/cpuidle/state1/name", "C6")
	put("sys/devices/system/cpu/cpu2/cpuidle/state1/latency", "85")
	put("sys/devices/system/cpu/cpu2/cpuidle/state1/disable", "0")
	put("sys/devices/system/cpu/cpu2/node0/cpulist", "0-3")
	put("proc/sys/kernel/nmi_watchdog", "1")
	put("proc/sys/net/core/rps_sock_flow_entries", "0")
	put("sys/devices/pci0000:00/0000:00:03.0/msi_irqs/40", "msi")
	put("sys/devices/pci0000:00/0000:00:03.0/msi_irqs/41", "msi")
	put("sys/devices/pci0000:00/0000:00:03.0/numa_node", "1")
	put("sys/class/net/eth0/ifindex", "2")
	put("sys/class/net/eth0/queues/rx-0/rps_cpus", "f")
	put("sys/class/net/eth0/queues/rx-1/rps_cpus", "3")
	if err := os.Symlink(filepath.Join(root, "sys/devices/pci0000:00/0000:00:03.0"), filepath.Join(root, "sys/class/net/eth0/device")); err != nil {
		t.Fatal(err)
	}
	put("proc/irq/40/smp_affinity_list", "0-3")
	put("proc/irq/41/smp_affinity_list", "0-1")
	return Host{Root: root}
}

func finding(t *testing.T, r Report, check string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding %q in %+v", check, r.Findings)
	return Finding{}
}

func TestUntunedHost(t *testing.T) {
	h := fakeHost(t, "quiet")
	r, err := h.Inspect(2, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"isolcpus", "nohz_full", "rcu_nocbs", "cpuidle", "nmi_watchdog", "irq affinity", "rps", "numa"} {
		f := finding(t, r, c)
		if c == "nohz_full" {
			if f.Status != Missing {
				t.Errorf("%s: %+v, want missing (no sysfs file, nothing on the boot line)", c, f)
			}
			continue
		}
		if f.Status != Warn || f.Fix == "" {
			t.Errorf("%s: %+v, want a warning with a fix", c, f)
		}
	}
	if d := finding(t, r, "irq affinity").Detail; !strings.Contains(d, "40 (0-3)") || strings.Contains(d, "41") {
		t.Errorf("irq finding: %s", d)
	}
	want := map[string]string{
		"/proc/irq/40/smp_affinity_list":                      "0-1,3",
		"/sys/class/net/eth0/queues/rx-0/rps_cpus":            "b",
		"/proc/sys/kernel/nmi_watchdog":                       "0",
		"/sys/devices/system/cpu/cpu2/cpuidle/state1/disable": "1",
	}
	if len(r.Writes) != len(want) {
		t.Errorf("writes %+v, want %v", r.Writes, want)
	}
	for _, w := range r.Writes {
		if want[w.Path] != w.Value {
			t.Errorf("write %s = %q, want %q", w.Path, w.Value, want[w.Path])
		}
	}
	if got := strings.Join(r.BootParams, " "); !strings.Contains(got, "isolcpus=2") || !strings.Contains(got, "rcu_nocbs=2") || !strings.Contains(got, "nmi_watchdog=0") {
		t.Errorf("boot parameters %q", got)
	}
	// Apply, then inspect again: what changes at run time is fixed.
	if _, err := h.Apply(r); err != nil {
		t.Fatal(err)
	}
	r2, err := h.Inspect(2, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"cpuidle", "nmi_watchdog", "irq affinity", "rps"} {
		if f := finding(t, r2, c); f.Status != OK {
			t.Errorf("after apply, %s: %+v", c, f)
		}
	}
	if len(r2.Writes) != 0 {
		t.Errorf("after apply there is more to write: %+v", r2.Writes)
	}
}

func TestTunedBootLine(t *testing.T) {
	h := fakeHost(t, "isolcpus=nohz,domain,2-3 nohz_full=2-3 rcu_nocbs=2,3")
	os.WriteFile(filepath.Join(h.Root, "sys/devices/system/cpu/nohz_full"), []byte("2-3\n"), 0o644)
	os.WriteFile(filepath.Join(h.Root, "sys/devices/system/cpu/isolated"), []byte("2-3\n"), 0o644)
	r, err := h.Inspect(2, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"isolcpus", "nohz_full", "rcu_nocbs"} {
		if f := finding(t, r, c); f.Status != OK {
			t.Errorf("%s: %+v", c, f)
		}
	}
}

func TestBadInput(t *testing.T) {
	h := fakeHost(t, "")
	if _, err := h.Inspect(9, "eth0"); err == nil || !strings.Contains(err.Error(), "CPU 9 is not online") {
		t.Errorf("offline CPU: %v", err)
	}
	if _, err := h.Inspect(1, "wlan7"); err == nil || !strings.Contains(err.Error(), `"wlan7"`) {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := (Host{Root: t.TempDir()}).Inspect(0, "lo"); err == nil {
		t.Error("an empty tree inspected")
	}
	for _, bad := range []string{"x", "3-1", "1,,2", "-1"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) accepted", bad)
		}
	}
	if l, _ := ParseList("0-2,5,7-8"); FormatList(l) != "0-2,5,7-8" {
		t.Errorf("round trip: %v", l)
	}
}

// TestThisHost inspects the machine the tests run on: whatever it lacks
// gives findings, not errors.
func TestThisHost(t *testing.T) {
	r, err := Host{Root: "/"}.Inspect(0, "lo")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) < 8 {
		t.Fatalf("findings %+v", r.Findings)
	}
	for _, f := range r.Findings {
		t.Logf("%-13s %-7s %s", f.Check, f.Status, f.Detail)
	}
}
