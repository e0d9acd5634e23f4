package te

import (
	"errors"
	"fmt"
)

// Install adds tunnels whose trees are already chosen (for example read
// back from a file or from durable state), keeping their ids, then runs
// X-ADJ over everything. PeriodNs (or RequestedPeriodNs when set) is taken
// as the requested period. All or nothing: on error the engine is
// unchanged. It returns the installed tunnels with their new parameters.
func (e *Engine) Install(ts []Tunnel) ([]Tunnel, error) {
	var added []*tunnel
	undo := func() {
		for i := len(added) - 1; i >= 0; i-- {
			e.detach(added[i])
			delete(e.tunnels, added[i].id)
		}
	}
	for i, x := range ts {
		t, err := e.fromTunnel(x)
		if err != nil {
			undo()
			return nil, fmt.Errorf("tunnels[%d]: %w", i, err)
		}
		for j, h := range t.hops {
			lid := h.link
			if ok, why := e.eligible(lid, t.wire, t.rate()); !ok {
				undo()
				return nil, fmt.Errorf("tunnels[%d]: %w", i, fieldErr(fmt.Sprintf("edges[%d]", j), e.topo.LinkName(lid), "%s", why))
			}
		}
		e.attach(t)
		e.tunnels[t.id] = t
		added = append(added, t)
		if t.id >= e.nextID {
			e.nextID = t.id + 1
		}
	}
	e.resetTouched()
	for _, t := range added {
		for i := range t.hops {
			e.markDirty(t.hops[i].link, t.level)
		}
	}
	if err := e.readjust(); err != nil {
		undo()
		return nil, err
	}
	out := make([]Tunnel, len(added))
	for i, t := range added {
		out[i] = e.export(t)
	}
	return out, nil
}

// Readjust recomputes every tunnel from scratch and returns the changes.
func (e *Engine) Readjust() ([]Change, error) {
	e.resetTouched()
	for i := range e.links {
		e.markDirty(LinkID(i), 0)
	}
	if err := e.readjustMode(true); err != nil {
		return nil, err
	}
	return e.changes(0), nil
}

var errNotTree = errors.New("edges do not form a tree from the sender to the receivers")

// fromTunnel validates a tunnel's tree against the topology.
func (e *Engine) fromTunnel(x Tunnel) (*tunnel, error) {
	topo := e.topo
	if x.ID == 0 {
		return nil, fieldErr("id", x.ID, "must be positive")
	}
	if _, dup := e.tunnels[x.ID]; dup {
		return nil, fieldErr("id", x.ID, "duplicate tunnel id")
	}
	period := x.PeriodNs
	if x.RequestedPeriodNs != 0 {
		period = x.RequestedPeriodNs
	}
	r, err := topo.resolve(Request{Sender: x.Sender, Receivers: x.Receivers, LoadsizeBytes: x.LoadsizeBytes, PeriodNs: period, Sublane: x.Sublane})
	if err != nil {
		return nil, err
	}
	if len(x.Edges) == 0 {
		return nil, fieldErr("edges", "[]", "a tunnel needs at least one edge")
	}
	// Index edges by their head; each node may be entered once.
	type edge struct {
		lid LinkID
		pos int
	}
	enter := make(map[NodeID]edge, len(x.Edges))
	children := make(map[NodeID][]NodeID, len(x.Edges))
	for j, ed := range x.Edges {
		f := fmt.Sprintf("edges[%d]", j)
		from, ok := topo.byName[ed[0]]
		if !ok {
			return nil, fieldErr(f, ed[0], "unknown node")
		}
		to, ok := topo.byName[ed[1]]
		if !ok {
			return nil, fieldErr(f, ed[1], "unknown node")
		}
		lid, ok := topo.LinkBetween(from, to)
		if !ok {
			return nil, fieldErr(f, ed[0]+"->"+ed[1], "no such link in the topology")
		}
		if _, dup := enter[to]; dup {
			return nil, fieldErr(f, ed[0]+"->"+ed[1], "node %s entered twice: %v", ed[1], errNotTree)
		}
		if to == r.sender {
			return nil, fieldErr(f, ed[0]+"->"+ed[1], "edge into the sender: %v", errNotTree)
		}
		if from != r.sender && topo.Nodes[from].Kind == KindHost {
			return nil, fieldErr(f, ed[0]+"->"+ed[1], "host %s cannot forward", ed[0])
		}
		enter[to] = edge{lid, j}
		children[from] = append(children[from], to)
	}
	isRecv := make(map[NodeID]bool, len(r.receivers))
	for _, rc := range r.receivers {
		isRecv[rc] = true
	}
	t := &tunnel{id: x.ID, sender: r.sender, receivers: r.receivers, load: r.load, wire: r.wire, level: r.level, reqPeriod: r.period}
	// Breadth-first from the sender gives a topological order.
	type item struct {
		node   NodeID
		parent int32
	}
	queue := []item{{r.sender, -1}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		for _, c := range children[it.node] {
			idx := int32(len(t.hops))
			t.hops = append(t.hops, hop{link: enter[c].lid, parent: it.parent, recv: isRecv[c]})
			if !isRecv[c] && len(children[c]) == 0 {
				return nil, fieldErr(fmt.Sprintf("edges[%d]", enter[c].pos), x.Edges[enter[c].pos][1], "leaf is not a receiver")
			}
			queue = append(queue, item{c, idx})
		}
	}
	if len(t.hops) != len(x.Edges) {
		return nil, fieldErr("edges", len(x.Edges), "%d edges are not reachable from sender %s: %v", len(x.Edges)-len(t.hops), x.Sender, errNotTree)
	}
	for i, rc := range r.receivers {
		if _, ok := enter[rc]; !ok {
			return nil, fieldErr(fmt.Sprintf("receivers[%d]", i), topo.Nodes[rc].Name, "not reached by the edges")
		}
	}
	return t, nil
}

// SetNextID makes the engine hand out ids from next on (never lower than
// the ids it holds), so ids of released tunnels are not reused after a
// restart.
func (e *Engine) SetNextID(next uint64) {
	if next > e.nextID {
		e.nextID = next
	}
}

// AdmitWithID is Admit for a tunnel that keeps an id it had before (a
// demoted tunnel coming back into the express lane).
func (e *Engine) AdmitWithID(id uint64, req Request) (Tunnel, []Change, error) {
	if id == 0 {
		return Tunnel{}, nil, fieldErr("id", id, "must be positive")
	}
	if _, dup := e.tunnels[id]; dup {
		return Tunnel{}, nil, fieldErr("id", id, "already held")
	}
	r, err := e.topo.resolve(req)
	if err != nil {
		return Tunnel{}, nil, err
	}
	e.resetTouched()
	t, err := e.plan(r, id)
	if err != nil {
		return Tunnel{}, nil, err
	}
	if err := e.insert(t); err != nil {
		return Tunnel{}, nil, err
	}
	e.SetNextID(id + 1)
	return e.export(t), e.changes(t.id), nil
}

// LinkLoad is the express reservation on one link: bytes of queue and
// bit/s of rate (at requested periods) held by its tunnels.
func (e *Engine) LinkLoad(lid LinkID) (queueBytes int64, rateBps float64) {
	h := &e.hot[lid]
	return h.total, h.rate
}
