package loadgen

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

var sink []byte

// quiet keeps this process from collecting while a measurement runs and
// puts the collector's settings back afterwards.
func TestQuietHoldsCollectionsAndRestores(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	restore := quiet()
	before := numGC()
	for range 128 { // 128 MiB of garbage: dozens of cycles at GOGC 150
		sink = make([]byte, 1<<20)
	}
	if n := numGC() - before; n != 0 {
		t.Fatalf("%d collections while quiet", n)
	}
	restore()
	if p := debug.SetGCPercent(150); p != 150 {
		t.Fatalf("GC percent after restore = %d, want 150", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Fatalf("memory limit after restore = %d, want none", l)
	}
	before = numGC()
	for range 128 {
		sink = make([]byte, 1<<20)
	}
	if numGC() == before {
		t.Fatal("no collection after restore")
	}
}

func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}
