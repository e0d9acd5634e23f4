package tunnels

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/memory"
)

// checkMeters recounts where the tunnels are metered from their rules
// and compares it with the index monitoring asks switches by.
func checkMeters(t *testing.T, c *Controller, when string) {
	t.Helper()
	at := meteredAt(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]int{}
	for id, rec := range c.recs {
		if at[id] != "" {
			want[at[id]]++
		}
		if rec.meterAt != at[id] {
			t.Fatalf("%s: tunnel %d metered at %q, recorded %q", when, id, at[id], rec.meterAt)
		}
	}
	if !maps.Equal(c.meters, want) {
		t.Fatalf("%s: meter index %v, the rules say %v", when, c.meters, want)
	}
}

func TestMeterIndexFollowsTheTunnels(t *testing.T) {
	st := &recordStore{}
	c, drv := batchController(t, st)
	ctx := context.Background()
	checkMeters(t, c, "empty")
	a, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Request(ctx, "fd", Request{Sender: h2, Receiver: netip.AddrPortFrom(h1, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Request(ctx, "raft", Request{Sender: h3, Receiver: netip.AddrPortFrom(h1, 7001), LoadsizeBytes: 500, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	checkMeters(t, c, "after requests")
	if c.meters["s1"] != 1 || c.meters["s2"] != 2 {
		t.Fatalf("meters = %v, want s1:1 s2:2", c.meters)
	}
	if _, err := c.Change(ctx, "fd", a.TunnelID, Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7000), LoadsizeBytes: 200, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	checkMeters(t, c, "after a change")
	cfg := MonitorConfig{Interval: time.Second}
	for k := uint64(1); k <= 2; k++ { // baseline, then raft's meter drops: demoted
		drv.SetStats("s2", southbound.TunnelStats{Tunnel: r.TunnelID, Packets: 10_000 * k, Bytes: 5_000_000 * k, MeterDrops: 9 * k})
		if err := c.MonitorOnce(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if !c.recs[r.TunnelID].demoted {
		t.Fatal("raft not demoted")
	}
	checkMeters(t, c, "after a demotion")
	if err := c.Release(ctx, "fd", b.TunnelID); err != nil {
		t.Fatal(err)
	}
	checkMeters(t, c, "after a release")
	// A multicast tunnel: re-planned as members join and leave, and gone
	// with its last member.
	group := netip.AddrPortFrom(netip.MustParseAddr("239.1.1.1"), 5000)
	if err := c.JoinGroup(ctx, group, h2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "fd", Request{Sender: h3, Receiver: group, LoadsizeBytes: 64, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	checkMeters(t, c, "after a multicast request")
	if err := c.JoinGroup(ctx, group, h1); err != nil {
		t.Fatal(err)
	}
	checkMeters(t, c, "after a join")
	for _, m := range []netip.Addr{h1, h2} {
		if err := c.LeaveGroup(ctx, group, m); err != nil {
			t.Fatal(err)
		}
		checkMeters(t, c, "after a leave")
	}

	// A controller restarted from what was stored indexes the same.
	snap := Snapshot{NextID: 100}
	kept := map[uint64]StoredTunnel{}
	for _, w := range st.saved {
		for _, p := range w.Put {
			kept[p.Tunnel.ID] = p
		}
		for _, id := range w.Delete {
			delete(kept, id)
		}
	}
	for _, p := range kept {
		snap.Tunnels = append(snap.Tunnels, p)
	}
	c2, err := New(ctx, Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2"), Store: loadedStore{snap},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	checkMeters(t, c2, "after a restart")
	if len(c2.recs) != 2 || !c2.recs[r.TunnelID].demoted || c2.meters["s1"] != 1 || c2.meters["s2"] != 1 {
		t.Fatalf("restarted: %d tunnels, meters %v", len(c2.recs), c2.meters)
	}
}

// loadedStore hands out one snapshot and keeps nothing.
type loadedStore struct{ snap Snapshot }

func (s loadedStore) Save(Writes) error       { return nil }
func (s loadedStore) Load() (Snapshot, error) { return s.snap, nil }

// statsHook runs a function when a switch's statistics are read: what a
// service does while a monitoring round is under way.
type statsHook struct {
	*memory.Driver
	on  string
	run func()
}

func (d *statsHook) Stats(ctx context.Context, sw string) ([]southbound.TunnelStats, error) {
	if sw == d.on && d.run != nil {
		d.run()
		d.run = nil
	}
	return d.Driver.Stats(ctx, sw)
}

// A tunnel judged for an action but changed or released before the
// round acts is left alone: the verdict was on what it no longer is.
func TestMonitorActsOnlyOnWhatItJudged(t *testing.T) {
	drv := &statsHook{Driver: memory.New("s1", "s2"), on: "s2"}
	c, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: drv,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	mk := func(sender netip.Addr, port uint16) Resources {
		res, err := c.Request(ctx, "svc", Request{Sender: sender, Receiver: netip.AddrPortFrom(h3, port), LoadsizeBytes: 100, PeriodUs: 100})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	changed, released, demoted := mk(h1, 7000), mk(h1, 7001), mk(h1, 7002)
	mk(h2, 7003) // so that s2 meters a tunnel and is read after s1
	cfg := MonitorConfig{Interval: time.Second}
	send := func(k uint64) {
		for _, id := range []uint64{changed.TunnelID, released.TunnelID, demoted.TunnelID} {
			drv.SetStats("s1", southbound.TunnelStats{Tunnel: id, Packets: 10_000 * k, Bytes: 1_000_000 * k, MeterDrops: (k - 1) * 5})
		}
	}
	send(1)
	if err := c.MonitorOnce(ctx, cfg); err != nil { // baseline
		t.Fatal(err)
	}
	send(2) // all three dropped packets: each judged for demotion at s1
	drv.run = func() {
		if _, err := c.Change(ctx, "svc", changed.TunnelID, Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7000), LoadsizeBytes: 100, PeriodUs: 200}); err != nil {
			t.Error(err)
		}
		if err := c.Release(ctx, "svc", released.TunnelID); err != nil {
			t.Error(err)
		}
	}
	if err := c.MonitorOnce(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !c.recs[demoted.TunnelID].demoted {
		t.Fatal("the tunnel left alone was not demoted")
	}
	if c.recs[changed.TunnelID].demoted {
		t.Fatal("a tunnel changed after it was judged was demoted for its old parameters")
	}
	if _, ok := c.recs[released.TunnelID]; ok {
		t.Fatal("released tunnel came back")
	}
	checkMeters(t, c, "after the round")
}
