package app

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"time"

	"github.com/xlane/xlane/endhost/bridge"
)

// EventKind says what the controller decided about an application's lane.
type EventKind uint8

const (
	LaneUp         EventKind = 1 // the lane's tunnel was granted (its first resources)
	LaneChanged    EventKind = 2 // BandwidthChanged: new resources from GraceUntil
	LaneTerminated EventKind = 3 // BandwidthTerminated: the lane stopped
)

func (k EventKind) String() string {
	switch k {
	case LaneUp:
		return "up"
	case LaneChanged:
		return "changed"
	case LaneTerminated:
		return "terminated"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is an upcall as the agent passes it to the lane's applications.
type Event struct {
	Kind          EventKind
	Reason        uint8 // the API's Reason number (1 TE, 2 BW_EXCEEDED, ...); 0 for LaneUp
	Tunnel        uint64
	PeriodUs      int64
	LoadsizeBytes int64
	MinLatencyNs  int64
	MaxJitterNs   int64 // -1: unbounded (demoted)
	GraceUntil    time.Time
}

// EventLen is an encoded event's size.
const EventLen = 56

// EventPath is the ring of the agent's events for app on lane.
func EventPath(dir, service, lane, app string) string {
	return filepath.Join(dir, service, "ev-"+lane+"-"+app)
}

// Encode writes e into b (EventLen bytes).
func (e Event) Encode(b []byte) []byte {
	b = b[:EventLen]
	b[0], b[1] = byte(e.Kind), e.Reason
	clear(b[2:8])
	binary.LittleEndian.PutUint64(b[8:], e.Tunnel)
	binary.LittleEndian.PutUint64(b[16:], uint64(e.PeriodUs))
	binary.LittleEndian.PutUint64(b[24:], uint64(e.LoadsizeBytes))
	binary.LittleEndian.PutUint64(b[32:], uint64(e.MinLatencyNs))
	binary.LittleEndian.PutUint64(b[40:], uint64(e.MaxJitterNs))
	var g int64
	if !e.GraceUntil.IsZero() {
		g = e.GraceUntil.UnixNano()
	}
	binary.LittleEndian.PutUint64(b[48:], uint64(g))
	return b
}

// DecodeEvent reads an encoded event.
func DecodeEvent(b []byte) (Event, error) {
	if len(b) != EventLen {
		return Event{}, fmt.Errorf("app: an event is %d bytes, got %d", EventLen, len(b))
	}
	e := Event{Kind: EventKind(b[0]), Reason: b[1], Tunnel: binary.LittleEndian.Uint64(b[8:]),
		PeriodUs: int64(binary.LittleEndian.Uint64(b[16:])), LoadsizeBytes: int64(binary.LittleEndian.Uint64(b[24:])),
		MinLatencyNs: int64(binary.LittleEndian.Uint64(b[32:])), MaxJitterNs: int64(binary.LittleEndian.Uint64(b[40:]))}
	if g := int64(binary.LittleEndian.Uint64(b[48:])); g != 0 {
		e.GraceUntil = time.Unix(0, g)
	}
	if e.Kind < LaneUp || e.Kind > LaneTerminated {
		return e, fmt.Errorf("app: unknown event kind %d", b[0])
	}
	return e, nil
}

// Events reads the agent's events about the application's lane.
type Events struct {
	r   *bridge.Ring
	buf [EventLen]byte
}

// OpenEvents attaches to the events of app on lane.
func OpenEvents(dir, service, lane, app string) (*Events, error) {
	r, err := bridge.Open(EventPath(dir, service, lane, app))
	if err != nil {
		return nil, fmt.Errorf("app %s on lane %s: events: %w (is xlane-endhost running with this lane?)", app, lane, err)
	}
	return &Events{r: r}, nil
}

// Next returns the oldest event not yet read; ok is false when there is
// none.
func (e *Events) Next() (ev Event, ok bool, err error) {
	n, _, ok := e.r.Pop(e.buf[:])
	if !ok {
		return Event{}, false, nil
	}
	ev, err = DecodeEvent(e.buf[:n])
	return ev, err == nil, err
}

// Close detaches.
func (e *Events) Close() error { return e.r.Close() }
