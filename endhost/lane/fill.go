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
	batch [fillBatch][]byte // messages peeked from one ring
}

// fillBatch bounds the messages one ring gives per turn.
const fillBatch = 32

// Fill adds messages from srcs to p until the next message of every ring
// does not fit in what is left, or the rings are empty; it returns how
// many it added. A message that could not fit even in an empty packet is
// dropped and counted (it would block its ring forever).
//
// The first round gives every ring in turn up to its share of the
// packet's free chunks (one message at least), read in place as a batch
// and packed with one call; after it, the rings give one message each in
// turn. So backlogged applications get about the same room in a packet.
func (f *Filler) Fill(p *wire.Packer, srcs []Source) int {
	// Peek skips slots longer than the ring's data length (a broken
	// producer), counted in the ring's Skipped; PeekMore stops before them.
	if len(srcs) == 0 {
		return 0
	}
	if f.turn >= len(srcs) {
		f.turn = 0 // fewer sources than last time
	}
	d := p.Schema().DataLen()
	added := 0
	blocked := 0                                         // consecutive rings that had nothing that fits
	share, left := max(1, p.Free()/len(srcs)), len(srcs) // chunks per ring; turns left in the first round
	for blocked < len(srcs) {
		if left--; left < 0 {
			share = 1
		}
		src := srcs[f.turn]
		if f.turn++; f.turn == len(srcs) { // in turn, without a division per message
			f.turn = 0
		}
		data, ok := src.Ring.Peek() // packed from the ring's slot: no copy on the way
		if !ok {
			blocked++
			continue
		}
		f.batch[0] = data
		k := 1
		// A message takes a chunk at least, and a chunk per data area's
		// bytes: at most share of either.
		if share > 1 && len(data) < share*d {
			k += src.Ring.PeekMore(f.batch[1:min(fillBatch, share)], share*d-len(data))
		}
		// AddAll finds out how many fit (no room is the rare case, once per
		// ring and packet).
		var n int
		var err error
		if k == 1 { // one call less
			if err = p.Add(src.Channel, data); err == nil {
				n = 1
				src.Ring.Advance()
			}
		} else {
			n, err = p.AddAll(src.Channel, f.batch[:k])
			src.Ring.AdvanceBy(n)
		}
		f.Stats.Messages += uint64(n)
		added += n
		switch {
		case err == nil:
			blocked = 0
		case err == wire.ErrFull: // the next waits whole for the next packet
			blocked++
			if n > 0 {
				blocked = 1
			}
		case errors.Is(err, wire.ErrTooLarge):
			src.Ring.AdvanceBy(1) // it would block its ring forever
			f.Stats.TooLarge++
			blocked = 0
			if f.turn--; f.turn < 0 { // look at the same ring's next messages
				f.turn = len(srcs) - 1
			}
			left++ // its turn again
		default: // AddAll returns no other error
			blocked++
		}
	}
	return added
}
