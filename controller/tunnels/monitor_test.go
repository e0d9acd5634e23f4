package tunnels

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/xlane/xlane/southbound"
)

func drain(s *Subscription) []Upcall {
	var out []Upcall
	for len(s.C) > 0 {
		out = append(out, <-s.C)
	}
	return out
}

func TestMonitorDemotesAndRecovers(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	cfg := MonitorConfig{Interval: time.Second, ViolationIntervals: 3}
	fdW, raftW := c.Watch("fd"), c.Watch("raft")
	fd, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	rreq := Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 500, PeriodUs: 100}
	raft, err := c.Request(ctx, "raft", rreq)
	if err != nil {
		t.Fatal(err)
	}
	drain(fdW)
	// Both send at their rate (1 s worth of packets per interval).
	send := func(drops uint64, k uint64) {
		drv.SetStats("s1", southbound.TunnelStats{Tunnel: fd.TunnelID, Packets: 10_000 * k, Bytes: 1_000_000 * k})
		drv.SetStats("s1", southbound.TunnelStats{Tunnel: raft.TunnelID, Packets: 10_000 * k, Bytes: 5_000_000 * k, MeterDrops: drops})
	}
	send(0, 1)
	if err := c.MonitorOnce(ctx, cfg); err != nil { // baseline
		t.Fatal(err)
	}
	send(0, 2)
	if err := c.MonitorOnce(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if ups := drain(raftW); len(ups) != 0 {
		t.Fatalf("well-behaved tunnel got upcalls: %+v", ups)
	}
	send(7, 3) // raft's meter dropped packets
	if err := c.MonitorOnce(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	ups := drain(raftW)
	if len(ups) != 1 || ups[0].Reason != ReasonBWExceeded || ups[0].Resources.MaxJitterNs != Unbounded {
		t.Fatalf("raft upcalls = %+v", ups)
	}
	for _, r := range drv.Rules("s1") {
		if r.Tunnel == raft.TunnelID && !r.Demoted {
			t.Fatal("raft's packets kept express priority")
		}
	}
	fdUps := drain(fdW)
	// Without raft in the express lane, fd's bound is back to what it was
	// before raft came.
	if len(fdUps) != 1 || fdUps[0].Reason != ReasonTE || fdUps[0].Resources.MaxJitterNs != fd.MaxJitterNs {
		t.Fatalf("fd should be told its jitter shrank back to %d: %+v", fd.MaxJitterNs, fdUps)
	}
	// The service recovers with ChangeBandwidth.
	rreq.PeriodUs = 200
	back, err := c.Change(ctx, "raft", raft.TunnelID, rreq)
	if err != nil {
		t.Fatal(err)
	}
	if back.MaxJitterNs == Unbounded || back.TunnelID != raft.TunnelID {
		t.Fatalf("after recovery = %+v", back)
	}
	for _, r := range drv.Rules("s1") {
		if r.Tunnel == raft.TunnelID && r.Demoted {
			t.Fatal("recovered tunnel still demoted")
		}
	}
}

func TestMonitorTerminatesPersistentViolator(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	cfg := MonitorConfig{Interval: time.Second, ViolationIntervals: 2}
	w := c.Watch("raft")
	raft, err := c.Request(ctx, "raft", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 500, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	for k := uint64(1); k <= 4; k++ { // baseline, demote, violate, violate → terminated
		drv.SetStats("s1", southbound.TunnelStats{Tunnel: raft.TunnelID, Packets: 20_000 * k, Bytes: 10_000_000 * k, MeterDrops: 100 * k})
		if err := c.MonitorOnce(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ups := drain(w)
	if len(ups) != 2 || ups[1].Kind != BandwidthTerminated || ups[1].Reason != ReasonBWExceeded {
		t.Fatalf("upcalls = %+v", ups)
	}
	if len(c.Tunnels("")) != 0 || len(drv.Rules("s1")) != 0 {
		t.Fatal("terminated tunnel left state")
	}
}

func TestMonitorReclaimsAndTerminatesIdle(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	cfg := MonitorConfig{Interval: time.Second, UnusedFraction: 0.5, UnusedIntervals: 2, IdleIntervals: 4}
	w := c.Watch("fd")
	fd, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	// 1 s at one 100-byte packet per 100 µs allots 1 MB; it sends 10 kB.
	for k := uint64(1); k <= 3; k++ {
		drv.SetStats("s1", southbound.TunnelStats{Tunnel: fd.TunnelID, Packets: 100 * k, Bytes: 10_000 * k})
		if err := c.MonitorOnce(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ups := drain(w)
	if len(ups) != 1 || ups[0].Reason != ReasonBWUnused || ups[0].Resources.PeriodUs != 200 {
		t.Fatalf("upcalls = %+v", ups)
	}
	// Then it falls silent: terminated after 4 idle intervals.
	for range 4 {
		if err := c.MonitorOnce(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ups = drain(w)
	if len(ups) == 0 || ups[len(ups)-1].Kind != BandwidthTerminated || ups[len(ups)-1].Reason != ReasonBWUnused {
		t.Fatalf("upcalls = %+v", ups)
	}
	if len(c.Tunnels("")) != 0 {
		t.Fatal("idle tunnel not terminated")
	}
}

func TestDemotedMulticastStaysDemotedOnJoin(t *testing.T) {
	c, drv, _ := setup(t)
	ctx := context.Background()
	group := netip.AddrPortFrom(netip.MustParseAddr("239.9.9.9"), 9000)
	if err := c.JoinGroup(ctx, group, h2); err != nil {
		t.Fatal(err)
	}
	m, err := c.Request(ctx, "raft", Request{Sender: h1, Receiver: group, LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	cfg := MonitorConfig{Interval: time.Second}
	for k := uint64(1); k <= 2; k++ { // baseline, then drops: demoted
		drv.SetStats("s1", southbound.TunnelStats{Tunnel: m.TunnelID, Packets: 100 * k, Bytes: 10_000 * k, MeterDrops: 5 * (k - 1)})
		if err := c.MonitorOnce(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.JoinGroup(ctx, group, h3); err != nil {
		t.Fatal(err)
	}
	if got := c.Tunnels("raft"); len(got) != 1 || got[0].MaxJitterNs != Unbounded {
		t.Fatalf("a join must not bring a demoted tunnel back: %+v", got)
	}
	// Its service's change plans over the current members, h2 and h3.
	back, err := c.Change(ctx, "raft", m.TunnelID, Request{Sender: h1, Receiver: group, LoadsizeBytes: 100, PeriodUs: 200})
	if err != nil || back.MaxJitterNs == Unbounded {
		t.Fatalf("recovery: %+v, %v", back, err)
	}
	if r := drv.Rules("s2"); len(r) != 1 || len(r[0].Out) != 2 {
		t.Fatalf("s2 after recovery: %+v", r)
	}
}
