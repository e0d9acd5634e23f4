package testbed

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	p4switch "github.com/xlane/xlane/p4/switch"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/p4rt"
)

// TestBMv2PipelineForwards runs the committed pipeline on BMv2
// (simple_switch_grpc) with three hosts, programmed by the P4Runtime
// driver: a tunnel's packets leave with their sub-lane's DSCP and are
// counted, best-effort packets are routed and re-marked 0, a multicast
// branch reaches both members, and a sender above its rate loses the
// excess at the meter, counted as drops.
func TestBMv2PipelineForwards(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	bin, err := exec.LookPath("simple_switch_grpc")
	if err != nil {
		t.Skip("BMv2 is not installed (simple_switch_grpc not on PATH)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tb := &Testbed{State: State{Name: "bm", Dir: t.TempDir()}, log: slog.Default()}
	t.Cleanup(func() {
		if err := tb.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	hosts := []Host{{Name: "h1", Netns: "xl-bm-h1", IPv4: netip.MustParseAddr("10.9.0.1")}, {Name: "h2", Netns: "xl-bm-h2", IPv4: netip.MustParseAddr("10.9.0.2")},
		{Name: "h3", Netns: "xl-bm-h3", IPv4: netip.MustParseAddr("10.9.0.3")}}
	for i, h := range hosts {
		if err := tb.newNetns(h.Netns); err != nil {
			t.Fatal(err)
		}
		tb.Hosts = append(tb.Hosts, h)
		port, peer := fmt.Sprintf("xlbmp%d", i+1), fmt.Sprintf("xlbmh%d", i+1)
		tb.Interfaces = append(tb.Interfaces, port)
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port}, PeerName: peer}); err != nil {
			t.Fatal(err)
		}
		if err := tb.plugHost(h.Netns, peer); err != nil {
			t.Fatal(err)
		}
		if err := upRoot(port); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.addressHosts(ctx); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	sw := exec.CommandContext(ctx, bin, "--no-p4", "--log-level", "warn", "-i", "1@xlbmp1", "-i", "2@xlbmp2", "-i", "3@xlbmp3",
		"--", "--grpc-server-addr", addr, "--priority-queues", "8")
	sw.Stdout, sw.Stderr = os.Stderr, os.Stderr
	if err := sw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Process.Kill(); sw.Wait() })

	ready := make(chan struct{}, 1)
	routes := []southbound.Route{{Dst: netip.MustParsePrefix("10.9.0.1/32"), Out: 1}, {Dst: netip.MustParsePrefix("10.9.0.2/32"), Out: 2},
		{Dst: netip.MustParsePrefix("10.9.0.3/32"), Out: 3}}
	var d *p4rt.Driver
	d, err = p4rt.New(p4rt.Config{Switches: map[string]p4rt.Target{"s1": {Addr: addr}}, ElectionID: 1,
		P4Info: p4switch.P4Info, DeviceConfig: p4switch.DeviceConfig, Cookie: 1, BurstSlack: BMv2BurstSlack,
		OnConnect: func(ctx context.Context, s string) {
			if err := d.Reconcile(ctx, s, southbound.SwitchState{Routes: routes}); err != nil {
				t.Errorf("reconcile: %v", err)
				return
			}
			ready <- struct{}{}
		}})
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx) }()
	stopped := false
	defer func() {
		if !stopped {
			dcancel()
			<-done
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("the driver did not become primary on BMv2")
	}
	rule := southbound.TunnelRule{Tunnel: 5, Out: []southbound.Port{2}, Meter: &southbound.Meter{RateBps: 2_000_000, BurstBytes: 1500},
		Match: southbound.Match{InPort: 1, SrcIP: hosts[0].IPv4, DstIP: hosts[1].IPv4, DstPort: 5000, DSCP: southbound.DSCP(0, false)}}
	if err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{rule}}); err != nil {
		t.Fatal(err)
	}
	deliver := func(port uint16, dscp uint8) Packet {
		t.Helper()
		rx, err := tb.ListenUDP("h2", port)
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		tx, err := tb.DialUDP("h1", netip.AddrPortFrom(hosts[1].IPv4, port), dscp)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		buf := make([]byte, 2048)
		for range 20 { // BMv2 may drop the very first packets while it warms up
			tx.Write([]byte("x-lane"))
			rx.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if p, err := ReadTOS(rx, buf); err == nil {
				return p
			}
		}
		t.Fatalf("nothing arrived on port %d", port)
		return Packet{}
	}
	if p := deliver(5000, southbound.DSCP(0, false)); p.TOS>>2 != southbound.DSCP(0, false) {
		t.Errorf("tunnel packet arrived with DSCP %d", p.TOS>>2)
	}
	if p := deliver(6000, southbound.DSCP(0, false)); p.TOS>>2 != 0 {
		t.Errorf("best-effort packet marked express by its sender arrived with DSCP %d, want 0", p.TOS>>2)
	}
	// A multicast branch: h1 → 239.9.9.9:7000 out of ports 2 and 3.
	group := netip.MustParseAddrPort("239.9.9.9:7000")
	mc := southbound.TunnelRule{Tunnel: 6, Out: []southbound.Port{2, 3}, Meter: &southbound.Meter{RateBps: 10_000_000, BurstBytes: 1500},
		Match: southbound.Match{InPort: 1, SrcIP: hosts[0].IPv4, DstIP: group.Addr(), DstPort: group.Port(), DSCP: southbound.DSCP(0, false)}}
	if err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{mc}}); err != nil {
		t.Fatal(err)
	}
	var members []*net.UDPConn
	for _, m := range []string{"h2", "h3"} {
		c, err := tb.ListenMulticast(m, group)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		members = append(members, c)
	}
	mtx, err := tb.DialUDP("h1", group, southbound.DSCP(0, false))
	if err != nil {
		t.Fatal(err)
	}
	defer mtx.Close()
	buf := make([]byte, 2048)
	for i, c := range members {
		got := false
		for range 20 {
			mtx.Write([]byte("tree"))
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if p, err := ReadTOS(c, buf); err == nil && p.TOS>>2 == southbound.DSCP(0, false) {
				got = true
				break
			}
		}
		if !got {
			t.Errorf("multicast member %d received nothing through the tree", i+2)
		}
	}
	// The meter: 100 datagrams of 1,000 bytes, one per millisecond (BMv2
	// loses back-to-back bursts before its pipeline), against 2 Mbit/s
	// with a 1,500-byte burst: about three in four turn red and are dropped.
	btx, err := tb.DialUDP("h1", netip.AddrPortFrom(hosts[1].IPv4, 5000), southbound.DSCP(0, false))
	if err != nil {
		t.Fatal(err)
	}
	defer btx.Close()
	payload := make([]byte, 1000)
	for range 100 {
		btx.Write(payload)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	st, err := d.Stats(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var uni southbound.TunnelStats
	for _, s := range st {
		if s.Tunnel == 5 {
			uni = s
		}
	}
	if uni.Packets < 10 || uni.MeterDrops < 40 || uni.Packets+uni.MeterDrops > 102 {
		t.Errorf("tunnel 5 after 100 datagrams at 4x its rate: %+v; want about a quarter passed and counted, the rest dropped by the meter", uni)
	}
	t.Logf("BMv2 at %s: unicast, best effort and multicast delivered; counters %+v", addr, st)

	// The controller goes away: the switch keeps forwarding the tunnel. A
	// new controller (another election id) becomes primary, finds the
	// pipeline running, and reconciles without writing anything.
	dcancel()
	<-done
	stopped = true
	if p := deliver(5000, southbound.DSCP(0, false)); p.TOS>>2 != southbound.DSCP(0, false) {
		t.Errorf("without a controller the tunnel packet arrived with DSCP %d", p.TOS>>2)
	}
	want := southbound.SwitchState{Rules: []southbound.TunnelRule{rule, mc}, Routes: routes}
	again := make(chan error, 1)
	var d2 *p4rt.Driver
	d2, err = p4rt.New(p4rt.Config{Switches: map[string]p4rt.Target{"s1": {Addr: addr}}, ElectionID: 2,
		P4Info: p4switch.P4Info, DeviceConfig: p4switch.DeviceConfig, Cookie: 1, BurstSlack: BMv2BurstSlack,
		OnConnect: func(ctx context.Context, s string) { again <- d2.Reconcile(ctx, s, want) }})
	if err != nil {
		t.Fatal(err)
	}
	d2ctx, d2cancel := context.WithCancel(ctx)
	done2 := make(chan struct{})
	go func() { defer close(done2); d2.Run(d2ctx) }()
	defer func() { d2cancel(); <-done2 }()
	select {
	case err := <-again:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second controller did not become primary")
	}
	if n := d2.Writes(); n != 0 {
		t.Errorf("the new controller wrote %d updates to a switch that held its state (duplicates or a pipeline re-push)", n)
	}
	if p := deliver(5000, southbound.DSCP(0, false)); p.TOS>>2 != southbound.DSCP(0, false) {
		t.Errorf("after the new controller's reconcile the tunnel packet arrived with DSCP %d", p.TOS>>2)
	}
}
