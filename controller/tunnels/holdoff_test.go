package tunnels

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound/memory"
)

func withHoldoff(t *testing.T, d time.Duration) *Controller {
	t.Helper()
	return twoSwitch(t, Config{UpcallHoldoff: d})
}

func req(port uint16) Request {
	return Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, port), LoadsizeBytes: 10, PeriodUs: 1000}
}

// mustRequest admits a tunnel to h2's port for owner.
func mustRequest(t *testing.T, c *Controller, owner string, port uint16) {
	t.Helper()
	if _, err := c.Request(context.Background(), owner, req(port)); err != nil {
		t.Fatal(err)
	}
}

// requestAsync admits r for owner in the background; the channel gets its
// error once it is done.
func requestAsync(c *Controller, owner string, r Request) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), owner, r)
		done <- err
	}()
	return done
}

func mustWait(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10 s", what)
	}
}

func mustBlock(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) while a watcher had upcalls queued", what, err)
	case <-time.After(100 * time.Millisecond):
	}
}

// An admission waits while any watcher has upcalls it has not taken, and
// goes on once every one has taken them and said so (Drained).
func TestHoldoffWaitsForEveryWatcher(t *testing.T) {
	c := withHoldoff(t, time.Hour)
	w1, w2 := c.Watch("fd1"), c.Watch("fd2")
	defer w1.Close()
	defer w2.Close()
	mustRequest(t, c, "fd1", 7000)
	mustRequest(t, c, "fd2", 7001)
	// fd2's admission changed fd1's bound: fd1's upcall is queued, and the
	// next admission (which changes both) waits for it.
	if len(w1.C) != 1 {
		t.Fatalf("fd1 has %d upcalls queued, want 1", len(w1.C))
	}
	third := requestAsync(c, "other", req(8000))
	mustBlock(t, third, "an admission")
	<-w1.C
	w1.Drained()
	mustWait(t, third, "the admission after fd1 took its upcall")

	// Now both have one queued; one watcher draining is not enough.
	if len(w1.C) != 1 || len(w2.C) != 1 {
		t.Fatalf("queued: fd1 %d, fd2 %d; want 1 and 1", len(w1.C), len(w2.C))
	}
	fourth := requestAsync(c, "other", req(8001))
	mustBlock(t, fourth, "an admission")
	<-w1.C
	w1.Drained()
	mustBlock(t, fourth, "with fd2's upcall still queued, the admission")
	<-w2.C
	w2.Drained()
	mustWait(t, fourth, "the admission after both took their upcalls")
}

// A watcher that never takes its upcalls holds admissions up for the
// holdoff only; with none configured, not at all.
func TestHoldoffIsBounded(t *testing.T) {
	for _, d := range []time.Duration{0, 50 * time.Millisecond} {
		c := withHoldoff(t, d)
		w := c.Watch("fd")
		defer w.Close()
		mustRequest(t, c, "fd", 7000)
		mustRequest(t, c, "other", 8000)
		if len(w.C) != 1 {
			t.Fatalf("holdoff %v: %d upcalls queued, want 1", d, len(w.C))
		}
		start := time.Now()
		mustRequest(t, c, "other", 8001)
		if took := time.Since(start); took < d {
			t.Errorf("holdoff %v: the admission took %v, less than the holdoff", d, took)
		}
	}
}

// A watcher the holdoff ran out on is not waited for again until it has
// taken its upcalls: one stuck service costs admissions one holdoff, not
// one a batch.
func TestHoldoffSkipsAWatcherItRanOutOn(t *testing.T) {
	c := withHoldoff(t, 20*time.Millisecond)
	w := c.Watch("fd")
	defer w.Close()
	mustRequest(t, c, "fd", 7000)
	mustRequest(t, c, "other", 8000) // queues an upcall for fd, which never takes it
	if len(w.C) == 0 {
		t.Fatal("fd has no upcall queued")
	}
	mustRequest(t, c, "other", 8001) // waits out the 20 ms
	c.mu.Lock()
	c.holdoffFor = 30 * time.Second // were fd still waited for, the next admission would wait this out
	c.mu.Unlock()
	mustWait(t, requestAsync(c, "other", req(8002)), "an admission with only a slow watcher backlogged")

	// Caught up, fd is waited for again.
	for len(w.C) > 0 {
		<-w.C
	}
	w.Drained()
	mustRequest(t, c, "other", 8003) // nothing queued: no wait; this queues fd's next upcall
	if len(w.C) == 0 {
		t.Fatal("fd has no upcall queued")
	}
	next := requestAsync(c, "other", req(8004))
	mustBlock(t, next, "an admission")
	for len(w.C) > 0 {
		<-w.C
	}
	w.Drained()
	mustWait(t, next, "the admission after fd caught up")
}

func TestHoldoffMustNotBeNegative(t *testing.T) {
	_, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2"), UpcallHoldoff: -time.Millisecond})
	if err == nil {
		t.Fatal("a negative holdoff was accepted")
	}
}
