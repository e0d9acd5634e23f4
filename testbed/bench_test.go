package testbed_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/testbed"
)

// BenchmarkRequestToFirstPacket measures, on the leaf-spine testbed, the
// time from calling RequestBandwidth (gRPC to the in-process controller,
// TE, three switches programmed over OpenFlow) to the first datagram that
// arrives through the new tunnel's flows. A sender probes every 100 µs
// with the express DSCP from before the request; best-effort routes
// re-mark it 0, only the tunnel's flows keep it express, so the first
// datagram arriving with it marks the tunnel as live end to end. Each op requests and then releases a tunnel.
func BenchmarkRequestToFirstPacket(b *testing.B) {
	h := newHarness(b, "b1", nil)
	dst := netip.AddrPortFrom(h.ip("h4"), 7600)
	rx, err := h.tb.ListenUDP("h4", dst.Port())
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	tx, err := h.tb.DialUDP("h1", dst, southbound.DSCP(0, false))
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	var lat, call []time.Duration
	buf := make([]byte, 2048)
	payload := make([]byte, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // the prober
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				tx.Write(payload)
				time.Sleep(100 * time.Microsecond)
			}
		}()
		start := time.Now()
		res, err := h.cli.RequestBandwidth(h.ctx, tunnels.Request{Sender: h.ip("h1"), Receiver: dst, LoadsizeBytes: 64, PeriodUs: 1000})
		if err != nil {
			b.Fatal(err)
		}
		call = append(call, time.Since(start))
		for {
			rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			p, err := testbed.ReadTOS(rx, buf)
			if err != nil {
				b.Fatalf("no datagram through the tunnel: %v", err)
			}
			if p.TOS>>2 == southbound.DSCP(0, false) {
				lat = append(lat, time.Since(start))
				break
			}
		}
		close(stop)
		<-done
		b.StopTimer()
		if err := h.cli.ReleaseBandwidth(h.ctx, res.TunnelID); err != nil {
			b.Fatal(err)
		}
		// Drain what is still in flight.
		rx.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			if _, err := rx.Read(buf); err != nil {
				break
			}
		}
		b.StartTimer()
	}
	slices.Sort(lat)
	slices.Sort(call)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
	b.ReportMetric(float64(call[len(call)/2].Microseconds())/1000, "rpc-median-ms")
}
