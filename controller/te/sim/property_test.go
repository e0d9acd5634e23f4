package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/xlane/xlane/controller/te"
)

// randomTopology builds a connected network of 2–12 switches with 1–3 hosts
// each, mixed link speeds, queue sizes, latencies and jitters.
func randomTopology(rng *rand.Rand) te.TopologySpec {
	nsw := 2 + rng.IntN(11)
	spec := te.TopologySpec{
		FrameOverheadBytes: int64(rng.IntN(80)),
		MaxFrameBytes:      []int64{0, 1538, 9038, 600}[rng.IntN(4)],
		MaxExpressShare:    0.2 + 0.7*rng.Float64(),
		Sublanes:           1 + rng.IntN(3),
	}
	speeds := []int64{100e6, 1e9, 10e9, 25e9}
	cable := func(a, b string) {
		bw := speeds[rng.IntN(len(speeds))]
		q := int64(2048 << rng.IntN(6))
		lat := int64(50 + rng.IntN(3000))
		jit := int64(rng.IntN(800))
		spec.Links = append(spec.Links,
			te.LinkSpec{From: a, To: b, BandwidthBps: bw, QueueBytes: q, MinLatencyNs: lat, MaxJitterNs: jit},
			te.LinkSpec{From: b, To: a, BandwidthBps: bw, QueueBytes: q, MinLatencyNs: lat, MaxJitterNs: jit})
	}
	hosts := 0
	for s := range nsw {
		name := fmt.Sprintf("s%d", s)
		spec.Nodes = append(spec.Nodes, te.NodeSpec{Name: name, Kind: te.KindSwitch})
		if s > 0 {
			cable(name, fmt.Sprintf("s%d", rng.IntN(s))) // spanning tree keeps it connected
		}
		for range 1 + rng.IntN(3) {
			hosts++
			h := fmt.Sprintf("h%d", hosts)
			spec.Nodes = append(spec.Nodes, te.NodeSpec{Name: h, Kind: te.KindHost, IPv4: fmt.Sprintf("10.0.%d.%d", hosts/200, hosts%200+1)})
			cable(h, name)
		}
	}
	for range rng.IntN(nsw) { // extra cables make alternative paths
		a, b := rng.IntN(nsw), rng.IntN(nsw)
		if a == b {
			continue
		}
		dup := false
		for _, l := range spec.Links {
			if l.From == fmt.Sprintf("s%d", a) && l.To == fmt.Sprintf("s%d", b) {
				dup = true
			}
		}
		if !dup {
			cable(fmt.Sprintf("s%d", a), fmt.Sprintf("s%d", b))
		}
	}
	return spec
}

func randomRequest(rng *rand.Rand, topo *te.Topology) te.Request {
	var hosts []string
	for _, n := range topo.Nodes {
		if n.Kind == te.KindHost {
			hosts = append(hosts, n.Name)
		}
	}
	rng.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	nr := 1
	if rng.IntN(10) < 4 && len(hosts) > 2 { // multicast
		nr = 2 + rng.IntN(min(4, len(hosts)-2))
	}
	load := int64(1 + rng.IntN(200))
	if rng.IntN(5) == 0 {
		load = 1 + rng.Int64N(topo.MaxLoadsize())
	}
	return te.Request{
		Sender: hosts[0], Receivers: hosts[1 : 1+nr], LoadsizeBytes: load,
		PeriodNs: int64(20_000 + rng.IntN(180_000)), Sublane: rng.IntN(topo.Sublanes),
	}
}

// TestPropertyBoundsHold admits random requests into random topologies
// (with releases and changes mixed in), checks the incremental engine
// against a from-scratch adjustment, then simulates every instance in
// random and adversarial mode with best-effort load: no packet may leave
// its bound and no express packet may be dropped.
func TestPropertyBoundsHold(t *testing.T) {
	instances := 2000
	if testing.Short() {
		instances = 200
	}
	const groups = 20
	for g := range groups {
		t.Run(fmt.Sprintf("seeds%04d", g*instances/groups), func(t *testing.T) {
			t.Parallel()
			for seed := g * instances / groups; seed < (g+1)*instances/groups; seed++ {
				checkInstance(t, uint64(seed))
			}
		})
	}
}

func checkInstance(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	topo, err := te.NewTopology(randomTopology(rng))
	if err != nil {
		t.Fatalf("seed %d: topology: %v", seed, err)
	}
	e := te.NewEngine(topo)
	// Every operation must report exactly the other tunnels whose
	// resources it changed.
	checkChanges := func(op string, self uint64, before map[uint64]te.Resources, got []te.Change) {
		want := map[uint64]te.Change{}
		for _, x := range e.Tunnels() {
			if o, ok := before[x.ID]; ok && x.ID != self && o != x.Resources() {
				want[x.ID] = te.Change{ID: x.ID, Old: o, New: x.Resources()}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("seed %d: %s reported %d changes, resources show %d", seed, op, len(got), len(want))
		}
		for _, c := range got {
			if w := want[c.ID]; w.ID != c.ID || w.Old != c.Old || w.New != c.New {
				t.Fatalf("seed %d: %s reported %+v, want %+v", seed, op, c, want[c.ID])
			}
		}
	}
	snapshot := func() map[uint64]te.Resources {
		m := map[uint64]te.Resources{}
		for _, x := range e.Tunnels() {
			m[x.ID] = x.Resources()
		}
		return m
	}
	nreq := 1 + rng.IntN(14)
	for range nreq {
		before := snapshot()
		if tun, ch, err := e.Admit(randomRequest(rng, topo)); err == nil { // rejections are fine
			checkChanges("admit", tun.ID, before, ch)
		} else if len(snapshot()) != len(before) {
			t.Fatalf("seed %d: rejected admission changed the tunnel set", seed)
		}
		ts := e.Tunnels()
		if len(ts) > 0 && rng.IntN(6) == 0 {
			before := snapshot()
			id := ts[rng.IntN(len(ts))].ID
			ch, err := e.Release(id)
			if err != nil {
				t.Fatalf("seed %d: release: %v", seed, err)
			}
			checkChanges("release", id, before, ch)
		}
		if len(ts) > 1 && rng.IntN(6) == 0 {
			x := ts[rng.IntN(len(ts))]
			r := randomRequest(rng, topo)
			r.Sender = x.Sender
			r.Receivers = x.Receivers
			before := snapshot()
			if _, ch, err := e.Change(x.ID, r); err == nil {
				checkChanges("change", x.ID, before, ch)
			} else {
				after := snapshot()
				for id, res := range before {
					if after[id] != res {
						t.Fatalf("seed %d: failed change altered tunnel %d", seed, id)
					}
				}
			}
		}
	}
	ts := e.Tunnels()
	if len(ts) == 0 {
		return
	}
	// Incremental results must equal a full X-ADJ of the same trees.
	fresh := te.NewEngine(topo)
	full, err := fresh.Install(ts)
	if err != nil {
		t.Fatalf("seed %d: reinstall: %v", seed, err)
	}
	for i := range ts {
		if full[i].Resources() != ts[i].Resources() {
			t.Fatalf("seed %d: tunnel %d incremental %+v, from scratch %+v", seed, ts[i].ID, ts[i].Resources(), full[i].Resources())
		}
	}
	load := []float64{0, 0.5, 0.9, 1}[rng.IntN(4)]
	for _, adv := range []bool{false, true} {
		cfg := Config{Seed: seed, BestEffortLoad: load, Adversarial: adv, Runs: 2, ClimbSteps: 2}
		if adv {
			cfg.Runs = len(ts)
		}
		rep, err := Run(context.Background(), topo, ts, cfg)
		if err != nil {
			t.Fatalf("seed %d: simulate: %v", seed, err)
		}
		if !rep.OK() {
			for _, tr := range rep.Tunnels {
				if tr.Violations > 0 || tr.Drops > 0 {
					t.Errorf("seed %d (%s, load %.1f): tunnel %d observed [%d, %d] ns, bound [%d, %d], %d violations, %d drops",
						seed, rep.Mode, load, tr.ID, tr.MinObserved, tr.MaxObserved, tr.BoundMin, tr.BoundMax, tr.Violations, tr.Drops)
				}
			}
			t.FailNow()
		}
	}
}
