// Package rtsched puts a whole Go process under the kernel's real-time
// round-robin policy (SCHED_RR).
//
// Why: under the normal scheduler, a busy two-vCPU guest left the
// controller's and its services' woken threads waiting in a run queue for
// tens of milliseconds while the other vCPU idled; those waits were the
// tail of the upcall delay (docs/PERFORMANCE.md). A real-time thread that
// wakes goes to a CPU running no real-time work at once. The kernel still
// keeps a share of every second for normal tasks (sched_rt_runtime_us),
// so a runaway controller cannot lock a host up.
package rtsched

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxPriority is the highest real-time priority Linux knows.
const MaxPriority = 99

// Apply gives every thread of this process SCHED_RR at priority (1 to
// MaxPriority) and returns how many it set. Threads the Go runtime makes
// later are cloned from these and inherit the policy; a thread made while
// Apply runs is caught by its next look at /proc/self/task.
func Apply(priority int) (int, error) {
	if priority < 1 || priority > MaxPriority {
		return 0, fmt.Errorf("rtsched: priority %d: must be 1 to %d", priority, MaxPriority)
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_RR, Priority: uint32(priority)}
	seen, set := map[int]bool{}, 0
	for pass := 0; pass < 20; pass++ {
		tids, err := Threads(os.Getpid())
		if err != nil {
			return set, err
		}
		fresh := 0
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			fresh++
			seen[tid] = true // set below, or ended: not a thread to try again
			if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread ended meanwhile
				}
				if errors.Is(err, unix.EPERM) {
					return set, fmt.Errorf("rtsched: SCHED_RR priority %d: not permitted (needs root or CAP_SYS_NICE, and a real-time budget in the process's cgroup): %w", priority, err)
				}
				return set, fmt.Errorf("rtsched: SCHED_RR priority %d for thread %d: %w", priority, tid, err)
			}
			set++
		}
		if fresh == 0 {
			return set, nil
		}
	}
	return set, fmt.Errorf("rtsched: threads kept appearing while SCHED_RR was being set (%d set)", set)
}

// Permitted reports whether this process may use SCHED_RR: it tries on
// a thread of its own and puts it back before answering; the thread is
// locked to a goroutine that then ends, so it ends too.
func Permitted() bool {
	ok := make(chan bool)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_RR, Priority: 1}, 0)
		if err == nil {
			err = unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
		}
		ok <- err == nil
	}()
	return <-ok
}

// Threads lists the thread ids of process pid.
func Threads(pid int) ([]int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("rtsched: listing threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// Sched is a thread's scheduling policy (unix.SCHED_*) and real-time
// priority (0 under the normal policies).
type Sched struct{ Policy, Priority int }

// Of reads thread tid's policy of process pid from /proc, so that a
// test or an operator can check another process's threads.
func Of(pid, tid int) (Sched, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return Sched{}, fmt.Errorf("rtsched: %w", err)
	}
	return parseStat(string(b))
}

// parseStat takes rt_priority and policy, fields 40 and 41 of a stat
// line; the command name (field 2) may hold spaces and parentheses, so
// fields count from its closing parenthesis.
func parseStat(line string) (Sched, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return Sched{}, fmt.Errorf("rtsched: stat line without a command name: %q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3
	if len(f) < 41-2 {
		return Sched{}, fmt.Errorf("rtsched: stat line has %d fields, want at least 41", len(f)+2)
	}
	prio, err1 := strconv.Atoi(f[40-3])
	pol, err2 := strconv.Atoi(f[41-3])
	if err := errors.Join(err1, err2); err != nil {
		return Sched{}, fmt.Errorf("rtsched: stat fields 40-41: %w", err)
	}
	return Sched{Policy: pol, Priority: prio}, nil
}
