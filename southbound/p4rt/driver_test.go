package p4rt

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	p4config "github.com/p4lang/p4runtime/go/p4/config/v1"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"

	p4switch "github.com/xlane/xlane/p4/switch"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/p4rt/p4rttest"
)

// rig is a test server and drivers connected to it.
type rig struct {
	t     testing.TB
	srv   *p4rttest.Server
	addr  string
	stop  func()
	mu    sync.Mutex
	want  map[string]southbound.SwitchState // what OnConnect reconciles to, per driver
	ready chan string
}

func newRig(t testing.TB) *rig {
	r := &rig{t: t, srv: p4rttest.New(1), want: map[string]southbound.SwitchState{}, ready: make(chan string, 16)}
	r.listen("127.0.0.1:0")
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *rig) listen(addr string) {
	var lis net.Listener
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = lis.Addr().String()
	r.stop = r.srv.Serve(lis)
}

// driver starts a driver with election id e named tag.
func (r *rig) driver(tag string, e uint64) (*Driver, context.CancelFunc) {
	var d *Driver
	d, err := New(Config{
		Switches: map[string]Target{"s1": {Addr: r.addr, DeviceID: 1}}, ElectionID: e,
		P4Info: p4switch.P4Info, DeviceConfig: p4switch.DeviceConfig, Cookie: 0xc0ffee,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnConnect: func(ctx context.Context, sw string) {
			r.mu.Lock()
			want := r.want[tag]
			r.mu.Unlock()
			if err := d.Reconcile(ctx, sw, want); err != nil {
				r.t.Logf("%s: reconcile: %v", tag, err)
				return
			}
			r.ready <- tag
		},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
	return d, func() { cancel(); <-done }
}

func (r *rig) waitReady(tag string) {
	r.t.Helper()
	for {
		select {
		case got := <-r.ready:
			if got == tag {
				return
			}
		case <-time.After(10 * time.Second):
			r.t.Fatalf("%s never became primary and reconciled", tag)
		}
	}
}

// count reads what the server holds.
func (r *rig) count(e *p4v1.Entity) int {
	r.t.Helper()
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close()
	st, err := p4v1.NewP4RuntimeClient(conn).Read(context.Background(), &p4v1.ReadRequest{DeviceId: 1, Entities: []*p4v1.Entity{e}})
	if err != nil {
		r.t.Fatal(err)
	}
	n := 0
	for {
		resp, err := st.Recv()
		if err != nil {
			return n
		}
		for _, x := range resp.GetEntities() {
			if m := x.GetMeterEntry(); m != nil && m.GetConfig() == nil {
				continue
			}
			n++
		}
	}
}

// pipelineIDs are the committed pipeline's ids of what the driver uses.
var pipelineIDs = func() *ids {
	info := &p4config.P4Info{}
	if err := prototext.Unmarshal(p4switch.P4Info, info); err != nil {
		panic(err)
	}
	x, err := resolve(info)
	if err != nil {
		panic(err)
	}
	return x
}()

func tableOf(id uint32) *p4v1.Entity {
	return &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{TableId: id}}}
}

var (
	groupQuery = &p4v1.Entity{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{
		Type: &p4v1.PacketReplicationEngineEntry_MulticastGroupEntry{MulticastGroupEntry: &p4v1.MulticastGroupEntry{}}}}}
	meterQuery = &p4v1.Entity{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{MeterId: pipelineIDs.meter}}}
	uni        = southbound.TunnelRule{Tunnel: 7, Sublane: 1, Out: []southbound.Port{2}, Meter: &southbound.Meter{RateBps: 8_000_000, BurstBytes: 1000},
		Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.0.0.2"), DstPort: 5000, DSCP: 45}}
	multi = southbound.TunnelRule{Tunnel: 9, Out: []southbound.Port{2, 3},
		Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("239.1.1.1"), DstPort: 6000, DSCP: 46}}
	routes = []southbound.Route{{Dst: netip.MustParsePrefix("10.0.0.2/32"), Out: 2}}
)

func TestProgramReadBackAndStats(t *testing.T) {
	r := newRig(t)
	r.want["a"] = southbound.SwitchState{Routes: routes}
	d, _ := r.driver("a", 1)
	r.waitReady("a")
	ctx := context.Background()
	if err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{uni, multi}}); err != nil {
		t.Fatal(err)
	}
	if c, tn, rt, g, m := r.count(tableOf(pipelineIDs.classifier)), r.count(tableOf(pipelineIDs.tunnels)), r.count(tableOf(pipelineIDs.routes)), r.count(groupQuery), r.count(meterQuery); c != 2 || tn != 2 || rt != 1 || g != 1 || m != 1 {
		t.Fatalf("server holds classifier %d, tunnels %d, routes %d, groups %d, meters %d; want 2 2 1 1 1", c, tn, rt, g, m)
	}
	inv, err := d.Inventory(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Inventory{Classifier: 2, Tunnels: 2, Routes: 1, Meters: 1, Groups: 1, TunnelIDs: []uint64{7, 9}}); !reflect.DeepEqual(inv, want) {
		t.Errorf("inventory %+v, want %+v", inv, want)
	}
	// Reconciling to the same state writes nothing.
	before := d.Writes()
	if err := d.Reconcile(ctx, "s1", southbound.SwitchState{Rules: []southbound.TunnelRule{uni, multi}, Routes: routes}); err != nil {
		t.Fatal(err)
	}
	if d.Writes() != before {
		t.Errorf("reconcile of an unchanged switch wrote %d updates", d.Writes()-before)
	}
	// Traffic, as the switch would count it.
	if n := r.srv.SetDirectCounters(tblTunnels, func(te *p4v1.TableEntry) bool { return dec(te.GetMatch()[0].GetExact().GetValue()) == 7 }, 10, 2900); n != 1 {
		t.Fatalf("set %d direct counters", n)
	}
	r.srv.SetCounter(ctrMeterDrops, 0, 3, 870)
	st, err := d.Stats(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range st {
		if s.Tunnel == 7 {
			found = s.Packets == 10 && s.Bytes == 2900 && s.MeterDrops == 3
		}
	}
	if !found {
		t.Errorf("stats %+v, want tunnel 7 with 10 packets, 2900 bytes, 3 drops", st)
	}
	// Delete: nothing of the tunnels stays.
	if err := d.Apply(ctx, "s1", southbound.Batch{Delete: []uint64{7, 9}}); err != nil {
		t.Fatal(err)
	}
	if c, tn, g, m := r.count(tableOf(pipelineIDs.classifier)), r.count(tableOf(pipelineIDs.tunnels)), r.count(groupQuery), r.count(meterQuery); c != 0 || tn != 0 || g != 0 || m != 0 {
		t.Fatalf("after delete: classifier %d, tunnels %d, groups %d, meters %d", c, tn, g, m)
	}
	if inv, err := d.Inventory(ctx, "s1"); err != nil || inv.Tunnels != 0 || inv.Meters != 0 || inv.Groups != 0 || inv.Routes != 1 || len(inv.TunnelIDs) != 0 {
		t.Errorf("inventory after delete: %+v, %v", inv, err)
	}
}

func TestPartialFailureIsUndone(t *testing.T) {
	r := newRig(t)
	d, _ := r.driver("a", 1)
	r.waitReady("a")
	ctx := context.Background()
	if err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{uni}}); err != nil {
		t.Fatal(err)
	}
	r.srv.FailNext(1) // the first update of the next batch fails, the others apply
	err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{multi}, Delete: []uint64{7}})
	if err == nil {
		t.Fatal("a batch with a failed update succeeded")
	}
	t.Logf("error: %v", err)
	if c, tn, g := r.count(tableOf(pipelineIDs.classifier)), r.count(tableOf(pipelineIDs.tunnels)), r.count(groupQuery); c != 1 || tn != 1 || g != 0 {
		t.Fatalf("after the undo: classifier %d, tunnels %d, groups %d; want the state before (1, 1, 0)", c, tn, g)
	}
}

func TestReconnectKeepsPipelineAndState(t *testing.T) {
	r := newRig(t)
	r.want["a"] = southbound.SwitchState{Rules: []southbound.TunnelRule{uni}, Routes: routes}
	d, _ := r.driver("a", 1)
	r.waitReady("a")
	before := d.Writes()
	addr := r.addr
	r.stop() // every stream breaks; the device keeps its state
	r.listen(addr)
	r.waitReady("a")
	if d.Writes() != before {
		t.Errorf("after reconnecting to an unchanged switch the driver wrote %d updates (pipeline pushed again?)", d.Writes()-before)
	}
	if c := r.count(tableOf(pipelineIDs.classifier)); c != 1 {
		t.Errorf("classifier entries after reconnect: %d", c)
	}
}

func TestFailoverBetweenControllers(t *testing.T) {
	r := newRig(t)
	r.want["primary"] = southbound.SwitchState{Rules: []southbound.TunnelRule{uni}, Routes: routes}
	r.want["backup"] = southbound.SwitchState{Rules: []southbound.TunnelRule{uni, multi}, Routes: routes}
	p, stopP := r.driver("primary", 2)
	r.waitReady("primary")
	b, _ := r.driver("backup", 1)
	time.Sleep(200 * time.Millisecond)
	if b.Primary("s1") || !p.Primary("s1") {
		t.Fatalf("primary: backup %v, primary %v", b.Primary("s1"), p.Primary("s1"))
	}
	if err := b.Apply(context.Background(), "s1", southbound.Batch{Put: []southbound.TunnelRule{multi}}); err == nil {
		t.Fatal("the backup's write was accepted")
	}
	stopP() // the primary goes away: the backup takes over and reconciles
	r.waitReady("backup")
	if c := r.count(tableOf(pipelineIDs.classifier)); c != 2 {
		t.Errorf("classifier entries after failover: %d, want the backup's 2", c)
	}
	// A controller given a higher election id takes over from a primary.
	r.want["third"] = southbound.SwitchState{Rules: []southbound.TunnelRule{multi}, Routes: routes}
	c3, _ := r.driver("third", 0x10)
	r.waitReady("third")
	time.Sleep(100 * time.Millisecond)
	if b.Primary("s1") || !c3.Primary("s1") {
		t.Errorf("after a higher election id: old primary %v, new %v", b.Primary("s1"), c3.Primary("s1"))
	}
	b.SetElectionID(0x20)
	r.waitReady("backup")
	if !b.Primary("s1") {
		t.Error("raising the election id did not make the driver primary")
	}
}

func TestStaleReplicationStateIsRemoved(t *testing.T) {
	r := newRig(t)
	// An earlier controller left a clone session, a group and a tunnel.
	old, stopOld := r.driver("old", 5)
	r.waitReady("old")
	if err := old.Apply(context.Background(), "s1", southbound.Batch{Put: []southbound.TunnelRule{multi}}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := p4v1.NewP4RuntimeClient(conn).Write(context.Background(), &p4v1.WriteRequest{DeviceId: 1, ElectionId: &p4v1.Uint128{Low: 5},
		Updates: []*p4v1.Update{cloneUpdate(p4v1.Update_INSERT, &p4v1.CloneSessionEntry{SessionId: 3, Replicas: []*p4v1.Replica{{EgressPort: 1}}})}}); err != nil {
		t.Fatal(err)
	}
	stopOld()
	r.want["new"] = southbound.SwitchState{Rules: []southbound.TunnelRule{multi}, Routes: routes}
	d, _ := r.driver("new", 1)
	r.waitReady("new")
	clones := &p4v1.Entity{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{
		Type: &p4v1.PacketReplicationEngineEntry_CloneSessionEntry{CloneSessionEntry: &p4v1.CloneSessionEntry{}}}}}
	if c, g := r.count(clones), r.count(groupQuery); c != 0 || g != 1 {
		t.Errorf("after reconcile: %d clone sessions, %d groups; want 0 and the tunnel's 1 (kept, not duplicated)", c, g)
	}
	_ = d
}
