// Package topogen writes data-center topologies in the te file format:
// k-ary fat-trees and leaf-spine fabrics with realistic defaults.
package topogen

import (
	"fmt"

	"github.com/xlane/xlane/controller/te"
)

// Params are the per-link and topology-wide values of a generated network.
// The defaults (Defaults) model a 10 Gbit/s fabric of cut-through switches:
//   - switch-to-switch: 600 ns minimum (about 500 ns of switch pipeline and
//     20 m of fibre), 50 ns of jitter;
//   - host links: 1000 ns minimum (NIC, cable, switch), 300 ns of jitter,
//     the residual jitter X-Lane's endhost path leaves (paper §6.2);
//   - 128 KiB of egress buffer per port reserved for the express lane;
//   - 90 bytes of framing per packet (Ethernet 14 + FCS 4 + preamble and
//     inter-frame gap 20 + IPv4 20 + UDP 8 + X-Lane header 24);
//   - 1538-byte best-effort frames, half of each link for express traffic,
//     two sub-lanes.
type Params struct {
	BandwidthBps       int64
	QueueBytes         int64
	SwitchLatencyNs    int64
	SwitchJitterNs     int64
	HostLatencyNs      int64
	HostJitterNs       int64
	FrameOverheadBytes int64
	MaxFrameBytes      int64
	MaxExpressShare    float64
	Sublanes           int
}

// Defaults returns the documented defaults.
func Defaults() Params {
	return Params{
		BandwidthBps: 10_000_000_000, QueueBytes: 128 << 10,
		SwitchLatencyNs: 600, SwitchJitterNs: 50,
		HostLatencyNs: 1000, HostJitterNs: 300,
		FrameOverheadBytes: 90, MaxFrameBytes: 1538, MaxExpressShare: 0.5, Sublanes: 2,
	}
}

type builder struct {
	p    Params
	spec te.TopologySpec
}

func newBuilder(p Params) *builder {
	return &builder{p: p, spec: te.TopologySpec{
		FrameOverheadBytes: p.FrameOverheadBytes, MaxFrameBytes: p.MaxFrameBytes,
		MaxExpressShare: p.MaxExpressShare, Sublanes: p.Sublanes,
	}}
}

func (b *builder) node(name string, kind te.NodeKind, ip string) {
	b.spec.Nodes = append(b.spec.Nodes, te.NodeSpec{Name: name, Kind: kind, IPv4: ip})
}

// cable adds both directions of a cable.
func (b *builder) cable(x, y string, host bool) {
	lat, jit := b.p.SwitchLatencyNs, b.p.SwitchJitterNs
	if host {
		lat, jit = b.p.HostLatencyNs, b.p.HostJitterNs
	}
	for _, d := range [][2]string{{x, y}, {y, x}} {
		b.spec.Links = append(b.spec.Links, te.LinkSpec{
			From: d[0], To: d[1], BandwidthBps: b.p.BandwidthBps, QueueBytes: b.p.QueueBytes,
			MinLatencyNs: lat, MaxJitterNs: jit,
		})
	}
}

// FatTree builds a k-ary fat-tree (Al-Fares et al.): k pods of k/2 edge
// and k/2 aggregation switches, (k/2)² core switches, k³/4 hosts named
// h1, h2, … with addresses 10.pod.edge.(2+i).
func FatTree(k int, p Params) (te.TopologySpec, error) {
	if k < 2 || k%2 != 0 || k > 64 {
		return te.TopologySpec{}, fmt.Errorf("fat-tree k %d: must be even and between 2 and 64", k)
	}
	b := newBuilder(p)
	half := k / 2
	for c := range half * half {
		b.node(fmt.Sprintf("c%d", c), te.KindSwitch, "")
	}
	host := 0
	for pod := range k {
		for a := range half {
			agg := fmt.Sprintf("a%d_%d", pod, a)
			b.node(agg, te.KindSwitch, "")
			for j := range half { // aggregation a connects to cores a*half .. a*half+half-1
				b.cable(agg, fmt.Sprintf("c%d", a*half+j), false)
			}
		}
		for e := range half {
			edge := fmt.Sprintf("e%d_%d", pod, e)
			b.node(edge, te.KindSwitch, "")
			for a := range half {
				b.cable(edge, fmt.Sprintf("a%d_%d", pod, a), false)
			}
			for i := range half {
				host++
				h := fmt.Sprintf("h%d", host)
				b.node(h, te.KindHost, fmt.Sprintf("10.%d.%d.%d", pod, e, 2+i))
				b.cable(h, edge, true)
			}
		}
	}
	return b.spec, nil
}

// LeafSpine builds a two-tier Clos: every leaf connects to every spine,
// hosts h1, h2, … hang off the leaves with addresses 10.1.leaf.(2+i).
func LeafSpine(leaves, spines, hostsPerLeaf int, p Params) (te.TopologySpec, error) {
	switch {
	case leaves < 1 || leaves > 256:
		return te.TopologySpec{}, fmt.Errorf("leaves %d: must be between 1 and 256", leaves)
	case spines < 1 || spines > 256:
		return te.TopologySpec{}, fmt.Errorf("spines %d: must be between 1 and 256", spines)
	case hostsPerLeaf < 1 || hostsPerLeaf > 250:
		return te.TopologySpec{}, fmt.Errorf("hosts per leaf %d: must be between 1 and 250", hostsPerLeaf)
	case leaves*hostsPerLeaf < 2:
		return te.TopologySpec{}, fmt.Errorf("%d leaves × %d hosts: at least two hosts are needed", leaves, hostsPerLeaf)
	}
	b := newBuilder(p)
	for s := range spines {
		b.node(fmt.Sprintf("spine%d", s), te.KindSwitch, "")
	}
	host := 0
	for l := range leaves {
		leaf := fmt.Sprintf("leaf%d", l)
		b.node(leaf, te.KindSwitch, "")
		for s := range spines {
			b.cable(leaf, fmt.Sprintf("spine%d", s), false)
		}
		for i := range hostsPerLeaf {
			host++
			h := fmt.Sprintf("h%d", host)
			b.node(h, te.KindHost, fmt.Sprintf("10.1.%d.%d", l, 2+i))
			b.cable(h, leaf, true)
		}
	}
	return b.spec, nil
}
