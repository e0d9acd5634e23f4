package lane

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Core is how the lane's goroutine owns a CPU (§4.3): its OS thread
// locked to it, bound to one CPU, scheduled SCHED_FIFO so that ordinary
// tasks cannot preempt it, and the process's memory locked so no page
// fault stalls it.
type Core struct {
	CPU      int
	Priority int  // SCHED_FIFO priority 1–99; 0 keeps the normal scheduler
	LockMem  bool // mlockall(MCL_CURRENT|MCL_FUTURE)
}

// Pin applies c to the calling goroutine, which keeps its thread for
// good: when it ends, the thread ends too (it is never handed back to
// the runtime with a changed CPU set or priority). Each step that fails
// says why, and nothing after it is applied.
func (c Core) Pin() error {
	runtime.LockOSThread()
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("lane: reading the CPUs this process may use: %w", err)
	}
	if c.CPU < 0 || c.CPU >= 1024 || !allowed.IsSet(c.CPU) {
		return fmt.Errorf("lane: CPU %d is not available to this process (it may use %s)", c.CPU, cpuList(&allowed))
	}
	var set unix.CPUSet
	set.Set(c.CPU)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("lane: binding to CPU %d: %w", c.CPU, err)
	}
	if c.Priority != 0 {
		if c.Priority < 1 || c.Priority > 99 {
			return fmt.Errorf("lane: SCHED_FIFO priority %d: must be 1 to 99", c.Priority)
		}
		attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(c.Priority)}
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("lane: SCHED_FIFO priority %d: not permitted (needs root or CAP_SYS_NICE): %w", c.Priority, err)
			}
			return fmt.Errorf("lane: SCHED_FIFO priority %d: %w", c.Priority, err)
		}
	}
	if c.LockMem {
		if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
			return fmt.Errorf("lane: locking memory (mlockall): %w (raise RLIMIT_MEMLOCK or run as root)", err)
		}
	}
	return nil
}

// cpuList writes a CPU set as "0-3,6".
func cpuList(s *unix.CPUSet) string {
	out := ""
	for i := 0; i < 1024; i++ {
		if !s.IsSet(i) {
			continue
		}
		j := i
		for j+1 < 1024 && s.IsSet(j+1) {
			j++
		}
		if out != "" {
			out += ","
		}
		if j == i {
			out += fmt.Sprint(i)
		} else {
			out += fmt.Sprintf("%d-%d", i, j)
		}
		i = j
	}
	return out
}
