package tunnels

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

// BenchmarkCollect10k is one full garbage collection of a controller (and
// its in-memory driver) holding 10,000 tunnels on a k=16 fat-tree: the
// daemon's collections mark this state while admissions run, and a long
// mark lengthens the upcalls' delay tail. scan-MB is the heap the
// collector must scan (objects holding pointers), live-MB all of it.
func BenchmarkCollect10k(b *testing.B) {
	c, _ := fatTreeWith(b, 16, 10_000)
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}, {Name: "/gc/heap/live:bytes"}}
	b.ResetTimer()
	for range b.N {
		runtime.GC()
	}
	b.StopTimer()
	metrics.Read(s)
	b.ReportMetric(float64(s[0].Value.Uint64())/(1<<20), "scan-MB")
	b.ReportMetric(float64(s[1].Value.Uint64())/(1<<20), "live-MB")
	runtime.KeepAlive(c)
}
