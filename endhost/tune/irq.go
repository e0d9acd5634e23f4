package tune

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// irqs: the NIC's interrupts should not land on the lane CPU (the lane
// polls; an interrupt only steals its time).
func (h Host) irqs(r *Report, others []int) {
	irqs := h.nicIRQs(r.Interface)
	if len(irqs) == 0 {
		r.add(Finding{Check: "irq affinity", Status: Missing, Detail: r.Interface + " has no interrupts of its own (a virtual interface)"})
		return
	}
	var on []string
	for _, irq := range irqs {
		aff, ok := h.read(fmt.Sprintf("proc/irq/%d/smp_affinity_list", irq))
		if !ok {
			continue
		}
		list, _ := ParseList(aff)
		if slices.Contains(list, r.CPU) {
			on = append(on, fmt.Sprintf("%d (%s)", irq, aff))
			if len(others) > 0 {
				r.Writes = append(r.Writes, Write{Path: fmt.Sprintf("/proc/irq/%d/smp_affinity_list", irq), Value: FormatList(others),
					Why: fmt.Sprintf("move IRQ %d of %s off CPU %d", irq, r.Interface, r.CPU)})
			}
		}
	}
	if len(on) == 0 {
		r.add(Finding{Check: "irq affinity", Status: OK, Detail: fmt.Sprintf("none of %s's %d IRQs may run on CPU %d", r.Interface, len(irqs), r.CPU)})
		return
	}
	fix := "write the other CPUs to /proc/irq/N/smp_affinity_list (--apply does) and stop irqbalance from moving them back"
	if len(others) == 0 {
		fix = "the host has no other CPU to take them"
	}
	r.add(Finding{Check: "irq affinity", Status: Warn, Detail: fmt.Sprintf("IRQs of %s may run on CPU %d: %s", r.Interface, r.CPU, strings.Join(on, ", ")), Fix: fix})
}

// nicIRQs finds the interface's interrupts: the MSI vectors of its
// device (or the device's parent, for virtio), and /proc/interrupts lines
// naming the interface or its device.
func (h Host) nicIRQs(ifname string) []int {
	seen := map[int]bool{}
	dev := h.path(filepath.Join("sys/class/net", ifname, "device"))
	names := []string{ifname}
	if real, err := filepath.EvalSymlinks(dev); err == nil {
		names = append(names, filepath.Base(real))
		for _, d := range []string{real, filepath.Dir(real)} {
			ents, _ := os.ReadDir(filepath.Join(d, "msi_irqs"))
			for _, e := range ents {
				if n, err := strconv.Atoi(e.Name()); err == nil {
					seen[n] = true
				}
			}
		}
	}
	if len(seen) == 0 {
		all, _ := h.read("proc/interrupts")
		for _, line := range strings.Split(all, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasSuffix(f[0], ":") {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSuffix(f[0], ":"))
			if err != nil {
				continue
			}
			last := f[len(f)-1]
			for _, name := range names {
				if last == name || strings.HasPrefix(last, name+"-") || strings.HasPrefix(last, name+"@") {
					seen[n] = true
				}
			}
		}
	}
	var out []int
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// steering: RPS must not hand the interface's packets to the lane CPU.
func (h Host) steering(r *Report, others []int) {
	qs, _ := filepath.Glob(h.path(filepath.Join("sys/class/net", r.Interface, "queues", "rx-*", "rps_cpus")))
	if len(qs) == 0 {
		r.add(Finding{Check: "rps", Status: Missing, Detail: "no RPS on " + r.Interface})
		return
	}
	var bad []string
	for _, q := range qs {
		rel, _ := filepath.Rel(h.Root, q)
		mask, _ := h.read(rel)
		if hasCPU(mask, r.CPU) {
			bad = append(bad, filepath.Base(filepath.Dir(q))+"="+mask)
			r.Writes = append(r.Writes, Write{Path: filepath.Join("/", rel), Value: maskOf(others),
				Why: fmt.Sprintf("steer %s's %s away from CPU %d", r.Interface, filepath.Base(filepath.Dir(q)), r.CPU)})
		}
	}
	flows, _ := h.read("proc/sys/net/core/rps_sock_flow_entries")
	rfs := "RFS off"
	if flows != "" && flows != "0" {
		rfs = "RFS on (" + flows + " flow entries)"
	}
	if len(bad) == 0 {
		r.add(Finding{Check: "rps", Status: OK, Detail: fmt.Sprintf("no receive queue of %s steers to CPU %d; %s", r.Interface, r.CPU, rfs)})
		return
	}
	r.add(Finding{Check: "rps", Status: Warn, Detail: fmt.Sprintf("%s steer packets to CPU %d; %s", strings.Join(bad, ", "), r.CPU, rfs),
		Fix: "clear the lane CPU's bit in rps_cpus (--apply does)"})
}

// numa: the NIC's memory and the lane CPU on one node.
func (h Host) numa(r *Report) {
	v, ok := h.read(filepath.Join("sys/class/net", r.Interface, "device", "numa_node"))
	if !ok || v == "-1" {
		r.add(Finding{Check: "numa", Status: Missing, Detail: r.Interface + " reports no NUMA node (one node, or a virtual device)"})
		return
	}
	nic, _ := strconv.Atoi(v)
	nodes, _ := filepath.Glob(h.path(fmt.Sprintf("sys/devices/system/cpu/cpu%d/node*", r.CPU)))
	if len(nodes) == 0 {
		r.add(Finding{Check: "numa", Status: Missing, Detail: fmt.Sprintf("CPU %d reports no NUMA node", r.CPU)})
		return
	}
	cpuNode, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(nodes[0]), "node"))
	if cpuNode == nic {
		r.add(Finding{Check: "numa", Status: OK, Detail: fmt.Sprintf("%s and CPU %d on node %d", r.Interface, r.CPU, nic)})
		return
	}
	r.add(Finding{Check: "numa", Status: Warn, Detail: fmt.Sprintf("%s is on node %d, CPU %d on node %d: every packet crosses the interconnect", r.Interface, nic, r.CPU, cpuNode),
		Fix: fmt.Sprintf("choose a lane CPU on node %d", nic)})
}
