package sim

import (
	"context"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/topogen"
	"github.com/xlane/xlane/controller/te/workload"
)

// BenchmarkSimulate simulates the demo's workload (300 coordination
// tunnels on a k=4 fat-tree, backlogged best effort) and reports packets
// and packet-hops (transmissions on links) simulated per second, with the
// runs spread over all CPUs as the CLI does.
func BenchmarkSimulate(b *testing.B) {
	spec, err := topogen.FatTree(4, topogen.Defaults())
	if err != nil {
		b.Fatal(err)
	}
	topo, err := te.NewTopology(spec)
	if err != nil {
		b.Fatal(err)
	}
	e := te.NewEngine(topo)
	for _, r := range workload.Requests(topo, workload.Coordination(), 300, 1) {
		_, _, _ = e.Admit(r)
	}
	ts := e.Tunnels()
	var packets, hops int64
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Run(context.Background(), topo, ts, Config{Seed: uint64(i), BestEffortLoad: 1, Runs: 4})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() {
			b.Fatalf("violations: %d", rep.Violations)
		}
		packets += rep.Packets
		hops += rep.PacketHops
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(packets)/el/1e6, "Mpackets/s")
	b.ReportMetric(float64(hops)/el/1e6, "Mhops/s")
}
