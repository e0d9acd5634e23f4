package server_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/xlane/xlane/controller/api/v1"
	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// daemon is a controller served over real gRPC on loopback.
type daemon struct {
	addr string
	drv  *memory.Driver
	ctl  *tunnels.Controller
	stop func()
}

func start(t *testing.T, addr string, grace time.Duration, opts ...server.Option) *daemon {
	t.Helper()
	drv := memory.New("s1", "s2")
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: tetest.TwoSwitch(t), Driver: drv, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	a, stop := servertest.ServeWith(t, ctl, addr, opts)
	return &daemon{addr: a, drv: drv, ctl: ctl, stop: stop}
}

var (
	h1 = netip.MustParseAddr("10.0.0.1")
	h2 = netip.MustParseAddr("10.0.0.2")
	h3 = netip.MustParseAddr("10.0.0.3")
)

func dial(t *testing.T, d *daemon, svc string) *client.Client {
	t.Helper()
	c, err := client.Dial(d.addr, svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantCode(t *testing.T, err error, c codes.Code, field string) {
	t.Helper()
	s, _ := status.FromError(err)
	if s.Code() != c || !strings.Contains(s.Message(), field) {
		t.Fatalf("err = %v, want %v naming %q", err, c, field)
	}
}

func TestAPIEndToEnd(t *testing.T) {
	// A long grace keeps the "still the old meter" check well inside it,
	// even on a loaded machine.
	d := start(t, "127.0.0.1:0", 2*time.Second)
	defer d.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fd, raft := dial(t, d, "fd"), dial(t, d, "raft")

	// The FD service watches its upcalls.
	ups, _ := servertest.Watch(t, ctx, fd)

	// Watching registered it; raft, which has done nothing yet, is unknown.
	if svc, err := fd.Service(ctx); err != nil || svc.Name != "fd" || svc.Watching != 1 || svc.LastSubscribed == nil || svc.Tunnels != 0 {
		t.Fatalf("fd's registration: %+v, %v", svc, err)
	}
	_, err := raft.Service(ctx)
	wantCode(t, err, codes.NotFound, "raft")

	req := tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 26}
	res, err := fd.RequestBandwidth(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if svc, err := fd.Service(ctx); err != nil || svc.Tunnels != 1 || svc.RateBps == 0 {
		t.Fatalf("fd's registration with a tunnel: %+v, %v", svc, err)
	}
	if res.TunnelID == 0 || res.PeriodUs != 26 || res.MinLatencyNs != 5400 {
		t.Fatalf("resources = %+v", res)
	}
	meterOf := func(id uint64) uint64 {
		for _, r := range d.drv.Rules("s1") {
			if r.Tunnel == id && r.Meter != nil {
				return r.Meter.RateBps
			}
		}
		return 0
	}
	oldRate := meterOf(res.TunnelID)

	// Raft's big tunnel raises FD's period: FD gets an upcall with a grace.
	rres, err := raft.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 900, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var ch tunnels.Upcall
	select {
	case ch = <-ups:
	case <-ctx.Done():
		t.Fatal("no upcall")
	}
	if ch.Kind != tunnels.BandwidthChanged || ch.TunnelID != res.TunnelID || ch.Resources.TunnelID != res.TunnelID || ch.Reason != tunnels.ReasonTE || ch.Resources.PeriodUs <= 26 {
		t.Fatalf("upcall = %+v", ch)
	}
	grace := ch.GraceUntil
	if time.Until(grace) < time.Second {
		t.Fatalf("grace ends too soon: %v", time.Until(grace))
	}
	if rres.NotBefore.Before(grace.Add(-time.Millisecond)) {
		t.Fatalf("raft may start at %v, before FD's grace ends at %v", rres.NotBefore, grace)
	}
	// Before grace_until the switch still admits the old rate; after, the new.
	if got := meterOf(res.TunnelID); got != oldRate {
		t.Fatalf("meter during grace = %d, want the old %d", got, oldRate)
	}
	time.Sleep(time.Until(grace) + 150*time.Millisecond)
	if got, want := meterOf(res.TunnelID), uint64(100*8*1_000_000/ch.Resources.PeriodUs); got != want {
		t.Fatalf("meter after grace = %d, want %d", got, want)
	}

	// Error codes, each naming what is wrong.
	bad := req
	bad.LoadsizeBytes = 0
	_, err = fd.RequestBandwidth(ctx, bad)
	wantCode(t, err, codes.InvalidArgument, "loadsize")
	bad = req
	bad.Receiver = netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), 1)
	_, err = fd.RequestBandwidth(ctx, bad)
	wantCode(t, err, codes.InvalidArgument, "receiver.ip")
	bad = req
	bad.Sublane = 7
	_, err = fd.RequestBandwidth(ctx, bad)
	wantCode(t, err, codes.InvalidArgument, "sublane")
	wantCode(t, raft.ReleaseBandwidth(ctx, res.TunnelID), codes.PermissionDenied, "another service")
	wantCode(t, fd.ReleaseBandwidth(ctx, 4242), codes.NotFound, "4242")
	big := tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7002), LoadsizeBytes: 1000, PeriodUs: 10_000}
	for {
		if _, err = raft.RequestBandwidth(ctx, big); err != nil {
			break
		}
	}
	wantCode(t, err, codes.ResourceExhausted, "bottleneck link")
	d.drv.FailNext("s2", 1)
	_, err = fd.ChangeBandwidth(ctx, res.TunnelID, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7000), LoadsizeBytes: 50, PeriodUs: 100})
	wantCode(t, err, codes.Unavailable, "s2")
	conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = pb.NewControllerClient(conn).ListTunnels(ctx, &pb.ListTunnelsRequest{})
	wantCode(t, err, codes.Unauthenticated, server.ServiceKey)

	// Change and release through the API.
	got, err := fd.ChangeBandwidth(ctx, res.TunnelID, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 50, PeriodUs: 200})
	if err != nil || got.TunnelID != res.TunnelID || got.LoadsizeBytes != 50 {
		t.Fatalf("change = %+v, %v", got, err)
	}
	list, err := fd.ListTunnels(ctx)
	if err != nil || len(list) != 1 || list[0].TunnelID != res.TunnelID {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if err := fd.ReleaseBandwidth(ctx, res.TunnelID); err != nil {
		t.Fatal(err)
	}
	if list, _ := fd.ListTunnels(ctx); len(list) != 0 {
		t.Fatalf("after release: %+v", list)
	}

	// Multicast through the API.
	group := netip.AddrPortFrom(netip.MustParseAddr("239.1.2.3"), 6000)
	for _, m := range []netip.Addr{h2, h3} {
		if err := fd.JoinGroup(ctx, group, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: group, LoadsizeBytes: 32, PeriodUs: 500}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, fd.JoinGroup(ctx, netip.AddrPortFrom(h2, 5), h3), codes.InvalidArgument, "multicast")
}

func TestWatchResubscribesAfterRestart(t *testing.T) {
	d := start(t, "127.0.0.1:0", 50*time.Millisecond)
	addr := d.addr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fd := dial(t, d, "fd")
	ups, live := servertest.Watch(t, ctx, fd)
	d.stop()
	d2 := start(t, addr, 50*time.Millisecond) // the controller comes back on the same address
	defer d2.stop()
	select {
	case first := <-live:
		if first {
			t.Fatal("re-subscription reported as first")
		}
	case <-ctx.Done():
		t.Fatal("watch did not re-subscribe")
	}
	// Upcalls from the new instance arrive on the same Watch.
	other := dial(t, d2, "other")
	if _, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 26}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 900, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-ups:
		if u.Kind != tunnels.BandwidthChanged {
			t.Fatalf("upcall = %+v", u)
		}
	case <-ctx.Done():
		t.Fatal("no upcall after restart")
	}
}
