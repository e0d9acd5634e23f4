package openflow_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xlane/xlane/southbound"
)

// rules returns n unicast tunnel rules with meters, as a first switch
// holds them.
func rules(n, base int) []southbound.TunnelRule {
	out := make([]southbound.TunnelRule, n)
	for i := range out {
		id := base + i
		out[i] = southbound.TunnelRule{
			Tunnel: uint64(id),
			Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"),
				DstIP: netip.AddrFrom4([4]byte{10, 1, byte(id >> 8), byte(id)}), DstPort: uint16(5000 + id>>16), DSCP: 46},
			Out:   []southbound.Port{2},
			Meter: &southbound.Meter{RateBps: 1_000_000, BurstBytes: 1000},
		}
	}
	return out
}

// BenchmarkOVSApply measures tunnel rules (a flow and a meter each)
// installed per second on one Open vSwitch bridge, one admission per
// batch and 100 per batch; each batch is barrier-checked.
func BenchmarkOVSApply(b *testing.B) {
	for _, per := range []int{1, 100} {
		b.Run(fmt.Sprintf("per-batch=%d", per), func(b *testing.B) {
			bb := newBench(b)
			rs := rules(b.N*per, 1)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := bb.drv.Apply(bb.ctx, "s1", southbound.Batch{Put: rs[i*per : (i+1)*per]}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "rules/s")
		})
	}
}

// BenchmarkOVSReconcile1000 measures reconciling a bridge to 1,000
// metered tunnels: when it already holds them (a controller restart: read
// back, nothing to change) and when it is empty (a restarted
// ovs-vswitchd: everything to install).
func BenchmarkOVSReconcile1000(b *testing.B) {
	bb := newBench(b)
	want := southbound.SwitchState{Rules: rules(1000, 1), Routes: bb.want.Routes}
	empty := southbound.SwitchState{Routes: bb.want.Routes}
	if err := bb.drv.Reconcile(bb.ctx, "s1", want); err != nil {
		b.Fatal(err)
	}
	b.Run("unchanged", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := bb.drv.Reconcile(bb.ctx, "s1", want); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("from-empty", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if err := bb.drv.Reconcile(bb.ctx, "s1", empty); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := bb.drv.Reconcile(bb.ctx, "s1", want); err != nil {
				b.Fatal(err)
			}
		}
	})
}
