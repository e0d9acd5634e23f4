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
	s, maxChunks := p.Schema(), p.Max()
	// Peek skips slots longer than the ring's data length (a broken
	// producer), counted in the ring's Skipped.
	if len(srcs) == 0 {
		return 0
	}
	added := 0
	blocked := 0 // consecutive rings that had nothing that fits
	for blocked < len(srcs) {
		src := srcs[f.turn%len(srcs)]
		data, ok := src.Ring.Peek() // packed from the ring's slot: no copy on the way
		switch {
		case !ok:
			blocked++
		case s.MessageChunks(len(data)) > maxChunks:
			src.Ring.Advance() // it would block its ring forever
			f.Stats.TooLarge++
			continue // look at the same ring's next message
		case !p.Fits(len(data)):
			blocked++
		default:
			err := p.Add(src.Channel, data)
			src.Ring.Advance()
			if err != nil {
				// Fits said yes: only a bug gets here; count it as dropped.
				if errors.Is(err, wire.ErrFull) || errors.Is(err, wire.ErrTooLarge) {
					f.Stats.TooLarge++
				}
				blocked++
				break
			}
			f.Stats.Messages++
			added++
			blocked = 0
		}
		f.turn++
	}
	return added
}
