package lane

import (
	"errors"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
)

// Source is an application's R-X ring and the channel its messages carry.
type Source struct {
	Ring    *bridge.Ring
	Channel uint16
}

// FillStats counts what Fill did.
type FillStats struct {
	Messages uint64 // packed
	TooLarge uint64 // dropped: larger than any packet of the tunnel holds
}

// Filler packs the messages waiting in the applications' rings into a
// packet, taking the rings in turn so that no application starves the
// others, and never splitting a message across packets.
type Filler struct {
	Stats FillStats
	turn  int
}

// Fill adds messages from srcs to p until the next message of every ring
// does not fit in what is left, or the rings are empty; it returns how
// many it added. A message that could not fit even in an empty packet is
// dropped and counted (it would block its ring forever).
func (f *Filler) Fill(p *wire.Packer, srcs []Source) int {
	// Peek skips slots longer than the ring's data length (a broken
	// producer), counted in the ring's Skipped.
	if len(srcs) == 0 {
		return 0
	}
	if f.turn >= len(srcs) {
		f.turn = 0 // fewer sources than last time
	}
	added := 0
	blocked := 0 // consecutive rings that had nothing that fits
	for blocked < len(srcs) {
		src := srcs[f.turn]
		if f.turn++; f.turn == len(srcs) { // in turn, without a division per message
			f.turn = 0
		}
		data, ok := src.Ring.Peek() // packed from the ring's slot: no copy on the way
		if !ok {
			blocked++
			continue
		}
		// Add finds out whether the message fits (no room is the rare case,
		// once per ring and packet).
		switch err := p.Add(src.Channel, data); {
		case err == nil:
			src.Ring.Advance()
			f.Stats.Messages++
			added++
			blocked = 0
		case err == wire.ErrFull: // it waits whole for the next packet
			blocked++
		case errors.Is(err, wire.ErrTooLarge):
			src.Ring.Advance() // it would block its ring forever
			f.Stats.TooLarge++
			if f.turn--; f.turn < 0 { // look at the same ring's next message
				f.turn = len(srcs) - 1
			}
		default: // Add returns no other error
			blocked++
		}
	}
	return added
}
