package p4rttest

import (
	"fmt"

	p4config "github.com/p4lang/p4runtime/go/p4/config/v1"
)

// schema indexes a P4Info by id: what the server validates writes against.
type schema struct {
	info     *p4config.P4Info
	tables   map[uint32]*tableSchema
	actions  map[uint32]*p4config.Action
	meters   map[uint32]*p4config.Meter
	counters map[uint32]*p4config.Counter
	direct   map[uint32]uint32 // direct counter id → its table
}

type tableSchema struct {
	t        *p4config.Table
	fields   map[uint32]*p4config.MatchField
	actions  map[uint32]*p4config.ActionRef
	tcam     bool   // a ternary, range or optional field: entries need a priority
	counter  uint32 // direct counter id, or 0
	constDef bool
}

func newSchema(info *p4config.P4Info) (*schema, error) {
	s := &schema{info: info, tables: map[uint32]*tableSchema{}, actions: map[uint32]*p4config.Action{},
		meters: map[uint32]*p4config.Meter{}, counters: map[uint32]*p4config.Counter{}, direct: map[uint32]uint32{}}
	for _, a := range info.GetActions() {
		s.actions[a.GetPreamble().GetId()] = a
	}
	for _, dc := range info.GetDirectCounters() {
		s.direct[dc.GetPreamble().GetId()] = dc.GetDirectTableId()
	}
	for _, t := range info.GetTables() {
		ts := &tableSchema{t: t, fields: map[uint32]*p4config.MatchField{}, actions: map[uint32]*p4config.ActionRef{},
			constDef: t.GetConstDefaultActionId() != 0}
		for _, f := range t.GetMatchFields() {
			ts.fields[f.GetId()] = f
			switch f.GetMatchType() {
			case p4config.MatchField_TERNARY, p4config.MatchField_RANGE, p4config.MatchField_OPTIONAL:
				ts.tcam = true
			}
		}
		for _, r := range t.GetActionRefs() {
			if _, ok := s.actions[r.GetId()]; !ok {
				return nil, fmt.Errorf("p4info: table %s refers to unknown action %d", t.GetPreamble().GetName(), r.GetId())
			}
			ts.actions[r.GetId()] = r
		}
		for _, id := range t.GetDirectResourceIds() {
			if _, ok := s.direct[id]; ok {
				ts.counter = id
			}
		}
		s.tables[t.GetPreamble().GetId()] = ts
	}
	for _, m := range info.GetMeters() {
		s.meters[m.GetPreamble().GetId()] = m
	}
	for _, c := range info.GetCounters() {
		s.counters[c.GetPreamble().GetId()] = c
	}
	return s, nil
}

func (ts *tableSchema) name() string { return ts.t.GetPreamble().GetName() }
