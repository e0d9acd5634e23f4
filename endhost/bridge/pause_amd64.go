package bridge

import "unsafe"

// SpinWait tells the CPU that the caller is busy-waiting on a ring (the
// x86 PAUSE instruction): a polling loop calls it when it found nothing,
// so that a hyperthread sharing the core — possibly the other end of the
// ring — gets the core's execution units meanwhile.
func SpinWait()

// prefetchLines asks the CPU to bring lines cache lines from p
// (PREFETCHT0), in one call.
//
//go:noescape
func prefetchLines(p unsafe.Pointer, lines int)

// prefetchWrite asks the CPU to bring the cache line at p for writing
// (PREFETCHW), taking it from the other core ahead of the store.
//
//go:noescape
func prefetchWrite(p unsafe.Pointer)

// ticks reads the CPU's time-stamp counter (RDTSC): a busy consumer
// times its looks at the ring with it, in a few cycles.
func ticks() uint64
