package southbound

import (
	"iter"
	"math/bits"
	"net/netip"
)

// PackedRule is a TunnelRule without pointers (its Out slice and Meter
// are pointers, and a netip.Addr holds one): a controller keeps a rule
// per tunnel per switch, and so do drivers, 60,000 on a k=16 fat-tree
// with 10,000 tunnels. Arrays and maps of PackedRule are not scanned by
// the garbage collector, whose marking otherwise lengthens the delay tail
// of everything the process does. Only rules whose output ports are
// strictly ascending within 1..MaxPackedPort pack; RuleMap keeps the
// others as they are.
type PackedRule struct {
	tunnel      uint64
	rate, burst uint64
	src, dst    [16]byte
	inPort      Port
	dstPort     uint16
	dscp        uint8
	sublane     uint8
	flags       uint8
	out         [MaxPackedPort / 64]uint64 // bit p-1: port p
}

// MaxPackedPort is the highest output port a PackedRule holds.
const MaxPackedPort = 256

const (
	packMeter = 1 << iota
	packDemoted
	packSrc4 // src is an IPv4 address (else IPv6, or invalid if not packSrcValid)
	packSrcValid
	packDst4
	packDstValid
)

// Pack packs r; ok is false if it does not fit (see PackedRule).
func Pack(r TunnelRule) (p PackedRule, ok bool) {
	if r.Sublane < 0 || r.Sublane > 255 {
		return PackedRule{}, false
	}
	p = PackedRule{tunnel: r.Tunnel, inPort: r.Match.InPort, dstPort: r.Match.DstPort, dscp: r.Match.DSCP, sublane: uint8(r.Sublane)}
	var okSrc, okDst bool
	if p.src, p.flags, okSrc = packAddr(r.Match.SrcIP, packSrcValid, packSrc4); !okSrc {
		return PackedRule{}, false
	}
	var f uint8
	if p.dst, f, okDst = packAddr(r.Match.DstIP, packDstValid, packDst4); !okDst {
		return PackedRule{}, false
	}
	p.flags |= f
	var last Port
	for _, o := range r.Out {
		if o <= last || o > MaxPackedPort {
			return PackedRule{}, false // out of order, repeated, or too high: kept unpacked
		}
		p.out[(o-1)/64] |= 1 << ((o - 1) % 64)
		last = o
	}
	if r.Meter != nil {
		p.flags |= packMeter
		p.rate, p.burst = r.Meter.RateBps, r.Meter.BurstBytes
	}
	if r.Demoted {
		p.flags |= packDemoted
	}
	return p, true
}

func packAddr(a netip.Addr, valid, is4 uint8) ([16]byte, uint8, bool) {
	switch {
	case !a.IsValid():
		return [16]byte{}, 0, true
	case a.Zone() != "":
		return [16]byte{}, 0, false
	case a.Is4():
		return a.As16(), valid | is4, true
	}
	return a.As16(), valid, true
}

func (p PackedRule) addr(b [16]byte, valid, is4 uint8) netip.Addr {
	switch {
	case p.flags&valid == 0:
		return netip.Addr{}
	case p.flags&is4 != 0:
		return netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrFrom16(b)
}

// Tunnel is the rule's tunnel.
func (p PackedRule) Tunnel() uint64 { return p.tunnel }

// Meter is the rule's meter, if it has one.
func (p PackedRule) Meter() (Meter, bool) {
	return Meter{RateBps: p.rate, BurstBytes: p.burst}, p.flags&packMeter != 0
}

// WithRate is p with its meter's rate set to rate (p has a meter).
func (p PackedRule) WithRate(rate uint64) PackedRule {
	p.rate = rate
	return p
}

// Unpack returns the rule p holds (Out and Meter newly allocated).
func (p PackedRule) Unpack() TunnelRule {
	r := TunnelRule{
		Tunnel: p.tunnel, Sublane: int(p.sublane), Demoted: p.flags&packDemoted != 0,
		Match: Match{InPort: p.inPort, SrcIP: p.addr(p.src, packSrcValid, packSrc4), DstIP: p.addr(p.dst, packDstValid, packDst4), DstPort: p.dstPort, DSCP: p.dscp},
	}
	for i, w := range p.out {
		for ; w != 0; w &= w - 1 {
			r.Out = append(r.Out, Port(i*64+bits.TrailingZeros64(w)+1))
		}
	}
	if m, ok := p.Meter(); ok {
		r.Meter = &m
	}
	return r
}

// RuleMap holds rules by tunnel, packed where they pack. The zero value
// is empty and ready to use.
type RuleMap struct {
	packed map[uint64]PackedRule
	wide   map[uint64]TunnelRule // the rules that do not pack
}

// NewRuleMap returns a map with room for n rules.
func NewRuleMap(n int) RuleMap {
	return RuleMap{packed: make(map[uint64]PackedRule, n)}
}

// Put sets the rule of r.Tunnel.
func (m *RuleMap) Put(r TunnelRule) {
	if p, ok := Pack(r); ok {
		if m.packed == nil {
			m.packed = map[uint64]PackedRule{}
		}
		m.packed[r.Tunnel] = p
		delete(m.wide, r.Tunnel)
		return
	}
	if m.wide == nil {
		m.wide = map[uint64]TunnelRule{}
	}
	m.wide[r.Tunnel] = r.Clone()
	delete(m.packed, r.Tunnel)
}

// Has reports whether tunnel has a rule.
func (m *RuleMap) Has(tunnel uint64) bool {
	_, ok := m.packed[tunnel]
	if !ok {
		_, ok = m.wide[tunnel]
	}
	return ok
}

// Get returns the rule of tunnel (a copy the caller may keep).
func (m *RuleMap) Get(tunnel uint64) (TunnelRule, bool) {
	if p, ok := m.packed[tunnel]; ok {
		return p.Unpack(), true
	}
	r, ok := m.wide[tunnel]
	return r.Clone(), ok
}

// Delete removes the rule of tunnel.
func (m *RuleMap) Delete(tunnel uint64) {
	delete(m.packed, tunnel)
	delete(m.wide, tunnel)
}

// Len is the number of rules.
func (m *RuleMap) Len() int { return len(m.packed) + len(m.wide) }

// All yields every rule (copies), in no particular order.
func (m *RuleMap) All() iter.Seq[TunnelRule] {
	return func(yield func(TunnelRule) bool) {
		for _, p := range m.packed {
			if !yield(p.Unpack()) {
				return
			}
		}
		for _, r := range m.wide {
			if !yield(r.Clone()) {
				return
			}
		}
	}
}
