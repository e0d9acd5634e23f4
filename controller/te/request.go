package te

import (
	"fmt"
	"io"
	"slices"
)

// MaxPeriod is the longest period a tunnel may be requested or adjusted to.
const MaxPeriod = 10 * Second

// Request asks for a tunnel tree from Sender to Receivers (file format in
// docs/te.md). PeriodNs is the shortest period the sender wants; the
// engine may approve a longer one.
type Request struct {
	Sender        string   `json:"sender"`
	Receivers     []string `json:"receivers"`
	LoadsizeBytes int64    `json:"loadsize_bytes"`
	PeriodNs      int64    `json:"period_ns"`
	Sublane       int      `json:"sublane"`
}

// ParseRequests decodes a JSON array of requests. Each is validated
// against a topology only when it is admitted, so one bad request does not
// hide the others.
func ParseRequests(r io.Reader) ([]Request, error) {
	var reqs []Request
	if err := decodeStrict(r, &reqs); err != nil {
		return nil, fmt.Errorf("requests: %w", err)
	}
	return reqs, nil
}

// resolved is a request checked against a topology.
type resolved struct {
	sender    NodeID
	receivers []NodeID
	load      int64
	wire      int64
	period    Time
	level     int
}

func (t *Topology) resolve(r Request) (resolved, error) {
	var res resolved
	s, ok := t.byName[r.Sender]
	if !ok {
		return res, fieldErr("sender", r.Sender, "unknown node")
	}
	if t.Nodes[s].Kind != KindHost {
		return res, fieldErr("sender", r.Sender, "must be a host, not a %s", t.Nodes[s].Kind)
	}
	if len(r.Receivers) == 0 {
		return res, fieldErr("receivers", "[]", "at least one receiver is needed")
	}
	// A request per admission: no map and no field name unless needed (a
	// unicast request has one receiver; a group's list is checked with a
	// map once it is long).
	var seen map[NodeID]bool
	if len(r.Receivers) > 16 {
		seen = make(map[NodeID]bool, len(r.Receivers))
	}
	res.receivers = make([]NodeID, 0, len(r.Receivers))
	for i, name := range r.Receivers {
		f := func() string { return fmt.Sprintf("receivers[%d]", i) }
		id, ok := t.byName[name]
		if !ok {
			return res, fieldErr(f(), name, "unknown node")
		}
		if t.Nodes[id].Kind != KindHost {
			return res, fieldErr(f(), name, "must be a host, not a %s", t.Nodes[id].Kind)
		}
		if id == s {
			return res, fieldErr(f(), name, "the sender cannot be its own receiver")
		}
		if seen != nil && seen[id] || seen == nil && slices.Contains(res.receivers, id) {
			return res, fieldErr(f(), name, "duplicate receiver")
		}
		if seen != nil {
			seen[id] = true
		}
		res.receivers = append(res.receivers, id)
	}
	if r.LoadsizeBytes <= 0 || r.LoadsizeBytes > t.MaxLoadsize() {
		return res, fieldErr("loadsize_bytes", r.LoadsizeBytes,
			"must be between 1 and %d (max_frame_bytes %d minus frame_overhead_bytes %d)",
			t.MaxLoadsize(), t.MaxFrameBytes, t.FrameOverhead)
	}
	if r.PeriodNs <= 0 || NsToTime(r.PeriodNs) > MaxPeriod {
		return res, fieldErr("period_ns", r.PeriodNs, "must be between 1 ns and 10 s")
	}
	if r.Sublane < 0 || r.Sublane >= t.Sublanes {
		return res, fieldErr("sublane", r.Sublane, "must be between 0 and %d (topology has %d sub-lanes)", t.Sublanes-1, t.Sublanes)
	}
	res.sender = s
	res.load = r.LoadsizeBytes
	res.wire = t.WireBytes(r.LoadsizeBytes)
	res.period = NsToTime(r.PeriodNs)
	res.level = r.Sublane
	return res, nil
}
