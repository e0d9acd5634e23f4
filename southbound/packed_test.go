package southbound

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"unsafe"
)

func TestPackRoundTrips(t *testing.T) {
	v4, v6, grp := netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("fd00::7"), netip.MustParseAddr("239.1.2.3")
	for _, r := range []TunnelRule{
		{},
		{Tunnel: 7, Match: Match{InPort: 3, SrcIP: v4, DstIP: v4, DstPort: 4000, DSCP: 46}, Sublane: 2, Out: []Port{1}, Meter: &Meter{RateBps: 123456, BurstBytes: 1500}},
		{Tunnel: 1 << 60, Match: Match{InPort: 1 << 31, SrcIP: v6, DstIP: grp, DSCP: 0}, Out: []Port{1, 2, 64, 65, 128, 200, 256}, Demoted: true},
		{Tunnel: 9, Match: Match{SrcIP: v4}, Sublane: 255},
	} {
		p, ok := Pack(r)
		if !ok {
			t.Fatalf("%+v does not pack", r)
		}
		if got := p.Unpack(); !got.Equal(r) || got.Match.SrcIP != r.Match.SrcIP || got.Match.DstIP != r.Match.DstIP {
			t.Fatalf("round trip: %+v, want %+v", got, r)
		}
		if m, has := p.Meter(); has != (r.Meter != nil) || has && m != *r.Meter || p.Tunnel() != r.Tunnel {
			t.Fatalf("meter %v %v, tunnel %d of %+v", m, has, p.Tunnel(), r)
		}
	}
}

// What a PackedRule cannot hold exactly is refused, not bent.
func TestPackRefuses(t *testing.T) {
	zoned := netip.MustParseAddr("fe80::1%eth0")
	for name, r := range map[string]TunnelRule{
		"port above 256":  {Out: []Port{257}},
		"port 0":          {Out: []Port{0}},
		"ports unordered": {Out: []Port{3, 2}},
		"port repeated":   {Out: []Port{2, 2}},
		"sublane -1":      {Sublane: -1},
		"sublane 256":     {Sublane: 256},
		"zoned source":    {Match: Match{SrcIP: zoned}},
		"zoned receiver":  {Match: Match{DstIP: zoned}},
	} {
		if _, ok := Pack(r); ok {
			t.Errorf("%s: packed", name)
		}
	}
}

// The point of the type: a field that holds a pointer would compile and
// pass everything else.
func TestPackedRuleHasNoPointers(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				walk(ty.Field(i).Type, path+"."+ty.Field(i).Name)
			}
		case reflect.Array:
			walk(ty.Elem(), path+"[]")
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Errorf("%s is a %v: the collector scans it", path, ty.Kind())
		}
	}
	walk(reflect.TypeFor[PackedRule](), "PackedRule")
	if size := unsafe.Sizeof(PackedRule{}); size > 128 {
		t.Errorf("PackedRule is %d bytes", size)
	}
}

func TestWithRate(t *testing.T) {
	p, _ := Pack(TunnelRule{Tunnel: 1, Out: []Port{2}, Meter: &Meter{RateBps: 10, BurstBytes: 100}})
	if m, _ := p.WithRate(99).Meter(); m != (Meter{RateBps: 99, BurstBytes: 100}) {
		t.Fatalf("meter %+v", m)
	}
}

func TestRuleMap(t *testing.T) {
	var m RuleMap // the zero value works
	narrow := TunnelRule{Tunnel: 1, Out: []Port{2, 5}, Meter: &Meter{RateBps: 1, BurstBytes: 2}}
	wide := TunnelRule{Tunnel: 2, Out: []Port{300}}
	m.Put(narrow)
	m.Put(wide)
	if m.Len() != 2 || !m.Has(1) || !m.Has(2) || m.Has(3) {
		t.Fatalf("len %d", m.Len())
	}
	for _, want := range []TunnelRule{narrow, wide} {
		got, ok := m.Get(want.Tunnel)
		if !ok || !got.Equal(want) {
			t.Fatalf("get %d: %+v %v", want.Tunnel, got, ok)
		}
		got.Out[0] = 99 // a copy: the map keeps its own
		if again, _ := m.Get(want.Tunnel); !again.Equal(want) {
			t.Fatalf("get %d after the caller changed its copy: %+v", want.Tunnel, again)
		}
	}
	wide.Out[0] = 301 // what Put kept is its own too
	if got, _ := m.Get(2); got.Out[0] != 300 {
		t.Fatalf("the map shares ports with the caller: %v", got.Out)
	}
	// A tunnel's rule moves between the packed and the wide set.
	m.Put(TunnelRule{Tunnel: 1, Out: []Port{400}})
	m.Put(TunnelRule{Tunnel: 2, Out: []Port{3}})
	if m.Len() != 2 || len(m.packed) != 1 || len(m.wide) != 1 {
		t.Fatalf("after swapping: %d packed, %d wide", len(m.packed), len(m.wide))
	}
	var ids []uint64
	for r := range m.All() {
		ids = append(ids, r.Tunnel)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint64{1, 2}) {
		t.Fatalf("all: %v", ids)
	}
	m.Delete(1)
	m.Delete(2)
	if _, ok := m.Get(1); ok || m.Len() != 0 {
		t.Fatalf("after deletes: len %d", m.Len())
	}
}

// FuzzPack: whatever packs comes back equal.
func FuzzPack(f *testing.F) {
	f.Add(uint64(1), uint32(3), []byte{10, 0, 0, 1}, []byte{239, 1, 1, 1}, uint16(5000), uint8(46), 2, []byte{1, 2, 3}, true, uint64(1000), uint64(200), false)
	f.Fuzz(func(t *testing.T, id uint64, in uint32, src, dst []byte, dport uint16, dscp uint8, sublane int, out []byte, meter bool, rate, burst uint64, demoted bool) {
		addr := func(b []byte) netip.Addr { a, _ := netip.AddrFromSlice(b); return a }
		r := TunnelRule{Tunnel: id, Match: Match{InPort: Port(in), SrcIP: addr(src), DstIP: addr(dst), DstPort: dport, DSCP: dscp}, Sublane: sublane, Demoted: demoted}
		for _, o := range out {
			r.Out = append(r.Out, Port(o)+Port(o)) // up to 510: some do not pack
		}
		if meter {
			r.Meter = &Meter{RateBps: rate, BurstBytes: burst}
		}
		p, ok := Pack(r)
		if !ok {
			return
		}
		if got := p.Unpack(); !got.Equal(r) {
			t.Fatalf("round trip: %+v, want %+v", got, r)
		}
	})
}
