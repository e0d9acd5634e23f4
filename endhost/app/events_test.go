package app

import (
	"testing"
	"time"
)

func TestEventRoundTrip(t *testing.T) {
	e := Event{Kind: LaneChanged, Reason: 2, Tunnel: 9, PeriodUs: 1306, LoadsizeBytes: 98, MinLatencyNs: 152_400, MaxJitterNs: -1,
		GraceUntil: time.Unix(1700000000, 123)}
	var b [EventLen]byte
	got, err := DecodeEvent(e.Encode(b[:]))
	if err != nil || got != e {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, e)
	}
	if got, err := DecodeEvent((Event{Kind: LaneUp}).Encode(b[:])); err != nil || !got.GraceUntil.IsZero() {
		t.Fatalf("no deadline: %+v, %v", got, err)
	}
	if _, err := DecodeEvent(b[:10]); err == nil {
		t.Error("a short event decoded")
	}
	b[0] = 9
	if _, err := DecodeEvent(b[:]); err == nil {
		t.Error("an unknown kind decoded")
	}
	if LaneTerminated.String() != "terminated" || EventKind(7).String() != "event(7)" {
		t.Error("kind names")
	}
}

func TestAttachWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenSender(dir, "svc", "lane", "app"); err == nil {
		t.Error("attached to a lane no agent created")
	}
	if _, err := RequestLane(dir, "svc", LaneRequest{Lane: "x"}); err == nil {
		t.Error("a lane requested with no agent running")
	}
}

// FuzzDecodeEvent: any bytes decode to an event or an error, and what
// decodes encodes back to the same bytes' meaning.
func FuzzDecodeEvent(f *testing.F) {
	var b [EventLen]byte
	f.Add((Event{Kind: LaneChanged, Tunnel: 3, PeriodUs: 100, GraceUntil: time.Unix(5, 0)}).Encode(b[:]))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeEvent(in)
		if err != nil {
			return
		}
		var out [EventLen]byte
		again, err := DecodeEvent(e.Encode(out[:]))
		if err != nil || again != e {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", e, again, err)
		}
	})
}
