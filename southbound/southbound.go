// Package southbound is the one interface through which the controller
// drives switches. The OpenFlow 1.3 driver (Open vSwitch) and the
// P4Runtime driver implement it; package memory is an in-memory switch for
// tests.
//
// The controller describes, per switch, the express state it wants: one
// TunnelRule per tunnel crossing the switch (classification, sub-lane,
// output, and at the tunnel's first switch its meter) and the static
// best-effort routes of the topology. Drivers translate that into flows,
// meters and groups (or table entries), apply a batch as one unit, read
// statistics back, and make a switch equal to a desired state after a
// (re)connect.
package southbound

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// Port is a switch port number as the topology numbers it (1-based).
type Port uint32

// Match selects one tunnel's packets at one switch.
type Match struct {
	InPort  Port
	SrcIP   netip.Addr // the sender's address
	DstIP   netip.Addr // the receiver's address, or the IPv4 multicast group
	DstPort uint16     // UDP destination port of the service
	// DSCP the packets carry on arrival: at the first switch the sub-lane's
	// mark the sender sets, further on what the previous switch wrote.
	// Unmarked packets of the same flow are best effort.
	DSCP uint8
}

// Meter polices a tunnel at its first switch: one packet of BurstBytes per
// period, that is RateBps = 8·BurstBytes/period. Packets above it are
// dropped (and counted: the controller's monitoring reads the drops).
type Meter struct {
	RateBps    uint64
	BurstBytes uint64
}

// TunnelRule is the state one tunnel needs on one switch.
type TunnelRule struct {
	Tunnel  uint64
	Match   Match
	Sublane int    // express priority level, 0 highest
	Out     []Port // one port, or several for a multicast branch point
	Meter   *Meter // only at the tunnel's first switch
	// Demoted tunnels (they exceeded their meter) keep being forwarded,
	// but at best-effort priority.
	Demoted bool
}

// Equal reports whether two rules are identical.
func (r TunnelRule) Equal(o TunnelRule) bool {
	if r.Tunnel != o.Tunnel || r.Match != o.Match || r.Sublane != o.Sublane || r.Demoted != o.Demoted || !slices.Equal(r.Out, o.Out) {
		return false
	}
	if (r.Meter == nil) != (o.Meter == nil) {
		return false
	}
	return r.Meter == nil || *r.Meter == *o.Meter
}

// Clone is r with its own copy of the ports and the meter.
func (r TunnelRule) Clone() TunnelRule {
	r.Out = slices.Clone(r.Out)
	if r.Meter != nil {
		m := *r.Meter
		r.Meter = &m
	}
	return r
}

// Route is a static best-effort route: packets to Dst leave on Out.
type Route struct {
	Dst netip.Prefix
	Out Port
}

// Batch is what one admission changes on one switch.
type Batch struct {
	Put    []TunnelRule // add, or replace the rule of the same tunnel
	Delete []uint64     // tunnel ids
}

// Empty reports whether the batch changes nothing.
func (b Batch) Empty() bool { return len(b.Put) == 0 && len(b.Delete) == 0 }

// SwitchState is the complete desired state of one switch.
type SwitchState struct {
	Rules  []TunnelRule // at most one per tunnel
	Routes []Route
}

// TunnelStats are the counters of one tunnel at one switch.
type TunnelStats struct {
	Tunnel     uint64
	Packets    uint64 // packets that matched the tunnel's rule
	Bytes      uint64
	MeterDrops uint64 // packets its meter dropped (first switch only)
}

// Driver programs switches. Every method is safe for concurrent use on
// different switches; calls for one switch are serialised by the caller.
type Driver interface {
	// Apply applies a batch to one switch as one unit: on error nothing of
	// the batch remains applied. It keeps no reference to b's slices once
	// it returns (the controller reuses them); the rules' Out slices and
	// meters are never changed after they are handed over, so rules may
	// be kept as they are.
	Apply(ctx context.Context, sw string, b Batch) error
	// Stats reads the per-tunnel statistics of one switch.
	Stats(ctx context.Context, sw string) ([]TunnelStats, error)
	// Reconcile makes one switch equal to want: missing state is added,
	// stale state removed, changed state fixed.
	Reconcile(ctx context.Context, sw string, want SwitchState) error
}

// Local is implemented by drivers whose calls finish without waiting on a
// network or a device (package memory). The controller fans a batch out to
// one goroutine per switch so that switch round trips overlap; for a local
// driver that only adds scheduling delays while the controller's lock is
// held, so such drivers are called one switch after the other.
type Local interface {
	Local() bool
}

// SwitchError names the switch a driver call failed on.
type SwitchError struct {
	Switch string
	Op     string
	Err    error
}

func (e *SwitchError) Error() string { return fmt.Sprintf("switch %s: %s: %v", e.Switch, e.Op, e.Err) }
func (e *SwitchError) Unwrap() error { return e.Err }
