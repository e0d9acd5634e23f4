package testbed_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/topogen"
	"github.com/xlane/xlane/controller/tunnels"
	p4switch "github.com/xlane/xlane/p4/switch"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/openflow"
	"github.com/xlane/xlane/southbound/p4rt"
	"github.com/xlane/xlane/testbed"
	"github.com/xlane/xlane/testbed/ovs"
)

// harness is a leaf-spine testbed (2 leaves, 2 spines, 4 hosts, 100
// Mbit/s links unless said otherwise) driven by an in-process controller with the OpenFlow
// driver, served over real gRPC on loopback.
type harness struct {
	t      testing.TB
	ctx    context.Context
	tb     *testbed.Testbed
	topo   *te.Topology
	ctl    *tunnels.Controller
	drv    *openflow.Driver // OVS testbeds
	p4     *p4rt.Driver     // BMv2 testbeds
	cli    *client.Client
	ups    <-chan tunnels.Upcall
	ready  chan string // switches reconciled after a (re)connect
	ctlp   atomic.Pointer[tunnels.Controller]
	ofAddr string
}

func requireTestbed(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, Open vSwitch)")
	}
	if err := ovs.Available(); err != nil {
		t.Skip(err.Error())
	}
}

func leafSpine(t testing.TB, bps int64) *te.Topology {
	p := topogen.Defaults()
	p.BandwidthBps = bps
	p.QueueBytes = 64 << 10
	spec, err := topogen.LeafSpine(2, 2, 2, p)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := te.NewTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func newHarness(t testing.TB, name string, mon *tunnels.MonitorConfig) *harness {
	return newHarnessAt(t, name, mon, 100_000_000)
}

// newHarnessAt is newHarness with links of bps.
func newHarnessAt(t testing.TB, name string, mon *tunnels.MonitorConfig, bps int64) *harness {
	requireTestbed(t)
	h, log := newBareHarness(t, bps)
	h.drv = openflow.New(openflow.Config{
		Switches: openflow.DatapathIDs(h.topo), Logger: log, EchoInterval: 500 * time.Millisecond, OnConnect: h.onConnect,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.ofAddr = lis.Addr().String()
	h.run(func(ctx context.Context) { _ = h.drv.Serve(ctx, lis) })
	h.serve(h.drv, log, mon)
	start := time.Now()
	h.up(testbed.Config{Name: name, Topology: h.topo, Controller: h.ofAddr, Logger: log})
	h.waitReady(len(h.tb.Bridges))
	t.Logf("testbed %s up and reconciled in %v", name, time.Since(start).Round(time.Millisecond))
	return h
}

// newBMv2Harness is newHarness on BMv2 switches (simple_switch_grpc, one
// per switch) driven over P4Runtime.
func newBMv2Harness(t testing.TB, name string, mon *tunnels.MonitorConfig, bps int64) *harness {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if err := testbed.BMv2Available(); err != nil {
		t.Skip(err.Error())
	}
	h, log := newBareHarness(t, bps)
	start := time.Now()
	h.up(testbed.Config{Name: name, Topology: h.topo, Switch: testbed.SwitchBMv2, Logger: log})
	targets := map[string]p4rt.Target{}
	for _, b := range h.tb.Bridges {
		targets[b.Switch] = p4rt.Target{Addr: b.P4Runtime, DeviceID: b.DeviceID}
	}
	var err error
	h.p4, err = p4rt.New(p4rt.Config{Switches: targets, ElectionID: 1, P4Info: p4switch.P4Info, DeviceConfig: p4switch.DeviceConfig,
		Cookie: 1, BurstSlack: testbed.BMv2BurstSlack, Logger: log, OnConnect: h.onConnect})
	if err != nil {
		t.Fatal(err)
	}
	h.serve(h.p4, log, mon)
	h.run(func(ctx context.Context) { _ = h.p4.Run(ctx) })
	h.waitReady(len(h.tb.Bridges))
	t.Logf("BMv2 testbed %s up, pipelines pushed and reconciled in %v", name, time.Since(start).Round(time.Millisecond))
	return h
}

// newBareHarness is a harness without switches or controller yet.
func newBareHarness(t testing.TB, bps int64) (*harness, *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, topo: leafSpine(t, bps), ready: make(chan string, 64)}
	return h, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// run runs f until the test ends.
func (h *harness) run(f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() { defer close(done); f(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
}

// onConnect reconciles a switch that (re)connected and reports it ready.
func (h *harness) onConnect(ctx context.Context, sw string) {
	if c := h.ctlp.Load(); c != nil {
		if err := c.Reconcile(ctx, sw); err != nil {
			h.t.Logf("reconcile %s: %v", sw, err)
			return
		}
		h.ready <- sw
	}
}

// serve starts the controller on drv (with the monitor when mon is set),
// its API over gRPC on loopback, a client and its watch.
func (h *harness) serve(drv southbound.Driver, log *slog.Logger, mon *tunnels.MonitorConfig) {
	t := h.t
	ctl, err := tunnels.New(h.ctx, tunnels.Config{Topology: h.topo, Driver: drv, Logger: log, Grace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.ctl = ctl
	h.ctlp.Store(ctl)
	if mon != nil {
		h.run(func(ctx context.Context) { _ = ctl.RunMonitor(ctx, *mon) })
	}
	addr, _ := servertest.Serve(t, ctl, "127.0.0.1:0")
	if h.cli, err = client.Dial(addr, "e2e"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cli.Close() })
	h.ups, _ = servertest.Watch(t, h.ctx, h.cli)
}

// up brings the testbed up (in the test's temporary folder) and down at
// the end.
func (h *harness) up(cfg testbed.Config) {
	t := h.t
	cfg.Dir = t.TempDir() + "/tb"
	ctx, cancel := context.WithTimeout(h.ctx, 60*time.Second)
	defer cancel()
	tb, err := testbed.Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.tb = tb
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		if err := tb.Down(dctx); err != nil {
			t.Errorf("testbed down: %v", err)
		}
	})
}

// bestEffortWorks sends 10 unmarked datagrams from one host to another
// before any tunnel: the static best-effort routes carry them.
func (h *harness) bestEffortWorks(from, to string, port uint16) {
	h.t.Helper()
	rx, err := h.tb.ListenUDP(to, port)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rx.Close()
	tx, err := h.tb.DialUDP(from, netip.AddrPortFrom(h.ip(to), port), 0)
	if err != nil {
		h.t.Fatal(err)
	}
	sendEvery(h.t, tx, 10, 100, 2*time.Millisecond)
	tx.Close()
	if got := receive(rx, 500*time.Millisecond); len(got) != 10 {
		h.t.Fatalf("best effort %s→%s: %d of 10 datagrams arrived", from, to, len(got))
	}
}

// changed reports, once, how long after the call the tunnel's
// BandwidthChanged upcall with reason arrived (nothing within 10 s: never).
func (h *harness) changed(id uint64, reason tunnels.Reason) <-chan time.Duration {
	start := time.Now()
	out := make(chan time.Duration, 1)
	go func() {
		for {
			select {
			case u := <-h.ups:
				if u.Kind == tunnels.BandwidthChanged && u.TunnelID == id && u.Reason == reason {
					out <- time.Since(start)
					return
				}
			case <-time.After(10 * time.Second):
				return
			case <-h.ctx.Done():
				return
			}
		}
	}()
	return out
}

// inventory reads back what a BMv2 switch holds.
func (h *harness) inventory(sw string) p4rt.Inventory {
	h.t.Helper()
	inv, err := h.p4.Inventory(h.ctx, sw)
	if err != nil {
		h.t.Fatal(err)
	}
	return inv
}

// stats is the tunnel's counters at a switch.
func (h *harness) stats(sw string, tunnel uint64) southbound.TunnelStats {
	h.t.Helper()
	sts, err := h.p4.Stats(h.ctx, sw)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, s := range sts {
		if s.Tunnel == tunnel {
			return s
		}
	}
	return southbound.TunnelStats{Tunnel: tunnel}
}

// waitReady waits until n switches have been reconciled.
func (h *harness) waitReady(n int) {
	h.t.Helper()
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case <-h.ready:
		case <-deadline:
			if h.drv != nil {
				h.t.Fatalf("switches not connected and reconciled; connected: %v", h.drv.Connected())
			}
			h.t.Fatal("switches not connected and reconciled within 30 s")
		}
	}
}

func (h *harness) ip(host string) netip.Addr {
	id, ok := h.topo.NodeByName(host)
	if !ok {
		h.t.Fatalf("no host %s", host)
	}
	return h.topo.Nodes[id].IPv4
}

// flows returns the flows of a switch's bridge whose cookie is the
// tunnel's, as ovs-ofctl shows them.
func (h *harness) flows(sw string, tunnel uint64) []string {
	h.t.Helper()
	br, err := h.tb.Bridge(sw)
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := h.tb.OVS().Ofctl(h.ctx, "dump-flows", br.Name, fmt.Sprintf("cookie=%#x/-1", tunnel))
	if err != nil {
		h.t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "cookie=") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

func (h *harness) ofctl(sw, cmd string) string {
	h.t.Helper()
	br, err := h.tb.Bridge(sw)
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := h.tb.OVS().Ofctl(h.ctx, cmd, br.Name)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// receive counts datagrams arriving on c until quiet for idle, and
// returns them.
func receive(c *net.UDPConn, idle time.Duration) []testbed.Packet {
	var out []testbed.Packet
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		p, err := testbed.ReadTOS(c, buf)
		if err != nil {
			return out
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
}

// sendEvery sends n datagrams of size bytes from c, one per gap, and
// returns how long that took.
func sendEvery(t testing.TB, c *net.UDPConn, n, size int, gap time.Duration) time.Duration {
	t.Helper()
	b := make([]byte, size)
	start := time.Now()
	next := start
	for i := range n {
		b[0], b[1] = byte(i>>8), byte(i)
		if _, err := c.Write(b); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		// Never catch up with a burst (a meter would drop it): a late
		// packet moves the schedule.
		next = later(next.Add(gap), time.Now().Add(gap/2))
		time.Sleep(time.Until(next))
	}
	return time.Since(start)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// overdrive is the meter check's common part: a tunnel h1 → h4 of one
// 1,000-byte packet per millisecond, a sender at three times that after
// the monitor's baseline, and the BW_EXCEEDED upcall that must follow.
type overdrive struct {
	id      uint64
	sent    int
	took    time.Duration    // how long sending took
	packets []testbed.Packet // what arrived
	after   time.Duration    // from the excess to the demotion
}

func (h *harness) overdrive(interval time.Duration) overdrive {
	t := h.t
	t.Helper()
	res, err := h.cli.RequestBandwidth(h.ctx, tunnels.Request{
		Sender: h.ip("h1"), Receiver: netip.AddrPortFrom(h.ip("h4"), 7000), LoadsizeBytes: 1000, PeriodUs: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	rx, err := h.tb.ListenUDP("h4", 7000)
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := h.tb.DialUDP("h1", netip.AddrPortFrom(h.ip("h4"), 7000), southbound.DSCP(0, false))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	time.Sleep(2 * interval) // the monitor takes its baseline
	got := make(chan []testbed.Packet, 1)
	go func() { got <- receive(rx, time.Second) }()
	demoted := h.changed(res.TunnelID, tunnels.ReasonBWExceeded)
	o := overdrive{id: res.TunnelID, sent: 3000}
	o.took = sendEvery(t, tx, o.sent, 1000, time.Second/3000) // 3 packets per approved period
	o.packets = <-got
	select {
	case o.after = <-demoted:
	case <-time.After(5 * time.Second):
		t.Fatal("no BW_EXCEEDED upcall")
	}
	return o
}

// sublaneDelivers sends 50 datagrams marked with the sub-lane's DSCP from
// one host to another and checks they all arrive with that mark; why
// describes the switch's state for a failure.
func (h *harness) sublaneDelivers(from, to string, port uint16, sublane int, why func() string) {
	t := h.t
	t.Helper()
	rx, err := h.tb.ListenUDP(to, port)
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := h.tb.DialUDP(from, netip.AddrPortFrom(h.ip(to), port), southbound.DSCP(sublane, false))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	sendEvery(t, tx, 50, 200, 2*time.Millisecond)
	got := receive(rx, 500*time.Millisecond)
	if len(got) != 50 {
		t.Errorf("%s → %s:%d: %d of 50 datagrams arrived; %s", from, to, port, len(got), why())
	}
	for _, p := range got {
		if p.TOS>>2 != southbound.DSCP(sublane, false) {
			t.Errorf("datagram arrived with DSCP %d, want sub-lane %d's %d", p.TOS>>2, sublane, southbound.DSCP(sublane, false))
			break
		}
	}
}
