package p4rttest

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	p4config "github.com/p4lang/p4runtime/go/p4/config/v1"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// state is what the device holds; entries are stored canonical.
type state struct {
	tables         map[uint32]map[string]*p4v1.TableEntry
	defaults       map[uint32]*p4v1.TableEntry
	meters         map[uint32]map[int64]*p4v1.MeterConfig
	counters       map[uint32]map[int64]*p4v1.CounterData
	directCounters map[uint32]map[string]*p4v1.CounterData
	mcast          map[uint32]*p4v1.MulticastGroupEntry
	clones         map[uint32]*p4v1.CloneSessionEntry
}

func newState() *state {
	return &state{
		tables: map[uint32]map[string]*p4v1.TableEntry{}, defaults: map[uint32]*p4v1.TableEntry{},
		meters: map[uint32]map[int64]*p4v1.MeterConfig{}, counters: map[uint32]map[int64]*p4v1.CounterData{},
		directCounters: map[uint32]map[string]*p4v1.CounterData{},
		mcast:          map[uint32]*p4v1.MulticastGroupEntry{}, clones: map[uint32]*p4v1.CloneSessionEntry{},
	}
}

// canonical strips leading zero bytes (zero is one zero byte), as
// P4Runtime's canonical binary strings do.
func canonical(b []byte) []byte {
	i := 0
	for i < len(b)-1 && b[i] == 0 {
		i++
	}
	return slices.Clone(b[i:])
}

// bitLen is the number of significant bits of a big-endian value.
func bitLen(b []byte) int {
	c := canonical(b)
	if len(c) == 0 {
		return 0
	}
	return (len(c)-1)*8 + bits.Len8(c[0])
}

// Write implements P4Runtime: each update is validated and applied on its
// own (CONTINUE_ON_ERROR); if any fails, the call fails with UNKNOWN and
// one p4.v1.Error per update in the status details.
func (s *Server) Write(_ context.Context, req *p4v1.WriteRequest) (*p4v1.WriteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.GetDeviceId() != s.deviceID {
		return nil, status.Errorf(codes.NotFound, "device %d unknown", req.GetDeviceId())
	}
	if err := s.checkPrimaryLocked(req.GetRole(), req.GetElectionId()); err != nil {
		return nil, err
	}
	if s.schema == nil {
		return nil, status.Error(codes.FailedPrecondition, "no forwarding pipeline configured")
	}
	if req.GetAtomicity() != p4v1.WriteRequest_CONTINUE_ON_ERROR {
		return nil, status.Errorf(codes.Unimplemented, "atomicity %v", req.GetAtomicity())
	}
	errs := make([]*p4v1.Error, len(req.GetUpdates()))
	failed := false
	for i, u := range req.GetUpdates() {
		var e *p4v1.Error
		if s.failNext > 0 {
			s.failNext--
			e = errorf(codes.Unavailable, "injected failure")
		} else {
			e = s.apply(u)
		}
		if e == nil {
			s.writes++
			e = &p4v1.Error{CanonicalCode: int32(codes.OK)}
		} else {
			failed = true
		}
		errs[i] = e
	}
	if !failed {
		return &p4v1.WriteResponse{}, nil
	}
	st := status.New(codes.Unknown, "write failed for some updates")
	details := make([]*anypb.Any, 0, len(errs))
	for _, e := range errs {
		a, err := anypb.New(e)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		details = append(details, a)
	}
	p := st.Proto()
	p.Details = details
	return nil, status.ErrorProto(p)
}

func (s *Server) apply(u *p4v1.Update) *p4v1.Error {
	if u.GetType() == p4v1.Update_UNSPECIFIED {
		return errorf(codes.InvalidArgument, "update type unspecified")
	}
	switch e := u.GetEntity().GetEntity().(type) {
	case *p4v1.Entity_TableEntry:
		return s.writeTable(u.GetType(), e.TableEntry)
	case *p4v1.Entity_MeterEntry:
		return s.writeMeter(u.GetType(), e.MeterEntry)
	case *p4v1.Entity_CounterEntry:
		return s.writeCounter(u.GetType(), e.CounterEntry)
	case *p4v1.Entity_DirectCounterEntry:
		return s.writeDirectCounter(u.GetType(), e.DirectCounterEntry)
	case *p4v1.Entity_PacketReplicationEngineEntry:
		return s.writePRE(u.GetType(), e.PacketReplicationEngineEntry)
	case nil:
		return errorf(codes.InvalidArgument, "update has no entity")
	default:
		return errorf(codes.Unimplemented, "entity %T not supported by this server", e)
	}
}

// canonicalEntry validates a table entry's match against the table and
// returns its canonical form and key.
func (s *Server) canonicalEntry(te *p4v1.TableEntry) (*tableSchema, *p4v1.TableEntry, string, *p4v1.Error) {
	ts, ok := s.schema.tables[te.GetTableId()]
	if !ok {
		return nil, nil, "", errorf(codes.NotFound, "table id %d unknown", te.GetTableId())
	}
	out := &p4v1.TableEntry{TableId: te.GetTableId(), Priority: te.GetPriority(), IsDefaultAction: te.GetIsDefaultAction(),
		ControllerMetadata: te.GetControllerMetadata()}
	if te.GetIsDefaultAction() {
		if len(te.GetMatch()) > 0 {
			return nil, nil, "", errorf(codes.InvalidArgument, "%s: a default entry has no match", ts.name())
		}
		return ts, out, "default", nil
	}
	seen := map[uint32]bool{}
	for _, fm := range te.GetMatch() {
		f, ok := ts.fields[fm.GetFieldId()]
		if !ok {
			return nil, nil, "", errorf(codes.InvalidArgument, "%s: match field id %d unknown", ts.name(), fm.GetFieldId())
		}
		if seen[f.GetId()] {
			return nil, nil, "", errorf(codes.InvalidArgument, "%s: match field %s given twice", ts.name(), f.GetName())
		}
		seen[f.GetId()] = true
		c, err := canonicalMatch(ts, f, fm)
		if err != nil {
			return nil, nil, "", err
		}
		out.Match = append(out.Match, c)
	}
	for _, f := range ts.t.GetMatchFields() {
		if f.GetMatchType() == p4config.MatchField_EXACT && !seen[f.GetId()] {
			return nil, nil, "", errorf(codes.InvalidArgument, "%s: exact match field %s is missing", ts.name(), f.GetName())
		}
	}
	switch {
	case ts.tcam && te.GetPriority() <= 0:
		return nil, nil, "", errorf(codes.InvalidArgument, "%s: entries of a table with ternary, range or optional fields need a priority > 0", ts.name())
	case !ts.tcam && te.GetPriority() != 0:
		return nil, nil, "", errorf(codes.InvalidArgument, "%s: priority %d on a table without ternary, range or optional fields", ts.name(), te.GetPriority())
	}
	slices.SortFunc(out.Match, func(a, b *p4v1.FieldMatch) int { return int(a.GetFieldId()) - int(b.GetFieldId()) })
	var key strings.Builder
	fmt.Fprintf(&key, "p%d", out.GetPriority())
	for _, m := range out.Match {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		key.WriteString("|" + hex.EncodeToString(b))
	}
	return ts, out, key.String(), nil
}

func canonicalMatch(ts *tableSchema, f *p4config.MatchField, fm *p4v1.FieldMatch) (*p4v1.FieldMatch, *p4v1.Error) {
	w := int(f.GetBitwidth())
	fits := func(b []byte) bool { return bitLen(b) <= w }
	bad := func(format string, args ...any) *p4v1.Error {
		return errorf(codes.InvalidArgument, "%s.%s: %s", ts.name(), f.GetName(), fmt.Sprintf(format, args...))
	}
	out := &p4v1.FieldMatch{FieldId: fm.GetFieldId()}
	switch m := fm.GetFieldMatchType().(type) {
	case *p4v1.FieldMatch_Exact_:
		if f.GetMatchType() != p4config.MatchField_EXACT {
			return nil, bad("exact value for a %v field", f.GetMatchType())
		}
		if !fits(m.Exact.GetValue()) {
			return nil, bad("value wider than %d bits", w)
		}
		out.FieldMatchType = &p4v1.FieldMatch_Exact_{Exact: &p4v1.FieldMatch_Exact{Value: canonical(m.Exact.GetValue())}}
	case *p4v1.FieldMatch_Lpm:
		if f.GetMatchType() != p4config.MatchField_LPM {
			return nil, bad("lpm value for a %v field", f.GetMatchType())
		}
		pl := int(m.Lpm.GetPrefixLen())
		if pl <= 0 || pl > w {
			return nil, bad("prefix length %d must be in 1..%d (omit the field to match everything)", pl, w)
		}
		if !fits(m.Lpm.GetValue()) {
			return nil, bad("value wider than %d bits", w)
		}
		if !hostBitsZero(m.Lpm.GetValue(), w, pl) {
			return nil, bad("bits beyond the /%d prefix are set", pl)
		}
		out.FieldMatchType = &p4v1.FieldMatch_Lpm{Lpm: &p4v1.FieldMatch_LPM{Value: canonical(m.Lpm.GetValue()), PrefixLen: int32(pl)}}
	case *p4v1.FieldMatch_Ternary_:
		if f.GetMatchType() != p4config.MatchField_TERNARY {
			return nil, bad("ternary value for a %v field", f.GetMatchType())
		}
		v, mask := m.Ternary.GetValue(), m.Ternary.GetMask()
		if !fits(v) || !fits(mask) || bitLen(mask) == 0 {
			return nil, bad("value or mask wider than %d bits, or a zero mask (omit the field instead)", w)
		}
		if !valueWithinMask(v, mask) {
			return nil, bad("value has bits outside the mask")
		}
		out.FieldMatchType = &p4v1.FieldMatch_Ternary_{Ternary: &p4v1.FieldMatch_Ternary{Value: canonical(v), Mask: canonical(mask)}}
	case *p4v1.FieldMatch_Optional_:
		if f.GetMatchType() != p4config.MatchField_OPTIONAL {
			return nil, bad("optional value for a %v field", f.GetMatchType())
		}
		if !fits(m.Optional.GetValue()) {
			return nil, bad("value wider than %d bits", w)
		}
		out.FieldMatchType = &p4v1.FieldMatch_Optional_{Optional: &p4v1.FieldMatch_Optional{Value: canonical(m.Optional.GetValue())}}
	default:
		return nil, bad("match kind %T not supported by this server", m)
	}
	return out, nil
}

// hostBitsZero reports whether value (a w-bit big-endian number) has no
// bit set below its top pl bits.
func hostBitsZero(value []byte, w, pl int) bool {
	v := canonical(value)
	host := w - pl // low bits that must be zero
	for i := len(v) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		if v[i]&byte(1<<n-1) != 0 {
			return false
		}
		host -= n
	}
	return true
}

func valueWithinMask(v, mask []byte) bool {
	v, mask = canonical(v), canonical(mask)
	for i := 1; i <= len(v); i++ {
		var m byte
		if j := len(mask) - i; j >= 0 {
			m = mask[j]
		}
		if v[len(v)-i]&^m != 0 {
			return false
		}
	}
	return true
}

// checkAction validates a table action against the table's action refs.
func (s *Server) checkAction(ts *tableSchema, ta *p4v1.TableAction, isDefault bool) (*p4v1.TableAction, *p4v1.Error) {
	a := ta.GetAction()
	if a == nil {
		return nil, errorf(codes.InvalidArgument, "%s: entry needs a direct action", ts.name())
	}
	ref, ok := ts.actions[a.GetActionId()]
	if !ok {
		return nil, errorf(codes.InvalidArgument, "%s: action id %d is not an action of this table", ts.name(), a.GetActionId())
	}
	if !isDefault && ref.GetScope() == p4config.ActionRef_DEFAULT_ONLY {
		return nil, errorf(codes.InvalidArgument, "%s: action %d is default-only", ts.name(), a.GetActionId())
	}
	if isDefault && ref.GetScope() == p4config.ActionRef_TABLE_ONLY {
		return nil, errorf(codes.InvalidArgument, "%s: action %d cannot be the default", ts.name(), a.GetActionId())
	}
	info := s.schema.actions[a.GetActionId()]
	params := map[uint32]*p4config.Action_Param{}
	for _, p := range info.GetParams() {
		params[p.GetId()] = p
	}
	out := &p4v1.Action{ActionId: a.GetActionId()}
	seen := map[uint32]bool{}
	for _, p := range a.GetParams() {
		pi, ok := params[p.GetParamId()]
		if !ok {
			return nil, errorf(codes.InvalidArgument, "%s: action %s has no parameter id %d", ts.name(), info.GetPreamble().GetName(), p.GetParamId())
		}
		if seen[p.GetParamId()] {
			return nil, errorf(codes.InvalidArgument, "%s: parameter %s given twice", ts.name(), pi.GetName())
		}
		seen[p.GetParamId()] = true
		if bitLen(p.GetValue()) > int(pi.GetBitwidth()) {
			return nil, errorf(codes.InvalidArgument, "%s: parameter %s wider than %d bits", ts.name(), pi.GetName(), pi.GetBitwidth())
		}
		out.Params = append(out.Params, &p4v1.Action_Param{ParamId: p.GetParamId(), Value: canonical(p.GetValue())})
	}
	if len(seen) != len(params) {
		return nil, errorf(codes.InvalidArgument, "%s: action %s needs %d parameters, got %d", ts.name(), info.GetPreamble().GetName(), len(params), len(seen))
	}
	slices.SortFunc(out.Params, func(a, b *p4v1.Action_Param) int { return int(a.GetParamId()) - int(b.GetParamId()) })
	return &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: out}}, nil
}

func (s *Server) writeTable(typ p4v1.Update_Type, te *p4v1.TableEntry) *p4v1.Error {
	ts, entry, key, perr := s.canonicalEntry(te)
	if perr != nil {
		return perr
	}
	id := te.GetTableId()
	if te.GetIsDefaultAction() {
		if typ != p4v1.Update_MODIFY {
			return errorf(codes.InvalidArgument, "%s: the default entry can only be modified", ts.name())
		}
		if ts.constDef {
			return errorf(codes.PermissionDenied, "%s: the default action is const", ts.name())
		}
		act, perr := s.checkAction(ts, te.GetAction(), true)
		if perr != nil {
			return perr
		}
		entry.Action = act
		s.state.defaults[id] = entry
		return nil
	}
	if s.state.tables[id] == nil {
		s.state.tables[id] = map[string]*p4v1.TableEntry{}
		s.state.directCounters[id] = map[string]*p4v1.CounterData{}
	}
	entries := s.state.tables[id]
	_, exists := entries[key]
	switch typ {
	case p4v1.Update_INSERT, p4v1.Update_MODIFY:
		if typ == p4v1.Update_INSERT && exists {
			return errorf(codes.AlreadyExists, "%s: entry exists", ts.name())
		}
		if typ == p4v1.Update_MODIFY && !exists {
			return errorf(codes.NotFound, "%s: no such entry to modify", ts.name())
		}
		act, perr := s.checkAction(ts, te.GetAction(), false)
		if perr != nil {
			return perr
		}
		if typ == p4v1.Update_INSERT && ts.t.GetSize() > 0 && int64(len(entries)) >= ts.t.GetSize() {
			return errorf(codes.ResourceExhausted, "%s: table full (%d entries)", ts.name(), ts.t.GetSize())
		}
		entry.Action = act
		entries[key] = entry
		if typ == p4v1.Update_INSERT && ts.counter != 0 {
			s.state.directCounters[id][key] = &p4v1.CounterData{}
		}
		if cd := te.GetCounterData(); cd != nil && ts.counter != 0 {
			s.state.directCounters[id][key] = proto.Clone(cd).(*p4v1.CounterData)
		}
	case p4v1.Update_DELETE:
		if !exists {
			return errorf(codes.NotFound, "%s: no such entry to delete", ts.name())
		}
		delete(entries, key)
		delete(s.state.directCounters[id], key)
	}
	return nil
}

func (s *Server) writeMeter(typ p4v1.Update_Type, me *p4v1.MeterEntry) *p4v1.Error {
	m, ok := s.schema.meters[me.GetMeterId()]
	if !ok {
		return errorf(codes.NotFound, "meter id %d unknown", me.GetMeterId())
	}
	if typ != p4v1.Update_MODIFY {
		return errorf(codes.InvalidArgument, "%s: meter entries can only be modified", m.GetPreamble().GetName())
	}
	if me.GetIndex() == nil || me.GetIndex().GetIndex() < 0 || me.GetIndex().GetIndex() >= m.GetSize() {
		return errorf(codes.InvalidArgument, "%s: index %v out of 0..%d", m.GetPreamble().GetName(), me.GetIndex(), m.GetSize()-1)
	}
	c := me.GetConfig()
	if c != nil && (c.GetCir() < 0 || c.GetPir() < c.GetCir() || c.GetCburst() < 0 || c.GetPburst() < 0) {
		return errorf(codes.InvalidArgument, "%s: config %v: rates and bursts must be ≥ 0 and pir ≥ cir", m.GetPreamble().GetName(), c)
	}
	if s.state.meters[me.GetMeterId()] == nil {
		s.state.meters[me.GetMeterId()] = map[int64]*p4v1.MeterConfig{}
	}
	if c == nil { // reset to "all green"
		delete(s.state.meters[me.GetMeterId()], me.GetIndex().GetIndex())
		return nil
	}
	s.state.meters[me.GetMeterId()][me.GetIndex().GetIndex()] = proto.Clone(c).(*p4v1.MeterConfig)
	return nil
}

func (s *Server) writeCounter(typ p4v1.Update_Type, ce *p4v1.CounterEntry) *p4v1.Error {
	c, ok := s.schema.counters[ce.GetCounterId()]
	if !ok {
		return errorf(codes.NotFound, "counter id %d unknown", ce.GetCounterId())
	}
	if typ != p4v1.Update_MODIFY {
		return errorf(codes.InvalidArgument, "%s: counter entries can only be modified", c.GetPreamble().GetName())
	}
	if ce.GetIndex() == nil || ce.GetIndex().GetIndex() < 0 || ce.GetIndex().GetIndex() >= c.GetSize() {
		return errorf(codes.InvalidArgument, "%s: index %v out of 0..%d", c.GetPreamble().GetName(), ce.GetIndex(), c.GetSize()-1)
	}
	if s.state.counters[ce.GetCounterId()] == nil {
		s.state.counters[ce.GetCounterId()] = map[int64]*p4v1.CounterData{}
	}
	s.state.counters[ce.GetCounterId()][ce.GetIndex().GetIndex()] = proto.Clone(ce.GetData()).(*p4v1.CounterData)
	return nil
}

func (s *Server) writeDirectCounter(typ p4v1.Update_Type, dc *p4v1.DirectCounterEntry) *p4v1.Error {
	if typ != p4v1.Update_MODIFY {
		return errorf(codes.InvalidArgument, "direct counter entries can only be modified")
	}
	ts, _, key, perr := s.canonicalEntry(dc.GetTableEntry())
	if perr != nil {
		return perr
	}
	if ts.counter == 0 {
		return errorf(codes.InvalidArgument, "%s has no direct counter", ts.name())
	}
	id := dc.GetTableEntry().GetTableId()
	if _, ok := s.state.tables[id][key]; !ok {
		return errorf(codes.NotFound, "%s: no such entry", ts.name())
	}
	s.state.directCounters[id][key] = proto.Clone(dc.GetData()).(*p4v1.CounterData)
	return nil
}

func (s *Server) writePRE(typ p4v1.Update_Type, pre *p4v1.PacketReplicationEngineEntry) *p4v1.Error {
	switch e := pre.GetType().(type) {
	case *p4v1.PacketReplicationEngineEntry_MulticastGroupEntry:
		g := e.MulticastGroupEntry
		id := g.GetMulticastGroupId()
		if id == 0 {
			return errorf(codes.InvalidArgument, "multicast group id 0 is reserved")
		}
		if perr := checkReplicas(g.GetReplicas()); perr != nil {
			return perr
		}
		return upsert(s.state.mcast, id, typ, proto.Clone(g).(*p4v1.MulticastGroupEntry), "multicast group")
	case *p4v1.PacketReplicationEngineEntry_CloneSessionEntry:
		c := e.CloneSessionEntry
		id := c.GetSessionId()
		if id == 0 {
			return errorf(codes.InvalidArgument, "clone session id 0 is reserved")
		}
		if perr := checkReplicas(c.GetReplicas()); perr != nil {
			return perr
		}
		return upsert(s.state.clones, id, typ, proto.Clone(c).(*p4v1.CloneSessionEntry), "clone session")
	}
	return errorf(codes.InvalidArgument, "packet replication entry has no type")
}

func checkReplicas(rs []*p4v1.Replica) *p4v1.Error {
	seen := map[[2]uint32]bool{}
	for _, r := range rs {
		k := [2]uint32{r.GetEgressPort(), r.GetInstance()}
		if seen[k] {
			return errorf(codes.InvalidArgument, "replica (port %d, instance %d) given twice", k[0], k[1])
		}
		seen[k] = true
	}
	return nil
}

func upsert[T any](m map[uint32]T, id uint32, typ p4v1.Update_Type, v T, what string) *p4v1.Error {
	_, exists := m[id]
	switch typ {
	case p4v1.Update_INSERT:
		if exists {
			return errorf(codes.AlreadyExists, "%s %d exists", what, id)
		}
		m[id] = v
	case p4v1.Update_MODIFY:
		if !exists {
			return errorf(codes.NotFound, "%s %d does not exist", what, id)
		}
		m[id] = v
	case p4v1.Update_DELETE:
		if !exists {
			return errorf(codes.NotFound, "%s %d does not exist", what, id)
		}
		delete(m, id)
	}
	return nil
}
