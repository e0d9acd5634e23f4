package testbed_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/testbed"
)

// The Open vSwitch end-to-end checks, on BMv2: the same leaf-spine, the
// same cables and wire queues, one simple_switch_grpc per switch running
// the committed pipeline, programmed over P4Runtime. What a switch holds
// is read back over P4Runtime (the switch's view, not the driver's).

// TestBMv2E2EUnicastMulticastRelease: tunnels requested through the API
// are installed on the switches of their trees, carry UDP with the
// sub-lane's DSCP (multicast: every member once, no one else), are
// counted per switch, and leave nothing behind when released.
func TestBMv2E2EUnicastMulticastRelease(t *testing.T) {
	h := newBMv2Harness(t, "b1", nil, 100_000_000)
	ctx := h.ctx

	h.bestEffortWorks("h1", "h3", 4000)

	res, err := h.cli.RequestBandwidth(ctx, tunnels.Request{
		Sender: h.ip("h1"), Receiver: netip.AddrPortFrom(h.ip("h3"), 5000), LoadsizeBytes: 200, PeriodUs: 1000, Sublane: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	uni := res.TunnelID
	// Installed on leaf0 (with its meter), one spine, and leaf1.
	if inv := h.inventory("leaf0"); !slices.Contains(inv.TunnelIDs, uni) || inv.Meters != 1 {
		t.Errorf("leaf0 holds %+v; want tunnel %d and its meter", inv, uni)
	}
	if inv := h.inventory("leaf1"); !slices.Contains(inv.TunnelIDs, uni) || inv.Meters != 0 {
		t.Errorf("leaf1 holds %+v; want tunnel %d without a meter", inv, uni)
	}
	spines := 0
	for _, sp := range []string{"spine0", "spine1"} {
		if slices.Contains(h.inventory(sp).TunnelIDs, uni) {
			spines++
		}
	}
	if spines != 1 {
		t.Errorf("tunnel %d is on %d spines, want 1", uni, spines)
	}
	h.sublaneDelivers("h1", "h3", 5000, 1, func() string { return fmt.Sprintf("leaf0 counters %+v", h.stats("leaf0", uni)) })
	for _, sw := range []string{"leaf0", "leaf1"} {
		if s := h.stats(sw, uni); s.Packets != 50 {
			t.Errorf("%s counted %d packets of tunnel %d, want 50", sw, s.Packets, uni)
		}
	}

	// Multicast h1 → 239.1.1.1:6000 to members h3 and h4; h2 listens
	// but is no member.
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
	counts := map[string]chan int{}
	for _, m := range []string{"h2", "h3", "h4"} {
		c, err := h.tb.ListenMulticast(m, group)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ch := make(chan int, 1)
		go func(c *net.UDPConn) { ch <- len(receive(c, 700*time.Millisecond)) }(c)
		counts[m] = ch
	}
	mtx, err := h.tb.DialUDP("h1", group, southbound.DSCP(0, false))
	if err != nil {
		t.Fatal(err)
	}
	sendEvery(t, mtx, 20, 100, 2*time.Millisecond)
	for m, want := range map[string]int{"h2": 0, "h3": 20, "h4": 20} {
		if n := <-counts[m]; n != want {
			t.Errorf("multicast: %s received %d datagrams, want %d", m, n, want)
		}
	}
	if inv := h.inventory("leaf1"); inv.Groups != 1 {
		t.Errorf("leaf1 (the branch to h3 and h4) holds %d multicast groups, want 1", inv.Groups)
	}

	// Release both: nothing of them stays on any switch.
	for _, id := range []uint64{uni, multi} {
		if err := h.cli.ReleaseBandwidth(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range h.tb.Bridges {
		inv := h.inventory(b.Switch)
		if inv.Classifier != 0 || inv.Tunnels != 0 || inv.Meters != 0 || inv.Groups != 0 || inv.Routes == 0 {
			t.Errorf("%s after release holds %+v; want only its routes", b.Switch, inv)
		}
	}
}

// TestBMv2E2EPriorityUnderCrossTraffic: the priority check on BMv2
// (started with --priority-queues; the pipeline puts each sub-lane on
// its priority). 10 Mbit/s links keep the cross traffic within what four
// BMv2 processes forward on a small machine, so the queues, not the
// switches' CPU, decide who waits.
func TestBMv2E2EPriorityUnderCrossTraffic(t *testing.T) {
	const linkBps = 10_000_000
	priorityUnderCrossTraffic(t, newBMv2Harness(t, "b4", nil, linkBps), linkBps)
}

// TestBMv2E2EMeterDropsAndDemotion: a sender at three times its
// allocation loses the excess at its first switch's meter; what the
// switch counted as passed and as dropped adds up to what was sent, the
// receiver gets what passed, and the controller demotes the tunnel
// (BW_EXCEEDED) within two monitoring intervals, after which its packets
// arrive marked best effort.
func TestBMv2E2EMeterDropsAndDemotion(t *testing.T) {
	const interval = 300 * time.Millisecond
	h := newBMv2Harness(t, "b2", &tunnels.MonitorConfig{Interval: interval, ViolationIntervals: 1000}, 100_000_000)
	o := h.overdrive(interval)
	id, sent, took, packets, after := o.id, o.sent, o.took, o.packets, o.after
	st := h.stats("leaf0", id)
	received := len(packets)
	// The meter's rate counts the topology's wire size (loadsize + frame
	// overhead) per period; BMv2 meters count the Ethernet frame
	// (payload + 42 B). Plus the burst (one packet and the slack) and a
	// few packets for the sender's clock against the switch's, and 1 %
	// for the rate's rounding into BMv2's bytes per microsecond (runs
	// passed within 2 to 6 packets of the bound without it).
	wire, frame := float64(h.topo.WireBytes(1000)), float64(1000+42)
	allowed := int(float64(took+testbed.BMv2BurstSlack)/float64(time.Millisecond)*wire/frame*1.01) + 5
	t.Logf("sent %d in %v (%.1fx the approved rate), received %d (allowed %d), leaf0 passed %d and dropped %d; demoted %v after the excess began (interval %v)",
		sent, took.Round(time.Millisecond), float64(sent)/(took.Seconds()*1000), received, allowed, st.Packets, st.MeterDrops, after.Round(time.Millisecond), interval)
	if st.Packets+st.MeterDrops != uint64(sent) || uint64(received) != st.Packets {
		t.Errorf("counts do not add up: sent %d, leaf0 passed %d and dropped %d, received %d", sent, st.Packets, st.MeterDrops, received)
	}
	if received > allowed || st.MeterDrops == 0 {
		t.Errorf("meter passed %d datagrams (dropped %d); at most %d fit the approved rate", received, st.MeterDrops, allowed)
	}
	if after > 2*interval {
		t.Errorf("demoted %v after the excess began, more than two intervals (%v)", after, 2*interval)
	}
	if n := len(packets); n == 0 {
		t.Error("no datagram arrived")
	} else if dscp := packets[n-1].TOS >> 2; dscp != 0 {
		t.Errorf("after the demotion the tunnel's last datagram arrived with DSCP %d, want best effort's 0", dscp)
	}
}

// TestBMv2E2EControllerKilledWhileTrafficFlows: the controller daemon
// (driver p4runtime, configured from the testbed's P4RuntimeConfig) is
// SIGKILLed while express multicast traffic flows; BMv2 keeps forwarding,
// not one datagram is lost, and the restarted daemon becomes primary
// again and reconciles every switch back to exactly what it held.
func TestBMv2E2EControllerKilledWhileTrafficFlows(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if err := testbed.BMv2Available(); err != nil {
		t.Skip(err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	topo := leafSpine(t, 100_000_000)
	d := newDaemon(t, dir, topo)
	tb, err := testbed.Up(ctx, testbed.Config{Name: "b5", Dir: filepath.Join(dir, "tb"), Topology: topo, Switch: testbed.SwitchBMv2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tb.Down(context.Background()); err != nil {
			t.Errorf("testbed down: %v", err)
		}
	}()
	cfg, err := tb.P4RuntimeConfig()
	if err != nil {
		t.Fatal(err)
	}
	d.config = filepath.Join(dir, "controller.yaml")
	if err := os.WriteFile(d.config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	defer d.kill()
	var switches []string
	for _, b := range tb.Bridges {
		switches = append(switches, b.Switch)
	}
	d.waitReconciled(switches, 1)
	controllerKilledUnderTraffic(t, ctx, tb, d, switches, func() map[string][]string { return p4State(t, ctx, tb) })
	if t.Failed() {
		t.Logf("meter drops per switch: %v", meterDrops(t, ctx, tb))
	}
}

// meterDrops reads every switch's meter drop counters over P4Runtime.
func meterDrops(t *testing.T, ctx context.Context, tb *testbed.Testbed) map[string]int64 {
	out := map[string]int64{}
	for _, b := range tb.Bridges {
		conn, err := grpc.NewClient(b.P4Runtime, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		rd, err := p4v1.NewP4RuntimeClient(conn).Read(ctx, &p4v1.ReadRequest{DeviceId: b.DeviceID, Entities: []*p4v1.Entity{
			{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{}}}}})
		if err == nil {
			for {
				resp, err := rd.Recv()
				if err != nil {
					break
				}
				for _, e := range resp.GetEntities() {
					out[b.Switch] += e.GetCounterEntry().GetData().GetPacketCount()
				}
			}
		}
		conn.Close()
	}
	return out
}

// p4State reads every table entry, meter cell and multicast group of each
// BMv2 switch over P4Runtime (reads need no mastership), as sorted text.
func p4State(t *testing.T, ctx context.Context, tb *testbed.Testbed) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, b := range tb.Bridges {
		conn, err := grpc.NewClient(b.P4Runtime, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		rd, err := p4v1.NewP4RuntimeClient(conn).Read(ctx, &p4v1.ReadRequest{DeviceId: b.DeviceID, Entities: []*p4v1.Entity{
			{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{}}},
			{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{}}},
			{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{
				Type: &p4v1.PacketReplicationEngineEntry_MulticastGroupEntry{MulticastGroupEntry: &p4v1.MulticastGroupEntry{}}}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			resp, err := rd.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read %s: %v", b.Switch, err)
			}
			for _, e := range resp.GetEntities() {
				if m := e.GetMeterEntry(); m != nil && m.GetConfig() == nil {
					continue // an unused meter cell
				}
				out[b.Switch] = append(out[b.Switch], prototext.MarshalOptions{}.Format(e))
			}
		}
		conn.Close()
		slices.Sort(out[b.Switch])
	}
	return out
}
