package p4rttest

import (
	"slices"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Read implements P4Runtime, with the specification's wildcards: table id
// 0 reads every table, a table entry without match every entry of its
// table, a meter or counter entry without index every index, group or
// session id 0 every group or session. Bytestrings come back canonical.
func (s *Server) Read(req *p4v1.ReadRequest, srv p4v1.P4Runtime_ReadServer) error {
	s.mu.Lock()
	if req.GetDeviceId() != s.deviceID {
		s.mu.Unlock()
		return status.Errorf(codes.NotFound, "device %d unknown", req.GetDeviceId())
	}
	if s.schema == nil {
		s.mu.Unlock()
		return status.Error(codes.FailedPrecondition, "no forwarding pipeline configured")
	}
	var out []*p4v1.Entity
	for _, e := range req.GetEntities() {
		got, err := s.read(e)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		out = append(out, got...)
	}
	s.mu.Unlock()
	const chunk = 1000
	for len(out) > 0 {
		n := min(chunk, len(out))
		if err := srv.Send(&p4v1.ReadResponse{Entities: out[:n]}); err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}

func (s *Server) read(e *p4v1.Entity) ([]*p4v1.Entity, error) {
	switch x := e.GetEntity().(type) {
	case *p4v1.Entity_TableEntry:
		return s.readTables(x.TableEntry)
	case *p4v1.Entity_MeterEntry:
		return s.readMeters(x.MeterEntry)
	case *p4v1.Entity_CounterEntry:
		return s.readCounters(x.CounterEntry)
	case *p4v1.Entity_DirectCounterEntry:
		return s.readDirectCounters(x.DirectCounterEntry)
	case *p4v1.Entity_PacketReplicationEngineEntry:
		return s.readPRE(x.PacketReplicationEngineEntry), nil
	}
	return nil, status.Errorf(codes.Unimplemented, "reading %T", e.GetEntity())
}

func sortedIDs[T any](m map[uint32]T) []uint32 {
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (s *Server) readTables(q *p4v1.TableEntry) ([]*p4v1.Entity, error) {
	ids := []uint32{q.GetTableId()}
	if q.GetTableId() == 0 {
		ids = sortedIDs(s.schema.tables)
	} else if _, ok := s.schema.tables[q.GetTableId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "table id %d unknown", q.GetTableId())
	}
	withCounters := q.GetCounterData() != nil
	var out []*p4v1.Entity
	emit := func(id uint32, key string, te *p4v1.TableEntry) {
		c := proto.Clone(te).(*p4v1.TableEntry)
		if withCounters && s.schema.tables[id].counter != 0 {
			if cd := s.state.directCounters[id][key]; cd != nil {
				c.CounterData = proto.Clone(cd).(*p4v1.CounterData)
			} else {
				c.CounterData = &p4v1.CounterData{}
			}
		}
		out = append(out, &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: c}})
	}
	for _, id := range ids {
		if q.GetIsDefaultAction() {
			if d := s.state.defaults[id]; d != nil {
				emit(id, "", d)
			}
			continue
		}
		if len(q.GetMatch()) > 0 {
			_, _, key, perr := s.canonicalEntry(q)
			if perr != nil {
				return nil, status.Error(codes.Code(perr.GetCanonicalCode()), perr.GetMessage())
			}
			if te, ok := s.state.tables[id][key]; ok {
				emit(id, key, te)
			}
			continue
		}
		keys := make([]string, 0, len(s.state.tables[id]))
		for k := range s.state.tables[id] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			emit(id, k, s.state.tables[id][k])
		}
	}
	return out, nil
}

func (s *Server) readMeters(q *p4v1.MeterEntry) ([]*p4v1.Entity, error) {
	ids := []uint32{q.GetMeterId()}
	if q.GetMeterId() == 0 {
		ids = sortedIDs(s.schema.meters)
	} else if _, ok := s.schema.meters[q.GetMeterId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "meter id %d unknown", q.GetMeterId())
	}
	var out []*p4v1.Entity
	for _, id := range ids {
		lo, hi := int64(0), s.schema.meters[id].GetSize()
		if q.GetIndex() != nil {
			lo, hi = q.GetIndex().GetIndex(), q.GetIndex().GetIndex()+1
		}
		for i := lo; i < hi; i++ {
			me := &p4v1.MeterEntry{MeterId: id, Index: &p4v1.Index{Index: i}}
			if c := s.state.meters[id][i]; c != nil {
				me.Config = proto.Clone(c).(*p4v1.MeterConfig)
			}
			out = append(out, &p4v1.Entity{Entity: &p4v1.Entity_MeterEntry{MeterEntry: me}})
		}
	}
	return out, nil
}

func (s *Server) readCounters(q *p4v1.CounterEntry) ([]*p4v1.Entity, error) {
	ids := []uint32{q.GetCounterId()}
	if q.GetCounterId() == 0 {
		ids = sortedIDs(s.schema.counters)
	} else if _, ok := s.schema.counters[q.GetCounterId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "counter id %d unknown", q.GetCounterId())
	}
	var out []*p4v1.Entity
	for _, id := range ids {
		lo, hi := int64(0), s.schema.counters[id].GetSize()
		if q.GetIndex() != nil {
			lo, hi = q.GetIndex().GetIndex(), q.GetIndex().GetIndex()+1
		}
		for i := lo; i < hi; i++ {
			d := &p4v1.CounterData{}
			if c := s.state.counters[id][i]; c != nil {
				d = proto.Clone(c).(*p4v1.CounterData)
			}
			out = append(out, &p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{CounterId: id, Index: &p4v1.Index{Index: i}, Data: d}}})
		}
	}
	return out, nil
}

func (s *Server) readDirectCounters(q *p4v1.DirectCounterEntry) ([]*p4v1.Entity, error) {
	te := q.GetTableEntry()
	ts, ok := s.schema.tables[te.GetTableId()]
	if !ok || ts.counter == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "table id %d has no direct counter", te.GetTableId())
	}
	withData := &p4v1.TableEntry{TableId: te.GetTableId(), Match: te.GetMatch(), CounterData: &p4v1.CounterData{}}
	entries, err := s.readTables(withData)
	if err != nil {
		return nil, err
	}
	out := make([]*p4v1.Entity, 0, len(entries))
	for _, e := range entries {
		t := e.GetTableEntry()
		d := t.GetCounterData()
		t.CounterData, t.Action = nil, nil
		out = append(out, &p4v1.Entity{Entity: &p4v1.Entity_DirectCounterEntry{DirectCounterEntry: &p4v1.DirectCounterEntry{TableEntry: t, Data: d}}})
	}
	return out, nil
}

func (s *Server) readPRE(q *p4v1.PacketReplicationEngineEntry) []*p4v1.Entity {
	var out []*p4v1.Entity
	wrap := func(p *p4v1.PacketReplicationEngineEntry) {
		out = append(out, &p4v1.Entity{Entity: &p4v1.Entity_PacketReplicationEngineEntry{PacketReplicationEngineEntry: p}})
	}
	switch x := q.GetType().(type) {
	case *p4v1.PacketReplicationEngineEntry_MulticastGroupEntry:
		for _, id := range sortedIDs(s.state.mcast) {
			if want := x.MulticastGroupEntry.GetMulticastGroupId(); want == 0 || want == id {
				wrap(&p4v1.PacketReplicationEngineEntry{Type: &p4v1.PacketReplicationEngineEntry_MulticastGroupEntry{
					MulticastGroupEntry: proto.Clone(s.state.mcast[id]).(*p4v1.MulticastGroupEntry)}})
			}
		}
	case *p4v1.PacketReplicationEngineEntry_CloneSessionEntry:
		for _, id := range sortedIDs(s.state.clones) {
			if want := x.CloneSessionEntry.GetSessionId(); want == 0 || want == id {
				wrap(&p4v1.PacketReplicationEngineEntry{Type: &p4v1.PacketReplicationEngineEntry_CloneSessionEntry{
					CloneSessionEntry: proto.Clone(s.state.clones[id]).(*p4v1.CloneSessionEntry)}})
			}
		}
	}
	return out
}

// SetCounter sets an indirect counter cell, as traffic would.
func (s *Server) SetCounter(name string, index int64, packets, bytes int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.schema == nil {
		return false
	}
	for id, c := range s.schema.counters {
		if c.GetPreamble().GetName() == name || c.GetPreamble().GetAlias() == name {
			if s.state.counters[id] == nil {
				s.state.counters[id] = map[int64]*p4v1.CounterData{}
			}
			s.state.counters[id][index] = &p4v1.CounterData{PacketCount: packets, ByteCount: bytes}
			return true
		}
	}
	return false
}

// SetDirectCounters sets the direct counter of every entry of the named
// table for which pick returns true, as traffic would; it returns how
// many it set.
func (s *Server) SetDirectCounters(table string, pick func(*p4v1.TableEntry) bool, packets, bytes int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if s.schema == nil {
		return 0
	}
	for id, ts := range s.schema.tables {
		if ts.name() != table && ts.t.GetPreamble().GetAlias() != table {
			continue
		}
		for k, te := range s.state.tables[id] {
			if pick(te) {
				s.state.directCounters[id][k] = &p4v1.CounterData{PacketCount: packets, ByteCount: bytes}
				n++
			}
		}
	}
	return n
}
