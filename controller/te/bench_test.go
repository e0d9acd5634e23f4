package te_test

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/te/workload"
)

// fixtures keeps loaded engines across the benchmark's calibration runs:
// filling a k=16 fat-tree with 50,000 tunnels takes a while, and every
// benchmark leaves its engine as it found it.
var fixtures = map[fixtureKey]fixture{}

type fixture struct {
	e    *te.Engine
	reqs []te.Request
}

// loaded returns an engine over a k-ary fat-tree holding n tunnels of the
// coordination mix, and more requests of the same mix to admit.
func loaded(b *testing.B, k, n int, mix workload.Mix) (*te.Engine, []te.Request) {
	b.Helper()
	key := fixtureKey{k, n, mix.MulticastShare}
	if f, ok := fixtures[key]; ok {
		return f.e, f.reqs
	}
	e, reqs := load(b, k, n, mix)
	fixtures[key] = fixture{e, reqs}
	return e, reqs
}

type fixtureKey struct {
	k, n      int
	multicast float64
}

func load(b *testing.B, k, n int, mix workload.Mix) (*te.Engine, []te.Request) {
	topo, _ := tetest.FatTree(b, k)
	e := te.NewEngine(topo)
	reqs := workload.Requests(topo, mix, n*2, 1)
	i := 0
	for e.Len() < n && i < len(reqs) {
		_, _, _ = e.Admit(reqs[i])
		i++
	}
	if e.Len() < n {
		b.Fatalf("only %d of %d tunnels fit", e.Len(), n)
	}
	return e, workload.Requests(topo, mix, 4096, 2)
}

// benchAdmit measures admitting one request and releasing it again, so the
// engine stays at its size; it reports median and p99 admission latency.
func benchAdmit(b *testing.B, k, n int, mix workload.Mix) { benchAdmitEvicting(b, k, n, mix, nil) }

// benchAdmitEvicting is benchAdmit that writes all of evict between
// admissions (untimed): in the controller other work runs between two
// admissions and takes the caches, so the engine starts each one cold.
func benchAdmitEvicting(b *testing.B, k, n int, mix workload.Mix, evict []byte) {
	e, reqs := loaded(b, k, n, mix)
	lat := make([]time.Duration, 0, b.N)
	var analyzed, changed uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := reqs[i%len(reqs)]
		before := e.Stats()
		t0 := time.Now()
		tun, chs, err := e.Admit(r)
		lat = append(lat, time.Since(t0))
		analyzed += e.Stats().Analyzed - before.Analyzed
		changed += uint64(len(chs))
		if err == nil || evict != nil {
			b.StopTimer()
			if err == nil {
				if _, err := e.Release(tun.ID); err != nil {
					b.Fatal(err)
				}
			}
			for j := 0; j < len(evict); j += 64 {
				evict[j]++
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(analyzed)/float64(b.N), "analyzed/op")
	b.ReportMetric(float64(changed)/float64(b.N), "changed/op")
}

func BenchmarkAdmitFatTree8With10k(b *testing.B)  { benchAdmit(b, 8, 10_000, workload.Coordination()) }
func BenchmarkAdmitFatTree16With50k(b *testing.B) { benchAdmit(b, 16, 50_000, workload.Coordination()) }
func BenchmarkAdmitFatTree16With10k(b *testing.B) { benchAdmit(b, 16, 10_000, workload.Coordination()) }

// BenchmarkAdmitUnicastFatTree16With10k is the load of `xlane bench
// admissions`: the coordination mix without multicast.
func BenchmarkAdmitUnicastFatTree16With10k(b *testing.B) {
	mix := workload.Coordination()
	mix.MulticastShare = 0
	benchAdmit(b, 16, 10_000, mix)
}

// BenchmarkAdmitUnicastFatTree16With10kCold is the same with the caches
// taken between admissions (16 MiB written), as in the controller, where
// the engine's memory layout decides more than its instructions.
func BenchmarkAdmitUnicastFatTree16With10kCold(b *testing.B) {
	mix := workload.Coordination()
	mix.MulticastShare = 0
	benchAdmitEvicting(b, 16, 10_000, mix, make([]byte, 16<<20))
}

// BenchmarkReadjust10k recomputes every tunnel of a 10,000-tunnel
// allocation from scratch and reports the memory the engine holds per
// tunnel.
func BenchmarkReadjust10k(b *testing.B) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	e, _ := load(b, 8, 10_000, workload.Coordination())
	runtime.GC()
	runtime.ReadMemStats(&m1)
	perTunnel := float64(m1.HeapAlloc-m0.HeapAlloc) / float64(e.Len())
	before := e.Stats().Analyzed
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch, err := e.Readjust()
		if err != nil {
			b.Fatal(err)
		}
		if len(ch) != 0 {
			b.Fatalf("a full re-adjustment changed %d tunnels the incremental engine computed", len(ch))
		}
	}
	b.StopTimer()
	b.ReportMetric(perTunnel, "heap-B/tunnel")
	b.ReportMetric(float64(e.Stats().Analyzed-before)/float64(b.N), "analyses/op")
}
