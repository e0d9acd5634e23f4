// Package bridge is the R-X and X-R queues of §2.4: single-producer,
// single-consumer rings in shared memory (a file under /dev/shm, mapped
// by both processes) through which applications hand messages to the
// lane and the lane hands received messages, with their timestamps, to
// applications. Push and pop take no lock, make no system call and
// allocate nothing.
package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of the shared file (the host's byte order, as both ends run on the same
// host):
//
//	0    magic "XLRING05"
//	8    slots (power of two), 12 slot data bytes
//	64   head: messages pushed (producer writes)
//	128  tail: messages popped (consumer writes)
//	192  slots: each 48 bytes of meta (stamp:4, channel:2, flags:2, ts0:8,
//	     ts1:8, ts2:8, mono:8, seq:8) then the data bytes, padded to 16
//
// A slot's stamp is its length (17 bits) and the lap it was written in
// (15 bits, the message's index / slots + 1), stored last: the consumer
// sees a new message by reading the slot it reads anyway, never the
// producer's head, so in steady state only the slots' cache lines move
// between the two cores.
const (
	magic         = "XLRING05"
	offHead       = 64
	offTail       = 128
	offSlots      = 192
	metaLen       = 48
	cacheLine     = 64
	slotAlign     = 16 // a slot's size is a multiple of this
	maxSlots      = 1 << 20
	maxSlotLen    = 1 << 16
	tailBatch     = 16
	probeAhead    = 128
	batchAhead    = 64   // messages a busy consumer holds out for after draining (holdFor)
	holdTicks     = 4096 // ~2 µs of TSC: how long it holds out
	minStream     = 2    // a run of this many messages taken in a row starts a hold
	streamMin     = 256  // ... once this many came without a pause (streamFrom)
	gapTicks      = 2048 // ~1 µs: looks that find nothing for this long are a pause
	prefetchAhead = 16
	maxQuiet      = 4096 // ticks (1–2 µs of TSC): a probe the scheduler interrupted does not silence the ring for long
	lenBits       = 17   // holds maxSlotLen
	lenMask       = 1<<lenBits - 1
	lapMask       = 1<<(32-lenBits) - 1
)

// Meta travels with a message.
type Meta struct {
	Channel uint16
	Flags   uint16
	// Timestamps in ns of the system clock. X-R: T0 the sender's (from
	// the packet), T1 the kernel's receive time, T2 the lane's, taken
	// before the packet was looked at. R-X: T1 when the application
	// queued the message.
	T0, T1, T2 int64
	// Mono is the lane's stamp of T2 on its monotonic clock (X-R; ns since
	// the receiver started): for intervals between messages, immune to the
	// system clock being set.
	Mono int64
	Seq  uint64 // the packet's sequence number (X-R)
}

// Ring is a mapping of a shared ring. The ring has one producer and one
// consumer; a Ring value is used by one goroutine at a time (it may both
// push and pop, as in tests).
type Ring struct {
	mem        []byte
	slots      uint64
	dataLen    int
	slotLen    int
	head       *atomic.Uint64
	tail       *atomic.Uint64
	path       string
	slots0     unsafe.Pointer // the first slot, in mem
	lapShift   uint           // log2(slots)
	cachedTail uint64         // producer: the consumer's tail, last read
	local      uint64         // consumer: messages popped
	freed      uint64         // consumer: the tail last stored (lags local by < tailBatch)
	avail      uint64         // consumer: messages known published (a probe saw them)
	probeMax   uint64         // consumer: how far ahead a probe looks first
	busyPoll   bool           // consumer: SetBusyPoll
	quietFrom  uint64         // consumer: when the last probe that found nothing ended (ticks)
	quietFor   uint64         // consumer: how long polls after it stay off the ring (ticks)
	drainedAt  uint64         // consumer: when a busy one last took the last message it knew of (ticks)
	holdFor    uint64         // consumer: how long after drainedAt it takes only whole batches (ticks)
	batchStart uint64         // consumer: the first message of the run it is taking
	emptySince uint64         // consumer: when a busy one's looks began to find nothing (ticks; 0: the last found some)
	streamFrom uint64         // consumer: the first message taken since the producer last paused
	// Skipped counts malformed slots the consumer dropped.
	Skipped uint64
}

// ErrBadRing: a file that is not a ring of this version.
var ErrBadRing = errors.New("not an X-Lane bridge ring")

// Create makes a ring file at path (it must not exist) with slots
// messages of up to dataLen bytes each, and maps it.
func Create(path string, slots, dataLen int) (*Ring, error) {
	if slots < 2 || slots > maxSlots || slots&(slots-1) != 0 {
		return nil, fmt.Errorf("bridge: %d slots: a power of two between 2 and %d", slots, maxSlots)
	}
	if dataLen < 1 || dataLen > maxSlotLen {
		return nil, fmt.Errorf("bridge: slots of %d bytes: between 1 and %d", dataLen, maxSlotLen)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	defer f.Close()
	size := offSlots + slots*slotLen(dataLen)
	if err := f.Truncate(int64(size)); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("bridge: size %s: %w", path, err)
	}
	r, err := mapRing(f, path, size)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	binary.LittleEndian.PutUint32(r.mem[8:], uint32(slots))
	binary.LittleEndian.PutUint32(r.mem[12:], uint32(dataLen))
	copy(r.mem, magic) // last: an opener sees a whole header or none
	if err := r.init(); err != nil {
		r.Close()
		os.Remove(path)
		return nil, err
	}
	return r, nil
}

// Open maps an existing ring file.
func Open(path string) (*Ring, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if st.Size() < offSlots || st.Size() > offSlots+maxSlots*int64(slotLen(maxSlotLen)) {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrBadRing, path, st.Size())
	}
	r, err := mapRing(f, path, int(st.Size()))
	if err != nil {
		return nil, err
	}
	if err := r.init(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// slotLen is a slot's size: meta and data, rounded up to 16 bytes (not to
// a cache line: a 64-byte message then takes 112 bytes, 1.75 lines, not
// two; in the far vCPU placement here 64-byte hand-offs +5–9 %). Slots
// may straddle lines; the consumer reads them a batch behind the producer.
func slotLen(dataLen int) int { return (metaLen + dataLen + slotAlign - 1) / slotAlign * slotAlign }

// span returns the cache line holding p and how many lines the n bytes
// from p touch: what to prefetch for them.
func span(p unsafe.Pointer, n int) (unsafe.Pointer, int) {
	off := int(uintptr(p) & (cacheLine - 1))
	return unsafe.Add(p, -off), (off + n + cacheLine - 1) / cacheLine
}

func mapRing(f *os.File, path string, size int) (*Ring, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("bridge: map %s: %w", path, err)
	}
	return &Ring{mem: mem, path: path}, nil
}

// init reads and checks the header of a mapped ring.
func (r *Ring) init() error {
	if string(r.mem[:8]) != magic {
		return fmt.Errorf("%w: %s has no ring header", ErrBadRing, r.path)
	}
	slots := int(binary.LittleEndian.Uint32(r.mem[8:]))
	dataLen := int(binary.LittleEndian.Uint32(r.mem[12:]))
	if slots < 2 || slots > maxSlots || slots&(slots-1) != 0 || dataLen < 1 || dataLen > maxSlotLen {
		return fmt.Errorf("%w: %s: %d slots of %d bytes", ErrBadRing, r.path, slots, dataLen)
	}
	if need := offSlots + slots*slotLen(dataLen); len(r.mem) != need {
		return fmt.Errorf("%w: %s is %d bytes, %d slots of %d need %d", ErrBadRing, r.path, len(r.mem), slots, dataLen, need)
	}
	r.slots, r.dataLen, r.slotLen = uint64(slots), dataLen, slotLen(dataLen)
	r.head = (*atomic.Uint64)(unsafe.Pointer(&r.mem[offHead]))
	r.tail = (*atomic.Uint64)(unsafe.Pointer(&r.mem[offTail]))
	r.lapShift = uint(bits.TrailingZeros64(r.slots))
	r.slots0 = unsafe.Pointer(&r.mem[offSlots])
	r.local = r.tail.Load()
	r.freed, r.avail, r.streamFrom = r.local, r.local, r.local
	r.probeMax = min(probeAhead, r.slots)
	return nil
}

// DataLen is the largest message a slot holds.
func (r *Ring) DataLen() int { return r.dataLen }

// Slots is the ring's capacity.
func (r *Ring) Slots() int { return int(r.slots) }

// Len is how many messages wait (as the producer sees it: up to 15 popped
// messages may still count until the consumer frees them or finds the
// ring empty).
func (r *Ring) Len() int {
	if r.mem == nil {
		return 0
	}
	return int(r.head.Load() - r.tail.Load())
}

// slotMeta is the first 48 bytes of a slot (the layout above).
type slotMeta struct {
	stamp            uint32
	channel, flags   uint16
	t0, t1, t2, mono int64
	seq              uint64
}

// Push queues msg with its meta (producer side); false when the ring is
// full, or when msg is longer than DataLen (callers check the length).
func (r *Ring) Push(msg []byte, m Meta) bool {
	if len(msg) > r.dataLen {
		return false
	}
	h := r.head.Load() // only this side writes it
	if h-r.cachedTail >= r.slots {
		r.cachedTail = r.tail.Load() // refresh the cached tail only when needed
		if h-r.cachedTail >= r.slots {
			return false
		}
	}
	var next unsafe.Pointer // the slot to fetch for writing, when it is free
	lines := 0
	if i := h + prefetchAhead; i-r.cachedTail < r.slots {
		next, lines = span(r.slot(i), r.slotLen)
	}
	p := r.slot(h)
	sm := (*slotMeta)(p)
	sm.channel, sm.flags = m.Channel, m.Flags
	sm.t0, sm.t1, sm.t2, sm.mono, sm.seq = m.T0, m.T1, m.T2, m.Mono, m.Seq
	copy(unsafe.Slice((*byte)(unsafe.Add(p, metaLen)), len(msg)), msg)
	// The stamp publishes the slot; the head is for Len and a reopening
	// producer.
	publish(&sm.stamp, uint32(len(msg))|r.lap(h)<<lenBits, (*uint64)(unsafe.Pointer(r.head)), h+1, next, lines)
	return true
}

// lap is the stamp's lap of message i; zero is never current, so a slot
// of a fresh ring is empty.
func (r *Ring) lap(i uint64) uint32 { return uint32(i>>r.lapShift+1) & lapMask }

// stamp loads the stamp of message i's slot.
func (r *Ring) stamp(i uint64) uint32 { return atomic.LoadUint32((*uint32)(r.slot(i))) }

// ready returns the oldest message's slot and length, or false when the
// ring is empty; an empty poll frees the slots popped so far, so that a
// producer waiting on a full ring never waits for a batch to fill.
func (r *Ring) ready() (p unsafe.Pointer, n int, ok bool) {
	if r.mem == nil { // closed
		return nil, 0, false
	}
	if r.local >= r.avail && !r.look() {
		if r.freed != r.local {
			r.freed = r.local
			r.tail.Store(r.local)
		}
		return nil, 0, false
	}
	w := r.stamp(r.local)
	if w>>lenBits != r.lap(r.local) { // a producer that published out of order
		r.avail = r.local
		return nil, 0, false
	}
	return r.slot(r.local), int(w & lenMask), true
}

// SetBusyPoll tells the consumer end that it polls in a tight loop (as
// an application's receiving thread does). Then, after a poll found the
// ring empty, the polls within half as long again as that look took
// report empty without reading the ring: a look at an empty ring reads
// the slot the producer writes next, taking from the producer the cache
// line it had fetched for writing, and a consumer looking again at once
// kept the producer waiting for that line (on the two cores here a
// busy consumer made 16-byte hand-offs a third slower and single ones
// 120 ns later). A message is seen at most that half look later. While
// messages stream, a busy consumer that took every message it knew of
// also holds out for a whole batch for a moment (holding). A ring
// popped by the goroutine that pushes it must leave this off: its Pop
// right after an empty one would miss what it just pushed.
func (r *Ring) SetBusyPoll(on bool) { r.busyPoll = on }

// look probes for messages, unless a busy consumer's last probe found
// none a moment ago (SetBusyPoll).
func (r *Ring) look() bool {
	if !r.busyPoll {
		return r.probe()
	}
	t := ticks()
	if r.resting(t) {
		return false
	}
	if r.holding(t) {
		if r.probeBatch() {
			r.batchStart, r.emptySince = r.local, 0
			return true
		}
		r.rest(t, ticks())
		return false
	}
	if r.probe() {
		if r.emptySince != 0 && t-r.emptySince > gapTicks {
			r.streamFrom = r.local // after a pause: a burst, not (yet) a stream
		}
		r.batchStart, r.emptySince = r.local, 0
		return true
	}
	if r.emptySince == 0 {
		r.emptySince = t
	}
	r.rest(t, ticks())
	return false
}

// holding reports whether a busy consumer that drained what it knew of
// at drainedAt still takes only whole batches at t: one that takes each
// message as soon as it is there keeps right behind the producer,
// reading the slots the producer is about to write and taking away the
// lines it had fetched for writing. Holding out for batchAhead messages
// for at most holdTicks keeps it a batch behind while messages stream.
// Only a stream holds: a run of minStream or more taken after streamMin
// messages came with no pause (looks finding nothing for gapTicks). A
// burst after a pause (a packet's messages pushed one by one) or a
// message after a lone one (an exchange) is taken as it comes: holding
// on every drained run, as this ring did before, put 32-message bursts'
// p50 a microsecond later in the far vCPU placement here. A counter
// that went back ends the hold (the difference wraps).
func (r *Ring) holding(t uint64) bool { return t-r.drainedAt < r.holdFor }

// probeBatch looks for a whole batch: the far slot (as probe), else the
// batchAhead-th message after the known ones, a single read.
func (r *Ring) probeBatch() bool {
	if i := r.local + r.probeMax - 1; r.stamp(i)>>lenBits == r.lap(i) {
		r.avail = r.local + r.probeMax
		return true
	}
	from := max(r.avail, r.local)
	n := min(batchAhead, r.probeMax)
	if from+n > r.local+r.probeMax {
		return false
	}
	if i := from + n - 1; r.stamp(i)>>lenBits == r.lap(i) {
		r.avail = from + n
		return true
	}
	return false
}

// probeMore is advance's look past the messages known published; a busy
// consumer that took a run looks for a whole batch, and without one holds.
func (r *Ring) probeMore() bool {
	if !r.busyPoll {
		return r.probe()
	}
	if r.local-r.batchStart < minStream || r.local-r.streamFrom < streamMin {
		// Only a run of several messages, in a stream of many without a
		// pause, means they stream: one taken alone (an exchange, message
		// by message) or a burst (a packet's messages) is looked past as a
		// consumer that is not busy does, and its rest taken at once.
		r.holdFor = 0
		return r.probe()
	}
	if r.probeBatch() {
		return true
	}
	r.drainedAt, r.holdFor = ticks(), holdTicks
	return false
}

// rest begins a busy consumer's quiet after a look at an empty ring from
// start to end (ticks): half as long as the look, from its end.
func (r *Ring) rest(start, end uint64) {
	r.quietFrom, r.quietFor = end, min((end-start)/2, maxQuiet)
}

// resting reports whether a poll at t falls in the quiet; one before it
// (a counter that went back) does not: the difference wraps.
func (r *Ring) resting(t uint64) bool { return t-r.quietFrom < r.quietFor }

// probe looks for published messages from the oldest on, the farthest
// first (as B-Queue does): the producer publishes in order, so a ready
// slot probeMax ahead makes all before it ready, and the consumer then
// reads only slots the producer is done with instead of racing it for
// the cache line of each next slot. When the far one is empty, the
// slots after the known ones are tried at doubling distances (1, 2, 4,
// ...) up to the first empty one: a lone message is seen at once, a
// queue of any length is found in a few reads, and at most one read
// lands on a slot the producer has yet to write (a binary search down
// from the far slot read several, each taking from the producer a line
// it had already fetched for writing).
func (r *Ring) probe() bool {
	if i := r.local + r.probeMax - 1; r.stamp(i)>>lenBits == r.lap(i) {
		r.avail = r.local + r.probeMax
		return true
	}
	from := max(r.avail, r.local) // PeekMore probes with avail ahead
	found := uint64(0)
	for b := uint64(1); from+b <= r.local+r.probeMax; b <<= 1 {
		if i := from + b - 1; r.stamp(i)>>lenBits != r.lap(i) {
			break
		}
		found = b
	}
	if found == 0 {
		return false
	}
	r.avail = from + found
	return true
}

// Pop copies the oldest message into buf (consumer side) and returns its
// length and meta. ok is false when the ring is empty (n 0), or when buf
// is shorter than the message (n its length; nothing is consumed). A
// slot whose length the producer wrote beyond DataLen is skipped and
// counted in Skipped.
func (r *Ring) Pop(buf []byte) (n int, m Meta, ok bool) {
	p, n, ok := r.ready()
	if !ok {
		return 0, Meta{}, false
	}
	if n > r.dataLen { // a producer that broke the layout
		r.Skipped++
		r.advance()
		return 0, Meta{}, false
	}
	if n > len(buf) {
		return n, Meta{}, false
	}
	m = (*slotMeta)(p).meta()
	copy(buf, unsafe.Slice((*byte)(unsafe.Add(p, metaLen)), n))
	r.fetchAhead()
	r.advance()
	return n, m, true
}

func (sm *slotMeta) meta() Meta {
	return Meta{Channel: sm.channel, Flags: sm.flags, T0: sm.t0, T1: sm.t1, T2: sm.t2, Mono: sm.mono, Seq: sm.seq}
}

// fetchAhead asks for the lines of the slot prefetchAhead after the
// oldest when a probe found it published: while messages stream, the
// misses on lines the other core wrote then overlap.
func (r *Ring) fetchAhead() {
	if i := r.local + prefetchAhead; i < r.avail {
		prefetchLines(span(r.slot(i), r.slotLen))
	}
}

// advance consumes the oldest slot. Slots are freed in batches while
// messages keep coming (every store of tail is a cache line the producer
// must fetch back), at once when the ring runs empty.
func (r *Ring) advance() {
	r.local++
	r.free()
}

// free stores the tail after a batch of pops, or when the consumer has
// taken every message it knew of and a probe finds no more.
func (r *Ring) free() {
	drained := r.local >= r.avail && !r.probeMore()
	if drained || r.local-r.freed >= tailBatch {
		r.freed = r.local
		r.tail.Store(r.local)
	}
}

// Peek returns the oldest message in place, without copying or taking it
// (consumer side): data stays valid and unchanged by the producer until
// Advance. ok is false when the ring is empty. A slot whose length the
// producer wrote beyond DataLen is skipped and counted, as in Pop. The
// lane packs R-X messages straight from here into the packet.
func (r *Ring) Peek() (data []byte, ok bool) {
	for {
		p, n, ok := r.ready()
		if !ok {
			return nil, false
		}
		if n > r.dataLen { // a producer that broke the layout
			r.Skipped++
			r.advance()
			continue
		}
		return unsafe.Slice((*byte)(unsafe.Add(p, metaLen)), n), true
	}
}

// PeekMeta returns the meta of the message Peek returned.
func (r *Ring) PeekMeta() Meta {
	if r.mem == nil {
		return Meta{}
	}
	return (*slotMeta)(r.slot(r.local)).meta()
}

// Advance takes the message Peek returned; its data must not be used
// after. Without one (an empty ring) it does nothing.
func (r *Ring) Advance() {
	if r.mem == nil || r.local >= r.avail {
		return
	}
	r.fetchAhead()
	r.advance()
}

// PeekMore extends a Peek to a batch: it sets out[:n] in place to the
// messages after the one Peek returned, oldest first, up to len(out) of
// them and together at most budget bytes, without taking them, and
// returns n. It stops before a slot not yet known to be published and
// before a malformed one (a later Peek skips and counts that). The lane
// packs a batch with one call instead of one per message.
func (r *Ring) PeekMore(out [][]byte, budget int) int {
	if r.mem == nil || r.local >= r.avail { // no Peek before
		return 0
	}
	k := 0
	for i := r.local + 1; k < len(out) && budget > 0; i, k = i+1, k+1 {
		if i >= r.avail && (!r.probe() || i >= r.avail) { // look further once
			break
		}
		w := r.stamp(i) // a slot's first line: read only when it may be taken
		n := int(w & lenMask)
		if w>>lenBits != r.lap(i) || n > r.dataLen || n > budget {
			break
		}
		budget -= n
		out[k] = unsafe.Slice((*byte)(unsafe.Add(r.slot(i), metaLen)), n)
	}
	return k
}

// AdvanceBy takes the message Peek returned and the n-1 PeekMore
// returned after it (n at most as many); their data must not be used
// after. One step for the batch: the slots prefetchAhead on are fetched
// in one call (up to the ring's end), the tail freed as Advance would.
func (r *Ring) AdvanceBy(n int) {
	if r.mem == nil || n <= 0 {
		return
	}
	k := min(uint64(n), r.avail-r.local)
	if from := r.local + prefetchAhead; from < r.avail {
		// Slots are contiguous up to the ring's end.
		m := min(r.avail-from, k, r.slots-from&(r.slots-1))
		prefetchLines(span(r.slot(from), int(m)*r.slotLen))
	}
	r.local += k
	r.free()
}

// PeekLen returns the length of the oldest message without taking it
// (consumer side); ok is false when the ring is empty.
func (r *Ring) PeekLen() (n int, ok bool) {
	_, n, ok = r.ready()
	return n, ok
}

// slot is the start of message i's slot (init checked that the mapping
// holds every slot).
func (r *Ring) slot(i uint64) unsafe.Pointer {
	return unsafe.Add(r.slots0, int(i&(r.slots-1))*r.slotLen)
}

// Close unmaps the ring (the file stays; Remove deletes it). After it,
// Push refuses every message, Pop and Peek find the ring empty, and Len
// is 0.
func (r *Ring) Close() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	r.dataLen = -1 // Push refuses every message: its pointers are unmapped
	if err != nil {
		return fmt.Errorf("bridge: unmap %s: %w", r.path, err)
	}
	return nil
}

// Remove deletes the ring's file.
func (r *Ring) Remove() error { return os.Remove(r.path) }
