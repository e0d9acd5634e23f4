package tunnels

import (
	"net/netip"
	"time"
)

// Unbounded is the jitter of a demoted tunnel (List. 1's UNBOUNDED).
const Unbounded = -1

// Request asks for a periodic unicast or multicast protocol (List. 1).
type Request struct {
	Sender        netip.Addr     // the sending host
	Receiver      netip.AddrPort // a host's unicast address, or an IPv4 multicast group, and the UDP port
	LoadsizeBytes int64
	PeriodUs      int64 // shortest period wanted
	Sublane       int
}

// Resources are what the controller approved (List. 1).
type Resources struct {
	TunnelID      uint64
	LoadsizeBytes int64
	PeriodUs      int64 // ≥ the requested period
	MinLatencyNs  int64
	MaxJitterNs   int64 // Unbounded for a demoted tunnel
	// NotBefore is when the service may start sending with these
	// resources: admitting it changed other tunnels, which keep their old
	// guarantees until their grace period ends.
	NotBefore time.Time
}

// Reason says why resources changed.
type Reason int

const (
	ReasonTE         Reason = iota // traffic engineering re-adjusted the tunnel
	ReasonBWExceeded               // the tunnel exceeded its meter and was demoted
	ReasonBWUnused                 // the tunnel used too little of its rate
)

func (r Reason) String() string {
	switch r {
	case ReasonTE:
		return "TE"
	case ReasonBWExceeded:
		return "BW_EXCEEDED"
	case ReasonBWUnused:
		return "BW_UNUSED"
	}
	return "UNKNOWN"
}

// UpcallKind tells bandwidthChanged from bandwidthTerminated.
type UpcallKind int

const (
	BandwidthChanged UpcallKind = iota
	BandwidthTerminated
)

// Upcall is one notification to a service.
type Upcall struct {
	Kind      UpcallKind
	TunnelID  uint64
	Resources Resources // the new resources (BandwidthChanged)
	Reason    Reason
	// GraceUntil: until then the old resources stay guaranteed, and the
	// switches accept traffic under both.
	GraceUntil time.Time
}
