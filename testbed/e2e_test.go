package testbed_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
)

// TestE2EUnicastMulticastRelease: tunnels requested through the API
// appear on the switches, carry UDP to the receivers (multicast: every
// member once, no one else), and leave nothing behind when released.
func TestE2EUnicastMulticastRelease(t *testing.T) {
	h := newHarness(t, "t1", nil)
	ctx := h.ctx

	h.bestEffortWorks("h1", "h3", 4000)

	// A unicast tunnel h1 → h3:5000 on sub-lane 1.
	res, err := h.cli.RequestBandwidth(ctx, tunnels.Request{
		Sender: h.ip("h1"), Receiver: netip.AddrPortFrom(h.ip("h3"), 5000), LoadsizeBytes: 200, PeriodUs: 1000, Sublane: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	uni := res.TunnelID
	tun := h.ctl.Tunnels("")[0]
	t.Logf("tunnel %d: period %d µs, latency %d–%d ns", uni, tun.PeriodUs, tun.MinLatencyNs, tun.MinLatencyNs+tun.MaxJitterNs)
	// Its flow is on leaf0 (with the meter), one spine, and leaf1.
	if f := h.flows("leaf0", uni); len(f) != 1 || !strings.Contains(f[0], "meter:") || !strings.Contains(f[0], "set_field:45->ip_dscp") {
		t.Errorf("leaf0 flows of tunnel %d: %q", uni, f)
	}
	if f := h.flows("leaf1", uni); len(f) != 1 || strings.Contains(f[0], "meter:") {
		t.Errorf("leaf1 flows of tunnel %d: %q", uni, f)
	}
	if n := len(h.flows("spine0", uni)) + len(h.flows("spine1", uni)); n != 1 {
		t.Errorf("tunnel %d has flows on %d spines, want 1", uni, n)
	}
	if m := h.ofctl("leaf0", "dump-meters"); !strings.Contains(m, "type=drop") {
		t.Errorf("no meter on leaf0:\n%s", m)
	}
	h.sublaneDelivers("h1", "h3", 5000, 1, func() string { return "leaf0 meters:\n" + h.ofctl("leaf0", "meter-stats") })

	// A multicast tunnel h1 → 239.1.1.1:6000 to members h3 and h4; h2
	// listens but is no member.
	group := netip.MustParseAddrPort("239.1.1.1:6000")
	for _, m := range []string{"h3", "h4"} {
		if err := h.cli.JoinGroup(ctx, group, h.ip(m)); err != nil {
			t.Fatal(err)
		}
	}
	res, err = h.cli.RequestBandwidth(ctx, tunnels.Request{Sender: h.ip("h1"), Receiver: group, LoadsizeBytes: 100, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	multi := res.TunnelID
	rxs := map[string]func() int{}
	for _, m := range []string{"h2", "h3", "h4"} {
		c, err := h.tb.ListenMulticast(m, group)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ch := make(chan int, 1)
		go func() { ch <- len(receive(c, 500*time.Millisecond)) }()
		rxs[m] = func() int { return <-ch }
	}
	mtx, err := h.tb.DialUDP("h1", group, southbound.DSCP(0, false))
	if err != nil {
		t.Fatal(err)
	}
	sendEvery(t, mtx, 20, 100, 2*time.Millisecond)
	for m, want := range map[string]int{"h2": 0, "h3": 20, "h4": 20} {
		if n := rxs[m](); n != want {
			t.Errorf("multicast: %s received %d datagrams, want %d", m, n, want)
		}
	}
	if g := h.ofctl("leaf1", "dump-groups"); !strings.Contains(g, "type=all") {
		t.Errorf("no ALL group on leaf1 (the branch to h3 and h4):\n%s", g)
	}

	// Release both: nothing of them stays on any switch.
	for _, id := range []uint64{uni, multi} {
		if err := h.cli.ReleaseBandwidth(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range h.tb.Bridges {
		for _, id := range []uint64{uni, multi} {
			if f := h.flows(b.Switch, id); len(f) > 0 {
				t.Errorf("%s keeps flows of released tunnel %d: %q", b.Switch, id, f)
			}
		}
		if m := h.ofctl(b.Switch, "dump-meters"); strings.Contains(m, "meter=") {
			t.Errorf("%s keeps meters:\n%s", b.Switch, m)
		}
		if g := h.ofctl(b.Switch, "dump-groups"); strings.Contains(g, "group_id=") {
			t.Errorf("%s keeps groups:\n%s", b.Switch, g)
		}
	}
}
