package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

func newPair(t testing.TB, slots, dataLen int) (prod, cons *Ring) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ring")
	prod, err := Create(path, slots, dataLen)
	if err != nil {
		t.Fatal(err)
	}
	cons, err = Open(path) // a second, independent mapping of the file
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close(); cons.Close() })
	return prod, cons
}

func payload(i uint64, b []byte) []byte {
	n := int(i%uint64(len(b)-7)) + 8
	binary.LittleEndian.PutUint64(b, i)
	for j := 8; j < n; j++ {
		b[j] = byte(i) + byte(j)
	}
	return b[:n]
}

// TestOrderAndContentAcrossMappings pushes a million messages through
// one mapping while another goroutine pops them through a second
// mapping of the same file: every message arrives once, in order, intact.
func TestOrderAndContentAcrossMappings(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy poll %v", busy), func(t *testing.T) { orderAndContent(t, busy) })
	}
}

func orderAndContent(t *testing.T, busy bool) {
	prod, cons := newPair(t, 64, 100)
	cons.SetBusyPoll(busy)
	const n = 1_000_000
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 100)
		want := make([]byte, 100)
		for i := uint64(0); i < n; {
			l, m, ok := cons.Pop(buf)
			if !ok {
				// Yield: on a loaded machine two spinning goroutines
				// would otherwise wait out each other's time slices.
				runtime.Gosched()
				continue
			}
			if exp := payload(i, want); !bytes.Equal(buf[:l], exp) || m.Seq != i || m.Channel != uint16(i) || m.T1 != int64(i)*3 {
				done <- fmt.Errorf("message %d: got %d bytes %x meta %+v", i, l, buf[:min(l, 16)], m)
				return
			}
			i++
		}
		done <- nil
	}()
	produce(t, prod, n, func(i uint64) Meta { return Meta{Channel: uint16(i), T1: int64(i) * 3, Seq: i} }, done)
}

func TestFullEmptyAndLimits(t *testing.T) {
	prod, cons := newPair(t, 4, 10)
	buf := make([]byte, 10)
	if _, _, ok := cons.Pop(buf); ok {
		t.Fatal("popped from an empty ring")
	}
	if _, ok := cons.PeekLen(); ok {
		t.Fatal("peeked into an empty ring")
	}
	for i := range 4 {
		if !prod.Push([]byte{byte(i)}, Meta{}) {
			t.Fatalf("push %d into a ring of 4 refused", i)
		}
	}
	if prod.Push([]byte{9}, Meta{}) {
		t.Fatal("a full ring took a fifth message")
	}
	if prod.Push(make([]byte, 11), Meta{}) {
		t.Fatal("a message longer than a slot was taken")
	}
	if n, ok := cons.PeekLen(); !ok || n != 1 || prod.Len() != 4 {
		t.Fatalf("peek: %d %v, %d queued", n, ok, prod.Len())
	}
	if n, _, ok := cons.Pop(make([]byte, 0)); ok || n != 1 {
		t.Fatalf("a short buffer: n %d ok %v, want the length and nothing consumed", n, ok)
	}
	for i := range 4 {
		if n, _, ok := cons.Pop(buf); !ok || n != 1 || buf[0] != byte(i) {
			t.Fatalf("pop %d: %d %v %x", i, n, ok, buf[:n])
		}
	}
	if !prod.Push([]byte{7}, Meta{}) {
		t.Fatal("no room after the ring was emptied")
	}
}

func TestBadRingsAreRefused(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ slots, size int }{{3, 10}, {1, 10}, {8, 0}, {8, 1 << 17}} {
		if _, err := Create(filepath.Join(dir, "x"), c.slots, c.size); err == nil {
			t.Errorf("Create(%d slots of %d) accepted", c.slots, c.size)
		}
	}
	path := filepath.Join(dir, "ring")
	r, err := Create(path, 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := Create(path, 8, 16); err == nil {
		t.Error("Create over an existing ring accepted")
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, bytes.Repeat([]byte{0xaa}, 4096), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("XLRING03"), 0o600)
	good, _ := os.ReadFile(path)
	lying := filepath.Join(dir, "lying") // a header that claims more slots than the file has
	binary.LittleEndian.PutUint32(good[8:], 1024)
	os.WriteFile(lying, good, 0o600)
	for _, p := range []string{junk, short, lying} {
		if _, err := Open(p); !errors.Is(err, ErrBadRing) {
			t.Errorf("Open(%s): %v, want ErrBadRing", filepath.Base(p), err)
		}
	}
	if _, err := Open(filepath.Join(dir, "none")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
}

// Slots are packed to 16 bytes, so they straddle cache lines; what a
// prefetch of a slot (or of a run of them) fetches must cover every byte.
func TestSlotsPackedAndSpanned(t *testing.T) {
	for _, c := range []struct{ data, want int }{{1, 64}, {16, 64}, {17, 80}, {64, 112}, {100, 160}} {
		if got := slotLen(c.data); got != c.want {
			t.Errorf("slotLen(%d) = %d, want %d", c.data, got, c.want)
		}
	}
	r, _ := newPair(t, 16, 64)
	for i := range uint64(16) {
		for _, n := range []int{r.slotLen, 3 * r.slotLen} {
			p := r.slot(i)
			first, lines := span(p, n)
			from, to := uintptr(first), uintptr(first)+uintptr(lines*cacheLine)
			if from%cacheLine != 0 || from > uintptr(p) || to < uintptr(p)+uintptr(n) || to-uintptr(p)-uintptr(n) >= cacheLine {
				t.Errorf("slot %d, %d bytes at %#x: lines %#x..%#x do not just cover them", i, n, uintptr(p), from, to)
			}
		}
	}
}

func TestPushPopAllocateNothing(t *testing.T) {
	prod, cons := newPair(t, 8, 64)
	msg, buf := make([]byte, 64), make([]byte, 64)
	if a := testing.AllocsPerRun(1000, func() { prod.Push(msg, Meta{Seq: 1}); cons.Pop(buf) }); a != 0 {
		t.Errorf("push and pop allocate %.1f times", a)
	}
}

// Peek shows the oldest message in place until Advance takes it; the
// producer cannot reuse its slot meanwhile, even with the ring full.
func TestPeekAndAdvance(t *testing.T) {
	prod, cons := newPair(t, 4, 16)
	cons.Advance() // nothing to take: a no-op
	if _, ok := cons.Peek(); ok {
		t.Fatal("peeked into an empty ring")
	}
	for i := range 4 {
		if !prod.Push([]byte{byte('a' + i), 'x'}, Meta{Seq: uint64(i), T1: int64(100 + i)}) {
			t.Fatalf("push %d refused", i)
		}
	}
	for i := range 4 {
		d1, ok1 := cons.Peek()
		d2, ok2 := cons.Peek()
		if !ok1 || !ok2 || string(d1) != string([]byte{byte('a' + i), 'x'}) || &d1[0] != &d2[0] {
			t.Fatalf("message %d: peeked %q then %q", i, d1, d2)
		}
		if m := cons.PeekMeta(); m.Seq != uint64(i) || m.T1 != int64(100+i) {
			t.Fatalf("message %d: meta %+v", i, m)
		}
		if prod.Push([]byte("y"), Meta{}) {
			t.Fatalf("message %d: the producer reused a slot being peeked", i)
		}
		cons.Advance()
	}
	if _, ok := cons.Peek(); ok {
		t.Fatal("a fifth message")
	}
	cons.Advance()
	if !prod.Push([]byte("z"), Meta{}) {
		t.Fatal("push after everything was taken refused")
	}
	if d, ok := cons.Peek(); !ok || string(d) != "z" {
		t.Fatalf("after a no-op Advance: %q %v", d, ok)
	}
	// A slot claiming more than a slot holds is skipped by Peek too.
	cons.Advance()
	atomic.StoreUint32((*uint32)(prod.slot(5)), uint32(17)|prod.lap(5)<<lenBits)
	prod.head.Store(6)
	if !prod.Push([]byte("after"), Meta{}) {
		t.Fatal("push after the bad slot refused")
	}
	if d, ok := cons.Peek(); !ok || string(d) != "after" || cons.Skipped != 1 {
		t.Fatalf("after the bad slot: %q %v, skipped %d", d, ok, cons.Skipped)
	}
	msg := make([]byte, 16)
	cons.Advance()
	if a := testing.AllocsPerRun(1000, func() { prod.Push(msg, Meta{Seq: 1}); cons.Peek(); cons.Advance() }); a != 0 {
		t.Errorf("push, peek and advance allocate %.1f times", a)
	}
}

// A closed ring refuses and reports nothing instead of touching the
// unmapped file.
func TestClosedRing(t *testing.T) {
	prod, cons := newPair(t, 4, 16)
	prod.Push([]byte("a"), Meta{})
	cons.Peek()
	prod.Close()
	cons.Close()
	if prod.Push([]byte("b"), Meta{}) || prod.Len() != 0 {
		t.Fatal("push into a closed ring")
	}
	if _, _, ok := cons.Pop(make([]byte, 16)); ok {
		t.Fatal("pop from a closed ring")
	}
	if _, ok := cons.Peek(); ok {
		t.Fatal("peek into a closed ring")
	}
	cons.Advance()
	if m := cons.PeekMeta(); m != (Meta{}) {
		t.Fatalf("meta of a closed ring: %+v", m)
	}
}

// TestAcrossProcesses: a child process (this test binary again) produces
// into the ring; this process consumes. The ring is what applications
// and the lane share.
func TestAcrossProcesses(t *testing.T) {
	if path := os.Getenv("XLANE_RING_CHILD"); path != "" {
		r, err := Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		n, _ := strconv.Atoi(os.Getenv("XLANE_RING_N"))
		buf := make([]byte, 100)
		for i := uint64(0); i < uint64(n); {
			if r.Push(payload(i, buf), Meta{Seq: i}) {
				i++
			}
		}
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "ring")
	cons, err := Create(path, 256, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	const n = 200_000
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcrossProcesses$")
	cmd.Env = append(os.Environ(), "XLANE_RING_CHILD="+path, "XLANE_RING_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf, want := make([]byte, 100), make([]byte, 100)
	for i := uint64(0); i < n; {
		l, m, ok := cons.Pop(buf)
		if !ok {
			continue
		}
		if !bytes.Equal(buf[:l], payload(i, want)) || m.Seq != i {
			t.Fatalf("message %d from the other process: %x seq %d", i, buf[:min(l, 16)], m.Seq)
		}
		i++
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("producer process: %v", err)
	}
}

// A slot whose stamp claims more bytes than a slot holds (a producer that
// broke the layout) is skipped and counted; the messages after it arrive.
func TestMalformedSlotIsSkipped(t *testing.T) {
	prod, cons := newPair(t, 4, 10)
	atomic.StoreUint32((*uint32)(prod.slot(0)), uint32(11)|prod.lap(0)<<lenBits)
	prod.head.Store(1)
	if !prod.Push([]byte("next"), Meta{Channel: 5}) {
		t.Fatal("push after the bad slot refused")
	}
	buf := make([]byte, 10)
	if _, _, ok := cons.Pop(buf); ok || cons.Skipped != 1 {
		t.Fatalf("bad slot: ok %v, skipped %d", ok, cons.Skipped)
	}
	if n, m, ok := cons.Pop(buf); !ok || string(buf[:n]) != "next" || m.Channel != 5 {
		t.Fatalf("after the bad slot: %q %+v %v", buf[:n], m, ok)
	}
	// A stale stamp of the previous lap is not a message.
	atomic.StoreUint32((*uint32)(prod.slot(2)), uint32(1)|(prod.lap(2)-1)<<lenBits)
	if _, _, ok := cons.Pop(buf); ok {
		t.Fatal("popped a slot stamped in an earlier lap")
	}
}

// peekBatch is Peek and PeekMore: up to len(out) messages, budget bytes.
func peekBatch(r *Ring, out [][]byte, budget int) int {
	d, ok := r.Peek()
	if !ok {
		return 0
	}
	out[0] = d
	return 1 + r.PeekMore(out[1:], budget-len(d))
}

// TestPeekMoreAcrossMappings: a consumer taking batches (Peek, PeekMore) of varying size
// (and only part of some) through a second mapping while a producer keeps
// pushing gets every message once, in order, intact.
func TestPeekMoreAcrossMappings(t *testing.T) {
	prod, cons := newPair(t, 64, 100)
	const n = 500_000
	done := make(chan error, 1)
	go func() {
		out := make([][]byte, 40)
		want := make([]byte, 100)
		for i, round := uint64(0), 0; i < n; round++ {
			k := peekBatch(cons, out[:1+round%len(out)], 1<<30)
			if k == 0 {
				runtime.Gosched()
				continue
			}
			take := k - round%2 // every other batch, leave the last for the next
			if take == 0 {
				take = 1
			}
			for j := range take {
				if exp := payload(i+uint64(j), want); !bytes.Equal(out[j], exp) {
					done <- fmt.Errorf("message %d (batch of %d): got %x", i+uint64(j), k, out[j][:min(len(out[j]), 16)])
					return
				}
			}
			cons.AdvanceBy(take)
			i += uint64(take)
		}
		done <- nil
	}()
	produce(t, prod, n, func(uint64) Meta { return Meta{} }, done)
}

// produce pushes messages 0..n-1 (payload, with meta from i) while a
// consumer takes them and reports on done; the test fails if it does.
func produce(t *testing.T, prod *Ring, n uint64, meta func(uint64) Meta, done chan error) {
	t.Helper()
	buf := make([]byte, 100)
	for i := uint64(0); i < n; {
		if prod.Push(payload(i, buf), meta(i)) {
			i++
			continue
		}
		select {
		case err := <-done: // the consumer failed (or ended early)
			t.Fatalf("at message %d pushed: %v", i, err)
		default:
		}
		// Yield: on a loaded machine two spinning goroutines would
		// otherwise wait out each other's time slices.
		SpinWait()
		runtime.Gosched()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if prod.Len() != 0 {
		t.Errorf("%d messages left", prod.Len())
	}
}

// A batch stops before a malformed slot (the next one skips and counts
// it) and at its byte budget; slots stay the consumer's until AdvanceBy.
func TestPeekMoreStopsAtMalformedSlot(t *testing.T) {
	prod, cons := newPair(t, 8, 10)
	out := make([][]byte, 8)
	if k := peekBatch(cons, out, 100); k != 0 || cons.PeekMore(out, 100) != 0 {
		t.Fatalf("an empty ring gave %d", k)
	}
	cons.AdvanceBy(3) // nothing peeked: a no-op
	for _, m := range []string{"a", "b"} {
		prod.Push([]byte(m), Meta{})
	}
	atomic.StoreUint32((*uint32)(prod.slot(2)), uint32(11)|prod.lap(2)<<lenBits)
	prod.head.Store(3)
	for _, m := range []string{"c", "d", "e", "f", "g"} {
		prod.Push([]byte(m), Meta{})
	}
	if prod.Push([]byte("h"), Meta{}) {
		t.Fatal("a ninth message in eight slots")
	}
	if k := peekBatch(cons, out, 0); k != 1 || string(out[0]) != "a" {
		t.Fatalf("a batch over budget: %d %q", k, out[:k])
	}
	if k := peekBatch(cons, out, 100); k != 2 || string(out[0]) != "a" || string(out[1]) != "b" {
		t.Fatalf("first batch: %d %q", k, out[:k])
	}
	cons.AdvanceBy(2)
	if k := peekBatch(cons, out[:3], 100); k != 3 || cons.Skipped != 1 || string(out[0]) != "c" || string(out[2]) != "e" {
		t.Fatalf("second batch: %d %q, skipped %d", k, out[:k], cons.Skipped)
	}
	cons.AdvanceBy(1)
	if k := peekBatch(cons, out, 2); k != 2 || string(out[0]) != "d" || string(out[1]) != "e" {
		t.Fatalf("a batch of two bytes: %d %q", k, out[:k])
	}
	if k := peekBatch(cons, out, 100); k != 4 || string(out[0]) != "d" || string(out[3]) != "g" {
		t.Fatalf("third batch: %d %q", k, out[:k])
	}
	cons.AdvanceBy(10) // more than peeked: only what was there
	if k := peekBatch(cons, out, 100); k != 0 {
		t.Fatalf("%d left", k)
	}
	if a := testing.AllocsPerRun(1000, func() { prod.Push([]byte("x"), Meta{}); peekBatch(cons, out, 100); cons.AdvanceBy(1) }); a != 0 {
		t.Errorf("push, peek batch and advance allocate %.1f times", a)
	}
}

// A batch holds every message published when it is taken, up to the
// consumer's look-ahead (probeAhead), whatever their number: a queue of
// 100 gives a batch of 100, not of the 64 a power-of-two probe finds.
func TestPeekMoreFindsEveryPublishedMessage(t *testing.T) {
	prod, cons := newPair(t, 512, 16)
	out := make([][]byte, 400)
	msg := make([]byte, 16)
	sent := uint64(0)
	for k := 1; k <= 300; k++ {
		for range k {
			binary.LittleEndian.PutUint64(msg, sent)
			if !prod.Push(msg, Meta{}) {
				t.Fatalf("k=%d: ring full", k)
			}
			sent++
		}
		first, ok := cons.Peek()
		if !ok {
			t.Fatalf("k=%d: Peek found nothing", k)
		}
		got := 1 + cons.PeekMore(out, 1<<30)
		if want := min(k, probeAhead); got != want {
			t.Fatalf("k=%d published: a batch of %d, want %d", k, got, want)
		}
		if n := binary.LittleEndian.Uint64(first); n != sent-uint64(k) {
			t.Fatalf("k=%d: batch starts at message %d, want %d", k, n, sent-uint64(k))
		}
		cons.AdvanceBy(got)
		for rest := k - got; rest > 0; rest-- {
			if _, ok := cons.Peek(); !ok {
				t.Fatalf("k=%d: %d messages missing", k, rest)
			}
			cons.Advance()
		}
		if _, ok := cons.Peek(); ok {
			t.Fatalf("k=%d: a message more than was pushed", k)
		}
	}
}

// A busy consumer stays off the ring for a while after finding it empty:
// a message pushed then is not read until the quiet ends, and then at
// once; a counter that went back, or a ring not marked busy, reads at
// once.
func TestBusyPollQuiet(t *testing.T) {
	prod, cons := newPair(t, 16, 8)
	buf := make([]byte, 8)
	if _, _, ok := cons.Pop(buf); ok {
		t.Fatal("a new ring has a message")
	}
	cons.SetBusyPoll(true)
	if _, _, ok := cons.Pop(buf); ok {
		t.Fatal("a new ring has a message")
	}
	if cons.quietFor > maxQuiet {
		t.Fatalf("quiet for %d ticks, at most %d", cons.quietFor, maxQuiet)
	}
	cons.quietFrom, cons.quietFor = ticks(), 1<<62 // as if the look had taken that long
	prod.Push([]byte("one"), Meta{})
	for range 100 {
		if _, _, ok := cons.Pop(buf); ok {
			t.Fatal("a busy consumer read the ring within its quiet")
		}
	}
	cons.quietFor = 0
	if n, _, ok := cons.Pop(buf); !ok || string(buf[:n]) != "one" {
		t.Fatalf("after the quiet: %q, %v", buf[:n], ok)
	}
	cons.Pop(buf) // empty: a new quiet begins
	// The counter went back since.
	cons.quietFrom, cons.quietFor = ticks()+1<<40, 1<<62
	prod.Push([]byte("two"), Meta{})
	if n, _, ok := cons.Pop(buf); !ok || string(buf[:n]) != "two" {
		t.Fatalf("the counter went back: %q, %v", buf[:n], ok)
	}
	cons.SetBusyPoll(false)
	cons.quietFrom, cons.quietFor = ticks(), 1<<62
	prod.Push([]byte("three"), Meta{})
	if n, _, ok := cons.Pop(buf); !ok || string(buf[:n]) != "three" {
		t.Fatalf("not busy: %q, %v", buf[:n], ok)
	}
}

// The quiet lasts half as long as the look that found the ring empty,
// from the look's end, at most maxQuiet ticks.
func TestBusyPollQuietSpan(t *testing.T) {
	var r Ring
	r.rest(1000, 1400)
	for _, c := range []struct {
		at   uint64
		want bool
	}{{999, false}, {1400, true}, {1500, true}, {1599, true}, {1600, false}} {
		if got := r.resting(c.at); got != c.want {
			t.Errorf("a look from 1000 to 1400: resting at %d is %v", c.at, got)
		}
	}
	r.rest(0, 1_000_000)
	if !r.resting(1_000_000+maxQuiet-1) || r.resting(1_000_000+maxQuiet) {
		t.Errorf("a long look's quiet is not cut at %d ticks", maxQuiet)
	}
}

// A busy consumer that just drained a run of messages takes only a whole
// batch while it holds out, then whatever is there; one that took a lone
// message, is not busy, or whose hold is over takes a lone message at
// once.
func TestBusyConsumerHoldsForABatch(t *testing.T) {
	cons, push, pop := streamed(t)
	s := streamMin
	if cons.holdFor != holdTicks {
		t.Fatalf("after a stream: hold for %d ticks, want %d", cons.holdFor, holdTicks)
	}
	push(s, s+3)
	cons.drainedAt, cons.holdFor = ticks(), 1<<62 // holding long
	for range 100 {
		cons.quietFor = 0
		if _, _, ok := cons.Pop(make([]byte, 8)); ok {
			t.Fatal("a holding consumer took fewer than a batch")
		}
	}
	push(s+3, s+batchAhead) // a whole batch now
	for i := range batchAhead {
		pop(s + i)
	}
	// Drained: it holds again, for holdTicks from now.
	if cons.holdFor != holdTicks || !cons.holding(cons.drainedAt) || cons.holding(cons.drainedAt+holdTicks) {
		t.Fatalf("after draining: hold for %d ticks from %d", cons.holdFor, cons.drainedAt)
	}
	s += batchAhead
	push(s, s+1)
	cons.holdFor = 0 // the hold is over: a lone message is taken
	pop(s)
	// A counter that went back ends the hold.
	push(s+1, s+2)
	cons.drainedAt, cons.holdFor = ticks()+1<<40, 1<<62
	pop(s + 1)
	// A message taken alone (an exchange) starts no hold: the next one
	// is taken at once.
	if cons.holdFor != 0 {
		t.Fatalf("after a lone message: hold for %d ticks", cons.holdFor)
	}
	push(s+2, s+3)
	pop(s + 2)
	// Not busy: no hold.
	cons.SetBusyPoll(false)
	push(s+3, s+4)
	cons.drainedAt, cons.holdFor = ticks(), 1<<62
	pop(s + 3)
}

// Only a stream holds: a burst after a pause (a packet's messages pushed
// one by one) is taken as it comes, even after a stream; without the
// pause the same burst continues the stream and is held.
func TestBurstAfterPauseIsNotHeld(t *testing.T) {
	for _, pause := range []bool{true, false} {
		cons, push, pop := streamed(t)
		s := streamMin
		cons.holdFor = 0 // the hold is over
		cons.quietFor = 0
		if _, _, ok := cons.Pop(make([]byte, 8)); ok {
			t.Fatal("a message from an empty ring")
		}
		if cons.emptySince == 0 {
			t.Fatal("an empty look did not start an empty spell")
		}
		if pause {
			cons.emptySince -= 2 * gapTicks // the ring stayed empty that long
		} else {
			// No pause: as if a look had just found messages. (Timing a real
			// spell under ~1 µs would fail whenever the test is preempted.)
			cons.emptySince = 0
		}
		push(s, s+2) // a burst of two, taken as a run
		pop(s)
		pop(s + 1)
		if !pause {
			// Part of the stream: having drained it, the consumer holds.
			if cons.holdFor != holdTicks {
				t.Fatalf("no pause: a burst after a stream: hold for %d ticks, want %d", cons.holdFor, holdTicks)
			}
			continue
		}
		if cons.holdFor != 0 {
			t.Fatalf("a burst after a pause: hold for %d ticks", cons.holdFor)
		}
		push(s+2, s+3)
		pop(s + 2) // at once
	}
}

// streamed returns a busy consumer that has taken a stream (streamMin
// messages without a pause, as one run), with pushPop's push and pop.
func streamed(t *testing.T) (cons *Ring, push func(from, to int), pop func(want int)) {
	prod, cons := newPair(t, 512, 8)
	cons.SetBusyPoll(true)
	push, pop = pushPop(t, prod, cons)
	push(0, streamMin)
	for i := range streamMin {
		pop(i)
	}
	return cons, push, pop
}

// pushPop returns a test's push of messages from..to-1 (each one byte,
// its number) and its pop of the next one, wanted to be message want,
// with no quiet in the way.
func pushPop(t *testing.T, prod, cons *Ring) (push func(from, to int), pop func(want int)) {
	buf := make([]byte, 8)
	push = func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if !prod.Push([]byte{byte(i)}, Meta{}) {
				t.Fatalf("push %d: full", i)
			}
		}
	}
	pop = func(want int) {
		t.Helper()
		cons.quietFor = 0
		if n, _, ok := cons.Pop(buf); !ok || n != 1 || buf[0] != byte(want) {
			t.Fatalf("pop: %v %v, want message %d", buf[:n], ok, want)
		}
	}
	return push, pop
}
