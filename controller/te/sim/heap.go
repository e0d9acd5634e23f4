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

type event struct {
	t    te.Time
	seq  uint64
	kind evKind
	k    int32 // tunnel (evArrive, evEmit) or link (evTxDone, evBestEffort)
	i    int32 // link index within the tunnel (evArrive)
	pseq int32 // packet sequence number (evArrive)
	emit te.Time
}

func (a *event) less(b *event) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.seq < b.seq
}

// eventHeap is a binary min-heap specialised for events (no interface
// boxing: the simulator's hot loop is push/pop).
type eventHeap struct {
	ev  []event
	seq uint64
}

func (h *eventHeap) push(e event) {
	h.seq++
	e.seq = h.seq
	h.ev = append(h.ev, e)
	i := len(h.ev) - 1
	for i > 0 {
		p := (i - 1) / 2
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
	h.ev[0] = h.ev[n]
	h.ev = h.ev[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.ev[r].less(&h.ev[l]) {
			m = r
		}
		if !h.ev[m].less(&h.ev[i]) {
			break
		}
		h.ev[i], h.ev[m] = h.ev[m], h.ev[i]
		i = m
	}
	return top
}

func (h *eventHeap) len() int { return len(h.ev) }
