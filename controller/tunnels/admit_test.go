package tunnels

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound/memory"
)

type result struct {
	res Resources
	err error
}

// whileHeld runs start with the controller's lock held and lets go once
// queued() reports want entries: the first to get the lock then serves
// them all as one batch.
func whileHeld(t *testing.T, c *Controller, want int, queued func() int, start func()) {
	t.Helper()
	c.mu.Lock()
	start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.qmu.Lock()
		n := queued()
		c.qmu.Unlock()
		if n == want {
			break
		}
		if time.Now().After(deadline) {
			c.mu.Unlock()
			t.Fatalf("%d of %d queued", n, want)
		}
		time.Sleep(time.Millisecond)
	}
	c.mu.Unlock()
}

// queue starts the requests as one batch.
func queue(t *testing.T, c *Controller, reqs map[string]Request) map[string]chan result {
	t.Helper()
	out := map[string]chan result{}
	whileHeld(t, c, len(reqs), func() int { return len(c.queued) }, func() {
		for name, r := range reqs {
			ch := make(chan result, 1)
			out[name] = ch
			go func() {
				res, err := c.Request(context.Background(), name, r)
				ch <- result{res, err}
			}()
		}
	})
	return out
}

// waitFor returns what ch delivers, failing the test after 5 s.
func waitFor[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("the operation did not return")
		var zero T
		return zero
	}
}

// recordStore keeps every Save; it fails while fail is set.
type recordStore struct {
	mu    sync.Mutex
	saved []Writes
	fail  bool
}

func (s *recordStore) Save(w Writes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("disk full")
	}
	s.saved = append(s.saved, w)
	return nil
}

func (s *recordStore) Load() (Snapshot, error) { return Snapshot{}, nil }

func batchController(t *testing.T, st Store) (*Controller, *memory.Driver) {
	t.Helper()
	drv := memory.New("s1", "s2")
	cfg := Config{Topology: tetest.TwoSwitch(t), Driver: drv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if st != nil {
		cfg.Store = st
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, drv
}

func TestQueuedAdmissionsShareOneBatch(t *testing.T) {
	st := &recordStore{}
	c, drv := batchController(t, st)
	res := queue(t, c, map[string]Request{
		"a":   {Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100},
		"b":   {Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 100, PeriodUs: 100},
		"bad": {Sender: h1, Receiver: netip.AddrPortFrom(h2, 7002), LoadsizeBytes: 0, PeriodUs: 100},
	})
	ra, rb, rbad := waitFor(t, res["a"]), waitFor(t, res["b"]), waitFor(t, res["bad"])
	if ra.err != nil || rb.err != nil {
		t.Fatalf("a: %v, b: %v", ra.err, rb.err)
	}
	if !errors.Is(rbad.err, ErrInvalid) {
		t.Fatalf("bad request: %v, want ErrInvalid (alone)", rbad.err)
	}
	// One store transaction and one driver call per switch for both.
	if len(st.saved) != 1 || len(st.saved[0].Put) != 2 || len(st.saved[0].Services) != 2 {
		t.Fatalf("store writes %+v, want one with both tunnels and both registrations", st.saved)
	}
	applies := map[string]int{}
	for _, call := range drv.Calls() {
		if call.Op == "apply" {
			applies[call.Switch]++
		}
	}
	if applies["s1"] != 1 {
		t.Fatalf("applies per switch %v, want one on s1 for the batch", applies)
	}
	// Both share s1's express queue: whichever the engine admitted first
	// got a bound the second one raised; each result is the bound the
	// engine holds now, which is what is on record.
	for _, r := range []result{ra, rb} {
		got := c.Tunnels("")
		found := false
		for _, g := range got {
			if g.TunnelID == r.res.TunnelID {
				found = g.MaxJitterNs == r.res.MaxJitterNs && g.PeriodUs == r.res.PeriodUs
			}
		}
		if !found {
			t.Fatalf("result %+v is not what the controller holds: %+v", r.res, got)
		}
	}
}

// batchOfTwoFails queues two good requests as one batch and expects both
// to fail with ErrUnavailable.
func batchOfTwoFails(t *testing.T, c *Controller) {
	t.Helper()
	res := queue(t, c, map[string]Request{
		"a": {Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100},
		"b": {Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 100, PeriodUs: 100},
	})
	for _, name := range []string{"a", "b"} {
		if r := waitFor(t, res[name]); !errors.Is(r.err, ErrUnavailable) {
			t.Fatalf("%s: %v, want ErrUnavailable", name, r.err)
		}
	}
}

func TestBatchSwitchFailureFailsEveryAdmission(t *testing.T) {
	c, drv := batchController(t, nil)
	drv.FailNext("s2", 1)
	batchOfTwoFails(t, c)
	if n := len(c.Tunnels("")) + c.engine.Len() + len(drv.Rules("s1")) + len(drv.Rules("s2")); n != 0 {
		t.Fatalf("a failed batch left %d tunnels, engine tunnels or rules", n)
	}
	// The next admission finds everything as before.
	if _, err := c.Request(context.Background(), "a", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
}

func TestBatchStoreFailureFailsEveryAdmission(t *testing.T) {
	st := &recordStore{fail: true}
	c, drv := batchController(t, st)
	batchOfTwoFails(t, c)
	c.mu.Lock()
	regs := len(c.services)
	c.mu.Unlock()
	if n := len(c.Tunnels("")) + c.engine.Len() + len(drv.Rules("s1")) + regs; n != 0 {
		t.Fatalf("a failed write left %d tunnels, engine tunnels, rules or registrations", n)
	}
}

func TestAdmissionOfAGoneRequesterIsUndone(t *testing.T) {
	st := &gateStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	c, drv := batchController(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		res, err := c.Request(ctx, "a", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
		done <- result{res, err}
	}()
	<-st.entered
	cancel() // the requester gives up while its write is under way
	close(st.gate)
	if r := waitFor(t, done); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", r.err)
	}
	if n := len(c.Tunnels("")) + c.engine.Len() + len(drv.Rules("s1")); n != 0 {
		t.Fatalf("%d tunnels, engine tunnels or rules left", n)
	}
	// Its write and its deletion both reached the store.
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.saved) < 2 || len(st.saved[len(st.saved)-1].Delete) != 1 {
		t.Fatalf("store writes %+v, want the tunnel and then its deletion", st.saved)
	}
}

// A batch whose store write is done is installed by whoever holds the
// lock next (a later combiner does that first); its own combiner then
// finds it done and its requester gets the result.
func TestWrittenBatchIsInstalledByTheNextLockHolder(t *testing.T) {
	st := &gateStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	c, drv := batchController(t, st)
	done := make(chan result, 1)
	go func() {
		res, err := c.Request(context.Background(), "a", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
		done <- result{res, err}
	}()
	<-st.entered // the write is under way, the lock free
	c.mu.Lock()  // taken before the batch's combiner gets it back
	if len(c.writing) != 1 || len(c.inflight) != 1 {
		c.mu.Unlock()
		t.Fatalf("%d batches writing, %d admissions in flight; want 1 and 1", len(c.writing), len(c.inflight))
	}
	pw := c.writing[0]
	close(st.gate)
	<-pw.res.done
	c.installWritten()
	n, left, inflight := len(c.recs), len(c.writing), len(c.inflight)
	c.mu.Unlock()
	if n != 1 || left != 0 || inflight != 0 {
		t.Fatalf("after the next lock holder: %d tunnels, %d batches writing, %d in flight; want 1, 0, 0", n, left, inflight)
	}
	r := waitFor(t, done)
	if r.err != nil || r.res.TunnelID == 0 {
		t.Fatalf("the requester got %+v, %v", r.res, r.err)
	}
	if len(drv.Rules("s1")) == 0 {
		t.Fatal("no rules on the switch")
	}
}

// A batch admitted while an earlier one waited for its store write is
// installed with the engine's bounds as they are at its install: the
// earlier one's undo tightened them, and the bounds from before it (with
// the earlier load in them) must be neither committed nor told. A guard
// for any install that works from bounds copied at admission.
func TestBatchAfterAnUndoneOneGetsTheEngineBounds(t *testing.T) {
	st := &gateStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	c, _ := batchController(t, st)
	req := Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 500, PeriodUs: 100}
	ctxA, cancelA := context.WithCancel(context.Background())
	doneA, doneB := make(chan result, 1), make(chan result, 1)
	go func() {
		res, err := c.Request(ctxA, "a", req)
		doneA <- result{res, err}
	}()
	<-st.entered // A's write is under way
	go func() {
		res, err := c.Request(context.Background(), "b", req)
		doneB <- result{res, err}
	}()
	// B is admitted with A in the engine.
	var stale te.Resources
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.inflight)
		for id, rec := range c.inflight {
			if rec.owner == "b" {
				stale, _ = c.engine.Resources(id)
			}
		}
		c.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d admissions in flight, want 2", n)
		}
		time.Sleep(time.Millisecond)
	}
	cancelA() // A is undone at its install
	go func() {
		for range st.entered { // B's write and A's deletion
		}
	}()
	close(st.gate)
	if r := waitFor(t, doneA); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("A got %v, want context.Canceled", r.err)
	}
	r := waitFor(t, doneB)
	if r.err != nil {
		t.Fatal(r.err)
	}
	close(st.entered) // both are done: no write is left
	c.mu.Lock()
	now, ok := c.engine.Resources(r.res.TunnelID)
	c.mu.Unlock()
	if !ok || now.MaxJitterNs >= stale.MaxJitterNs {
		t.Fatalf("B's bound in the engine %+v, with A %+v: want A's undo to have tightened it", now, stale)
	}
	if r.res.MaxJitterNs != now.MaxJitterNs || r.res.MinLatencyNs != now.MinLatencyNs {
		t.Fatalf("B was told %+v; the engine holds %+v", r.res, now)
	}
	if got := c.Tunnels("b"); len(got) != 1 || got[0].MaxJitterNs != now.MaxJitterNs {
		t.Fatalf("B committed as %+v; the engine holds %+v", got, now)
	}
}

// queueReleases starts the releases (service, tunnel) as one batch.
func queueReleases(t *testing.T, c *Controller, rel [][2]any) []chan error {
	t.Helper()
	var out []chan error
	whileHeld(t, c, len(rel), func() int { return len(c.releases) }, func() {
		for _, r := range rel {
			ch := make(chan error, 1)
			out = append(out, ch)
			go func() { ch <- c.Release(context.Background(), r[0].(string), r[1].(uint64)) }()
		}
	})
	return out
}

func admitThree(t *testing.T, c *Controller) []Resources {
	t.Helper()
	var out []Resources
	for i, dst := range []netip.Addr{h2, h3, h2} {
		res, err := c.Request(context.Background(), "svc", Request{Sender: h1, Receiver: netip.AddrPortFrom(dst, uint16(7000+i)), LoadsizeBytes: 100, PeriodUs: 100})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

func TestQueuedReleasesShareOneWrite(t *testing.T) {
	st := &recordStore{}
	c, drv := batchController(t, st)
	ts := admitThree(t, c)
	st.saved = nil
	errs := queueReleases(t, c, [][2]any{{"svc", ts[0].TunnelID}, {"svc", ts[1].TunnelID}, {"other", ts[2].TunnelID}, {"svc", ts[0].TunnelID}})
	if err := waitFor(t, errs[1]); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(t, errs[2]); !errors.Is(err, ErrPermission) {
		t.Fatalf("foreign release: %v, want ErrPermission", err)
	}
	// Of the two releases of one tunnel (queued in either order) one
	// releases it and the other finds it gone.
	e0, e3 := waitFor(t, errs[0]), waitFor(t, errs[3])
	if (e0 == nil) == (e3 == nil) || !errors.Is(errors.Join(e0, e3), ErrNotFound) {
		t.Fatalf("two releases of tunnel %d: %v and %v, want one nil and one ErrNotFound", ts[0].TunnelID, e0, e3)
	}
	if len(st.saved) != 1 || len(st.saved[0].Delete) != 2 {
		t.Fatalf("store writes %+v, want one deleting both tunnels", st.saved)
	}
	left := c.Tunnels("")
	if len(left) != 1 || left[0].TunnelID != ts[2].TunnelID || c.engine.Len() != 1 {
		t.Fatalf("left %+v (engine %d), want only tunnel %d", left, c.engine.Len(), ts[2].TunnelID)
	}
	if got := drv.Rules("s1"); len(got) != 1 || got[0].Tunnel != ts[2].TunnelID {
		t.Fatalf("s1 rules %+v", got)
	}
}

func TestBatchReleaseFailureKeepsEveryTunnel(t *testing.T) {
	c, drv := batchController(t, nil)
	ts := admitThree(t, c)
	before := c.Tunnels("")
	rules := len(drv.Rules("s1")) + len(drv.Rules("s2"))
	drv.FailNext("s2", 1)
	errs := queueReleases(t, c, [][2]any{{"svc", ts[0].TunnelID}, {"svc", ts[1].TunnelID}})
	for _, ch := range errs {
		if err := waitFor(t, ch); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("release: %v, want ErrUnavailable", err)
		}
	}
	after := c.Tunnels("")
	if len(after) != len(before) || c.engine.Len() != 3 || len(drv.Rules("s1"))+len(drv.Rules("s2")) != rules {
		t.Fatalf("a failed batch release changed state: %d tunnels (engine %d), %d rules; before %d, %d", len(after), c.engine.Len(),
			len(drv.Rules("s1"))+len(drv.Rules("s2")), len(before), rules)
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("tunnel %d: %+v before, %+v after", before[i].TunnelID, before[i], after[i])
		}
	}
}

// TestQuotaCountsTheBatch: two requests of one service in one batch, with
// room for one tunnel; the second sees the first although neither is
// committed yet, with or without a store.
func TestQuotaCountsTheBatch(t *testing.T) {
	for _, st := range []Store{nil, &recordStore{}} {
		drv := memory.New("s1", "s2")
		cfg := Config{Topology: tetest.TwoSwitch(t), Driver: drv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Quota: func(string) Quota { return Quota{MaxTunnels: 1} }}
		if st != nil {
			cfg.Store = st
		}
		c, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		out := []chan result{make(chan result, 1), make(chan result, 1)}
		whileHeld(t, c, 2, func() int { return len(c.queued) }, func() {
			for i, dst := range []netip.Addr{h2, h3} {
				go func() {
					res, err := c.Request(context.Background(), "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(dst, 7000), LoadsizeBytes: 100, PeriodUs: 100})
					out[i] <- result{res, err}
				}()
			}
		})
		r0, r1 := waitFor(t, out[0]), waitFor(t, out[1])
		if (r0.err == nil) == (r1.err == nil) || !errors.Is(errors.Join(r0.err, r1.err), ErrExhausted) {
			t.Fatalf("store %v: %v and %v, want one admitted and one over quota", st != nil, r0.err, r1.err)
		}
		if n := len(c.Tunnels("fd")); n != 1 {
			t.Fatalf("store %v: %d tunnels, want 1", st != nil, n)
		}
		c.Close()
	}
}

// With MaxBatch a batch takes at most that many of the queued requests;
// the rest are served by the next lock holders, none left behind. (Store
// writes of several batches may share a transaction; the switches are
// programmed once per batch.)
func TestBatchTakesAtMostMaxBatch(t *testing.T) {
	drv := memory.New("s1", "s2")
	c, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: drv, Store: &recordStore{}, MaxBatch: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reqs := map[string]Request{}
	for i := range 5 {
		reqs[fmt.Sprintf("svc%d", i)] = Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, uint16(7000+i)), LoadsizeBytes: 100, PeriodUs: 1000}
	}
	res := queue(t, c, reqs)
	for name := range reqs {
		if r := waitFor(t, res[name]); r.err != nil {
			t.Fatalf("%s: %v", name, r.err)
		}
	}
	seen := map[uint64]bool{}
	batches := 0
	for _, call := range drv.Calls() {
		if call.Op != "apply" || call.Switch != "s1" {
			continue
		}
		fresh := 0
		for _, r := range call.Batch.Put {
			if !seen[r.Tunnel] {
				seen[r.Tunnel] = true
				fresh++
			}
		}
		if fresh > 2 {
			t.Fatalf("one batch installed %d new tunnels, more than MaxBatch 2", fresh)
		}
		if fresh > 0 {
			batches++
		}
	}
	if len(seen) != 5 || batches < 3 || len(c.Tunnels("")) != 5 {
		t.Fatalf("%d tunnels installed in %d batches, %d held; want all 5 in at least 3", len(seen), batches, len(c.Tunnels("")))
	}
	if _, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2"), MaxBatch: -1}); err == nil {
		t.Fatal("a negative MaxBatch was accepted")
	}
}

// A caller whose turn at the lock serves a capped batch that leaves its
// own request behind serves again: no later caller may come to take it.
// Here a request queued ahead of it (whose caller has not reached the
// lock yet, and never will) fills the one-request batch.
func TestCombinerServesUntilItsOwnRequestIsTaken(t *testing.T) {
	c, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2"), MaxBatch: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ahead := &admission{queuedOp: newQueuedOp(), ctx: context.Background(), owner: "svc0",
		req: Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 1000}}
	c.qmu.Lock()
	c.queued = append(c.queued, ahead)
	c.qmu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), "svc1", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7001), LoadsizeBytes: 100, PeriodUs: 1000})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request waits for a batch nobody will serve")
	}
	select {
	case <-ahead.done:
		if ahead.err != nil {
			t.Fatalf("the request ahead: %v", ahead.err)
		}
	default:
		t.Fatal("the request ahead was not served")
	}
	if n := len(c.Tunnels("")); n != 2 {
		t.Fatalf("%d tunnels, want 2", n)
	}
}
