package tunnels

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/te/workload"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/memory"
)

// fatTreeWith builds a controller on a k-ary fat-tree holding n unicast
// tunnels of the coordination mix, owned by 50 services.
func fatTreeWith(tb testing.TB, k, n int) (*Controller, *memory.Driver) {
	tb.Helper()
	topo, _ := tetest.FatTree(tb, k)
	drv := memory.New(topo.Switches()...)
	drv.Record(false)
	c, err := New(context.Background(), Config{Topology: topo, Driver: drv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	ip := func(name string) netip.Addr { id, _ := topo.NodeByName(name); return topo.Nodes[id].IPv4 }
	mix := workload.Coordination()
	mix.MulticastShare = 0
	ctx := context.Background()
	got := 0
	for i, r := range workload.Requests(topo, mix, 3*n, 1) {
		if got == n {
			break
		}
		req := Request{Sender: ip(r.Sender), Receiver: netip.AddrPortFrom(ip(r.Receivers[0]), uint16(1000+i%50000)),
			LoadsizeBytes: r.LoadsizeBytes, PeriodUs: r.PeriodNs / 1000, Sublane: r.Sublane}
		_, err := c.Request(ctx, fmt.Sprintf("svc%d", i%50), req)
		if err == nil {
			got++
		} else if got == 0 {
			tb.Fatal(err)
		}
	}
	if got < n {
		tb.Fatalf("only %d of %d tunnels fit", got, n)
	}
	return c, drv
}

// meteredAt is where each tunnel is metered (its first switch).
func meteredAt(c *Controller) map[uint64]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[uint64]string{}
	for id, rec := range c.recs {
		for sw, r := range byName(c.topo, rec.rules) {
			if r.Meter != nil {
				out[id] = sw
			}
		}
	}
	return out
}

// BenchmarkMonitorOnce10k is one monitoring round on a k=16 fat-tree
// holding 10,000 tunnels that all send at their rate (nothing to act on).
// max-stall-ms is the longest an operation waited for the controller's
// lock meanwhile: admissions stall that long.
func BenchmarkMonitorOnce10k(b *testing.B) {
	c, drv := fatTreeWith(b, 16, 10_000)
	at := meteredAt(c)
	cfg := MonitorConfig{Interval: time.Second}
	ctx := context.Background()
	send := func(k uint64) {
		for id, sw := range at {
			rec := c.recs[id]
			per := uint64(time.Second / time.Duration(rec.tun.PeriodNs))
			drv.SetStats(sw, southbound.TunnelStats{Tunnel: id, Packets: per * k, Bytes: per * k * uint64(rec.tun.LoadsizeBytes)})
		}
	}
	send(1)
	if err := c.MonitorOnce(ctx, cfg); err != nil { // baseline
		b.Fatal(err)
	}
	var stall atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // an operation's view: how long the lock is out of reach
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			c.mu.Lock()
			c.mu.Unlock()
			if d := int64(time.Since(t0)); d > stall.Load() {
				stall.Store(d)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		send(uint64(i + 2))
		stall.Store(0)
		b.StartTimer()
		if err := c.MonitorOnce(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(stall.Load())/1e6, "max-stall-ms")
	for id := range at {
		if rec := c.recs[id]; rec.use.idle != 0 || rec.use.unused != 0 || rec.demoted {
			b.Fatalf("tunnel %d sending at its rate was judged idle/unused/demoted: %+v", id, rec.use)
		}
	}
}
