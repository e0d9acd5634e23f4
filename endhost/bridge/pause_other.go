//go:build !amd64

package bridge

import "unsafe"

// SpinWait tells the CPU that the caller is busy-waiting on a ring; on
// this architecture it does nothing.
func SpinWait() {}

// prefetchLines does nothing on this architecture.
func prefetchLines(unsafe.Pointer, int) {}

// prefetchWrite does nothing on this architecture.
func prefetchWrite(unsafe.Pointer) {}
