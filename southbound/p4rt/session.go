package p4rt

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	p4client "github.com/antoninbas/p4runtime-go-client/pkg/client"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xlane/xlane/southbound"
)

// session is the driver's connection to one switch.
type session struct {
	d        *Driver
	name     string
	addr     string
	deviceID uint64
	api      p4v1.P4RuntimeClient
	cl       *p4client.Client
	log      *slog.Logger

	mu      sync.Mutex
	stream  p4v1.P4Runtime_StreamChannelClient
	sendMu  sync.Mutex
	primary bool

	op     sync.Mutex // serialises apply, reconcile, stats; guards below
	synced bool
	state  swState
}

// swState is what the driver believes the switch holds, with the
// switch-local meter slots and multicast groups of its tunnels.
type swState struct {
	rules   map[uint64]southbound.TunnelRule
	routes  []southbound.Route
	meterOf map[uint64]int64
	groupOf map[uint64]uint32
	size    int64 // meter cells
}

func newSwState(size int64) swState {
	return swState{rules: map[uint64]southbound.TunnelRule{}, meterOf: map[uint64]int64{}, groupOf: map[uint64]uint32{}, size: size}
}

func (st swState) clone() swState {
	return swState{rules: maps.Clone(st.rules), routes: st.routes, meterOf: maps.Clone(st.meterOf), groupOf: maps.Clone(st.groupOf), size: st.size}
}

// slots assigns meter cells and groups to the rules that need them,
// keeping the ones assigned and filling the lowest free ones.
func (st *swState) slots() error {
	usedM := map[int64]bool{}
	usedG := map[uint32]bool{}
	for t, r := range st.rules {
		if i, ok := st.meterOf[t]; ok && r.Meter != nil {
			usedM[i] = true
		} else {
			delete(st.meterOf, t)
		}
		if g, ok := st.groupOf[t]; ok && len(r.Out) > 1 {
			usedG[g] = true
		} else {
			delete(st.groupOf, t)
		}
	}
	for t := range st.meterOf {
		if _, ok := st.rules[t]; !ok {
			delete(st.meterOf, t)
		}
	}
	for t := range st.groupOf {
		if _, ok := st.rules[t]; !ok {
			delete(st.groupOf, t)
		}
	}
	var nextM int64
	nextG := uint32(1)
	for _, t := range sortedTunnels(st.rules) {
		r := st.rules[t]
		if _, ok := st.meterOf[t]; !ok && r.Meter != nil {
			for usedM[nextM] {
				nextM++
			}
			if nextM >= st.size {
				return fmt.Errorf("out of meter cells (%d): too many metered tunnels start at this switch", st.size)
			}
			st.meterOf[t], usedM[nextM] = nextM, true
		}
		if _, ok := st.groupOf[t]; !ok && len(r.Out) > 1 {
			for usedG[nextG] {
				nextG++
			}
			if nextG > maxGroupID {
				return fmt.Errorf("out of multicast groups (%d)", maxGroupID)
			}
			st.groupOf[t], usedG[nextG] = nextG, true
		}
	}
	return nil
}

func sortedTunnels(m map[uint64]southbound.TunnelRule) []uint64 {
	out := make([]uint64, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// entries compiles the given tunnels (all with nil) and, with routes, the
// routes.
func (st *swState) entries(x *ids, tunnels []uint64, routes bool, slack time.Duration) (swEntries, error) {
	e := newSwEntries()
	if tunnels == nil {
		tunnels = sortedTunnels(st.rules)
	}
	for _, t := range tunnels {
		r, ok := st.rules[t]
		if !ok {
			continue
		}
		if err := e.addRule(x, r, st.meterOf[t], st.groupOf[t], slack); err != nil {
			return e, err
		}
	}
	if routes {
		for _, rt := range st.routes {
			if err := e.addRoute(x, rt); err != nil {
				return e, err
			}
		}
	}
	return e, nil
}

// loop keeps a stream to the switch until ctx ends.
func (s *session) loop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := s.runStream(ctx)
		s.mu.Lock()
		s.primary, s.stream = false, nil
		s.mu.Unlock()
		s.op.Lock()
		s.synced = false
		s.op.Unlock()
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		s.log.Warn("p4runtime stream ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *session) sendArbitration() {
	s.mu.Lock()
	st := s.stream
	s.mu.Unlock()
	if st == nil {
		return
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	_ = st.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{
		DeviceId: s.deviceID, ElectionId: s.d.election(), Role: roleOf(s.d.cfg.Role)}}})
}

// runStream opens the stream, takes part in arbitration, and on becoming
// primary installs the pipeline if needed and lets the controller
// reconcile. It returns when the stream breaks.
func (s *session) runStream(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.api.StreamChannel(sctx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	s.mu.Lock()
	s.stream = stream
	s.mu.Unlock()
	s.sendArbitration()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		arb := msg.GetArbitration()
		if arb == nil {
			continue // packet-ins, digests: the pipeline sends none
		}
		mine := arb.GetElectionId().GetHigh() == 0 && arb.GetElectionId().GetLow() == s.d.election().GetLow()
		primary := arb.GetStatus().GetCode() == int32(code.Code_OK) && mine
		s.mu.Lock()
		was := s.primary
		s.primary = primary
		s.mu.Unlock()
		switch {
		case primary && !was:
			s.log.Info("primary for the switch", "election_id", s.d.election().GetLow())
			if err := s.ensurePipeline(sctx); err != nil {
				return err
			}
			if s.d.cfg.OnConnect != nil {
				s.d.cfg.OnConnect(sctx, s.name)
			}
		case !primary && was:
			s.log.Info("no longer primary for the switch")
			s.op.Lock()
			s.synced = false
			s.op.Unlock()
		}
	}
}

// ensurePipeline installs the pipeline unless the switch runs it already
// (a second commit of the same program would wipe its state). A switch
// without any pipeline answers FAILED_PRECONDITION (BMv2 does).
func (s *session) ensurePipeline(ctx context.Context) error {
	s.cl = p4client.NewClientForRole(s.api, s.deviceID, s.d.election(), roleOf(s.d.cfg.Role))
	resp, err := s.api.GetForwardingPipelineConfig(ctx, &p4v1.GetForwardingPipelineConfigRequest{
		DeviceId: s.deviceID, ResponseType: p4v1.GetForwardingPipelineConfigRequest_COOKIE_ONLY})
	switch {
	case status.Code(err) == codes.FailedPrecondition:
	case err != nil:
		return fmt.Errorf("read the pipeline cookie: %w", err)
	case resp.GetConfig().GetCookie() != nil && resp.GetConfig().GetCookie().GetCookie() == s.d.cfg.Cookie:
		return nil
	}
	if _, err := s.cl.SetFwdPipeFromBytes(ctx, s.d.cfg.DeviceConfig, s.d.cfg.P4Info, s.d.cfg.Cookie); err != nil {
		return fmt.Errorf("install the pipeline: %w", err)
	}
	s.log.Info("pipeline installed", "cookie", fmt.Sprintf("%#x", s.d.cfg.Cookie))
	return nil
}

func (s *session) isPrimary() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.primary {
		return fmt.Errorf("not primary for switch %s (not connected, or another controller has a higher election id)", s.name)
	}
	return nil
}

// apply applies one batch; on error the switch is put back by a full
// reconcile to what it held, since P4Runtime batches apply partially.
func (s *session) apply(ctx context.Context, b southbound.Batch) error {
	if err := s.isPrimary(); err != nil {
		return err
	}
	if !s.synced {
		return fmt.Errorf("switch %s has not been reconciled since this driver became primary", s.name)
	}
	next := s.state.clone()
	var touched []uint64
	for _, id := range b.Delete {
		delete(next.rules, id)
		touched = append(touched, id)
	}
	for _, r := range b.Put {
		next.rules[r.Tunnel] = r
		touched = append(touched, r.Tunnel)
	}
	if err := next.slots(); err != nil {
		return err
	}
	x, slack := s.d.ids, s.d.cfg.BurstSlack
	have, err := s.state.entries(x, touched, false, slack)
	if err != nil {
		return err
	}
	want, err := next.entries(x, touched, false, slack)
	if err != nil {
		return err
	}
	if err := s.push(ctx, have, want, nil); err != nil {
		if rerr := s.reconcile(context.WithoutCancel(ctx), s.state.rules, s.state.routes); rerr != nil {
			s.synced = false
			return fmt.Errorf("%w (and restoring the switch failed: %v)", err, rerr)
		}
		return err
	}
	s.state = next
	return nil
}

// read returns what the switch holds of the driver's tables, meter, and
// replication engine, with the clone sessions (none are ours).
func (s *session) read(ctx context.Context) (swEntries, []*p4v1.CloneSessionEntry, error) {
	x := s.d.ids
	got := newSwEntries()
	var clones []*p4v1.CloneSessionEntry
	q := []*p4v1.Entity{
		{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{TableId: x.classifier}}},
		{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{TableId: x.tunnels}}},
		{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{TableId: x.routes}}},
		{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{MeterId: x.meter}}},
		{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{
			Type: &p4v1.PacketReplicationEngineEntry_MulticastGroupEntry{MulticastGroupEntry: &p4v1.MulticastGroupEntry{}}}}},
		{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{
			Type: &p4v1.PacketReplicationEngineEntry_CloneSessionEntry{CloneSessionEntry: &p4v1.CloneSessionEntry{}}}}},
	}
	for _, e := range q {
		ch := make(chan *p4v1.Entity, 64)
		errc := make(chan error, 1)
		go func() { errc <- s.cl.ReadEntityWildcard(ctx, e, ch) }()
		for r := range ch {
			switch v := r.GetEntity().(type) {
			case *p4v1.Entity_TableEntry:
				te := v.TableEntry
				switch te.GetTableId() {
				case x.classifier:
					got.classifier[matchKey(te)] = te
				case x.tunnels:
					got.tunnels[matchKey(te)] = te
				case x.routes:
					got.routes[matchKey(te)] = te
				}
			case *p4v1.Entity_MeterEntry:
				if c := v.MeterEntry.GetConfig(); c != nil {
					got.meters[v.MeterEntry.GetIndex().GetIndex()] = c
				}
			case *p4v1.Entity_PacketReplicationEngineEntry:
				if g := v.PacketReplicationEngineEntry.GetMulticastGroupEntry(); g != nil {
					got.groups[g.GetMulticastGroupId()] = g
				} else if c := v.PacketReplicationEngineEntry.GetCloneSessionEntry(); c != nil {
					clones = append(clones, c)
				}
			}
		}
		if err := <-errc; err != nil {
			return got, nil, fmt.Errorf("read: %w", err)
		}
	}
	return got, clones, nil
}

// reconcile reads the switch back and makes it hold exactly rules and
// routes, keeping the meter cells and groups the switch already uses for
// a tunnel.
func (s *session) reconcile(ctx context.Context, rules map[uint64]southbound.TunnelRule, routes []southbound.Route) error {
	if err := s.isPrimary(); err != nil {
		return err
	}
	x := s.d.ids
	have, clones, err := s.read(ctx)
	if err != nil {
		return err
	}
	next := newSwState(x.meterSize)
	next.rules, next.routes = maps.Clone(rules), routes
	for _, ce := range have.classifier {
		a := ce.GetAction().GetAction()
		if a.GetActionId() == x.expressMetered && len(a.GetParams()) == 4 {
			t, idx := paramValue(a, x.params[actExpressMeter][0]), int64(paramValue(a, x.params[actExpressMeter][3]))
			if r, ok := rules[t]; ok && r.Meter != nil {
				next.meterOf[t] = idx
			}
		}
	}
	for _, te := range have.tunnels {
		a := te.GetAction().GetAction()
		if a.GetActionId() == x.multicast && len(te.GetMatch()) == 1 {
			t := dec(te.GetMatch()[0].GetExact().GetValue())
			if r, ok := rules[t]; ok && len(r.Out) > 1 {
				next.groupOf[t] = uint32(paramValue(a, x.params[actMulticast][0]))
			}
		}
	}
	if err := next.slots(); err != nil {
		return err
	}
	want, err := next.entries(x, nil, true, s.d.cfg.BurstSlack)
	if err != nil {
		return err
	}
	if err := s.push(ctx, have, want, clones); err != nil {
		return err
	}
	s.state, s.synced = next, true
	return nil
}

func paramValue(a *p4v1.Action, id uint32) uint64 {
	for _, p := range a.GetParams() {
		if p.GetParamId() == id {
			return dec(p.GetValue())
		}
	}
	return 0
}

// stats reads the tunnels' direct counters and the meter drop counters.
func (s *session) stats(ctx context.Context) ([]southbound.TunnelStats, error) {
	x := s.d.ids
	by := map[uint64]*southbound.TunnelStats{}
	get := func(t uint64) *southbound.TunnelStats {
		if by[t] == nil {
			by[t] = &southbound.TunnelStats{Tunnel: t}
		}
		return by[t]
	}
	owner := map[int64]uint64{}
	for t, idx := range s.state.meterOf {
		owner[idx] = t
	}
	for _, e := range []*p4v1.Entity{
		{Entity: &p4v1.Entity_DirectCounterEntry{DirectCounterEntry: &p4v1.DirectCounterEntry{TableEntry: &p4v1.TableEntry{TableId: x.tunnels}}}},
		{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{CounterId: x.meterDrops}}},
	} {
		ch := make(chan *p4v1.Entity, 64)
		errc := make(chan error, 1)
		go func() { errc <- s.cl.ReadEntityWildcard(ctx, e, ch) }()
		for r := range ch {
			if dc := r.GetDirectCounterEntry(); dc != nil && len(dc.GetTableEntry().GetMatch()) == 1 {
				t := dec(dc.GetTableEntry().GetMatch()[0].GetExact().GetValue())
				if _, ok := s.state.rules[t]; ok {
					st := get(t)
					st.Packets, st.Bytes = uint64(dc.GetData().GetPacketCount()), uint64(dc.GetData().GetByteCount())
				}
			}
			if c := r.GetCounterEntry(); c != nil {
				if t, ok := owner[c.GetIndex().GetIndex()]; ok {
					get(t).MeterDrops = uint64(c.GetData().GetPacketCount())
				}
			}
		}
		if err := <-errc; err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
	}
	out := make([]southbound.TunnelStats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	return out, nil
}
