package lane

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

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
	// The thread's current CPU set may be narrower than what the process
	// may use (an isolated CPU is kept out of it on purpose): try, and
	// say what exists when the kernel refuses.
	var set unix.CPUSet
	if c.CPU >= 0 && c.CPU < 1024 {
		set.Set(c.CPU)
	}
	if c.CPU < 0 || c.CPU >= 1024 || unix.SchedSetaffinity(0, &set) != nil {
		online, _ := os.ReadFile("/sys/devices/system/cpu/online")
		return fmt.Errorf("lane: CPU %d is not available to this process (online CPUs: %s)", c.CPU, strings.TrimSpace(string(online)))
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
