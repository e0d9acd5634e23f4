package sim

import (
	"context"
	"testing"

	"github.com/xlane/xlane/controller/te"
)

func lineTopo(t *testing.T) *te.Topology {
	t.Helper()
	spec := te.TopologySpec{
		MaxFrameBytes: 1000, Sublanes: 2,
		Nodes: []te.NodeSpec{
			{Name: "h1", Kind: te.KindHost, IPv4: "10.0.0.1"},
			{Name: "s1", Kind: te.KindSwitch},
			{Name: "h2", Kind: te.KindHost, IPv4: "10.0.0.2"},
		},
	}
	for _, p := range [][2]string{{"h1", "s1"}, {"s1", "h1"}, {"s1", "h2"}, {"h2", "s1"}} {
		spec.Links = append(spec.Links, te.LinkSpec{From: p[0], To: p[1], BandwidthBps: 1e9, QueueBytes: 10000, MinLatencyNs: 1000, MaxJitterNs: 100})
	}
	topo, err := te.NewTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestSimAloneHitsMinimum(t *testing.T) {
	topo := lineTopo(t)
	e := te.NewEngine(topo)
	tun, _, err := e.Admit(te.Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	// Without best effort, a lone tunnel sees no queueing: every packet
	// takes between the minimum and minimum + 2 hops of jitter.
	rep, err := Run(context.Background(), topo, e.Tunnels(), Config{Seed: 1, Runs: 3})
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Tunnels[0]
	if !rep.OK() || tr.Delivered == 0 {
		t.Fatalf("report = %+v", rep)
	}
	if tr.MinObserved < tun.MinLatencyNs || tr.MaxObserved > tun.MinLatencyNs+200 {
		t.Fatalf("observed [%d, %d], want within [%d, %d]", tr.MinObserved, tr.MaxObserved, tun.MinLatencyNs, tun.MinLatencyNs+200)
	}
}

func TestSimDetectsViolation(t *testing.T) {
	topo := lineTopo(t)
	e := te.NewEngine(topo)
	if _, _, err := e.Admit(te.Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000}); err != nil {
		t.Fatal(err)
	}
	// Claim a bound the network cannot meet under backlogged best effort:
	// the simulator must report it.
	ts := e.Tunnels()
	ts[0].MaxJitterNs = 10
	rep, err := Run(context.Background(), topo, ts, Config{Seed: 1, BestEffortLoad: 1, Adversarial: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Violations == 0 {
		t.Fatalf("violation not detected: %+v", rep.Tunnels[0])
	}
}

func TestSimAdversarialReachesTightBound(t *testing.T) {
	topo := lineTopo(t)
	e := te.NewEngine(topo)
	for _, r := range []te.Request{
		{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000},
		{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 200, PeriodNs: 10_000},
	} {
		if _, _, err := e.Admit(r); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Run(context.Background(), topo, e.Tunnels(), Config{Seed: 7, BestEffortLoad: 1, Adversarial: true, Runs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("bound violated: %+v", rep)
	}
	med, mx := rep.Tightness()
	t.Logf("tightness median %.3f max %.3f", med, mx)
	// On a single path the adversary lines up blocking and interference at
	// the first hop at least: it must get well past the unloaded latency.
	if mx < 0.5 {
		t.Fatalf("adversary too weak: tightness %.3f", mx)
	}
}
