// Package workload draws request mixes for demos, tests and benchmarks.
package workload

import (
	"math/rand/v2"

	"github.com/xlane/xlane/controller/te"
)

// Mix describes a request population.
type Mix struct {
	// MulticastShare is the fraction of multicast requests; their receiver
	// count is uniform in [MinReceivers, MaxReceivers].
	MulticastShare             float64
	MinReceivers, MaxReceivers int
	// Loadsizes and PeriodsNs are drawn uniformly from these lists.
	Loadsizes []int64
	PeriodsNs []int64
}

// Coordination is the mix of the paper's services: small heartbeats and
// Raft messages, 70 % unicast, 30 % multicast to 2–8 receivers, periods
// from 10 µs to 1 ms.
func Coordination() Mix {
	return Mix{
		MulticastShare: 0.3, MinReceivers: 2, MaxReceivers: 8,
		Loadsizes: []int64{16, 32, 64, 64, 128, 256},
		PeriodsNs: []int64{10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000},
	}
}

// Requests draws n requests over the hosts of topo, deterministically from
// seed. Sub-lanes are drawn uniformly from the topology's.
func Requests(topo *te.Topology, mix Mix, n int, seed uint64) []te.Request {
	var hosts []string
	for _, nd := range topo.Nodes {
		if nd.Kind == te.KindHost {
			hosts = append(hosts, nd.Name)
		}
	}
	return Draw(hosts, topo.Sublanes, mix, n, seed)
}

// Draw is Requests over a list of host names and a sub-lane count (a
// client that knows the topology only from the controller's API).
func Draw(hosts []string, sublanes int, mix Mix, n int, seed uint64) []te.Request {
	rng := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	if len(hosts) < 2 || sublanes < 1 {
		return nil
	}
	out := make([]te.Request, 0, n)
	for range n {
		nr := 1
		if rng.Float64() < mix.MulticastShare {
			nr = mix.MinReceivers + rng.IntN(mix.MaxReceivers-mix.MinReceivers+1)
		}
		nr = min(nr, len(hosts)-1)
		// A partial Fisher–Yates shuffle picks sender and receivers.
		pick := make([]string, 0, nr+1)
		idx := map[int]int{}
		for i := 0; i <= nr; i++ {
			j := i + rng.IntN(len(hosts)-i)
			vi, ok := idx[i]
			if !ok {
				vi = i
			}
			vj, ok := idx[j]
			if !ok {
				vj = j
			}
			idx[i], idx[j] = vj, vi
			pick = append(pick, hosts[vj])
		}
		out = append(out, te.Request{
			Sender: pick[0], Receivers: pick[1:],
			LoadsizeBytes: mix.Loadsizes[rng.IntN(len(mix.Loadsizes))],
			PeriodNs:      mix.PeriodsNs[rng.IntN(len(mix.PeriodsNs))],
			Sublane:       rng.IntN(sublanes),
		})
	}
	return out
}
