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

// event is 32 bytes; the emission time of a packet is not stored but
// recomputed from its tunnel's phase, period and sequence number.
type event struct {
	t    te.Time
	key  uint64 // kind in the top byte, then insertion order: ties break by kind, then FIFO
	k    int32  // tunnel (evArrive, evEmit) or link (evTxDone, evBestEffort)
	i    int32  // link index within the tunnel (evArrive)
	pseq int32  // packet sequence number (evArrive)
}

func (e *event) kind() evKind { return evKind(e.key >> 56) }

func (a *event) less(b *event) bool {
	return a.t < b.t || (a.t == b.t && a.key < b.key)
}

// eventHeap is a 4-ary min-heap specialised for events: shallower than a
// binary heap and without interface boxing, since push/pop is the
// simulator's hot loop.
type eventHeap struct {
	ev  []event
	seq uint64
}

func (h *eventHeap) push(e event, kind evKind) {
	h.seq++
	e.key = uint64(kind)<<56 | h.seq
	h.ev = append(h.ev, e)
	i := len(h.ev) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !h.ev[i].less(&h.ev[p]) {
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
			if h.ev[j].less(&h.ev[m]) {
				m = j
			}
		}
		if !h.ev[m].less(&last) {
			break
		}
		h.ev[i] = h.ev[m]
		i = m
	}
	h.ev[i] = last
	return top
}

func (h *eventHeap) len() int { return len(h.ev) }
