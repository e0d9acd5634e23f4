package tunnels

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/xlane/xlane/controller/te"
)

// Admissions are combined: a request queues itself and takes the lock;
// whoever gets it first serves the queued requests (up to MaxBatch) as
// one batch. Under
// load one lock holder then runs the TE engine for many requests in a
// row, writes them to the store in one synced transaction, programs
// each switch once, and tells each changed tunnel once per batch, where
// one request at a time paid a lock hand-off, a goroutine wake-up, a
// driver call per switch and an upcall per request for each of these.
// Every admission stays all or nothing: if the store or a switch fails,
// every admission of the batch is undone and fails with ErrUnavailable;
// a TE rejection or a bad request fails only itself.

// admission is one queued Request.
type admission struct {
	queuedOp
	ctx   context.Context
	owner string
	req   Request
	res   Resources

	// batch state
	id      uint64
	tun     te.Tunnel // as admitted; install takes the engine's bounds then
	rec     *record
	isNew   bool        // its owner was registered by this admission
	changes []te.Change // other tunnels' resources it changed
	want    ruleSet
}

// Request admits a tunnel for service owner.
func (c *Controller) Request(ctx context.Context, owner string, r Request) (Resources, error) {
	a := &admission{queuedOp: newQueuedOp(), ctx: ctx, owner: owner, req: r}
	combine(c, &c.queued, a, c.admitQueued)
	c.obs.Operation("request", resultOf(a.err))
	return a.res, a.err
}

// admitQueued serves the queued requests as one batch; c.mu is held (and
// released while the store writes). Batches whose writes are done are
// installed first, by whoever holds the lock: their requesters have
// waited longest, and a batch's own combiner would otherwise wait for
// the lock while the next batch runs the engine.
func (c *Controller) admitQueued() {
	if c.installWritten() {
		// Their upcalls and requesters go now, and get the processor before
		// this batch's engine work: the goroutines a flush wakes queue on
		// the waker's processor, and would wait out the whole engine run
		// behind it. So the lock holder yields after the flush, keeping the
		// lock: released, it would wake a waiting requester first, whose
		// engine run they would wait out instead.
		c.flush()
		runtime.Gosched()
	}
	// Upcalls before admissions: requests arriving meanwhile join the batch.
	c.holdoff(c.holdoffFor)
	for c.draining > 0 && !c.closed {
		c.cond.Wait()
	}
	batch := takeQueued(&c.qmu, &c.queued, c.maxBatch)
	c.obs.AdmissionBatch(len(batch))
	finish, open := claim(c, batch)
	if !open {
		finish()
		return
	}
	// The engine admits each request in turn.
	var admitted []*admission
	var w Writes
	for _, a := range batch {
		t, changes, err := c.admitOne(a)
		if err != nil {
			a.err = err
			continue
		}
		a.id, a.tun, a.changes = t.ID, t, changes
		admitted = append(admitted, a)
		// In flight: the quota checks of the batch's later requests count it.
		c.inflight[t.ID] = a.rec
		if c.commits != nil {
			w.Put = append(w.Put, c.stored(a.rec, t))
		}
	}
	if len(admitted) == 0 || c.commits == nil {
		c.installBatch(admitted, nil)
		finish()
		return
	}
	for _, a := range admitted {
		if a.isNew { // registered in the same transaction
			w.Services = append(w.Services, c.services[a.owner])
		}
	}
	pw := &pendingWrite{batch: admitted, res: c.commits.submit(w), finish: finish}
	c.writing = append(c.writing, pw)
	c.mu.Unlock()
	c.flush()
	<-pw.res.done
	c.mu.Lock()
	c.installWritten() // this batch, unless a later combiner took it
}

// pendingWrite is a batch of admissions whose store write is under way.
type pendingWrite struct {
	batch  []*admission
	res    *written
	finish func() // ends the batch's requests
}

// installWritten installs the batches whose store writes are done, in the
// order they were written, and reports whether there were any; c.mu is
// held. Their requesters are released at the next flush, after the
// upcalls.
func (c *Controller) installWritten() bool {
	did := false
	for len(c.writing) > 0 {
		pw := c.writing[0]
		select {
		case <-pw.res.done:
		default:
			return did // written in order: the later ones are not done either
		}
		c.writing[0] = nil
		c.writing = c.writing[1:]
		c.installBatch(pw.batch, pw.res.err)
		c.later(pw.finish)
		did = true
	}
	return did
}

// installBatch ends admissions the engine took and, unless serr says
// their store write failed, programs the switches for them; c.mu is held.
func (c *Controller) installBatch(admitted []*admission, serr error) {
	for _, a := range admitted {
		delete(c.inflight, a.id)
	}
	c.cond.Broadcast()
	if len(admitted) == 0 {
		return
	}
	if serr != nil {
		for _, a := range admitted {
			if a.isNew { // its registration was not written either
				delete(c.services, a.owner)
			}
		}
		c.undoBatch(admitted, fmt.Errorf("%w: saving state: %w", ErrUnavailable, serr), false)
		return
	}
	// A requester that gave up meanwhile gets nothing installed.
	live := admitted[:0:0]
	var gone []*admission
	for _, a := range admitted {
		if err := a.ctx.Err(); err != nil {
			a.err = err
			gone = append(gone, a)
		} else {
			live = append(live, a)
		}
	}
	if len(gone) > 0 {
		c.forget(gone, c.commits != nil)
	}
	if len(live) == 0 {
		return
	}
	c.install(live)
}

// admitOne validates a request and admits it in the engine.
func (c *Controller) admitOne(a *admission) (te.Tunnel, []te.Change, error) {
	tr, err := c.teRequest(a.req)
	if err != nil {
		return te.Tunnel{}, nil, err
	}
	if err := c.checkQuota(a.owner, 0, a.req); err != nil {
		return te.Tunnel{}, nil, err
	}
	buf := c.scratch.takeChanges()
	t, changes, err := c.engine.AdmitInto(buf, tr)
	if changes == nil {
		c.scratch.putChanges(buf) // not used
	}
	if err != nil {
		return te.Tunnel{}, nil, teErr(err)
	}
	a.rec = &record{owner: a.owner, req: a.req}
	_, a.isNew = c.register(a.owner, c.clock.Now())
	return t, changes, nil
}

// install programs the switches for the batch's admissions and the
// tunnels they changed, as one unit, and commits them. The bounds
// committed are the engine's current ones, so admissions that overtook
// each other (while a store write was under way) leave no stale bound.
func (c *Controller) install(batch []*admission) {
	p := c.reusedPlan()
	var firstErr error
	for _, a := range batch {
		// Later admissions may have moved its bounds, never its tree: the
		// admitted tunnel with today's bounds, not a second export.
		cur := a.tun
		if r, ok := c.engine.Resources(a.id); ok {
			cur.PeriodNs, cur.MinLatencyNs, cur.MaxJitterNs = r.PeriodNs, r.MinLatencyNs, r.MaxJitterNs
		}
		want, err := c.rulesFor(a.rec, cur, c.meterRate(cur))
		if err != nil && firstErr == nil {
			firstErr = err
		}
		a.rec.tun, a.want = cur, want
		p.diff(c.topo, a.id, ruleSet{}, want)
	}
	// Every tunnel the engine changed since each admission, once. The
	// batch's own tunnels are not committed yet and tell nobody. One
	// admission's changes are distinct and exclude itself already.
	changes := batch[0].changes
	if len(batch) > 1 {
		sc := &c.scratch
		if sc.seen == nil {
			sc.seen = make(map[uint64]bool)
		}
		clear(sc.seen)
		n := 0
		for _, a := range batch {
			sc.seen[a.id] = true
			n += len(a.changes)
		}
		clear(sc.merged[:cap(sc.merged)]) // the last batch's: its changes refer to engine tunnels
		changes = slices.Grow(sc.merged[:0], n)
		for _, a := range batch {
			for _, ch := range a.changes {
				if !sc.seen[ch.ID] {
					sc.seen[ch.ID] = true
					changes = append(changes, ch)
				}
			}
		}
		sc.merged = changes
	}
	var ps []pending
	err := firstErr
	if err == nil {
		told, recs := c.current(changes)
		ps, err = c.planChanges(p, told, recs)
	}
	if err == nil {
		err = c.apply(context.WithoutCancel(batch[0].ctx), p)
	}
	if err != nil {
		c.undoBatch(batch, err, true)
		return
	}
	now := c.clock.Now()
	for _, a := range batch {
		a.rec.tun = c.promise(a.rec.tun)
		c.setRules(a.rec, a.want)
		c.recs[a.id] = a.rec
		c.engine.SetTag(a.id, a.rec)
	}
	c.commit(ps, now)
	for _, a := range batch {
		notBefore := now
		if len(a.changes) > 0 {
			notBefore = now.Add(c.grace)
		}
		a.res = c.resources(a.rec.tun, notBefore)
		c.scratch.putChanges(a.changes) // told and committed: the next admissions fill it
		a.changes = nil
	}
}

// undoBatch fails every admission of a batch with err and takes them out
// of the engine and, if they were written, the store.
func (c *Controller) undoBatch(batch []*admission, err error, written bool) {
	for _, a := range batch {
		a.err = err
	}
	c.forget(batch, written)
}

// forget takes admissions that will not be installed out of the engine
// (newest first) and, if they were written, the store.
func (c *Controller) forget(batch []*admission, written bool) {
	if written && c.store != nil {
		var w Writes
		for _, a := range batch {
			w.Delete = append(w.Delete, a.id)
		}
		c.saveOrLog(w)
	}
	for i := len(batch) - 1; i >= 0; i-- {
		c.undoAdmission(batch[i].ctx, batch[i].id)
	}
}

// queuedOp is what combining needs of a queued operation.
type queuedOp struct {
	taken bool          // a combiner has it (set under c.mu)
	done  chan struct{} // closed when the result is final
	err   error
}

func newQueuedOp() queuedOp { return queuedOp{done: make(chan struct{})} }

func (o *queuedOp) op() *queuedOp { return o }

// combine queues op on q, then takes the lock and serves the queue until
// a batch — its own or another caller's — took op, and waits for op's
// result. Serving once is not enough: a batch is capped (max_batch) and
// taken from the front, so with more queued than the cap it may leave op
// behind, and if every caller still to come found its op taken already,
// op would wait forever (the end of a burst of requests: seen as a
// benchmark's preload that never finished).
func combine[T interface{ op() *queuedOp }](c *Controller, q *[]T, op T, serve func()) {
	c.qmu.Lock()
	*q = append(*q, op)
	c.qmu.Unlock()
	c.mu.Lock()
	for !op.op().taken {
		serve()
	}
	c.mu.Unlock()
	c.flush() // the upcalls and ends of what this caller served
	<-op.op().done
}

// claim marks a batch as taken by the caller and returns what ends it
// (closing every done channel); when the controller is closed every
// operation fails with ErrUnavailable and open is false.
func claim[T interface{ op() *queuedOp }](c *Controller, batch []T) (finish func(), open bool) {
	for _, q := range batch {
		q.op().taken = true
	}
	finish = func() {
		for _, q := range batch {
			close(q.op().done)
		}
	}
	if c.closed {
		for _, q := range batch {
			q.op().err = fmt.Errorf("%w: controller closed", ErrUnavailable)
		}
		return finish, false
	}
	return finish, true
}

// takeQueued takes up to n requests (all for n = 0) off the front of a
// queue. A batch's upcalls are all committed at one instant: after a
// stall of the VM or the process some forty admissions queue up, and
// served as one batch their 1,600 upcalls reached the last services
// 15–25 ms later. In smaller batches the first ones' upcalls go out while
// the engine runs the next.
func takeQueued[T any](mu *sync.Mutex, q *[]T, n int) []T {
	mu.Lock()
	defer mu.Unlock()
	out := *q
	if n <= 0 || len(out) <= n {
		*q = nil
		return out
	}
	*q = slices.Clone(out[n:])
	return out[:n:n]
}
