// Package proc is what the testbed needs of processes it started and
// recorded by pid: whether one still runs, and killing one for good.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
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
