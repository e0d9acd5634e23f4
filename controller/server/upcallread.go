package server

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xlane/xlane/controller/tunnels"
)

// WatchBatch is a watch response as the Go client receives it: the codec
// decodes the wire straight into Upcalls, reusing its memory from one
// response to the next. Decoding into the generated messages made four
// objects per upcall, a sixth of a watching service's CPU under load.
type WatchBatch struct {
	Upcalls []tunnels.Upcall
}

// ParseWatchResponse appends the upcalls of a WatchResponse on the wire
// to into: the inverse of appendWatchResponse, and what protobuf's
// decoder makes of the same bytes (fields unknown here are skipped, a
// field given twice takes its last value, a message given twice is
// merged). A malformed response is an
// error naming where it broke.
func ParseWatchResponse(b []byte, into []tunnels.Upcall) ([]tunnels.Upcall, error) {
	n := 0 // upcalls read
	for len(b) > 0 {
		num, typ, l, err := tag(b)
		if err != nil {
			return into, fmt.Errorf("watch response: %w", err)
		}
		b = b[l:]
		if num != 1 || typ != msgT {
			if l = protowire.ConsumeFieldValue(num, typ, b); l < 0 {
				return into, fmt.Errorf("watch response: field %d: %w", num, protowire.ParseError(l))
			}
			b = b[l:]
			continue
		}
		msg, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return into, fmt.Errorf("watch response: upcall %d: %w", n, protowire.ParseError(l))
		}
		b = b[l:]
		var u tunnels.Upcall
		known, err := parseUpcall(msg, &u)
		if err != nil {
			return into, fmt.Errorf("watch response: upcall %d: %w", n, err)
		}
		if known { // a kind this client does not know is skipped
			into = append(into, u)
		}
		n++
	}
	return into, nil
}

// A message's known fields, by number: name (for errors) and wire type.
// A field of another wire type is an unknown field, as protobuf reads it.
type field struct {
	name string
	typ  protowire.Type
}

const (
	msgT = protowire.BytesType
	intT = protowire.VarintType
)

var (
	upcallFields     = []field{1: {"changed", msgT}, 2: {"terminated", msgT}}
	changedFields    = []field{1: {"resources", msgT}, 2: {"reason", intT}, 3: {"grace_until", msgT}}
	terminatedFields = []field{1: {"tunnel_id", intT}, 2: {"reason", intT}}
	resourcesFields  = []field{1: {"tunnel_id", intT}, 2: {"loadsize", intT}, 3: {"period", intT}, 4: {"min_latency", intT}, 5: {"max_jitter", intT}, 6: {"not_before", msgT}}
	timestampFields  = []field{1: {"seconds", intT}, 2: {"nanos", intT}}
)

// tag reads a field's tag; protowire leaves numbers beyond protobuf's
// range to its caller.
func tag(b []byte) (protowire.Number, protowire.Type, int, error) {
	num, typ, l := protowire.ConsumeTag(b)
	if l < 0 {
		return 0, 0, 0, protowire.ParseError(l)
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, 0, fmt.Errorf("field number %d out of range", num)
	}
	return num, typ, l, nil
}

// fields calls f for each known field of the message b with its value:
// x for a varint, msg for a message. Unknown fields are skipped. An error
// names the field.
func fields(b []byte, known []field, f func(num protowire.Number, x uint64, msg []byte) error) error {
	for len(b) > 0 {
		num, typ, l, err := tag(b)
		if err != nil {
			return err
		}
		b = b[l:]
		if int(num) >= len(known) || known[num].name == "" || known[num].typ != typ {
			if l = protowire.ConsumeFieldValue(num, typ, b); l < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(l))
			}
			b = b[l:]
			continue
		}
		var x uint64
		var msg []byte
		if typ == intT {
			x, l = protowire.ConsumeVarint(b)
		} else {
			msg, l = protowire.ConsumeBytes(b)
		}
		if l < 0 {
			return fmt.Errorf("%s: %w", known[num].name, protowire.ParseError(l))
		}
		b = b[l:]
		if err := f(num, x, msg); err != nil {
			return fmt.Errorf("%s: %w", known[num].name, err)
		}
	}
	return nil
}

// parseUpcall decodes an Upcall: its oneof kind, the last one given wins
// (a kind given again is merged into, as protobuf does). known is false
// when it holds no kind this client knows.
func parseUpcall(b []byte, u *tunnels.Upcall) (known bool, err error) {
	kind := protowire.Number(0)
	err = fields(b, upcallFields, func(num protowire.Number, _ uint64, msg []byte) error {
		if num != kind {
			*u = tunnels.Upcall{}
			kind = num
		}
		if num == 1 {
			u.Kind = tunnels.BandwidthChanged
			return parseChanged(msg, u)
		}
		u.Kind = tunnels.BandwidthTerminated
		return parseTerminated(msg, u)
	})
	return kind != 0, err
}

func parseChanged(b []byte, u *tunnels.Upcall) error {
	return fields(b, changedFields, func(num protowire.Number, x uint64, msg []byte) (err error) {
		switch num {
		case 1:
			err = parseResources(msg, &u.Resources)
			u.TunnelID = u.Resources.TunnelID
		case 2:
			u.Reason = tunnels.Reason(int32(x))
		case 3:
			u.GraceUntil, err = parseTimestamp(msg, u.GraceUntil)
		}
		return err
	})
}

func parseTerminated(b []byte, u *tunnels.Upcall) error {
	return fields(b, terminatedFields, func(num protowire.Number, x uint64, _ []byte) error {
		if num == 1 {
			u.TunnelID = x
		} else {
			u.Reason = tunnels.Reason(int32(x))
		}
		return nil
	})
}

// parseResources decodes a Resources as client.FromPB converts it.
func parseResources(b []byte, r *tunnels.Resources) error {
	return fields(b, resourcesFields, func(num protowire.Number, x uint64, msg []byte) (err error) {
		switch num {
		case 1:
			r.TunnelID = x
		case 2:
			r.LoadsizeBytes = int64(uint32(x))
		case 3:
			r.PeriodUs = int64(uint32(x))
		case 4:
			r.MinLatencyNs = int64(x)
		case 5:
			r.MaxJitterNs = int64(x)
		case 6:
			r.NotBefore, err = parseTimestamp(msg, r.NotBefore)
		}
		return err
	})
}

// parseTimestamp decodes a google.protobuf.Timestamp as AsTime converts
// it, merging into was (a timestamp given twice is merged). Out-of-range
// values are converted as they come, as AsTime does.
func parseTimestamp(b []byte, was time.Time) (time.Time, error) {
	var sec int64
	var nsec int32
	if !was.IsZero() {
		sec, nsec = was.Unix(), int32(was.Nanosecond())
	}
	err := fields(b, timestampFields, func(num protowire.Number, x uint64, _ []byte) error {
		if num == 1 {
			sec = int64(x)
		} else {
			nsec = int32(x)
		}
		return nil
	})
	return time.Unix(sec, int64(nsec)).UTC(), err
}
