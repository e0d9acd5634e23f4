package tunnels

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Upcalls queued by concurrent operations each leave in the order they
// were queued, exactly once, whoever flushes, and each has been delivered
// by the time the end queued after it runs.
func TestFlushDeliversEverythingInOrder(t *testing.T) {
	c, _, _ := setup(t)
	c.buffer = 1 << 16
	w := c.Watch("fd")
	defer w.Close()
	const workers, each = 8, 500
	var seq uint64 // under c.mu: the order of queueing
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				c.mu.Lock()
				seq++
				mine := seq
				c.notify("fd", Upcall{TunnelID: seq})
				ended := make(chan struct{})
				c.later(func() { close(ended) })
				c.mu.Unlock()
				c.flush()
				// Like a requester: its end ran, so its upcall (and every one
				// queued before it: none is taken meanwhile) was delivered.
				<-ended
				if n := len(w.C); uint64(n) < mine {
					t.Errorf("upcall %d queued, only %d delivered when its end ran", mine, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(w.C); n != workers*each {
		t.Fatalf("%d upcalls delivered, want %d", n, workers*each)
	}
	for i := range uint64(workers * each) {
		if u := <-w.C; u.TunnelID != i+1 {
			t.Fatalf("upcall %d is the %dth queued", i+1, u.TunnelID)
		}
	}
	c.watch.omu.Lock()
	left, ends := len(c.watch.outbox), len(c.watch.ends)
	c.watch.omu.Unlock()
	if left != 0 || ends != 0 {
		t.Fatalf("%d upcalls and %d ends left queued", left, ends)
	}
}

// Concurrent admissions through the store's write pipeline: a watcher
// sees its tunnel's bound only grow (the upcalls keep commit order), and
// once the requests returned its last upcall is what it was told last.
func TestConcurrentAdmissionsTellInOrder(t *testing.T) {
	c, _ := batchController(t, &recordStore{})
	c.buffer = 1 << 16
	w := c.Watch("fd")
	defer w.Close()
	ctx := context.Background()
	fd, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 50, PeriodUs: 5000})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				if _, err := c.Request(ctx, "other", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, uint16(8000+10*g+i)), LoadsizeBytes: 50, PeriodUs: 5000}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	var last Upcall
	n := 0
	for len(w.C) > 0 {
		u := <-w.C
		if u.TunnelID != fd.TunnelID {
			continue
		}
		if n > 0 && u.Resources.MaxJitterNs < last.Resources.MaxJitterNs {
			t.Fatalf("upcall %d tells jitter %d after %d: out of order", n, u.Resources.MaxJitterNs, last.Resources.MaxJitterNs)
		}
		last, n = u, n+1
	}
	if n == 0 {
		t.Fatal("no upcall for fd's tunnel")
	}
	told := c.Tunnels("fd")
	if len(told) != 1 || told[0].MaxJitterNs != last.Resources.MaxJitterNs || told[0].PeriodUs != last.Resources.PeriodUs {
		t.Fatalf("last upcall %+v, the controller says it told %+v", last.Resources, told)
	}
}

// A flush that finds another one delivering returns at once; the one
// delivering takes what was queued meanwhile before it leaves. Staged: the
// first flusher is held inside its delivery (on the subscriptions' lock)
// while the second upcall and its requester's end are queued.
func TestFlushLeavesNothingBehind(t *testing.T) {
	c, _, _ := setup(t)
	w := c.Watch("fd")
	defer w.Close()
	queue := func(id uint64) chan struct{} {
		ended := make(chan struct{})
		c.mu.Lock()
		c.notify("fd", Upcall{TunnelID: id})
		c.later(func() { close(ended) })
		c.mu.Unlock()
		return ended
	}
	c.watch.mu.Lock() // holds up delivery
	first := queue(1)
	flushed := make(chan struct{})
	go func() { c.flush(); close(flushed) }()
	for { // until the first flusher took the outbox and waits to deliver
		c.watch.omu.Lock()
		taken := len(c.watch.outbox) == 0
		c.watch.omu.Unlock()
		if taken {
			break
		}
		runtime.Gosched()
	}
	second := queue(2)
	c.flush() // another is delivering: returns without waiting
	c.watch.mu.Unlock()
	for _, ch := range []chan struct{}{first, second, flushed} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("left behind: an end did not run, or the flush did not return")
		}
	}
	if n := len(w.C); n != 2 {
		t.Fatalf("%d upcalls delivered, want 2", n)
	}
}
