// Package lane is the endhost's lane: it sends a tunnel's packets at most
// once per approved period and never above the approved load size, packs
// the applications' messages into them, and switches parameters when the
// controller changes them. Schedule is its pure core (no clock, no I/O):
// the lane loop feeds it the time and what the controller said.
package lane

import (
	"fmt"

	"github.com/xlane/xlane/endhost/wire"
)

// Params are a tunnel's approved resources as the lane obeys them.
type Params struct {
	PeriodNs int64 // at most one packet per period
	Loadsize int   // bytes of UDP payload per packet, at most
}

// Check reports whether a lane can send with p and schema s.
func (p Params) Check(s *wire.Schema) error {
	if p.PeriodNs <= 0 {
		return fmt.Errorf("lane: period %d ns: must be positive", p.PeriodNs)
	}
	if p.Chunks(s) < 1 {
		return fmt.Errorf("lane: load size %d B: an X-Lane packet with one %s chunk needs %d", p.Loadsize, s.Name, wire.HeaderLen+s.ChunkLen)
	}
	return nil
}

// Chunks is how many chunks of schema s fit in the load size (and in an
// Ethernet MTU).
func (p Params) Chunks(s *wire.Schema) int {
	return min((p.Loadsize-wire.HeaderLen)/s.ChunkLen, s.MaxChunks(wire.MTU))
}

// Schedule decides when a tunnel's packets may go. Times are nanoseconds
// of one monotonic clock.
type Schedule struct {
	cur        Params
	pending    Params
	pendingAt  int64
	hasPending bool
	next       int64 // earliest time the next packet may go
	last       int64 // when the last packet went
	sent       bool
	stopped    bool
}

// NewSchedule starts a schedule with parameters p; the first packet may go
// at notBefore (a new tunnel waits for the others' grace periods).
func NewSchedule(p Params, notBefore int64) *Schedule {
	return &Schedule{cur: p, next: notBefore}
}

// Change takes the parameters of a BandwidthChanged: they hold from at
// (the grace deadline); until then the old ones do. A later change
// replaces one not yet in force.
func (s *Schedule) Change(p Params, at int64) {
	s.pending, s.pendingAt, s.hasPending = p, at, true
}

// Stop ends the schedule (BandwidthTerminated, or a release).
func (s *Schedule) Stop() { s.stopped = true }

// Stopped reports whether the schedule ended.
func (s *Schedule) Stopped() bool { return s.stopped }

// advance puts a pending change in force once its time has come.
func (s *Schedule) advance(now int64) {
	if !s.hasPending || now < s.pendingAt {
		return
	}
	s.cur, s.hasPending = s.pending, false
	if s.sent {
		// The next packet keeps the new period from the last one, but
		// never goes before the change is in force.
		s.next = max(s.last+s.cur.PeriodNs, s.pendingAt)
	} else {
		s.next = max(s.next, s.pendingAt)
	}
}

// Due reports whether a packet may go at now, and the parameters it must
// obey.
func (s *Schedule) Due(now int64) (Params, bool) {
	s.advance(now)
	return s.cur, !s.stopped && now >= s.next
}

// Sent records that a packet went at now: the next may go one period
// later, never earlier (a late packet moves the schedule; catching up
// would put two packets in one period).
func (s *Schedule) Sent(now int64) {
	s.advance(now)
	s.last, s.sent = now, true
	s.next = now + s.cur.PeriodNs
}

// Next is when the next packet may go (or the pending change takes
// effect, if that is earlier and may allow it sooner): the time to wake
// or poll until.
func (s *Schedule) Next() int64 {
	if s.hasPending && s.pendingAt < s.next {
		return s.pendingAt
	}
	return s.next
}
