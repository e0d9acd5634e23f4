package p4rt

import (
	"context"
	"errors"
	"fmt"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func tableUpdate(t p4v1.Update_Type, te *p4v1.TableEntry) *p4v1.Update {
	return &p4v1.Update{Type: t, Entity: &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: te}}}
}

func meterUpdate(x *ids, idx int64, c *p4v1.MeterConfig) *p4v1.Update {
	return &p4v1.Update{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{
		MeterId: x.meter, Index: &p4v1.Index{Index: idx}, Config: c}}}}
}

func groupUpdate(t p4v1.Update_Type, g *p4v1.MulticastGroupEntry) *p4v1.Update {
	return &p4v1.Update{Type: t, Entity: &p4v1.Entity{Entity: &p4v1.Entity_PacketReplicationEngineEntry{
		PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{Type: &p4v1.PacketReplicationEngineEntry_MulticastGroupEntry{MulticastGroupEntry: g}}}}}
}

func cloneUpdate(t p4v1.Update_Type, c *p4v1.CloneSessionEntry) *p4v1.Update {
	return &p4v1.Update{Type: t, Entity: &p4v1.Entity{Entity: &p4v1.Entity_PacketReplicationEngineEntry{
		PacketReplicationEngineEntry: &p4v1.PacketReplicationEngineEntry{Type: &p4v1.PacketReplicationEngineEntry_CloneSessionEntry{CloneSessionEntry: c}}}}}
}

// diffTables adds the updates that turn have into want for one table.
func diffTables(install, remove *[]*p4v1.Update, have, want map[string]*p4v1.TableEntry) {
	for k, w := range want {
		if h, ok := have[k]; !ok {
			*install = append(*install, tableUpdate(p4v1.Update_INSERT, w))
		} else if !sameEntry(h, w) {
			*install = append(*install, tableUpdate(p4v1.Update_MODIFY, w))
		}
	}
	for k, h := range have {
		if _, ok := want[k]; !ok {
			*remove = append(*remove, tableUpdate(p4v1.Update_DELETE, h))
		}
	}
}

// push writes what turns have into want, as three batches: first what
// tunnels need (multicast groups, meters, tunnel entries, routes), then the
// classifier entries that send packets into them, then what nothing uses
// any more — so no packet is ever classified into a missing tunnel.
// stale lists clone sessions to delete (the pipeline uses none).
func (s *session) push(ctx context.Context, have, want swEntries, stale []*p4v1.CloneSessionEntry) error {
	x := s.d.ids
	var first, second, last []*p4v1.Update
	for id, g := range want.groups {
		if h, ok := have.groups[id]; !ok {
			first = append(first, groupUpdate(p4v1.Update_INSERT, g))
		} else if !sameGroup(h, g) {
			first = append(first, groupUpdate(p4v1.Update_MODIFY, g))
		}
	}
	for idx, c := range want.meters {
		if h, ok := have.meters[idx]; !ok || !proto.Equal(h, c) {
			first = append(first, meterUpdate(x, idx, c))
		}
	}
	diffTables(&first, &last, have.tunnels, want.tunnels)
	diffTables(&first, &last, have.routes, want.routes)
	var classifierGone []*p4v1.Update
	diffTables(&second, &classifierGone, have.classifier, want.classifier)
	second = append(second, classifierGone...)
	for id, g := range have.groups {
		if _, ok := want.groups[id]; !ok {
			last = append(last, groupUpdate(p4v1.Update_DELETE, g))
		}
	}
	for idx := range have.meters {
		if _, ok := want.meters[idx]; !ok {
			last = append(last, meterUpdate(x, idx, nil)) // back to "all green"
		}
	}
	for _, c := range stale {
		last = append(last, cloneUpdate(p4v1.Update_DELETE, c))
	}
	for _, batch := range [][]*p4v1.Update{first, second, last} {
		if err := s.write(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// UpdateError is one update of a write that the switch refused.
type UpdateError struct {
	Code    codes.Code
	Message string
	Update  string // what it was
}

func (e *UpdateError) Error() string { return fmt.Sprintf("%s: %s: %s", e.Update, e.Code, e.Message) }

// write sends one batch. A refused batch comes back as one error per
// failed update, decoded from the status details.
func (s *session) write(ctx context.Context, updates []*p4v1.Update) error {
	if len(updates) == 0 {
		return nil
	}
	_, err := s.api.Write(ctx, &p4v1.WriteRequest{DeviceId: s.deviceID, ElectionId: s.d.election(), Role: s.d.cfg.Role, Updates: updates})
	if err == nil {
		s.d.writes.Add(int64(len(updates)))
		return nil
	}
	return decodeWriteError(err, updates)
}

func decodeWriteError(err error, updates []*p4v1.Update) error {
	st := status.Convert(err)
	if st.Code() != codes.Unknown || len(st.Details()) == 0 {
		return fmt.Errorf("write: %w", err)
	}
	var errs []error
	for i, d := range st.Details() {
		pe, ok := d.(*p4v1.Error)
		if !ok || codes.Code(pe.GetCanonicalCode()) == codes.OK {
			continue
		}
		what := "update"
		if i < len(updates) {
			what = describe(updates[i])
		}
		errs = append(errs, &UpdateError{Code: codes.Code(pe.GetCanonicalCode()), Message: pe.GetMessage(), Update: what})
	}
	if len(errs) == 0 {
		return fmt.Errorf("write: %w", err)
	}
	return fmt.Errorf("write refused: %w", errors.Join(errs...))
}

func describe(u *p4v1.Update) string {
	switch e := u.GetEntity().GetEntity().(type) {
	case *p4v1.Entity_TableEntry:
		return fmt.Sprintf("%v table entry (table %d)", u.GetType(), e.TableEntry.GetTableId())
	case *p4v1.Entity_MeterEntry:
		return fmt.Sprintf("%v meter %d[%d]", u.GetType(), e.MeterEntry.GetMeterId(), e.MeterEntry.GetIndex().GetIndex())
	case *p4v1.Entity_PacketReplicationEngineEntry:
		if g := e.PacketReplicationEngineEntry.GetMulticastGroupEntry(); g != nil {
			return fmt.Sprintf("%v multicast group %d", u.GetType(), g.GetMulticastGroupId())
		}
		return fmt.Sprintf("%v clone session %d", u.GetType(), e.PacketReplicationEngineEntry.GetCloneSessionEntry().GetSessionId())
	}
	return u.GetType().String()
}
