package southbound

import "net/netip"

// PackedRoutes holds routes without pointers (a netip.Prefix carries
// one): a controller keeps a route per host at every switch, hundreds of
// thousands on a large fabric, and the garbage collector then marks the
// array without scanning it.
type PackedRoutes []packedRoute

type packedRoute struct {
	addr [16]byte
	bits int16 // -1: an invalid prefix
	is4  bool
	out  Port
}

// PackRoutes packs rs.
func PackRoutes(rs []Route) PackedRoutes {
	if rs == nil {
		return nil
	}
	out := make(PackedRoutes, len(rs))
	for i, r := range rs {
		p := packedRoute{bits: -1, out: r.Out}
		if r.Dst.IsValid() {
			a := r.Dst.Addr()
			p.addr, p.bits, p.is4 = a.As16(), int16(r.Dst.Bits()), a.Is4()
		}
		out[i] = p
	}
	return out
}

// Unpack returns the routes (a new slice).
func (p PackedRoutes) Unpack() []Route {
	if p == nil {
		return nil
	}
	out := make([]Route, len(p))
	for i, r := range p {
		out[i].Out = r.out
		if r.bits < 0 {
			continue
		}
		a := netip.AddrFrom16(r.addr)
		if r.is4 {
			a = a.Unmap()
		}
		out[i].Dst = netip.PrefixFrom(a, int(r.bits))
	}
	return out
}
