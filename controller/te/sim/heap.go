package sim

import "github.com/xlane/xlane/controller/te"

type evKind uint8

// Kinds are ordered: at equal times a transmission ends before anything
// arrives, as the model's buffer accounting (departure, then arrival) needs.
const (
	evTxDone evKind = iota
	evArrive
	evEmit
	evBestEffort
)

// event is 24 bytes: time and kind share one sort key (ties in time break
// by kind; ties in both break deterministically by heap order, which any
// run of the same scenario repeats). The emission time of a packet is not
// stored but recomputed from its tunnel's phase, period and sequence.
type event struct {
	key  uint64 // time << 2 | kind
	k    int32  // tunnel (evArrive, evEmit) or link (evTxDone, evBestEffort)
	i    int32  // link index within the tunnel (evArrive)
	pseq int32  // packet sequence number (evArrive)
}

func (e *event) kind() evKind  { return evKind(e.key & 3) }
func (e *event) time() te.Time { return te.Time(e.key >> 2) }

// eventHeap is a 4-ary min-heap specialised for events: shallower than a
// binary heap and without interface boxing, since push/pop is the
// simulator's hot loop.
type eventHeap struct {
	ev []event
}

func (h *eventHeap) push(t te.Time, kind evKind, e event) {
	e.key = uint64(t)<<2 | uint64(kind)
	h.ev = append(h.ev, e)
	i := len(h.ev) - 1
	for i > 0 {
		p := (i - 1) / 4
		if h.ev[i].key >= h.ev[p].key {
			break
		}
		h.ev[i], h.ev[p] = h.ev[p], h.ev[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	top := h.ev[0]
	n := len(h.ev) - 1
	last := h.ev[n]
	h.ev = h.ev[:n]
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for j := c + 1; j < end; j++ {
			if h.ev[j].key < h.ev[m].key {
				m = j
			}
		}
		if h.ev[m].key >= last.key {
			break
		}
		h.ev[i] = h.ev[m]
		i = m
	}
	h.ev[i] = last
	return top
}

func (h *eventHeap) len() int { return len(h.ev) }
