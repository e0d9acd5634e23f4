package tunnels

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/memory"
)

// manualClock fires timers only when a test advances it.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	f       func()
	stopped bool
	c       *manualClock
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{at: c.now.Add(d), f: f, c: c}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time and runs the callbacks that became due, in order.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*manualTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t)
		} else if !t.stopped {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

var (
	h1 = netip.MustParseAddr("10.0.0.1")
	h2 = netip.MustParseAddr("10.0.0.2")
	h3 = netip.MustParseAddr("10.0.0.3")
)

func setup(t *testing.T) (*Controller, *memory.Driver, *manualClock) {
	t.Helper()
	drv := memory.New("s1", "s2")
	clk := &manualClock{now: time.Unix(1000, 0)}
	c, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: drv, Clock: clk, Grace: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, drv, clk
}

func TestRequestProgramsSwitches(t *testing.T) {
	c, drv, clk := setup(t)
	ctx := context.Background()
	res, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Three hops of 800 ns + 1000 ns: min 5400 ns; each hop may also wait
	// 8000 ns of blocking and 100 ns of jitter: max 3 × 9900 = 29700 ns.
	if res.PeriodUs != 100 || res.MinLatencyNs != 5400 || res.MaxJitterNs != 29700-5400 || !res.NotBefore.Equal(clk.Now()) {
		t.Fatalf("resources = %+v", res)
	}
	want1 := southbound.TunnelRule{Tunnel: res.TunnelID, Out: []southbound.Port{2},
		Match: southbound.Match{InPort: 1, SrcIP: h1, DstIP: h2, DstPort: 7000, DSCP: 46},
		Meter: &southbound.Meter{RateBps: 8_000_000, BurstBytes: 100}} // 100 B per 100 µs
	if got := drv.Rules("s1"); len(got) != 1 || !got[0].Equal(want1) {
		t.Fatalf("s1 rules = %+v", got)
	}
	want2 := southbound.TunnelRule{Tunnel: res.TunnelID, Out: []southbound.Port{2},
		Match: southbound.Match{InPort: 1, SrcIP: h1, DstIP: h2, DstPort: 7000, DSCP: 46}}
	if got := drv.Rules("s2"); len(got) != 1 || !got[0].Equal(want2) {
		t.Fatalf("s2 rules = %+v", got)
	}
	if err := c.Release(ctx, "fd", res.TunnelID); err != nil {
		t.Fatal(err)
	}
	if len(drv.Rules("s1"))+len(drv.Rules("s2")) != 0 || len(c.Tunnels("")) != 0 {
		t.Fatal("release left state behind")
	}
}

func TestUpcallAndGracePeriod(t *testing.T) {
	c, drv, clk := setup(t)
	ctx := context.Background()
	watch := c.Watch("fd")
	// The FD tunnel asks for a period just above its own bound, so the
	// second tunnel's interference raises it.
	fd, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 26})
	if err != nil {
		t.Fatal(err)
	}
	oldRate := drv.Rules("s1")[0].Meter.RateBps
	start := clk.Now()
	raft, err := c.Request(ctx, "raft", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 900, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !raft.NotBefore.Equal(start.Add(100 * time.Millisecond)) {
		t.Fatalf("new tunnel may start at %v, want after the others' grace", raft.NotBefore)
	}
	var up Upcall
	select {
	case up = <-watch.C:
	default:
		t.Fatal("no upcall for the FD tunnel")
	}
	if up.Kind != BandwidthChanged || up.TunnelID != fd.TunnelID || up.Reason != ReasonTE || !up.GraceUntil.Equal(start.Add(100*time.Millisecond)) {
		t.Fatalf("upcall = %+v", up)
	}
	if up.Resources.PeriodUs <= fd.PeriodUs || up.Resources.MaxJitterNs <= fd.MaxJitterNs {
		t.Fatalf("the FD tunnel should have a longer period and more jitter: %+v -> %+v", fd, up.Resources)
	}
	meter := func() uint64 {
		for _, r := range drv.Rules("s1") {
			if r.Tunnel == fd.TunnelID {
				return r.Meter.RateBps
			}
		}
		return 0
	}
	// During the grace period the switch still accepts the old rate.
	clk.Advance(99 * time.Millisecond)
	if meter() != oldRate {
		t.Fatalf("meter lowered before grace end: %d, want %d", meter(), oldRate)
	}
	clk.Advance(time.Millisecond)
	if want := rateBps(100, up.Resources.PeriodUs*1000); meter() != want {
		t.Fatalf("meter after grace = %d, want %d", meter(), want)
	}
}

// The meters one commit lowered come down together at its grace end; a
// tunnel released meanwhile is skipped, and one that a later commit
// lowered again waits for that commit's grace end.
func TestGraceEndsOfOneCommit(t *testing.T) {
	c, drv, clk := setup(t)
	ctx := context.Background()
	meter := func(id uint64) uint64 {
		for _, sw := range []string{"s1", "s2"} {
			for _, r := range drv.Rules(sw) {
				if r.Tunnel == id && r.Meter != nil {
					return r.Meter.RateBps
				}
			}
		}
		return 0
	}
	period := func(id uint64) int64 {
		for _, tun := range c.Tunnels("fd") {
			if tun.TunnelID == id {
				return tun.PeriodUs
			}
		}
		t.Fatalf("tunnel %d gone", id)
		return 0
	}
	var fds []uint64
	for i, to := range []netip.Addr{h3, h2, h2} { // periods just above their bounds
		res, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(to, uint16(7000+i)), LoadsizeBytes: 100, PeriodUs: 26})
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, res.TunnelID)
	}
	clk.Advance(time.Second) // their own admissions' grace ends
	before := []uint64{meter(fds[0]), meter(fds[1]), meter(fds[2])}
	// A large tunnel from the same sender raises all three periods.
	if _, err := c.Request(ctx, "raft", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7100), LoadsizeBytes: 1000, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	first := c.graceOf[fds[0]]
	if len(c.graces) != 1 || len(c.graceOf) != 3 || first == nil {
		t.Fatalf("grace ends after one commit: %d groups for %d tunnels, want 1 for 3", len(c.graces), len(c.graceOf))
	}
	clk.Advance(50 * time.Millisecond)
	// Into h2 only: the tunnel to h3 is not on its links.
	if _, err := c.Request(ctx, "raft", Request{Sender: h3, Receiver: netip.AddrPortFrom(h2, 7101), LoadsizeBytes: 1000, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	second := c.graceOf[fds[1]]
	if c.graceOf[fds[0]] != first || second == first || second == nil || c.graceOf[fds[2]] != second || first.live != 1 {
		t.Fatalf("after the second commit: grace ends %p, %p, %p; the first commit's %p (%d live)", c.graceOf[fds[0]], second, c.graceOf[fds[2]], first, first.live)
	}
	clk.Advance(50 * time.Millisecond) // the first commit's grace ends
	if got, want := meter(fds[0]), rateBps(100, period(fds[0])*1000); got != want || want >= before[0] {
		t.Fatalf("tunnel to h3 at the first grace end: meter %d, want %d (below %d)", got, want, before[0])
	}
	if got := meter(fds[1]); got != before[1] {
		t.Fatalf("tunnel to h2 at the first grace end: meter %d, want %d until its second", got, before[1])
	}
	// A released tunnel's pending end goes with it.
	if err := c.Release(ctx, "fd", fds[2]); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.graceOf[fds[2]]; ok {
		t.Fatal("the released tunnel's grace end is still pending")
	}
	clk.Advance(time.Second)
	for _, id := range fds[:2] {
		if got, want := meter(id), rateBps(100, period(id)*1000); got != want {
			t.Fatalf("tunnel %d after every grace end: meter %d, want %d", id, got, want)
		}
	}
	if len(c.graces) != 0 || len(c.graceOf) != 0 {
		t.Fatalf("grace ends left: %d groups, %d tunnels", len(c.graces), len(c.graceOf))
	}
	// A tunnel listed twice in one commit's grace ends counts once.
	c.mu.Lock()
	c.armGrace(fds[0], fds[0])
	g := c.graceOf[fds[0]]
	c.mu.Unlock()
	if g == nil || g.live != 1 || len(c.graces) != 1 {
		t.Fatalf("a tunnel armed twice: %+v, %d groups", g, len(c.graces))
	}
	clk.Advance(time.Second)
	if len(c.graces) != 0 || len(c.graceOf) != 0 {
		t.Fatalf("grace ends left after the double arm: %d groups, %d tunnels", len(c.graces), len(c.graceOf))
	}
	// Meters were raised and lowered on the installed rules: they must be
	// what compiling each tunnel afresh gives.
	for id, rec := range c.recs {
		want, err := c.rulesFor(rec, rec.tun, c.meterRate(rec.tun))
		if err != nil {
			t.Fatal(err)
		}
		if !rec.rules.equal(want) {
			t.Fatalf("tunnel %d: rules %+v, compiled %+v", id, byName(c.topo, rec.rules), byName(c.topo, want))
		}
	}
}

func TestErrorsAndOwnership(t *testing.T) {
	c, _, _ := setup(t)
	ctx := context.Background()
	good := Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}
	bad := []struct {
		mod  func(*Request)
		want string
	}{
		{func(r *Request) { r.LoadsizeBytes = 0 }, "loadsize"},
		{func(r *Request) { r.LoadsizeBytes = 1001 }, "loadsize"},
		{func(r *Request) { r.PeriodUs = 0 }, "period"},
		{func(r *Request) { r.PeriodUs = 10_000_001 }, "period"},
		{func(r *Request) { r.Sublane = 2 }, "sublane"},
		{func(r *Request) { r.Sender = netip.MustParseAddr("10.9.9.9") }, "sender"},
		{func(r *Request) { r.Receiver = netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), 1) }, "receiver.ip"},
		{func(r *Request) { r.Receiver = netip.AddrPortFrom(netip.MustParseAddr("239.1.1.1"), 1) }, "multicast group has no members"},
		{func(r *Request) { r.Receiver = netip.AddrPortFrom(h2, 0) }, "receiver.port"},
	}
	for _, b := range bad {
		r := good
		b.mod(&r)
		_, err := c.Request(ctx, "fd", r)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: err = %v, want InvalidArgument naming %q", r, err, b.want)
		}
	}
	res, err := c.Request(ctx, "fd", good)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, "other", res.TunnelID); !errors.Is(err, ErrPermission) {
		t.Fatalf("foreign release: %v", err)
	}
	if _, err := c.Change(ctx, "other", res.TunnelID, good); !errors.Is(err, ErrPermission) {
		t.Fatalf("foreign change: %v", err)
	}
	if err := c.Release(ctx, "fd", 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown release: %v", err)
	}
	// Ten 1000-byte tunnels fill the 10000-byte queues: the next one is
	// refused, naming the bottleneck.
	big := Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7000), LoadsizeBytes: 1000, PeriodUs: 10_000}
	var err2 error
	for range 11 {
		if _, err2 = c.Request(ctx, "raft", big); err2 != nil {
			break
		}
	}
	if !errors.Is(err2, ErrExhausted) || !strings.Contains(err2.Error(), "bottleneck link") {
		t.Fatalf("err = %v, want ResourceExhausted with the bottleneck", err2)
	}
}

func TestSwitchFailureRollsBack(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	first, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	before1, before2 := drv.Rules("s1"), drv.Rules("s2")
	drv.FailNext("s2", 1) // s1 is programmed first, then s2 fails
	_, err = c.Request(ctx, "raft", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 500, PeriodUs: 100})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	if !slices.EqualFunc(drv.Rules("s1"), before1, southbound.TunnelRule.Equal) || !slices.EqualFunc(drv.Rules("s2"), before2, southbound.TunnelRule.Equal) {
		t.Fatalf("switches not rolled back:\ns1 %+v\ns2 %+v", drv.Rules("s1"), drv.Rules("s2"))
	}
	ts := c.Tunnels("")
	if len(ts) != 1 || ts[0] != c.resources(mustTunnel(t, c, first.TunnelID), time.Time{}) || ts[0].MaxJitterNs != first.MaxJitterNs {
		t.Fatalf("engine not rolled back: %+v", ts)
	}
}

func mustTunnel(t *testing.T, c *Controller, id uint64) te.Tunnel {
	t.Helper()
	x, ok := c.engine.Tunnel(id)
	if !ok {
		t.Fatalf("no tunnel %d", id)
	}
	return x
}

func TestMulticastMembership(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	group := netip.AddrPortFrom(netip.MustParseAddr("239.1.1.1"), 5000)
	for _, m := range []netip.Addr{h2, h3} {
		if err := c.JoinGroup(ctx, group, m); err != nil {
			t.Fatal(err)
		}
	}
	watch := c.Watch("fd")
	res, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: group, LoadsizeBytes: 64, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	// s2 replicates to both members.
	if r := drv.Rules("s2"); len(r) != 1 || !slices.Equal(r[0].Out, []southbound.Port{2, 3}) || r[0].Match.DstIP != group.Addr() {
		t.Fatalf("s2 rules = %+v", r)
	}
	if err := c.LeaveGroup(ctx, group, h3); err != nil {
		t.Fatal(err)
	}
	if r := drv.Rules("s2"); len(r) != 1 || !slices.Equal(r[0].Out, []southbound.Port{2}) {
		t.Fatalf("after leave, s2 rules = %+v", r)
	}
	if err := c.LeaveGroup(ctx, group, h2); err != nil {
		t.Fatal(err)
	}
	if len(c.Tunnels("")) != 0 || len(drv.Rules("s1")) != 0 {
		t.Fatal("tunnel without receivers not removed")
	}
	var last Upcall
	for len(watch.C) > 0 {
		last = <-watch.C
	}
	if last.Kind != BandwidthTerminated || last.TunnelID != res.TunnelID {
		t.Fatalf("last upcall = %+v, want termination", last)
	}
	if err := c.JoinGroup(ctx, netip.AddrPortFrom(h2, 1), h3); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unicast group accepted: %v", err)
	}
}

func TestChangeKeepsIDAndRollsBack(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	req := Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}
	res, err := c.Request(ctx, "fd", req)
	if err != nil {
		t.Fatal(err)
	}
	req.LoadsizeBytes = 200
	got, err := c.Change(ctx, "fd", res.TunnelID, req)
	if err != nil || got.TunnelID != res.TunnelID || got.LoadsizeBytes != 200 {
		t.Fatalf("change = %+v, %v", got, err)
	}
	// During the grace the meter takes both the old and the new packet size
	// at the higher of the two rates.
	if m := drv.Rules("s1")[0].Meter; m.BurstBytes != 200 || m.RateBps != 16_000_000 {
		t.Fatalf("meter = %+v", m)
	}
	before := c.Tunnels("")
	drv.FailNext("", 1)
	req.LoadsizeBytes = 300
	if _, err := c.Change(ctx, "fd", res.TunnelID, req); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if after := c.Tunnels(""); !slices.Equal(after, before) {
		t.Fatalf("failed change altered state: %+v -> %+v", before, after)
	}
	if r := drv.Rules("s1")[0]; r.Meter.BurstBytes != 200 {
		t.Fatalf("failed change altered the switch: %+v", r)
	}
}

func TestQuotas(t *testing.T) {
	drv := memory.New("s1", "s2")
	c, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: drv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Quota: func(svc string) Quota {
			if svc == "fd" {
				return Quota{MaxTunnels: 2, MaxRateBps: 20_000_000}
			}
			return Quota{}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	req := Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100} // 8 Mbit/s
	a, err := c.Request(ctx, "fd", req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "fd", req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "fd", req); !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "at most 2 tunnels") {
		t.Fatalf("third tunnel: %v", err)
	}
	// Doubling one tunnel's rate would make 24 Mbit/s > 20.
	big := req
	big.PeriodUs = 50
	if _, err := c.Change(ctx, "fd", a.TunnelID, big); !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "bit/s") {
		t.Fatalf("rate over quota: %v", err)
	}
	// Other services are not limited.
	for range 3 {
		if _, err := c.Request(ctx, "raft", req); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBestEffortRoutes(t *testing.T) {
	c, drv, _ := setup(t)
	if err := c.ReconcileAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// s1: port 1 = h1, port 2 = s2; s2: port 1 = s1, 2 = h2, 3 = h3.
	want := map[string]map[string]southbound.Port{
		"s1": {"10.0.0.1/32": 1, "10.0.0.2/32": 2, "10.0.0.3/32": 2},
		"s2": {"10.0.0.1/32": 1, "10.0.0.2/32": 2, "10.0.0.3/32": 3},
	}
	for sw, routes := range want {
		got := drv.Routes(sw)
		if len(got) != len(routes) {
			t.Fatalf("%s routes = %+v", sw, got)
		}
		for _, r := range got {
			if routes[r.Dst.String()] != r.Out {
				t.Fatalf("%s: route %v via %d, want %d", sw, r.Dst, r.Out, routes[r.Dst.String()])
			}
		}
	}
}

func TestFailedRollbackIsReconciled(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	if _, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	// s1 takes the new tunnel, s2 refuses it, and the undo on s1 fails
	// too: s1 keeps a rule the controller does not want.
	drv.FailAt("s2", 1)
	drv.FailAt("s1", 2)
	if _, err := c.Request(ctx, "raft", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 100, PeriodUs: 100}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if len(drv.Rules("s1")) != 2 {
		t.Fatalf("the failed undo should have left 2 rules on s1, found %d", len(drv.Rules("s1")))
	}
	if err := c.ReconcilePending(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := drv.Rules("s1"), c.Desired("s1").Rules; !slices.EqualFunc(got, want, southbound.TunnelRule.Equal) || len(got) != 1 {
		t.Fatalf("s1 after reconcile: %+v, want %+v", got, want)
	}
}

// smallWatchBuffer is a controller whose watchers may fall two upcalls
// behind.
func smallWatchBuffer(t *testing.T) *Controller {
	t.Helper()
	return twoSwitch(t, Config{WatchBuffer: 2})
}

// twoSwitch is a controller of the two-switch topology with in-memory
// switches and no log, configured otherwise by cfg.
func twoSwitch(t *testing.T, cfg Config) *Controller {
	t.Helper()
	cfg.Topology, cfg.Driver = tetest.TwoSwitch(t), memory.New("s1", "s2")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestSlowWatcherIsDropped(t *testing.T) {
	c := smallWatchBuffer(t)
	ctx := context.Background()
	w := c.Watch("fd")
	if _, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 10, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // three upcalls for fd into a buffer of two
		if _, err := c.Request(ctx, "other", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, uint16(8000+i)), LoadsizeBytes: 10, PeriodUs: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range w.C { // drains the two buffered upcalls, then sees the close
		n++
	}
	if n != 2 || !w.Dropped() {
		t.Fatalf("got %d upcalls, dropped=%v; want 2 and dropped", n, w.Dropped())
	}
	// A new subscription works again.
	w2 := c.Watch("fd")
	defer w2.Close()
	if _, err := c.Request(ctx, "other", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 9000), LoadsizeBytes: 10, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	if len(w2.C) != 1 {
		t.Fatalf("new watcher got %d upcalls", len(w2.C))
	}
}

// A watcher that falls behind is dropped in the middle of its service's
// watchers; the next one still gets that upcall and the ones after it.
func TestSlowWatcherAmongOthers(t *testing.T) {
	c := smallWatchBuffer(t)
	ctx := context.Background()
	slow, fast := c.Watch("fd"), c.Watch("fd")
	defer fast.Close()
	if _, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 10, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	got := 0
	for i := range 3 {
		if _, err := c.Request(ctx, "other", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, uint16(8000+i)), LoadsizeBytes: 10, PeriodUs: 1000}); err != nil {
			t.Fatal(err)
		}
		for len(fast.C) > 0 {
			<-fast.C
			got++
		}
	}
	if !slow.Dropped() || fast.Dropped() || got != 3 {
		t.Fatalf("slow dropped %v, fast dropped %v with %d of 3 upcalls", slow.Dropped(), fast.Dropped(), got)
	}
	if info, err := c.ServiceInfo("fd"); err != nil || info.Watching != 1 {
		t.Fatalf("fd watching %d (%v), want 1", info.Watching, err)
	}
	slow.Close() // already out: a no-op
	if info, _ := c.ServiceInfo("fd"); info.Watching != 1 {
		t.Fatalf("closing the dropped watcher took another: watching %d", info.Watching)
	}
}

// A changed tunnel is a new one in the engine, without the record its
// predecessor carried: the next admission that moves its bounds must still
// tell its service (found by id), with the changed parameters.
func TestChangedTunnelHearsOfLaterAdmissions(t *testing.T) {
	c, _, _ := setup(t)
	ctx := context.Background()
	watch := c.Watch("fd")
	req := Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}
	fd, err := c.Request(ctx, "fd", req)
	if err != nil {
		t.Fatal(err)
	}
	req.LoadsizeBytes = 200
	if _, err := c.Change(ctx, "fd", fd.TunnelID, req); err != nil {
		t.Fatal(err)
	}
	for len(watch.C) > 0 {
		<-watch.C // anything the change itself told
	}
	if _, err := c.Request(ctx, "raft", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 900, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	select {
	case up := <-watch.C:
		if up.Kind != BandwidthChanged || up.TunnelID != fd.TunnelID || up.Resources.LoadsizeBytes != 200 {
			t.Fatalf("upcall = %+v, want the changed tunnel %d with 200-byte loads", up, fd.TunnelID)
		}
	default:
		t.Fatal("no upcall for the changed tunnel")
	}
}

// A release that shortens other tunnels' periods raises their meters at
// once, at commit: on the switch, in the record's rules and its meter
// figure alike (the record's rules are changed in place), with the old
// rule the undo would put back.
func TestReleaseRaisesMetersAtCommit(t *testing.T) {
	c, drv, clk := setup(t)
	ctx := context.Background()
	var fds []uint64
	for i, to := range []netip.Addr{h3, h2} { // periods just above their bounds
		res, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(to, uint16(7000+i)), LoadsizeBytes: 100, PeriodUs: 26})
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, res.TunnelID)
	}
	big, err := c.Request(ctx, "raft", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7100), LoadsizeBytes: 1000, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // the longer periods' meters come down
	lowered := map[uint64]uint64{}
	for _, id := range fds {
		lowered[id] = c.recs[id].meter
	}
	if err := c.Release(ctx, "raft", big.TunnelID); err != nil {
		t.Fatal(err)
	}
	raised := 0
	for _, id := range fds {
		rec := c.recs[id]
		want := c.meterRate(rec.tun)
		sw, inRules, _ := rec.rules.meter()
		var onSwitch uint64
		for _, r := range drv.Rules(c.topo.Nodes[sw].Name) {
			if r.Tunnel == id && r.Meter != nil {
				onSwitch = r.Meter.RateBps
			}
		}
		if rec.meter != want || inRules != want || onSwitch != want {
			t.Fatalf("tunnel %d right after the release: meter %d in the record, %d in its rules, %d on %s; want %d",
				id, rec.meter, inRules, onSwitch, c.topo.Nodes[sw].Name, want)
		}
		if want > lowered[id] {
			raised++
		}
	}
	if raised == 0 {
		t.Fatalf("no meter went up: %v before, the test shows nothing", lowered)
	}
}

// The engine's change lists are kept for the next admissions emptied:
// their entries point at engine tunnels that a release may free.
func TestChangeListsAreKeptEmptied(t *testing.T) {
	c, _, _ := setup(t)
	ctx := context.Background()
	var ids []uint64
	for i := range 4 { // each shares the path of those before, whose bounds it moves
		res, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, uint16(7000+i)), LoadsizeBytes: 100, PeriodUs: 1000})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.TunnelID)
	}
	c.mu.Lock()
	kept := c.scratch.changes
	c.mu.Unlock()
	if len(kept) == 0 {
		t.Fatal("no change list kept after admissions that changed others")
	}
	for _, buf := range kept {
		if len(buf) != 0 {
			t.Fatalf("a kept list holds %d changes", len(buf))
		}
		for i, ch := range buf[:cap(buf)] {
			if ch != (te.Change{}) {
				t.Fatalf("entry %d of a kept list still holds %+v", i, ch)
			}
		}
	}
	// The next admission fills a kept list and reports the same changes
	// as a fresh one would: every earlier tunnel on the path is told.
	before := len(kept)
	sub := c.Watch("fd")
	defer sub.Close()
	if _, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7100), LoadsizeBytes: 100, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	told := map[uint64]bool{}
	for len(told) < len(ids) {
		select {
		case u := <-sub.C:
			told[u.TunnelID] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("told of %v, want all of %v", told, ids)
		}
	}
	c.mu.Lock()
	after := len(c.scratch.changes)
	c.mu.Unlock()
	if after != before {
		t.Fatalf("kept lists %d before the admission, %d after: one was taken and not given back, or a new one made", before, after)
	}
}
