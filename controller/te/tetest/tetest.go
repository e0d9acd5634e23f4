// Package tetest holds small topologies shared by tests across packages.
package tetest

import (
	"testing"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/topogen"
)

// TwoSwitchSpec is h1 - s1 - s2 - {h2, h3} at 1 Gbit/s with 1000-byte
// frames, no framing overhead, 10000-byte express queues, 1 µs links with
// 100 ns of jitter, and two sub-lanes. Ports: s1: 1 = h1, 2 = s2;
// s2: 1 = s1, 2 = h2, 3 = h3. Hosts are 10.0.0.1–3.
func TwoSwitchSpec() te.TopologySpec {
	spec := te.TopologySpec{MaxFrameBytes: 1000, Sublanes: 2,
		Nodes: []te.NodeSpec{
			{Name: "h1", Kind: te.KindHost, IPv4: "10.0.0.1"}, {Name: "s1", Kind: te.KindSwitch},
			{Name: "s2", Kind: te.KindSwitch}, {Name: "h2", Kind: te.KindHost, IPv4: "10.0.0.2"},
			{Name: "h3", Kind: te.KindHost, IPv4: "10.0.0.3"},
		}}
	for _, p := range [][2]string{{"h1", "s1"}, {"s1", "s2"}, {"s2", "h2"}, {"s2", "h3"}} {
		for _, d := range [][2]string{p, {p[1], p[0]}} {
			spec.Links = append(spec.Links, te.LinkSpec{From: d[0], To: d[1], BandwidthBps: 1e9, QueueBytes: 10000, MinLatencyNs: 1000, MaxJitterNs: 100})
		}
	}
	return spec
}

// TwoSwitch is TwoSwitchSpec as a validated topology.
func TwoSwitch(t testing.TB) *te.Topology {
	t.Helper()
	topo, err := te.NewTopology(TwoSwitchSpec())
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// FatTree is topogen's k-ary fat-tree with its defaults, validated, and
// its hosts' names in node order.
func FatTree(t testing.TB, k int) (*te.Topology, []string) {
	t.Helper()
	spec, err := topogen.FatTree(k, topogen.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	topo, err := te.NewTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, n := range topo.Nodes {
		if n.Kind == te.KindHost {
			hosts = append(hosts, n.Name)
		}
	}
	return topo, hosts
}
