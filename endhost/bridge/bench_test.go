package bridge

import (
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkHandOff moves messages from a producer goroutine to a consumer
// goroutine through a ring (two mappings of one file, as two processes
// use it) and reports messages per second and the p99 time from push to
// pop, sampled on every 256th message. A 16-byte message and its meta
// fill one cache line; a 64-byte one takes two.
func BenchmarkHandOff(b *testing.B) {
	for _, size := range []int{16, 64} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) { handOff(b, size, false) })
	}
}

// BenchmarkHandOffPeek is BenchmarkHandOff with the consumer reading each
// message in place (Peek, Advance), as the lane packs R-X messages.
func BenchmarkHandOffPeek(b *testing.B) {
	for _, size := range []int{16, 64} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) { handOff(b, size, true) })
	}
}

func handOff(b *testing.B, size int, peek bool) {
	prod, cons := newPair(b, 1024, size)
	cons.SetBusyPoll(true) // it polls in a loop
	const sample = 256
	lat := make([]time.Duration, 0, b.N/sample+1)
	done := make(chan struct{})
	var empty, full int // polls that found the ring empty, pushes that found it full
	b.ResetTimer()
	start := time.Now()
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the pinned thread ends with the goroutine
		pinned(1)
		buf := make([]byte, size)
		sum := 0
		for i := 0; i < b.N; {
			if peek {
				d, ok := cons.Peek()
				if !ok {
					empty++
					SpinWait()
					continue
				}
				sum += int(d[len(d)-1]) // the lane reads every byte; this reads one
				if i%sample == 0 {
					lat = append(lat, time.Duration(time.Now().UnixNano()-cons.PeekMeta().T1))
				}
				cons.Advance()
				i++
				continue
			}
			_, m, ok := cons.Pop(buf)
			if !ok {
				empty++
				SpinWait()
				continue
			}
			if m.T1 != 0 {
				lat = append(lat, time.Duration(time.Now().UnixNano()-m.T1))
			}
			i++
		}
		if sum < 0 {
			b.Log(sum)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pin(b, 0)
	msg := make([]byte, size)
	for i := 0; i < b.N; {
		var m Meta
		if i%sample == 0 {
			m.T1 = time.Now().UnixNano()
		}
		if prod.Push(msg, m) {
			i++
		} else {
			full++
			SpinWait()
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds()/1e6, "M-msgs/s")
	// Which end waited: the other one is the bottleneck.
	b.ReportMetric(float64(empty)/float64(b.N), "empty-polls/msg")
	b.ReportMetric(float64(full)/float64(b.N), "full-pushes/msg")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-handoff-ns")
	}
}

// pin runs the calling goroutine's thread on one CPU, as the lane and an
// application's polling thread run: the two ends on two cores. The
// thread stays locked to the goroutine, and its CPU set is restored when
// the benchmark ends.
func pin(b *testing.B, cpu int) {
	runtime.LockOSThread()
	if runtime.NumCPU() < 2 {
		return
	}
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		b.Logf("reading the CPU set: %v", err)
		return
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		b.Logf("pinning to CPU %d: %v", cpu, err)
		return
	}
	b.Cleanup(func() { _ = unix.SchedSetaffinity(0, &old) })
}

// BenchmarkHandOffLatency is the unloaded hand-off: one message at a
// time, the next pushed once the consumer has it; it reports the p50 and
// p99 time from push to pop.
func BenchmarkHandOffLatency(b *testing.B) {
	prod, cons := newPair(b, 1024, 64)
	cons.SetBusyPoll(true)
	var seen atomic.Uint64
	latp, got := timedPops(cons, b.N, 64, &seen)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pin(b, 0)
	msg := make([]byte, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for !prod.Push(msg, Meta{T1: time.Now().UnixNano()}) {
		}
		for seen.Load() != uint64(i+1) {
		}
	}
	<-got
	b.StopTimer()
	lat := *latp
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// timedPops pops n messages of up to size bytes on a goroutine pinned to
// CPU 1, polling without pause, and records each one's time from push
// (its T1) to pop in *lat and the count taken in seen; got closes when
// all n are in.
func timedPops(cons *Ring, n, size int, seen *atomic.Uint64) (lat *[]time.Duration, got chan struct{}) {
	l := make([]time.Duration, 0, n)
	got = make(chan struct{})
	go func() {
		defer close(got)
		runtime.LockOSThread() // never unlocked: the pinned thread ends with the goroutine
		pinned(1)
		buf := make([]byte, size)
		for i := 0; i < n; {
			_, m, ok := cons.Pop(buf)
			if !ok {
				continue
			}
			l = append(l, time.Duration(time.Now().UnixNano()-m.T1))
			i++
			seen.Store(uint64(i))
		}
	}()
	return &l, got
}

// pinned is pin for a goroutine the benchmark does not wait on through b:
// its thread ends with it (the goroutine keeps it locked), so its CPU set
// needs no restoring.
func pinned(cpu int) {
	if runtime.NumCPU() < 2 {
		return
	}
	var set unix.CPUSet
	set.Set(cpu)
	_ = unix.SchedSetaffinity(0, &set)
}

// BenchmarkHandOffBurst pushes bursts of messages back to back, one burst
// once the consumer has the last and a pause has passed, and reports the
// time from push to pop of every message (p50, p99, max) and of each
// burst's last one, as for a packet's messages pushed one by one into
// X-R: bursts of 8 and 32 come after a pause and are not held; one of 512
// is a stream, whose messages wait for their batch while the consumer
// holds (holding).
func BenchmarkHandOffBurst(b *testing.B) {
	for _, burst := range []int{8, 32, 512} {
		b.Run(strconv.Itoa(burst), func(b *testing.B) { handOffBurst(b, burst) })
	}
}

func handOffBurst(b *testing.B, burst int) {
	const size, pause = 64, 5 * time.Microsecond
	prod, cons := newPair(b, 1024, size)
	cons.SetBusyPoll(true)
	n := (b.N + burst - 1) / burst * burst
	var seen atomic.Uint64
	latp, got := timedPops(cons, n, size, &seen)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pin(b, 0)
	msg := make([]byte, size)
	b.ResetTimer()
	for i := 0; i < n; i += burst {
		for range burst {
			for !prod.Push(msg, Meta{T1: time.Now().UnixNano()}) {
			}
		}
		for seen.Load() != uint64(i+burst) {
		}
		for t := time.Now(); time.Since(t) < pause; {
		}
	}
	<-got
	b.StopTimer()
	lat := *latp
	last := make([]time.Duration, 0, n/burst)
	for i := burst - 1; i < n; i += burst {
		last = append(last, lat[i])
	}
	slices.Sort(lat)
	slices.Sort(last)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	b.ReportMetric(float64(last[len(last)*99/100].Nanoseconds()), "last-p99-ns")
}
