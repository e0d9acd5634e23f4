package p4rttest

import (
	"context"
	"net"
	"testing"
	"time"

	p4config "github.com/p4lang/p4runtime/go/p4/config/v1"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// A small P4Info: an exact+lpm table with a direct counter, a ternary
// table, a two-parameter action, a meter and a counter.
func testInfo() *p4config.P4Info {
	pre := func(id uint32, name string) *p4config.Preamble { return &p4config.Preamble{Id: id, Name: name} }
	return &p4config.P4Info{
		Actions: []*p4config.Action{
			{Preamble: pre(1, "fwd"), Params: []*p4config.Action_Param{{Id: 1, Name: "port", Bitwidth: 9}, {Id: 2, Name: "tag", Bitwidth: 16}}},
			{Preamble: pre(2, "NoAction")},
		},
		Tables: []*p4config.Table{
			{Preamble: pre(10, "routes"), Size: 4, DirectResourceIds: []uint32{30},
				MatchFields: []*p4config.MatchField{
					{Id: 1, Name: "vrf", Bitwidth: 8, Match: &p4config.MatchField_MatchType_{MatchType: p4config.MatchField_EXACT}},
					{Id: 2, Name: "dst", Bitwidth: 32, Match: &p4config.MatchField_MatchType_{MatchType: p4config.MatchField_LPM}},
				},
				ActionRefs: []*p4config.ActionRef{{Id: 1}, {Id: 2, Scope: p4config.ActionRef_DEFAULT_ONLY}}},
			{Preamble: pre(11, "acl"),
				MatchFields: []*p4config.MatchField{{Id: 1, Name: "dscp", Bitwidth: 6, Match: &p4config.MatchField_MatchType_{MatchType: p4config.MatchField_TERNARY}}},
				ActionRefs:  []*p4config.ActionRef{{Id: 2}}},
		},
		Meters:         []*p4config.Meter{{Preamble: pre(20, "police"), Size: 8}},
		Counters:       []*p4config.Counter{{Preamble: pre(21, "drops"), Size: 8}},
		DirectCounters: []*p4config.DirectCounter{{Preamble: pre(30, "routes_counter"), DirectTableId: 10}},
	}
}

type ctl struct {
	t        *testing.T
	c        p4v1.P4RuntimeClient
	stream   p4v1.P4Runtime_StreamChannelClient
	cancel   context.CancelFunc
	election *p4v1.Uint128
	arb      chan *p4v1.MasterArbitrationUpdate
}

func serve(t *testing.T) (*Server, string) {
	s := New(1)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Serve(lis))
	return s, lis.Addr().String()
}

func connect(t *testing.T, addr string, election uint64) *ctl {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &ctl{t: t, c: p4v1.NewP4RuntimeClient(conn), cancel: cancel, election: &p4v1.Uint128{Low: election}, arb: make(chan *p4v1.MasterArbitrationUpdate, 16)}
	if c.stream, err = c.c.StreamChannel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.stream.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{
		Arbitration: &p4v1.MasterArbitrationUpdate{DeviceId: 1, ElectionId: c.election}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := c.stream.Recv()
			if err != nil {
				close(c.arb)
				return
			}
			if a := m.GetArbitration(); a != nil {
				c.arb <- a
			}
		}
	}()
	return c
}

// status waits for the next arbitration update's code.
func (c *ctl) status() codes.Code {
	c.t.Helper()
	select {
	case a, ok := <-c.arb:
		if !ok {
			c.t.Fatal("stream closed")
		}
		return codes.Code(a.GetStatus().GetCode())
	case <-time.After(5 * time.Second):
		c.t.Fatal("no arbitration update")
	}
	return 0
}

func (c *ctl) write(updates ...*p4v1.Update) error {
	_, err := c.c.Write(context.Background(), &p4v1.WriteRequest{DeviceId: 1, ElectionId: c.election, Updates: updates})
	return err
}

// codesOf returns the per-update codes of a failed write.
func codesOf(t *testing.T, err error) []codes.Code {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Unknown {
		t.Fatalf("write error %v, want UNKNOWN with details", err)
	}
	var out []codes.Code
	for _, d := range st.Details() {
		e, ok := d.(*p4v1.Error)
		if !ok {
			t.Fatalf("detail %T", d)
		}
		out = append(out, codes.Code(e.GetCanonicalCode()))
	}
	return out
}

func route(vrf []byte, dst []byte, plen int32, port, tag []byte) *p4v1.TableEntry {
	return &p4v1.TableEntry{TableId: 10, Match: []*p4v1.FieldMatch{
		{FieldId: 1, FieldMatchType: &p4v1.FieldMatch_Exact_{Exact: &p4v1.FieldMatch_Exact{Value: vrf}}},
		{FieldId: 2, FieldMatchType: &p4v1.FieldMatch_Lpm{Lpm: &p4v1.FieldMatch_LPM{Value: dst, PrefixLen: plen}}},
	}, Action: &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: &p4v1.Action{ActionId: 1, Params: []*p4v1.Action_Param{
		{ParamId: 1, Value: port}, {ParamId: 2, Value: tag}}}}}}
}

func upd(t p4v1.Update_Type, te *p4v1.TableEntry) *p4v1.Update {
	return &p4v1.Update{Type: t, Entity: &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: te}}}
}

func pipeline(t *testing.T, c *ctl) {
	t.Helper()
	_, err := c.c.SetForwardingPipelineConfig(context.Background(), &p4v1.SetForwardingPipelineConfigRequest{
		DeviceId: 1, ElectionId: c.election, Action: p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT,
		Config: &p4v1.ForwardingPipelineConfig{P4Info: testInfo(), Cookie: &p4v1.ForwardingPipelineConfig_Cookie{Cookie: 42}}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestArbitrationPrimaryBackupFailover(t *testing.T) {
	s, addr := serve(t)
	a := connect(t, addr, 1)
	if got := a.status(); got != codes.OK {
		t.Fatalf("first controller: %v, want OK (primary)", got)
	}
	b := connect(t, addr, 2)
	if got := b.status(); got != codes.OK {
		t.Fatalf("higher election id: %v, want OK", got)
	}
	if got := a.status(); got != codes.AlreadyExists {
		t.Fatalf("old primary told %v, want ALREADY_EXISTS (backup)", got)
	}
	pipeline(t, b)
	if err := a.write(upd(p4v1.Update_INSERT, route([]byte{1}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{0, 7}))); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("backup write: %v, want PERMISSION_DENIED", err)
	}
	if err := b.write(upd(p4v1.Update_INSERT, route([]byte{1}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{0, 7}))); err != nil {
		t.Fatalf("primary write: %v", err)
	}
	b.cancel() // the primary goes away: the backup takes over
	if got := a.status(); got != codes.OK {
		t.Fatalf("after failover: %v, want OK", got)
	}
	if _, lo, ok := s.Primary(""); !ok || lo != 1 {
		t.Fatalf("primary = %d, %v", lo, ok)
	}
	if err := a.write(upd(p4v1.Update_DELETE, route([]byte{1}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{0, 7}))); err != nil {
		t.Fatalf("new primary's write: %v", err)
	}
	dup := connect(t, addr, 1)
	select {
	case _, ok := <-dup.arb:
		if ok {
			t.Fatal("a second controller with the same election id was accepted")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("duplicate election id neither refused nor accepted")
	}
}

func TestWriteValidation(t *testing.T) {
	_, addr := serve(t)
	c := connect(t, addr, 5)
	c.status()
	if err := c.write(upd(p4v1.Update_INSERT, route([]byte{1}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{0, 7}))); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("write before a pipeline: %v", err)
	}
	pipeline(t, c)
	good := route([]byte{0, 1}, []byte{10, 1, 0, 0}, 16, []byte{0, 3}, []byte{0, 9}) // padded bytestrings are accepted
	if err := c.write(upd(p4v1.Update_INSERT, good)); err != nil {
		t.Fatal(err)
	}
	noTable := route([]byte{1}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{1})
	noTable.TableId = 99
	priority := route([]byte{2}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{1})
	priority.Priority = 5
	missingParam := route([]byte{3}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{1})
	missingParam.Action.GetAction().Params = missingParam.Action.GetAction().Params[:1]
	defaultOnly := route([]byte{4}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{1})
	defaultOnly.Action = &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: &p4v1.Action{ActionId: 2}}}
	acl := &p4v1.TableEntry{TableId: 11, Match: []*p4v1.FieldMatch{{FieldId: 1, FieldMatchType: &p4v1.FieldMatch_Ternary_{
		Ternary: &p4v1.FieldMatch_Ternary{Value: []byte{0x2e}, Mask: []byte{0x3f}}}}},
		Action: &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: &p4v1.Action{ActionId: 2}}}}
	cases := []struct {
		u    *p4v1.Update
		want codes.Code
	}{
		{upd(p4v1.Update_INSERT, good), codes.AlreadyExists},
		{upd(p4v1.Update_DELETE, route([]byte{9}, []byte{10, 0, 0, 0}, 8, nil, nil)), codes.NotFound},
		{upd(p4v1.Update_MODIFY, route([]byte{9}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{1})), codes.NotFound},
		{upd(p4v1.Update_INSERT, noTable), codes.NotFound},
		{upd(p4v1.Update_INSERT, route([]byte{1, 0}, []byte{10, 0, 0, 0}, 8, []byte{1}, []byte{1})), codes.InvalidArgument}, // 9 bits into bit<8>
		{upd(p4v1.Update_INSERT, route([]byte{1}, []byte{10, 0, 0, 1}, 8, []byte{1}, []byte{1})), codes.InvalidArgument},    // host bits
		{upd(p4v1.Update_INSERT, route([]byte{1}, []byte{10, 0, 0, 0}, 0, []byte{1}, []byte{1})), codes.InvalidArgument},    // prefix 0
		{upd(p4v1.Update_INSERT, route([]byte{1}, []byte{10, 0, 0, 0}, 8, []byte{2, 0}, []byte{1})), codes.InvalidArgument}, // port of 10 bits
		{upd(p4v1.Update_INSERT, priority), codes.InvalidArgument},
		{upd(p4v1.Update_INSERT, missingParam), codes.InvalidArgument},
		{upd(p4v1.Update_INSERT, defaultOnly), codes.InvalidArgument},
		{upd(p4v1.Update_INSERT, acl), codes.InvalidArgument}, // ternary without a priority
		{upd(p4v1.Update_INSERT, route([]byte{7}, []byte{10, 7, 0, 0}, 16, []byte{1}, []byte{1})), codes.OK},
	}
	var ups []*p4v1.Update
	for _, c := range cases {
		ups = append(ups, c.u)
	}
	got := codesOf(t, c.write(ups...))
	for i, cs := range cases {
		if i >= len(got) || got[i] != cs.want {
			t.Errorf("update %d: %v, want %v", i, got, cs.want)
		}
	}
	// The good update of the failed batch was applied; reads are canonical.
	stream, err := c.c.Read(context.Background(), &p4v1.ReadRequest{DeviceId: 1, Entities: []*p4v1.Entity{{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{TableId: 10, CounterData: &p4v1.CounterData{}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetEntities()); n != 2 {
		t.Fatalf("read %d entries, want 2", n)
	}
	first := resp.GetEntities()[0].GetTableEntry()
	if v := first.GetMatch()[0].GetExact().GetValue(); len(v) != 1 || first.GetCounterData() == nil {
		t.Errorf("entry read back not canonical or without counter data: %v", first)
	}
}

func TestMetersCountersAndGroups(t *testing.T) {
	s, addr := serve(t)
	c := connect(t, addr, 5)
	c.status()
	pipeline(t, c)
	meter := func(typ p4v1.Update_Type, idx int64) *p4v1.Update {
		return &p4v1.Update{Type: typ, Entity: &p4v1.Entity{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{
			MeterId: 20, Index: &p4v1.Index{Index: idx}, Config: &p4v1.MeterConfig{Cir: 1000, Cburst: 100, Pir: 1000, Pburst: 100}}}}}
	}
	group := func(typ p4v1.Update_Type, id uint32, ports ...uint32) *p4v1.Update {
		g := &p4v1.MulticastGroupEntry{MulticastGroupId: id}
		for _, p := range ports {
			g.Replicas = append(g.Replicas, &p4v1.Replica{EgressPort: p, Instance: 1})
		}
		return &p4v1.Update{Type: typ, Entity: &p4v1.Entity{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{
			Type: &p4v1.PacketReplicationEngineEntry_MulticastGroupEntry{MulticastGroupEntry: g}}}}}
	}
	got := codesOf(t, c.write(meter(p4v1.Update_INSERT, 1), meter(p4v1.Update_MODIFY, 8), meter(p4v1.Update_MODIFY, 3),
		group(p4v1.Update_INSERT, 5, 1, 2), group(p4v1.Update_INSERT, 5, 3), group(p4v1.Update_MODIFY, 6, 1), group(p4v1.Update_INSERT, 7, 1, 1)))
	want := []codes.Code{codes.InvalidArgument, codes.InvalidArgument, codes.OK, codes.OK, codes.AlreadyExists, codes.NotFound, codes.InvalidArgument}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("codes %v, want %v", got, want)
		}
	}
	if !s.SetCounter("drops", 3, 7, 700) {
		t.Fatal("no counter drops")
	}
	read := func(e *p4v1.Entity) []*p4v1.Entity {
		st, err := c.c.Read(context.Background(), &p4v1.ReadRequest{DeviceId: 1, Entities: []*p4v1.Entity{e}})
		if err != nil {
			t.Fatal(err)
		}
		var out []*p4v1.Entity
		for {
			r, err := st.Recv()
			if err != nil {
				return out
			}
			out = append(out, r.GetEntities()...)
		}
	}
	ms := read(&p4v1.Entity{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{MeterId: 20}}})
	if len(ms) != 8 || ms[3].GetMeterEntry().GetConfig().GetCir() != 1000 || ms[2].GetMeterEntry().GetConfig() != nil {
		t.Errorf("meter wildcard read: %v", ms)
	}
	cs := read(&p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{CounterId: 21, Index: &p4v1.Index{Index: 3}}}})
	if len(cs) != 1 || cs[0].GetCounterEntry().GetData().GetPacketCount() != 7 {
		t.Errorf("counter read: %v", cs)
	}
	gs := read(&p4v1.Entity{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{
		Type: &p4v1.PacketReplicationEngineEntry_MulticastGroupEntry{MulticastGroupEntry: &p4v1.MulticastGroupEntry{}}}}})
	if len(gs) != 1 || len(gs[0].GetPacketReplicationEngineEntry().GetMulticastGroupEntry().GetReplicas()) != 2 {
		t.Errorf("group read: %v", gs)
	}
}
