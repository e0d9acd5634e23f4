package p4rt

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/protobuf/proto"

	"github.com/xlane/xlane/southbound"
)

// Priorities of BMv2's strict-priority egress queues (--priority-queues
// 8): the highest number goes first; best effort is 0.
const topPriority = 7

// maxGroupID keeps tree multicast groups below BMv2's clone sessions,
// which live in the same id space from 0x8000 on.
const maxGroupID = 0x7fff

// enc is the canonical P4Runtime bytestring of v: big-endian without
// leading zero bytes, zero as one zero byte.
func enc(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	i := 0
	for i < 7 && b[i] == 0 {
		i++
	}
	return slices.Clone(b[i:])
}

func dec(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

func exact(id uint32, v uint64) *p4v1.FieldMatch {
	return &p4v1.FieldMatch{FieldId: id, FieldMatchType: &p4v1.FieldMatch_Exact_{Exact: &p4v1.FieldMatch_Exact{Value: enc(v)}}}
}

func action(id uint32, paramIDs []uint32, values ...uint64) *p4v1.TableAction {
	a := &p4v1.Action{ActionId: id}
	for i, v := range values {
		a.Params = append(a.Params, &p4v1.Action_Param{ParamId: paramIDs[i], Value: enc(v)})
	}
	return &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: a}}
}

// swEntries is the P4Runtime state of some tunnels and routes on one
// switch.
type swEntries struct {
	classifier map[string]*p4v1.TableEntry // by match key
	tunnels    map[string]*p4v1.TableEntry
	routes     map[string]*p4v1.TableEntry
	meters     map[int64]*p4v1.MeterConfig // configured meter cells
	groups     map[uint32]*p4v1.MulticastGroupEntry
}

func newSwEntries() swEntries {
	return swEntries{classifier: map[string]*p4v1.TableEntry{}, tunnels: map[string]*p4v1.TableEntry{},
		routes: map[string]*p4v1.TableEntry{}, meters: map[int64]*p4v1.MeterConfig{}, groups: map[uint32]*p4v1.MulticastGroupEntry{}}
}

// matchKey identifies a table entry by its (canonical) match.
func matchKey(te *p4v1.TableEntry) string {
	ms := slices.Clone(te.GetMatch())
	slices.SortFunc(ms, func(a, b *p4v1.FieldMatch) int { return int(a.GetFieldId()) - int(b.GetFieldId()) })
	var k strings.Builder
	for _, m := range ms {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		k.WriteString(hex.EncodeToString(b) + "|")
	}
	return k.String()
}

// sameEntry compares the parts of two entries the driver writes.
func sameEntry(a, b *p4v1.TableEntry) bool {
	norm := func(te *p4v1.TableEntry) *p4v1.TableEntry {
		n := &p4v1.TableEntry{TableId: te.GetTableId(), Priority: te.GetPriority(), Match: slices.Clone(te.GetMatch()), Action: proto.Clone(te.GetAction()).(*p4v1.TableAction)}
		slices.SortFunc(n.Match, func(a, b *p4v1.FieldMatch) int { return int(a.GetFieldId()) - int(b.GetFieldId()) })
		if act := n.GetAction().GetAction(); act != nil {
			slices.SortFunc(act.Params, func(a, b *p4v1.Action_Param) int { return int(a.GetParamId()) - int(b.GetParamId()) })
		}
		return n
	}
	return proto.Equal(norm(a), norm(b))
}

// meterConfig polices at the tunnel's rate (bytes/s, rounded up) with a
// burst of one packet; above it packets turn red and are dropped. slack
// widens the burst by what the rate earns in that time.
func meterConfig(m southbound.Meter, slack time.Duration) *p4v1.MeterConfig {
	rate := int64((m.RateBps + 7) / 8)
	burst := int64(m.BurstBytes) + rate*int64(slack)/int64(time.Second)
	return &p4v1.MeterConfig{Cir: rate, Cburst: burst, Pir: rate, Pburst: burst}
}

// addRule adds one tunnel rule's entries; meterIdx and group are the
// switch-local slots the rule uses if metered or branching.
func (e swEntries) addRule(x *ids, r southbound.TunnelRule, meterIdx int64, group uint32, slack time.Duration) error {
	if !r.Match.SrcIP.Is4() || !r.Match.DstIP.Is4() {
		return fmt.Errorf("tunnel %d: addresses %v → %v are not IPv4", r.Tunnel, r.Match.SrcIP, r.Match.DstIP)
	}
	if r.Tunnel > 0xffffffff {
		return fmt.Errorf("tunnel %d: above the pipeline's 32-bit tunnel id", r.Tunnel)
	}
	if r.Match.InPort >= 1<<9 {
		return fmt.Errorf("tunnel %d: port %d above the pipeline's 9-bit ports", r.Tunnel, r.Match.InPort)
	}
	prio := uint64(topPriority - r.Sublane)
	if r.Demoted || r.Sublane < 0 || r.Sublane > topPriority {
		prio = 0
	}
	dscp := uint64(southbound.DSCP(r.Sublane, r.Demoted))
	f := x.fields[tblClassifier]
	ce := &p4v1.TableEntry{TableId: x.classifier, Match: []*p4v1.FieldMatch{
		exact(f[0], uint64(r.Match.InPort)), exact(f[1], uint64(ipv4(r.Match.SrcIP))), exact(f[2], uint64(ipv4(r.Match.DstIP))),
		exact(f[3], uint64(r.Match.DstPort)), exact(f[4], uint64(r.Match.DSCP)),
	}}
	if r.Meter != nil {
		ce.Action = action(x.expressMetered, x.params[actExpressMeter], r.Tunnel, prio, dscp, uint64(meterIdx))
		e.meters[meterIdx] = meterConfig(*r.Meter, slack)
	} else {
		ce.Action = action(x.express, x.params[actExpress], r.Tunnel, prio, dscp)
	}
	e.classifier[matchKey(ce)] = ce
	te := &p4v1.TableEntry{TableId: x.tunnels, Match: []*p4v1.FieldMatch{exact(x.fields[tblTunnels][0], r.Tunnel)}}
	switch len(r.Out) {
	case 0:
		return fmt.Errorf("tunnel %d: no output port", r.Tunnel)
	case 1:
		te.Action = action(x.output, x.params[actOutput], uint64(r.Out[0]))
	default:
		te.Action = action(x.multicast, x.params[actMulticast], uint64(group))
		g := &p4v1.MulticastGroupEntry{MulticastGroupId: group}
		outs := slices.Clone(r.Out)
		slices.Sort(outs)
		for _, p := range outs {
			g.Replicas = append(g.Replicas, &p4v1.Replica{EgressPort: uint32(p), Instance: 1})
		}
		e.groups[group] = g
	}
	e.tunnels[matchKey(te)] = te
	return nil
}

func (e swEntries) addRoute(x *ids, rt southbound.Route) error {
	if !rt.Dst.Addr().Is4() || rt.Dst.Bits() == 0 {
		return fmt.Errorf("route %v: not an IPv4 prefix of at least one bit", rt.Dst)
	}
	p := rt.Dst.Masked()
	te := &p4v1.TableEntry{TableId: x.routes, Match: []*p4v1.FieldMatch{{FieldId: x.fields[tblRoutes][0],
		FieldMatchType: &p4v1.FieldMatch_Lpm{Lpm: &p4v1.FieldMatch_LPM{Value: enc(uint64(ipv4(p.Addr()))), PrefixLen: int32(p.Bits())}}}},
		Action: action(x.route, x.params[actRoute], uint64(rt.Out))}
	e.routes[matchKey(te)] = te
	return nil
}

func ipv4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func sameGroup(a, b *p4v1.MulticastGroupEntry) bool {
	key := func(g *p4v1.MulticastGroupEntry) []uint64 {
		var k []uint64
		for _, r := range g.GetReplicas() {
			k = append(k, uint64(r.GetEgressPort())<<32|uint64(r.GetInstance()))
		}
		slices.Sort(k)
		return k
	}
	return a.GetMulticastGroupId() == b.GetMulticastGroupId() && slices.Equal(key(a), key(b))
}
