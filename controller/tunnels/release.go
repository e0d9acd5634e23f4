package tunnels

import (
	"context"
	"fmt"
)

// Releases are combined like admissions (admit.go): a release queues
// itself, and whoever gets the lock releases every queued tunnel as one
// unit — one synced store write instead of one per tunnel, which is what
// bounded releases to a few hundred per second. If the store or a switch
// fails, every release of the batch fails and every tunnel stays; a
// release of an unknown or foreign tunnel fails alone.

// releaseReq is one queued Release.
type releaseReq struct {
	queuedOp
	ctx   context.Context
	owner string
	id    uint64
}

// Release removes a tunnel of owner.
func (c *Controller) Release(ctx context.Context, owner string, id uint64) error {
	r := &releaseReq{queuedOp: newQueuedOp(), ctx: ctx, owner: owner, id: id}
	combine(c, &c.releases, r, c.releaseQueued)
	c.obs.Operation("release", resultOf(r.err))
	return r.err
}

// releaseQueued serves the queued releases; c.mu is held. Like every
// operation that takes tunnels out of the engine it waits until no
// admission is in flight (see exclusive).
func (c *Controller) releaseQueued() {
	c.draining++
	for len(c.inflight) > 0 {
		c.cond.Wait()
	}
	defer func() {
		c.draining--
		c.cond.Broadcast()
	}()
	batch := takeQueued(&c.qmu, &c.releases, 0)
	finish, open := claim(c, batch)
	defer finish()
	if !open {
		return
	}
	var recs []*record
	var ok []*releaseReq
	seen := map[uint64]bool{}
	for _, r := range batch {
		rec, err := c.own(r.owner, r.id)
		if err == nil && seen[r.id] {
			err = fmt.Errorf("%w: tunnel %d (released twice at once)", ErrNotFound, r.id)
		}
		if err != nil {
			r.err = err
			continue
		}
		seen[r.id] = true
		recs = append(recs, rec)
		ok = append(ok, r)
	}
	if len(recs) == 0 {
		return
	}
	if err := c.removeAll(context.WithoutCancel(ok[0].ctx), recs); err != nil {
		for _, r := range ok {
			r.err = err
		}
	}
}
