package sim

import (
	"fmt"

	"github.com/xlane/xlane/controller/te"
)

// stunnel is a tunnel prepared for simulation.
type stunnel struct {
	id       uint64
	wire     int64
	level    int
	period   te.Time
	links    []te.LinkID
	parent   []int32
	first    []int32   // link indexes leaving the sender
	children [][]int32 // per link index: link indexes leaving its head
	recv     []bool
	tx       []te.Time // per link index
	lo, hi   te.Time   // the bound: latency must lie in [lo, hi]
	// nominal arrival offsets at the queue of each link with zero queueing
	// and the minimum delays; the adversary uses them to line packets up.
	nominal []te.Time
}

// network is the static part of a simulation: topology and tunnels.
type network struct {
	topo    *te.Topology
	tunnels []stunnel
	blockTx []te.Time // per link: one max-size best-effort frame
	shares  [][]int32 // per link: tunnels crossing it
}

func prepare(topo *te.Topology, ts []te.Tunnel) (*network, error) {
	n := &network{topo: topo, blockTx: make([]te.Time, len(topo.Links)), shares: make([][]int32, len(topo.Links))}
	for i, l := range topo.Links {
		n.blockTx[i] = te.TxTime(topo.MaxFrameBytes, l.BandwidthBps)
	}
	for k, x := range ts {
		st, err := prepareTunnel(topo, x)
		if err != nil {
			return nil, fmt.Errorf("tunnels[%d] (id %d): %w", k, x.ID, err)
		}
		for _, lid := range st.links {
			n.shares[lid] = append(n.shares[lid], int32(k))
		}
		n.tunnels = append(n.tunnels, st)
	}
	return n, nil
}

func prepareTunnel(topo *te.Topology, x te.Tunnel) (stunnel, error) {
	st := stunnel{
		id: x.ID, wire: topo.WireBytes(x.LoadsizeBytes), level: x.Sublane, period: te.NsToTime(x.PeriodNs),
		lo: te.NsToTime(x.MinLatencyNs), hi: te.NsToTime(x.MinLatencyNs + x.MaxJitterNs),
	}
	if st.period <= 0 {
		return st, fmt.Errorf("period_ns %d: must be positive", x.PeriodNs)
	}
	if x.Sublane < 0 || x.Sublane >= topo.Sublanes {
		return st, fmt.Errorf("sublane %d: topology has %d", x.Sublane, topo.Sublanes)
	}
	sender, ok := topo.NodeByName(x.Sender)
	if !ok {
		return st, fmt.Errorf("sender %q: unknown node", x.Sender)
	}
	recv := map[te.NodeID]bool{}
	for _, r := range x.Receivers {
		id, ok := topo.NodeByName(r)
		if !ok {
			return st, fmt.Errorf("receiver %q: unknown node", r)
		}
		recv[id] = true
	}
	enter := map[te.NodeID]int32{}
	for _, e := range x.Edges {
		from, ok1 := topo.NodeByName(e[0])
		to, ok2 := topo.NodeByName(e[1])
		if !ok1 || !ok2 {
			return st, fmt.Errorf("edge %s->%s: unknown node", e[0], e[1])
		}
		lid, ok := topo.LinkBetween(from, to)
		if !ok {
			return st, fmt.Errorf("edge %s->%s: no such link", e[0], e[1])
		}
		if _, dup := enter[to]; dup {
			return st, fmt.Errorf("edge %s->%s: node entered twice", e[0], e[1])
		}
		enter[to] = int32(len(st.links))
		st.links = append(st.links, lid)
	}
	st.parent = make([]int32, len(st.links))
	st.children = make([][]int32, len(st.links))
	st.recv = make([]bool, len(st.links))
	st.tx = make([]te.Time, len(st.links))
	st.nominal = make([]te.Time, len(st.links))
	for i, lid := range st.links {
		l := topo.Links[lid]
		st.tx[i] = te.TxTime(st.wire, l.BandwidthBps)
		st.recv[i] = recv[l.To]
		if l.From == sender {
			st.parent[i] = -1
			st.first = append(st.first, int32(i))
			continue
		}
		p, ok := enter[l.From]
		if !ok {
			return st, fmt.Errorf("edge %s: tail not reached from the sender", topo.LinkName(lid))
		}
		st.parent[i] = p
		st.children[p] = append(st.children[p], int32(i))
	}
	// Nominal offsets need parents first; edges may come in any order.
	done := make([]bool, len(st.links))
	var fill func(i int32) te.Time
	fill = func(i int32) te.Time {
		if done[i] {
			return st.nominal[i]
		}
		done[i] = true // guards against cycles, which prepare rejects above anyway
		if p := st.parent[i]; p >= 0 {
			pl := topo.Links[st.links[p]]
			st.nominal[i] = fill(p) + st.tx[p] + pl.MinLatency
		}
		return st.nominal[i]
	}
	for i := range st.links {
		fill(int32(i))
	}
	return st, nil
}
