//go:build !amd64

package bridge

import (
	"time"
	"unsafe"
)

// SpinWait tells the CPU that the caller is busy-waiting on a ring; on
// this architecture it does nothing.
func SpinWait() {}

// prefetchLines does nothing on this architecture.
func prefetchLines(unsafe.Pointer, int) {}

// prefetchWrite does nothing on this architecture.
func prefetchWrite(unsafe.Pointer) {}

// ticks is the system clock in ns on this architecture: a busy consumer
// times its looks at the ring with it.
func ticks() uint64 { return uint64(time.Now().UnixNano()) }
