package openflow

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/xlane/xlane/southbound"
)

// Flow priorities in table 0: tunnel flows above every route; longer
// route prefixes above shorter ones.
const (
	priorityTunnel    = 1000
	priorityRouteBase = 100
	// routeCookie marks best-effort route flows; tunnel flows carry their
	// tunnel id as cookie (ids stay below 2^63).
	routeCookie = uint64(1) << 63
	maxGroupID  = 0xffffff00
)

// flowKey is what identifies a flow in a table: its priority and match.
type flowKey struct {
	Priority uint16
	InPort   uint32 // 0: any
	Src      netip.Addr
	Dst      netip.Prefix
	UDPDst   uint16 // 0: any (no ip_proto match either)
	DSCP     int    // -1: any
}

// flow is one table-0 flow as this driver writes and reads it.
type flow struct {
	flowKey
	Cookie  uint64
	Meter   uint32 // 0: none
	SetDSCP int    // DSCP written; -1: left as it is
	Out     uint32 // output port; 0 when Group is set
	Group   uint32
	// foreign is set on a flow read back with a match or action this
	// driver never writes; raw keeps its match for a strict delete.
	foreign bool
	raw     []rawXM
	Packets uint64
	Bytes   uint64
}

func (f flow) sameAs(o flow) bool {
	return !f.foreign && !o.foreign && f.flowKey == o.flowKey && f.Cookie == o.Cookie && f.Meter == o.Meter &&
		f.SetDSCP == o.SetDSCP && f.Out == o.Out && f.Group == o.Group
}

// meter is one drop-band meter in kbit/s.
type meter struct {
	ID        uint32
	RateKbps  uint32
	BurstKbit uint32
	foreign   bool // not a single kbps drop band with burst
}

// group is one ALL group: a copy of the packet out of each port.
type group struct {
	ID      uint32
	Outs    []uint32
	foreign bool
}

func (g group) sameAs(o group) bool {
	return !g.foreign && !o.foreign && g.ID == o.ID && slices.Equal(g.Outs, o.Outs)
}

// entries is the OpenFlow state for some tunnels and routes.
type entries struct {
	flows  map[flowKey]flow
	meters map[uint32]meter
	groups map[uint32]group
}

func newEntries() entries {
	return entries{flows: map[flowKey]flow{}, meters: map[uint32]meter{}, groups: map[uint32]group{}}
}

// meterParams converts a tunnel's meter to OpenFlow units, rounding up so
// the switch never polices below the rate the controller granted. slack
// adds what the rate earns in that time to the burst: a switch whose
// meter clock ticks coarsely (Open vSwitch's userspace datapath counts
// milliseconds, and its datapath thread reads a cached clock) otherwise
// drops packets of a sender that keeps its period exactly.
func meterParams(m southbound.Meter, slack time.Duration) (rateKbps, burstKbit uint32) {
	rate := (m.RateBps + 999) / 1000
	bits := m.BurstBytes*8 + m.RateBps*uint64(slack)/uint64(time.Second)
	burst := (bits + 999) / 1000
	return uint32(max(rate, 1)), uint32(max(burst, 1))
}

// addRule adds the entries of one tunnel rule; meterID is the meter the
// rule uses if it has one.
func (e entries) addRule(r southbound.TunnelRule, meterID uint32, slack time.Duration) error {
	if r.Tunnel == 0 || r.Tunnel >= routeCookie {
		return fmt.Errorf("tunnel id %d: out of the range this driver can tag flows with", r.Tunnel)
	}
	if !r.Match.DstIP.Is4() {
		return fmt.Errorf("tunnel %d: destination %v is not IPv4", r.Tunnel, r.Match.DstIP)
	}
	f := flow{
		flowKey: flowKey{Priority: priorityTunnel, InPort: uint32(r.Match.InPort), Src: r.Match.SrcIP,
			Dst: netip.PrefixFrom(r.Match.DstIP, 32), UDPDst: r.Match.DstPort, DSCP: int(r.Match.DSCP)},
		Cookie:  r.Tunnel,
		SetDSCP: int(southbound.DSCP(r.Sublane, r.Demoted)),
	}
	switch len(r.Out) {
	case 0:
		return fmt.Errorf("tunnel %d: no output port", r.Tunnel)
	case 1:
		f.Out = uint32(r.Out[0])
	default:
		if r.Tunnel > maxGroupID {
			return fmt.Errorf("tunnel %d: above the largest OpenFlow group id", r.Tunnel)
		}
		g := group{ID: uint32(r.Tunnel)}
		for _, p := range r.Out {
			g.Outs = append(g.Outs, uint32(p))
		}
		slices.Sort(g.Outs)
		e.groups[g.ID] = g
		f.Group = g.ID
	}
	if r.Meter != nil {
		rate, burst := meterParams(*r.Meter, slack)
		e.meters[meterID] = meter{ID: meterID, RateKbps: rate, BurstKbit: burst}
		f.Meter = meterID
	}
	e.flows[f.flowKey] = f
	return nil
}

// addRoute adds the flow of one best-effort route. It marks packets best
// effort: a host cannot buy express priority by marking its own traffic.
func (e entries) addRoute(rt southbound.Route) error {
	if !rt.Dst.Addr().Is4() {
		return fmt.Errorf("route %v: not IPv4", rt.Dst)
	}
	f := flow{
		flowKey: flowKey{Priority: uint16(priorityRouteBase + rt.Dst.Bits()), Dst: rt.Dst.Masked(), DSCP: -1},
		Cookie:  routeCookie, SetDSCP: southbound.BestEffortDSCP, Out: uint32(rt.Out),
	}
	e.flows[f.flowKey] = f
	return nil
}
