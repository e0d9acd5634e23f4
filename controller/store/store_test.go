package store

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/memory"
)

// TestRestartRestoresEverything runs a controller on a store, closes it,
// opens a new one on the same directory with switches that lost their
// state, and checks tunnels, groups and switch rules come back.
func TestRestartRestoresEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	topo, err := te.NewTopology(tetest.TwoSwitchSpec())
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetTopology(tetest.TwoSwitchSpec()); err != nil {
		t.Fatal(err)
	}
	drv := memory.New("s1", "s2")
	c, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: drv, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h1, h2, h3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	group := netip.AddrPortFrom(netip.MustParseAddr("239.0.0.9"), 9000)
	for _, m := range []netip.Addr{h2, h3} {
		if err := c.JoinGroup(ctx, group, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	rel, err := c.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "raft", tunnels.Request{Sender: h1, Receiver: group, LoadsizeBytes: 200, PeriodUs: 500, Sublane: 1}); err != nil {
		t.Fatal(err)
	}
	last, err := c.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7005), LoadsizeBytes: 10, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{rel.TunnelID, last.TunnelID} { // the highest id goes too
		if err := c.Release(ctx, "fd", id); err != nil {
			t.Fatal(err)
		}
	}
	before := c.Tunnels("")
	rules1, rules2 := drv.Rules("s1"), drv.Rules("s2")
	c.Close()
	st.Close()

	st2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	spec, err := st2.Topology()
	if err != nil || spec == nil {
		t.Fatalf("stored topology: %v, %v", spec, err)
	}
	fresh := memory.New("s1", "s2") // the switches lost everything
	c2, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: fresh, Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if after := c2.Tunnels(""); !slices.Equal(after, before) {
		t.Fatalf("tunnels after restart:\n%+v\nwant\n%+v", after, before)
	}
	if !slices.EqualFunc(fresh.Rules("s1"), rules1, southbound.TunnelRule.Equal) || !slices.EqualFunc(fresh.Rules("s2"), rules2, southbound.TunnelRule.Equal) {
		t.Fatalf("switches not reconciled:\n%+v\n%+v", fresh.Rules("s1"), fresh.Rules("s2"))
	}
	if ms := c2.Members(group); !slices.Equal(ms, []netip.Addr{h2, h3}) {
		t.Fatalf("members = %v", ms)
	}
	// New ids continue after the stored ones: nothing is duplicated.
	res, err := c2.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 10, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.TunnelID <= last.TunnelID {
		t.Fatalf("new id %d reuses an id handed out before the restart (up to %d)", res.TunnelID, last.TunnelID)
	}
	// A different topology is refused while tunnels exist.
	other := tetest.TwoSwitchSpec()
	other.Links[0].BandwidthBps = 2e9
	if err := st2.SetTopology(other); err == nil {
		t.Fatal("changed topology accepted over stored tunnels")
	}
}
