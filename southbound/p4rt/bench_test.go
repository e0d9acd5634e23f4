package p4rt

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xlane/xlane/southbound"
)

func benchRules(n int) []southbound.TunnelRule {
	out := make([]southbound.TunnelRule, n)
	for i := range out {
		id := uint64(i + 1)
		out[i] = southbound.TunnelRule{Tunnel: id, Out: []southbound.Port{2}, Meter: &southbound.Meter{RateBps: 1_000_000, BurstBytes: 1000},
			Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"),
				DstIP: netip.AddrFrom4([4]byte{10, 1, byte(id >> 8), byte(id)}), DstPort: uint16(5000 + id>>16), DSCP: 46}}
	}
	return out
}

// BenchmarkP4RTProgram1000 measures programming 1,000 metered tunnels
// (a classifier entry, a tunnel entry and a meter cell each: 3,000
// updates) into the P4Runtime test server over loopback gRPC, one
// admission per batch, and reports entries written per second.
func BenchmarkP4RTProgram1000(b *testing.B) {
	for _, per := range []int{1, 100} {
		b.Run(fmt.Sprintf("per-batch=%d", per), func(b *testing.B) {
			rs := benchRules(1000)
			var total time.Duration
			var writes int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r := newRig(b)
				d, stop := r.driver("a", 1)
				r.waitReady("a")
				w0 := d.Writes()
				b.StartTimer()
				start := time.Now()
				for j := 0; j < len(rs); j += per {
					if err := d.Apply(context.Background(), "s1", southbound.Batch{Put: rs[j:min(j+per, len(rs))]}); err != nil {
						b.Fatal(err)
					}
				}
				total += time.Since(start)
				writes += d.Writes() - w0
				b.StopTimer()
				stop()
				r.stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(writes)/total.Seconds(), "entries/s")
			b.ReportMetric(total.Seconds()*1000/float64(b.N), "ms/1000-tunnels")
		})
	}
}

// BenchmarkP4RTReconcile1000 measures reconciling a switch that holds
// 1,000 metered tunnels after a reconnect: everything read back, nothing
// to change.
func BenchmarkP4RTReconcile1000(b *testing.B) {
	r := newRig(b)
	d, stop := r.driver("a", 1)
	defer stop()
	r.waitReady("a")
	want := southbound.SwitchState{Rules: benchRules(1000), Routes: routes}
	if err := d.Reconcile(context.Background(), "s1", want); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Reconcile(context.Background(), "s1", want); err != nil {
			b.Fatal(err)
		}
	}
}
