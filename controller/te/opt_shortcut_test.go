package te

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSearchShortcutPlansTheSameTrees checks that the search shortcuts
// (A* for unicast plans, stopping each search once the sender is settled
// for trees) never change the tree: on random leaf-spine networks with
// random loads, every request is planned both ways. Half the networks
// have identical links, where equal-cost paths abound and only the
// tie-break keeps the searches in agreement.
func TestSearchShortcutPlansTheSameTrees(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 3))
		spec := TopologySpec{FrameOverheadBytes: 50, Sublanes: 2}
		leaves, spines := 2+rng.IntN(4), 1+rng.IntN(3)
		var hosts []string
		uniform := seed%2 == 0
		cable := func(a, b string) {
			bw := []int64{1e9, 10e9}[rng.IntN(2)]
			lat, jit := int64(100+rng.IntN(2000)), int64(rng.IntN(300))
			if uniform {
				bw, lat, jit = 10e9, 600, 50
			}
			for _, d := range [][2]string{{a, b}, {b, a}} {
				spec.Links = append(spec.Links, LinkSpec{From: d[0], To: d[1], BandwidthBps: bw, QueueBytes: 65536,
					MinLatencyNs: lat, MaxJitterNs: jit})
			}
		}
		for s := range spines {
			spec.Nodes = append(spec.Nodes, NodeSpec{Name: fmt.Sprintf("sp%d", s), Kind: KindSwitch})
		}
		for l := range leaves {
			leaf := fmt.Sprintf("lf%d", l)
			spec.Nodes = append(spec.Nodes, NodeSpec{Name: leaf, Kind: KindSwitch})
			for s := range spines {
				cable(leaf, fmt.Sprintf("sp%d", s))
			}
			for h := range 3 {
				name := fmt.Sprintf("h%d_%d", l, h)
				hosts = append(hosts, name)
				spec.Nodes = append(spec.Nodes, NodeSpec{Name: name, Kind: KindHost, IPv4: fmt.Sprintf("10.0.%d.%d", l, h+1)})
				cable(name, leaf)
			}
			// Some networks get direct leaf links, often slow: then the
			// fewest-hop path (which bounds the A* search) is not the
			// lightest one.
			if !uniform && l > 0 && rng.IntN(2) == 0 {
				before := len(spec.Links)
				cable(leaf, fmt.Sprintf("lf%d", l-1))
				for i := before; i < len(spec.Links); i++ {
					spec.Links[i].MinLatencyNs *= int64(1 + rng.IntN(8))
				}
			}
		}
		topo, err := NewTopology(spec)
		if err != nil {
			t.Fatal(err)
		}
		fast, full := NewEngine(topo), NewEngine(topo)
		full.fullSearch = true
		for range 60 {
			rng.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
			nr := 1 + rng.IntN(4)
			req := Request{Sender: hosts[0], Receivers: slices.Clone(hosts[1 : 1+nr]), LoadsizeBytes: int64(1 + rng.IntN(500)),
				PeriodNs: int64(20_000 + rng.IntN(500_000)), Sublane: rng.IntN(2)}
			a, _, errA := fast.Admit(req)
			b, _, errB := full.Admit(req)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("seed %d: shortcut %v, full search %v", seed, errA, errB)
			}
			if errA == nil && !slices.Equal(a.Edges, b.Edges) {
				t.Fatalf("seed %d: shortcut tree %v, full search tree %v", seed, a.Edges, b.Edges)
			}
		}
	}
}
