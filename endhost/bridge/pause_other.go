//go:build !amd64

package bridge

// SpinWait tells the CPU that the caller is busy-waiting on a ring; on
// this architecture it does nothing.
func SpinWait() {}
