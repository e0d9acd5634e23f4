package testbed

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	p4switch "github.com/xlane/xlane/p4/switch"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/p4rt"
)

// bmv2Driver starts simple_switch_grpc without ports and a P4Runtime
// driver that is primary on it, or skips; stop ends both (one BMv2 at a
// time: they share the Thrift port).
func bmv2Driver(b *testing.B) (d *p4rt.Driver, stop func()) {
	bin, err := exec.LookPath("simple_switch_grpc")
	if err != nil {
		b.Skip("BMv2 is not installed (simple_switch_grpc not on PATH)")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	sw := exec.CommandContext(ctx, bin, "--no-p4", "--", "--grpc-server-addr", addr, "--priority-queues", "8")
	if err := sw.Start(); err != nil {
		b.Fatal(err)
	}
	ready := make(chan struct{}, 1)
	d, err = p4rt.New(p4rt.Config{Switches: map[string]p4rt.Target{"s1": {Addr: addr}}, ElectionID: 1,
		P4Info: p4switch.P4Info, DeviceConfig: p4switch.DeviceConfig, Cookie: 1,
		OnConnect: func(ctx context.Context, s string) {
			if err := d.Reconcile(ctx, s, southbound.SwitchState{}); err == nil {
				ready <- struct{}{}
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	stop = func() { cancel(); <-done; sw.Wait() }
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		stop()
		b.Fatal("not primary on BMv2")
	}
	return d, stop
}

func bmv2Rules(n int) []southbound.TunnelRule {
	out := make([]southbound.TunnelRule, n)
	for i := range out {
		id := uint64(i + 1)
		out[i] = southbound.TunnelRule{Tunnel: id, Out: []southbound.Port{2}, Meter: &southbound.Meter{RateBps: 1_000_000, BurstBytes: 1000},
			Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"),
				DstIP: netip.AddrFrom4([4]byte{10, 1, byte(id >> 8), byte(id)}), DstPort: 5000, DSCP: 46}}
	}
	return out
}

// BenchmarkBMv2Program1000 programs 1,000 metered tunnels (3,000
// updates) into BMv2 through the P4Runtime driver, one admission or 100
// per Apply, then reconciles the switch holding them (everything read
// back, nothing to change). Each op is one full run.
func BenchmarkBMv2Program1000(b *testing.B) {
	for _, per := range []int{1, 100} {
		b.Run(fmt.Sprintf("per-batch=%d", per), func(b *testing.B) {
			var prog, recon time.Duration
			var writes int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				d, stop := bmv2Driver(b)
				rs := bmv2Rules(1000)
				w0 := d.Writes()
				b.StartTimer()
				start := time.Now()
				for j := 0; j < len(rs); j += per {
					if err := d.Apply(context.Background(), "s1", southbound.Batch{Put: rs[j:min(j+per, len(rs))]}); err != nil {
						b.Fatal(err)
					}
				}
				prog += time.Since(start)
				writes += d.Writes() - w0
				start = time.Now()
				if err := d.Reconcile(context.Background(), "s1", southbound.SwitchState{Rules: rs}); err != nil {
					b.Fatal(err)
				}
				recon += time.Since(start)
				b.StopTimer()
				stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(writes)/prog.Seconds(), "entries/s")
			b.ReportMetric(prog.Seconds()*1000/float64(b.N), "program-ms")
			b.ReportMetric(recon.Seconds()*1000/float64(b.N), "reconcile-ms")
		})
	}
}
