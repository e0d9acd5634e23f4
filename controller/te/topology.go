package te

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
)

// NodeKind tells hosts (tunnel endpoints) from switches (forwarders).
type NodeKind string

const (
	KindHost   NodeKind = "host"
	KindSwitch NodeKind = "switch"
)

// Defaults applied to a topology file's zero fields.
const (
	DefaultMaxFrameBytes   = 1538 // 1500 B MTU + Ethernet header, FCS, preamble and inter-frame gap
	DefaultMaxExpressShare = 0.5
	DefaultSublanes        = 1
	MaxSublanes            = 8
	// maxFrameLimit keeps TxTime's integer arithmetic exact.
	maxFrameLimit = 1 << 20
)

// NodeSpec is a node as written in a topology file.
type NodeSpec struct {
	Name string   `json:"name"`
	Kind NodeKind `json:"kind"`
	IPv4 string   `json:"ipv4,omitempty"`
}

// LinkSpec is one directed link as written in a topology file.
type LinkSpec struct {
	From         string `json:"from"`
	To           string `json:"to"`
	BandwidthBps int64  `json:"bandwidth_bps"`
	QueueBytes   int64  `json:"queue_bytes"`
	MinLatencyNs int64  `json:"min_latency_ns"`
	MaxJitterNs  int64  `json:"max_jitter_ns"`
}

// TopologySpec is the topology file format (docs/te.md).
type TopologySpec struct {
	FrameOverheadBytes int64      `json:"frame_overhead_bytes"`
	MaxFrameBytes      int64      `json:"max_frame_bytes"`
	MaxExpressShare    float64    `json:"max_express_share"`
	Sublanes           int        `json:"sublanes"`
	Nodes              []NodeSpec `json:"nodes"`
	Links              []LinkSpec `json:"links"`
}

// NodeID and LinkID index Topology.Nodes and Topology.Links.
type (
	NodeID int32
	LinkID int32
)

// Node is a validated node.
type Node struct {
	ID   NodeID
	Name string
	Kind NodeKind
	IPv4 netip.Addr // valid for hosts
}

// Link is a validated directed link with its times precomputed.
type Link struct {
	ID           LinkID
	From, To     NodeID
	BandwidthBps int64
	QueueBytes   int64
	MinLatency   Time
	MaxJitter    Time
}

// Topology is a validated, indexed network graph. It is immutable after
// construction and safe to share.
type Topology struct {
	Spec            TopologySpec
	Nodes           []Node
	Links           []Link
	Out, In         [][]LinkID // per node
	FrameOverhead   int64
	MaxFrameBytes   int64
	MaxExpressShare float64
	Sublanes        int

	byName map[string]NodeID
	byIP   map[netip.Addr]NodeID
	byPair map[[2]NodeID]LinkID
	ports  map[[2]NodeID]uint32
}

// ParseTopology decodes and validates a topology file.
func ParseTopology(r io.Reader) (*Topology, error) {
	var spec TopologySpec
	if err := decodeStrict(r, &spec); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	t, err := NewTopology(spec)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return t, nil
}

// decodeStrict decodes one JSON value, rejecting unknown fields and
// trailing data so typos in files do not pass silently.
func decodeStrict(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(data, err)
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value at byte %d", dec.InputOffset())
	}
	return nil
}

func describeJSONError(data []byte, err error) error {
	switch e := err.(type) {
	case *json.SyntaxError:
		line, col := position(data, e.Offset)
		return fmt.Errorf("invalid JSON at line %d column %d: %w", line, col, err)
	case *json.UnmarshalTypeError:
		return fmt.Errorf("field %q: expected %s, got JSON %s", e.Field, e.Type, e.Value)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func position(data []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// NewTopology validates spec, applies defaults, and builds the indexes.
func NewTopology(spec TopologySpec) (*Topology, error) {
	if spec.FrameOverheadBytes < 0 {
		return nil, fieldErr("frame_overhead_bytes", spec.FrameOverheadBytes, "must not be negative")
	}
	if spec.MaxFrameBytes == 0 {
		spec.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if spec.MaxFrameBytes < 0 || spec.MaxFrameBytes > maxFrameLimit {
		return nil, fieldErr("max_frame_bytes", spec.MaxFrameBytes, "must be between 1 and %d", maxFrameLimit)
	}
	if spec.FrameOverheadBytes >= spec.MaxFrameBytes {
		return nil, fieldErr("frame_overhead_bytes", spec.FrameOverheadBytes, "must be smaller than max_frame_bytes (%d)", spec.MaxFrameBytes)
	}
	if spec.MaxExpressShare == 0 {
		spec.MaxExpressShare = DefaultMaxExpressShare
	}
	if !(spec.MaxExpressShare > 0 && spec.MaxExpressShare < 1) {
		return nil, fieldErr("max_express_share", spec.MaxExpressShare, "must be in (0, 1): strict priority needs spare capacity for its bounds")
	}
	if spec.Sublanes == 0 {
		spec.Sublanes = DefaultSublanes
	}
	if spec.Sublanes < 1 || spec.Sublanes > MaxSublanes {
		return nil, fieldErr("sublanes", spec.Sublanes, "must be between 1 and %d", MaxSublanes)
	}
	if len(spec.Nodes) == 0 {
		return nil, fieldErr("nodes", 0, "a topology needs at least one node")
	}
	t := &Topology{
		Spec:            spec,
		FrameOverhead:   spec.FrameOverheadBytes,
		MaxFrameBytes:   spec.MaxFrameBytes,
		MaxExpressShare: spec.MaxExpressShare,
		Sublanes:        spec.Sublanes,
		byName:          make(map[string]NodeID, len(spec.Nodes)),
		byIP:            make(map[netip.Addr]NodeID),
		byPair:          make(map[[2]NodeID]LinkID, len(spec.Links)),
	}
	for i, n := range spec.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" {
			return nil, fieldErr(f+".name", `""`, "must not be empty")
		}
		if _, dup := t.byName[n.Name]; dup {
			return nil, fieldErr(f+".name", n.Name, "duplicate node name")
		}
		node := Node{ID: NodeID(i), Name: n.Name, Kind: n.Kind}
		switch n.Kind {
		case KindHost:
			ip, err := netip.ParseAddr(n.IPv4)
			if err != nil || !ip.Is4() {
				return nil, fieldErr(f+".ipv4", n.IPv4, "host %q needs an IPv4 address", n.Name)
			}
			if ip.IsMulticast() || ip.IsUnspecified() {
				return nil, fieldErr(f+".ipv4", n.IPv4, "host address must be a unicast address")
			}
			if other, dup := t.byIP[ip]; dup {
				return nil, fieldErr(f+".ipv4", n.IPv4, "address already used by %q", spec.Nodes[other].Name)
			}
			node.IPv4 = ip
			t.byIP[ip] = node.ID
		case KindSwitch:
			if n.IPv4 != "" {
				return nil, fieldErr(f+".ipv4", n.IPv4, "only hosts carry an address")
			}
		default:
			return nil, fieldErr(f+".kind", n.Kind, `must be "host" or "switch"`)
		}
		t.byName[n.Name] = node.ID
		t.Nodes = append(t.Nodes, node)
	}
	t.Out = make([][]LinkID, len(t.Nodes))
	t.In = make([][]LinkID, len(t.Nodes))
	for i, l := range spec.Links {
		f := fmt.Sprintf("links[%d]", i)
		from, ok := t.byName[l.From]
		if !ok {
			return nil, fieldErr(f+".from", l.From, "unknown node")
		}
		to, ok := t.byName[l.To]
		if !ok {
			return nil, fieldErr(f+".to", l.To, "unknown node")
		}
		if from == to {
			return nil, fieldErr(f+".to", l.To, "link from a node to itself")
		}
		if _, dup := t.byPair[[2]NodeID{from, to}]; dup {
			return nil, fieldErr(f, l.From+"->"+l.To, "duplicate link")
		}
		if l.BandwidthBps <= 0 {
			return nil, fieldErr(f+".bandwidth_bps", l.BandwidthBps, "must be positive")
		}
		if l.QueueBytes <= 0 {
			return nil, fieldErr(f+".queue_bytes", l.QueueBytes, "must be positive")
		}
		if l.MinLatencyNs < 0 || l.MinLatencyNs > int64(10*Second/Nanosecond) {
			return nil, fieldErr(f+".min_latency_ns", l.MinLatencyNs, "must be between 0 and 10 s")
		}
		if l.MaxJitterNs < 0 || l.MaxJitterNs > int64(10*Second/Nanosecond) {
			return nil, fieldErr(f+".max_jitter_ns", l.MaxJitterNs, "must be between 0 and 10 s")
		}
		id := LinkID(len(t.Links))
		t.Links = append(t.Links, Link{
			ID: id, From: from, To: to, BandwidthBps: l.BandwidthBps, QueueBytes: l.QueueBytes,
			MinLatency: NsToTime(l.MinLatencyNs), MaxJitter: NsToTime(l.MaxJitterNs),
		})
		t.byPair[[2]NodeID{from, to}] = id
		t.Out[from] = append(t.Out[from], id)
		t.In[to] = append(t.In[to], id)
	}
	// Ports: each node numbers its neighbours 1, 2, … in the order they
	// first appear in the links list (a cable's two directions share one
	// port). The testbed creates ports in this order, and drivers use it.
	t.ports = make(map[[2]NodeID]uint32)
	next := make([]uint32, len(t.Nodes))
	for _, l := range t.Links {
		for _, p := range [][2]NodeID{{l.From, l.To}, {l.To, l.From}} {
			if _, ok := t.ports[p]; !ok {
				next[p[0]]++
				t.ports[p] = next[p[0]]
			}
		}
	}
	return t, nil
}

// Port is the port number (1-based) at node that faces neighbor, and
// false if they share no link.
func (t *Topology) Port(node, neighbor NodeID) (uint32, bool) {
	p, ok := t.ports[[2]NodeID{node, neighbor}]
	return p, ok
}

// NodeByName looks a node up by name.
func (t *Topology) NodeByName(name string) (NodeID, bool) {
	id, ok := t.byName[name]
	return id, ok
}

// HostByIP looks a host up by its IPv4 address.
func (t *Topology) HostByIP(ip netip.Addr) (NodeID, bool) {
	id, ok := t.byIP[ip]
	return id, ok
}

// LinkBetween returns the directed link from→to.
func (t *Topology) LinkBetween(from, to NodeID) (LinkID, bool) {
	id, ok := t.byPair[[2]NodeID{from, to}]
	return id, ok
}

// LinkName renders a link as "from->to".
func (t *Topology) LinkName(id LinkID) string {
	l := t.Links[id]
	return t.Nodes[l.From].Name + "->" + t.Nodes[l.To].Name
}

// Switches lists the switches' names in node order.
func (t *Topology) Switches() []string {
	var out []string
	for _, n := range t.Nodes {
		if n.Kind == KindSwitch {
			out = append(out, n.Name)
		}
	}
	return out
}

// WireBytes is the on-wire size of a packet carrying loadsize bytes.
func (t *Topology) WireBytes(loadsize int64) int64 { return loadsize + t.FrameOverhead }

// MaxLoadsize is the largest loadsize whose frame fits max_frame_bytes.
func (t *Topology) MaxLoadsize() int64 { return t.MaxFrameBytes - t.FrameOverhead }

// MarshalJSON writes the topology back in its file format.
func (t *Topology) MarshalJSON() ([]byte, error) { return json.Marshal(t.Spec) }
