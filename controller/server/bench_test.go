package server_test

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/store"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/te/workload"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

// BenchmarkGRPCAdmissions measures admissions per second through the gRPC
// API on a k=8 and a k=16 fat-tree already holding 10,000 tunnels (owned by 50
// services that all watch their upcalls), with the in-memory driver and
// the bbolt store as the daemon runs them. Each op is one
// RequestBandwidth; the tunnel is released again outside the timer. It
// also reports the p99 delay from a change to the arrival of its upcall
// at the watching client.
func BenchmarkGRPCAdmissions(b *testing.B) {
	b.Run("k=8", func(b *testing.B) { benchGRPC(b, 8) })
	// The same 10,000 tunnels spread over 1,024 hosts: each admission
	// changes far fewer tunnels.
	b.Run("k=16", func(b *testing.B) { benchGRPC(b, 16) })
}

// timedProfile profiles only the timed admissions of
// BenchmarkGRPCAdmissionsConcurrent (-cpuprofile would be mostly the
// setup of 10,000 tunnels).
var timedProfile = flag.String("timed-cpuprofile", "", "write a CPU profile of the concurrent admissions alone to this file")

// timedMemProfile writes heap profiles before (FILE.base) and after (FILE)
// the timed admissions: `go tool pprof -diff_base FILE.base` shows what
// they allocated.
var timedMemProfile = flag.String("timed-memprofile", "", "write heap profiles around the concurrent admissions to FILE.base and FILE")

func writeHeap(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGRPCAdmissionsConcurrent is the same with 32 clients
// requesting at once: their store writes share transactions. Admitted
// tunnels stay until the timer stops (a release waits for every admission
// in flight), so the engine grows by b.N over its 10,000 tunnels.
func BenchmarkGRPCAdmissionsConcurrent(b *testing.B) {
	b.Run("k=8", func(b *testing.B) { benchGRPCClients(b, 8, 32, 0) })
	b.Run("k=8/headroom=10%", func(b *testing.B) { benchGRPCClients(b, 8, 32, 0.1) })
	b.Run("k=16", func(b *testing.B) { benchGRPCClients(b, 16, 32, 0) })
	// Services told bounds with 10 % headroom: smaller increases of a
	// tunnel's bound need no upcall.
	b.Run("k=16/headroom=10%", func(b *testing.B) { benchGRPCClients(b, 16, 32, 0.1) })
}

func benchGRPC(b *testing.B, k int) { benchGRPCClients(b, k, 1, 0) }

func benchGRPCClients(b *testing.B, k, clients int, headroom float64) {
	topo, _ := tetest.FatTree(b, k)
	sws := topo.Switches()
	st, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	grace := 100 * time.Millisecond
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: topo, Driver: memory.New(sws...), Store: st, Grace: grace, BoundHeadroom: headroom})
	if err != nil {
		b.Fatal(err)
	}
	ip := func(name string) netip.Addr { id, _ := topo.NodeByName(name); return topo.Nodes[id].IPv4 }
	toReq := func(r te.Request, port uint16) tunnels.Request {
		return tunnels.Request{Sender: ip(r.Sender), Receiver: netip.AddrPortFrom(ip(r.Receivers[0]), port),
			LoadsizeBytes: r.LoadsizeBytes, PeriodUs: r.PeriodNs / 1000, Sublane: r.Sublane}
	}
	mix := workload.Coordination()
	mix.MulticastShare = 0 // multicast goes through groups; unicast keeps the setup simple
	ctx := context.Background()
	n := 0
	for i, r := range workload.Requests(topo, mix, 30_000, 1) {
		if n == 10_000 {
			break
		}
		if _, err := ctl.Request(ctx, fmt.Sprintf("svc%d", i%50), toReq(r, uint16(1000+i%50000))); err == nil {
			n++
		}
	}
	if n < 10_000 {
		b.Fatalf("only %d tunnels fit", n)
	}
	addr, stop := servertest.Serve(b, ctl, "127.0.0.1:0")
	defer stop()

	// Watchers measure upcall delay: GraceUntil − grace is when the
	// controller committed the change.
	var delaysMu sync.Mutex
	var delays []upcallDelay
	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 50 {
		c, err := client.Dial(addr, fmt.Sprintf("svc%d", i))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		ready := make(chan bool, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Watch(wctx, func(u tunnels.Upcall) {
				if u.Kind == tunnels.BandwidthChanged {
					at := u.GraceUntil.Add(-grace)
					d := time.Since(at)
					delaysMu.Lock()
					delays = append(delays, upcallDelay{at, d})
					delaysMu.Unlock()
				}
			}, func(bool) { ready <- true })
		}()
		<-ready
	}
	defer func() { wcancel(); wg.Wait() }()

	reqs := workload.Requests(topo, mix, 4096, 2)
	admitter, err := client.Dial(addr, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer admitter.Close()
	var admitted atomic.Int64
	var busy time.Duration
	// Only upcalls of changes made while admissions were timed count (the
	// releases in between and after make upcalls too).
	var windows [][2]time.Time
	if clients == 1 {
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			res, err := admitter.RequestBandwidth(ctx, toReq(reqs[i%len(reqs)], 60000))
			busy += time.Since(t0)
			windows = append(windows, [2]time.Time{t0, time.Now()})
			if err == nil {
				admitted.Add(1)
				b.StopTimer()
				if err := admitter.ReleaseBandwidth(ctx, res.TunnelID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
		b.StopTimer()
	} else {
		var next atomic.Int64
		var idsMu sync.Mutex
		var ids []uint64
		var cwg sync.WaitGroup
		b.ResetTimer()
		first := time.Now()
		if *timedProfile != "" {
			f, err := os.Create(*timedProfile)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
		}
		if *timedMemProfile != "" {
			writeHeap(b, *timedMemProfile+".base")
		}
		start := time.Now()
		for range clients {
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					res, err := admitter.RequestBandwidth(ctx, toReq(reqs[int(i)%len(reqs)], uint16(60000+i%5000)))
					if err == nil {
						admitted.Add(1)
						idsMu.Lock()
						ids = append(ids, res.TunnelID)
						idsMu.Unlock()
					}
				}
			}()
		}
		cwg.Wait()
		windows = append(windows, [2]time.Time{first, time.Now()})
		if *timedProfile != "" {
			pprof.StopCPUProfile()
		}
		if *timedMemProfile != "" {
			writeHeap(b, *timedMemProfile)
		}
		busy = time.Since(start)
		b.StopTimer()
		for _, id := range ids {
			if err := admitter.ReleaseBandwidth(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(admitted.Load())/float64(b.N), "admitted/op")
	}
	b.ReportMetric(float64(b.N)/busy.Seconds(), "requests/s")
	time.Sleep(200 * time.Millisecond) // the last upcalls arrive
	delaysMu.Lock()
	defer delaysMu.Unlock()
	var timed []time.Duration
	for _, u := range delays {
		for _, w := range windows {
			if !u.at.Before(w[0]) && !u.at.After(w[1]) {
				timed = append(timed, u.d)
				break
			}
		}
	}
	if len(timed) > 0 {
		slices.Sort(timed)
		b.ReportMetric(float64(timed[len(timed)*99/100].Microseconds())/1000, "p99-upcall-ms")
	}
	b.ReportMetric(float64(len(timed))/float64(b.N), "upcalls/op")
}

// upcallDelay is when the controller committed a change and how long its
// upcall took to reach the watching client.
type upcallDelay struct {
	at time.Time
	d  time.Duration
}
