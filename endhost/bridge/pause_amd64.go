package bridge

import "unsafe"

// SpinWait tells the CPU that the caller is busy-waiting on a ring (the
// x86 PAUSE instruction): a polling loop calls it when it found nothing,
// so that a hyperthread sharing the core — possibly the other end of the
// ring — gets the core's execution units meanwhile.
func SpinWait()

// prefetch asks the CPU to bring the cache line at p (PREFETCHT0).
//
//go:noescape
func prefetch(p unsafe.Pointer)

// prefetchWrite asks the CPU to bring the cache line at p for writing
// (PREFETCHW), taking it from the other core ahead of the store.
//
//go:noescape
func prefetchWrite(p unsafe.Pointer)
