package latency

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// isolation keeps every thread of some processes off one CPU, as
// isolcpus would: the lane core gets that CPU to itself (the kernel's
// softirqs aside). Restore puts the threads' CPU sets back.
type isolation struct {
	saved map[int]unix.CPUSet
}

// isolate moves the threads of pids (and of this process) off cpu.
func isolate(cpu int, pids ...int) (*isolation, error) {
	iso := &isolation{saved: map[int]unix.CPUSet{}}
	for _, pid := range append(pids, os.Getpid()) {
		tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		if err != nil {
			return iso, fmt.Errorf("latency: threads of %d: %w", pid, err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &set); err != nil {
				continue // gone
			}
			if !set.IsSet(cpu) || set.Count() < 2 {
				continue
			}
			iso.saved[tid] = set
			set.Clear(cpu)
			_ = unix.SchedSetaffinity(tid, &set)
		}
	}
	return iso, nil
}

func (iso *isolation) restore() {
	for tid, set := range iso.saved {
		_ = unix.SchedSetaffinity(tid, &set)
	}
}

// pidOf reads a pid file.
func pidOf(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
