package lane

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPin pins a goroutine (on its own thread, which ends with it) and
// reads back what the kernel applied.
func TestPin(t *testing.T) {
	type result struct {
		err      error
		cpus     unix.CPUSet
		policy   uint32
		priority uint32
	}
	run := func(c Core) result {
		ch := make(chan result, 1)
		go func() {
			var r result
			r.err = c.Pin()
			_ = unix.SchedGetaffinity(0, &r.cpus)
			if a, err := unix.SchedGetAttr(0, 0); err == nil {
				r.policy, r.priority = a.Policy, a.Priority
			}
			ch <- r // the goroutine ends locked: its thread goes with it
		}()
		return <-ch
	}
	r := run(Core{CPU: 0})
	if r.err != nil || r.cpus.Count() != 1 || !r.cpus.IsSet(0) {
		t.Fatalf("pin to CPU 0: %v, CPUs %v", r.err, r.cpus)
	}
	if r := run(Core{CPU: 4000}); r.err == nil || !strings.Contains(r.err.Error(), "CPU 4000 is not available") {
		t.Errorf("a CPU that does not exist: %v", r.err)
	}
	if r := run(Core{CPU: 0, Priority: 150}); r.err == nil {
		t.Error("priority 150 accepted")
	}
	if os.Geteuid() != 0 {
		t.Skip("SCHED_FIFO and mlockall need root")
	}
	r = run(Core{CPU: 0, Priority: 10})
	if r.err != nil {
		t.Fatalf("SCHED_FIFO as root: %v", r.err)
	}
	if r.policy != unix.SCHED_FIFO || r.priority != 10 {
		t.Errorf("policy %d priority %d, want SCHED_FIFO (%d) 10", r.policy, r.priority, unix.SCHED_FIFO)
	}
}
