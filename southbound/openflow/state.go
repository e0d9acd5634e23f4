package openflow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/xlane/xlane/southbound"
)

// swState is what the driver believes one switch holds: the tunnel rules
// and routes last applied, and which meter id each metered tunnel uses
// (meter ids are allocated per switch, densely, since switches bound
// them: Open vSwitch's userspace datapath allows 262,144).
type swState struct {
	rules   map[uint64]southbound.TunnelRule
	routes  []southbound.Route
	meterOf map[uint64]uint32
	owner   map[uint32]uint64
	next    uint32 // lowest meter id that may be free
	slack   time.Duration
}

func newSwState(slack time.Duration) swState {
	return swState{rules: map[uint64]southbound.TunnelRule{}, meterOf: map[uint64]uint32{}, owner: map[uint32]uint64{}, next: 1, slack: slack}
}

func (st swState) clone() swState {
	return swState{rules: maps.Clone(st.rules), routes: st.routes, meterOf: maps.Clone(st.meterOf), owner: maps.Clone(st.owner), next: st.next, slack: st.slack}
}

// meterFor returns tunnel t's meter id, allocating one if needed; taken
// lists ids in use on the switch by others.
func (st *swState) meterFor(t uint64, taken map[uint32]bool) uint32 {
	if id, ok := st.meterOf[t]; ok {
		return id
	}
	for st.owner[st.next] != 0 || taken[st.next] {
		st.next++
	}
	id := st.next
	st.meterOf[t], st.owner[id] = id, t
	return id
}

func (st *swState) freeMeter(t uint64) {
	if id, ok := st.meterOf[t]; ok {
		delete(st.meterOf, t)
		delete(st.owner, id)
		st.next = min(st.next, id)
	}
}

// entries compiles the given tunnels' rules (all of them if ids is nil)
// and, with routes, the best-effort routes.
func (st *swState) entries(ids []uint64, routes bool) (entries, error) {
	e := newEntries()
	add := func(r southbound.TunnelRule) error {
		return e.addRule(r, st.meterOf[r.Tunnel], st.slack)
	}
	if ids == nil {
		for _, r := range st.rules {
			if err := add(r); err != nil {
				return e, err
			}
		}
	}
	for _, id := range ids {
		if r, ok := st.rules[id]; ok {
			if err := add(r); err != nil {
				return e, err
			}
		}
	}
	if routes {
		for _, rt := range st.routes {
			if err := e.addRoute(rt); err != nil {
				return e, err
			}
		}
	}
	return e, nil
}

// push sends what turns have into want and checks the switch's answers.
// New and changed meters go first, then the forwarding changes (groups,
// flows, stale flows, stale groups) as one atomic bundle where the switch
// supports bundles, then the meters nothing uses any more: no flow ever
// points at a missing group or meter. stale lists flows to delete that
// have no key of their own (foreign flows read back).
func (s *session) push(ctx context.Context, have, want entries, stale []flow) error {
	var pre, fwd, post []op
	for id, m := range want.meters {
		if o, ok := have.meters[id]; !ok {
			pre = append(pre, op{typeMeterMod, meterMod(ofp.MeterAdd, m), fmt.Sprintf("add meter %d", id)})
		} else if o != m {
			pre = append(pre, op{typeMeterMod, meterMod(ofp.MeterModify, m), fmt.Sprintf("modify meter %d", id)})
		}
	}
	for id, g := range want.groups {
		if o, ok := have.groups[id]; !ok {
			fwd = append(fwd, op{typeGroupMod, groupMod(ofp.GroupAdd, g), fmt.Sprintf("add group %d", id)})
		} else if !o.sameAs(g) {
			fwd = append(fwd, op{typeGroupMod, groupMod(ofp.GroupModify, g), fmt.Sprintf("modify group %d", id)})
		}
	}
	for k, f := range want.flows {
		if o, ok := have.flows[k]; !ok || !o.sameAs(f) {
			fwd = append(fwd, op{typeFlowMod, flowAdd(f), fmt.Sprintf("add flow (cookie %#x)", f.Cookie)})
		}
	}
	for k, f := range have.flows {
		if _, ok := want.flows[k]; !ok {
			stale = append(stale, f)
		}
	}
	for _, f := range stale {
		fwd = append(fwd, op{typeFlowMod, flowDelete(f), fmt.Sprintf("delete flow (cookie %#x)", f.Cookie)})
	}
	for id, g := range have.groups {
		if _, ok := want.groups[id]; !ok {
			fwd = append(fwd, op{typeGroupMod, groupMod(ofp.GroupDelete, g), fmt.Sprintf("delete group %d", id)})
		}
	}
	for id, m := range have.meters {
		if _, ok := want.meters[id]; !ok {
			post = append(post, op{typeMeterMod, meterMod(ofp.MeterDelete, m), fmt.Sprintf("delete meter %d", id)})
		}
	}
	switch {
	case len(fwd) == 0 || s.noBundles:
		if err := s.sequence(ctx, append(pre, fwd...)); err != nil {
			return err
		}
	default:
		err := s.bundle(ctx, pre, fwd)
		if errors.Is(err, errNoBundles) {
			s.log.Info("switch refuses bundles; applying changes as barrier-checked sequences", "err", err)
			s.noBundles = true
			err = s.sequence(ctx, fwd)
		}
		if err != nil {
			return err
		}
	}
	return s.sequence(ctx, post)
}

// apply applies one batch; on error the switch is put back to what it
// held before (by a full reconcile, since a failed sequence can leave any
// prefix of it applied).
func (s *session) apply(ctx context.Context, b southbound.Batch) error {
	if !s.synced {
		return fmt.Errorf("switch %s has not been reconciled since it connected", s.name)
	}
	next := s.state.clone()
	var touched []uint64
	for _, id := range b.Delete {
		delete(next.rules, id)
		next.freeMeter(id)
		touched = append(touched, id)
	}
	for _, r := range b.Put {
		next.rules[r.Tunnel] = r
		if r.Meter == nil {
			next.freeMeter(r.Tunnel)
		}
		touched = append(touched, r.Tunnel)
	}
	for _, r := range b.Put {
		if r.Meter != nil {
			next.meterFor(r.Tunnel, nil)
		}
	}
	have, err := s.state.entries(touched, false)
	if err != nil {
		return err
	}
	want, err := next.entries(touched, false)
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

// read returns the flows, meters and groups the switch holds.
func (s *session) read(ctx context.Context) (entries, []flow, error) {
	have := newEntries()
	body, err := s.request(ctx, typeMultipartRequest, flowStatsRequest())
	if err != nil {
		return have, nil, fmt.Errorf("read flows: %w", err)
	}
	flows, err := decodeFlows(body)
	if err != nil {
		return have, nil, err
	}
	var foreign []flow
	for _, f := range flows {
		if _, dup := have.flows[f.flowKey]; f.foreign || dup {
			foreign = append(foreign, f)
			continue
		}
		have.flows[f.flowKey] = f
	}
	if body, err = s.request(ctx, typeMultipartRequest, meterRequest(ofp.MultipartTypeMeterConfig)); err != nil {
		return have, nil, fmt.Errorf("read meters: %w", err)
	}
	meters, err := decodeMeters(body)
	if err != nil {
		return have, nil, err
	}
	for _, m := range meters {
		have.meters[m.ID] = m
	}
	if body, err = s.request(ctx, typeMultipartRequest, groupDescRequest()); err != nil {
		return have, nil, fmt.Errorf("read groups: %w", err)
	}
	groups, err := decodeGroups(body)
	if err != nil {
		return have, nil, err
	}
	for _, g := range groups {
		have.groups[g.ID] = g
	}
	return have, foreign, nil
}

// reconcile reads the switch back and makes it hold exactly rules and
// routes, keeping the meter ids the switch already uses for a tunnel.
func (s *session) reconcile(ctx context.Context, rules map[uint64]southbound.TunnelRule, routes []southbound.Route) error {
	have, foreign, err := s.read(ctx)
	if err != nil {
		return err
	}
	next := newSwState(s.state.slack)
	next.rules = maps.Clone(rules)
	next.routes = routes
	taken := map[uint32]bool{}
	for id := range have.meters {
		taken[id] = true
	}
	// Keep a tunnel's meter where its flow already uses one.
	for _, f := range have.flows {
		r, ok := rules[f.Cookie]
		if !ok || r.Meter == nil || f.Meter == 0 || f.Priority != priorityTunnel {
			continue
		}
		if _, used := next.owner[f.Meter]; !used {
			next.meterOf[f.Cookie], next.owner[f.Meter] = f.Meter, f.Cookie
		}
	}
	for id, r := range rules {
		if r.Meter != nil {
			next.meterFor(id, taken)
		}
	}
	want, err := next.entries(nil, true)
	if err != nil {
		return err
	}
	if err := s.push(ctx, have, want, foreign); err != nil {
		return err
	}
	s.state = next
	s.synced = true
	return nil
}

// stats reads per-tunnel flow counters and meter drops.
func (s *session) stats(ctx context.Context) ([]southbound.TunnelStats, error) {
	body, err := s.request(ctx, typeMultipartRequest, flowStatsRequest())
	if err != nil {
		return nil, fmt.Errorf("flow stats: %w", err)
	}
	flows, err := decodeFlows(body)
	if err != nil {
		return nil, err
	}
	if body, err = s.request(ctx, typeMultipartRequest, meterRequest(ofp.MultipartTypeMeter)); err != nil {
		return nil, fmt.Errorf("meter stats: %w", err)
	}
	ms, err := decodeMeterStats(body)
	if err != nil {
		return nil, err
	}
	by := map[uint64]*southbound.TunnelStats{}
	get := func(t uint64) *southbound.TunnelStats {
		if by[t] == nil {
			by[t] = &southbound.TunnelStats{Tunnel: t}
		}
		return by[t]
	}
	for _, f := range flows {
		if _, ok := s.state.rules[f.Cookie]; ok && f.Priority == priorityTunnel {
			st := get(f.Cookie)
			st.Packets += f.Packets
			st.Bytes += f.Bytes
		}
	}
	for _, m := range ms {
		if t, ok := s.state.owner[m.ID]; ok {
			get(t).MeterDrops += m.Dropped
		}
	}
	out := make([]southbound.TunnelStats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	return out, nil
}
