// Package proc is what the testbed needs of processes it started and
// recorded by pid: whether one still runs, and killing one for good.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Alive reports whether pid runs; a zombie (exited, not yet reaped by its
// parent) does not.
func Alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	if k := bytes.LastIndexByte(b, ')'); k > 0 && k+2 < len(b) {
		return b[k+2] != 'Z' && b[k+2] != 'X'
	}
	return true
}

// Kill sends SIGKILL to pid (name says what it is, for errors) and waits
// until it is gone or ctx ends.
func Kill(ctx context.Context, pid int, name string) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
	}
	for Alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) did not exit: %w", name, pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// PeakRSS is the most resident memory pid has had, in bytes (VmHWM).
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("peak RSS of pid %d: VmHWM line %q", pid, line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS of pid %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS of pid %d: no VmHWM in /proc/%d/status", pid, pid)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// CPUTime is the CPU time (user and system, all threads) pid has used.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	// utime and stime are the 12th and 13th fields after the command name,
	// which is in parentheses and may hold spaces.
	k := bytes.LastIndexByte(b, ')')
	if k < 0 {
		return 0, fmt.Errorf("cpu time of pid %d: no command name in /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[k+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of pid %d: /proc/%d/stat has %d fields after the name", pid, pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time of pid %d: field %q: %w", pid, s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
