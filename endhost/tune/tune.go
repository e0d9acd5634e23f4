// Package tune checks how well a host serves a lane core (§4.3): the
// lane's CPU isolated from the scheduler, timer ticks and RCU callbacks,
// no deep idle states, no NMI watchdog, the NIC's interrupts and receive
// steering kept off it, the NIC on the CPU's NUMA node. It reads /proc
// and /sys (under a root a test can replace), reports each finding with
// the fix, and can apply what changes at run time (IRQ affinity, RPS
// masks). A host that lacks a feature gets a finding, never an error.
package tune

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Status of a finding.
type Status string

const (
	OK      Status = "ok"
	Warn    Status = "warn"    // costs the lane latency or jitter
	Missing Status = "missing" // the host does not have it; nothing to do here
)

// Finding is one check's result.
type Finding struct {
	Check  string
	Status Status
	Detail string
	Fix    string // what to do, when Status is Warn
}

// Write is a change Apply makes: a value into a /proc or /sys file.
type Write struct {
	Path, Value, Why string
}

// Report is the result of Inspect.
type Report struct {
	CPU       int
	Interface string
	Findings  []Finding
	// BootParams are the kernel parameters to add (a reboot applies them).
	BootParams []string
	// Writes change what can change at run time; Apply performs them.
	Writes []Write
}

// Host is the filesystem to read: "/" on a real host.
type Host struct{ Root string }

func (h Host) path(p string) string { return filepath.Join(h.Root, p) }

func (h Host) read(p string) (string, bool) {
	b, err := os.ReadFile(h.path(p))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// Inspect checks the host for a lane on cpu receiving on interface ifname.
func (h Host) Inspect(cpu int, ifname string) (Report, error) {
	r := Report{CPU: cpu, Interface: ifname}
	online, ok := h.read("sys/devices/system/cpu/online")
	if !ok {
		return r, fmt.Errorf("tune: %s: cannot read the online CPUs", h.path("sys/devices/system/cpu/online"))
	}
	cpus, err := ParseList(online)
	if err != nil {
		return r, fmt.Errorf("tune: online CPUs %q: %w", online, err)
	}
	if !slices.Contains(cpus, cpu) {
		return r, fmt.Errorf("tune: CPU %d is not online (online: %s)", cpu, online)
	}
	if _, ok := h.read(filepath.Join("sys/class/net", ifname, "ifindex")); !ok {
		return r, fmt.Errorf("tune: no network interface %q", ifname)
	}
	others := slices.DeleteFunc(slices.Clone(cpus), func(c int) bool { return c == cpu })
	cmdline, _ := h.read("proc/cmdline")
	h.isolation(&r, cmdline)
	h.idle(&r, cmdline)
	h.watchdog(&r)
	h.irqs(&r, others)
	h.steering(&r, others)
	h.numa(&r)
	return r, nil
}

func (r *Report) add(f Finding) { r.Findings = append(r.Findings, f) }

func (r *Report) boot(p string) {
	if !slices.Contains(r.BootParams, p) {
		r.BootParams = append(r.BootParams, p)
	}
}

// isolation: isolcpus, nohz_full and rcu_nocbs should hold the lane CPU.
// The kernel reports the first two in sysfs; the boot line says all.
func (h Host) isolation(r *Report, cmdline string) {
	c := strconv.Itoa(r.CPU)
	for _, x := range []struct{ name, file, why string }{
		{"isolcpus", "sys/devices/system/cpu/isolated", "the scheduler puts other tasks on it"},
		{"nohz_full", "sys/devices/system/cpu/nohz_full", "the timer tick interrupts it every few ms"},
		{"rcu_nocbs", "", "RCU callbacks run on it"},
	} {
		set := bootValue(cmdline, x.name)
		if x.file != "" {
			v, ok := h.read(x.file)
			if !ok && set == "" {
				r.add(Finding{Check: x.name, Status: Missing, Detail: "this kernel does not support it (no /" + x.file + ")"})
				continue
			}
			if v != "" {
				set = v
			}
		}
		if list, _ := ParseList(cpuPart(set)); slices.Contains(list, r.CPU) {
			r.add(Finding{Check: x.name, Status: OK, Detail: "CPU " + c + " is in " + set})
			continue
		}
		r.add(Finding{Check: x.name, Status: Warn, Detail: fmt.Sprintf("CPU %s is not in %s (%q): %s", c, x.name, set, x.why),
			Fix: "boot with " + x.name + "=" + c})
		r.boot(x.name + "=" + c)
	}
}

// cpuPart drops the flags isolcpus may carry ("nohz,domain,2-3").
func cpuPart(v string) string {
	var keep []string
	for _, f := range strings.Split(v, ",") {
		if f != "" && f[0] >= '0' && f[0] <= '9' {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, ",")
}

// idle: deep C-states make a polling core slow to react after a pause.
func (h Host) idle(r *Report, cmdline string) {
	driver, ok := h.read("sys/devices/system/cpu/cpuidle/current_driver")
	if !ok || driver == "none" {
		r.add(Finding{Check: "cpuidle", Status: OK, Detail: "no cpuidle driver: the CPU does not enter deep idle states"})
		return
	}
	dir := h.path(fmt.Sprintf("sys/devices/system/cpu/cpu%d/cpuidle", r.CPU))
	states, _ := filepath.Glob(filepath.Join(dir, "state*"))
	var deep []string
	for _, s := range states {
		rel, _ := filepath.Rel(h.Root, s)
		name, _ := h.read(filepath.Join(rel, "name"))
		disabled, _ := h.read(filepath.Join(rel, "disable"))
		lat, _ := h.read(filepath.Join(rel, "latency"))
		if n, _ := strconv.Atoi(lat); n > 0 && disabled != "1" {
			deep = append(deep, fmt.Sprintf("%s (%s µs exit)", name, lat))
			r.Writes = append(r.Writes, Write{Path: filepath.Join("/", rel, "disable"), Value: "1", Why: "disable idle state " + name + " on the lane CPU"})
		}
	}
	if len(deep) == 0 {
		r.add(Finding{Check: "cpuidle", Status: OK, Detail: "driver " + driver + ", no idle state with exit latency enabled on the lane CPU"})
		return
	}
	r.add(Finding{Check: "cpuidle", Status: Warn, Detail: "driver " + driver + ", enabled: " + strings.Join(deep, ", "),
		Fix: "disable them (--apply does, until reboot) or boot with processor.max_cstate=1 intel_idle.max_cstate=0"})
	r.boot("processor.max_cstate=1")
	r.boot("intel_idle.max_cstate=0")
}

func (h Host) watchdog(r *Report) {
	v, ok := h.read("proc/sys/kernel/nmi_watchdog")
	switch {
	case !ok:
		r.add(Finding{Check: "nmi_watchdog", Status: Missing, Detail: "no /proc/sys/kernel/nmi_watchdog"})
	case v == "0":
		r.add(Finding{Check: "nmi_watchdog", Status: OK, Detail: "off"})
	default:
		r.add(Finding{Check: "nmi_watchdog", Status: Warn, Detail: "on: a periodic NMI interrupts every CPU",
			Fix: "sysctl kernel.nmi_watchdog=0 (--apply does) or boot with nmi_watchdog=0"})
		r.Writes = append(r.Writes, Write{Path: "/proc/sys/kernel/nmi_watchdog", Value: "0", Why: "stop the NMI watchdog"})
		r.boot("nmi_watchdog=0")
	}
}
