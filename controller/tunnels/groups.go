package tunnels

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// JoinGroup adds host member to multicast group (address and UDP port)
// and re-plans the trees of every tunnel sending to the group. If one of
// them cannot reach the new member, nothing changes.
func (c *Controller) JoinGroup(ctx context.Context, group netip.AddrPort, member netip.Addr) error {
	return c.membership(ctx, group, member, true)
}

// LeaveGroup removes a member; tunnels left without receivers end with
// BandwidthTerminated.
func (c *Controller) LeaveGroup(ctx context.Context, group netip.AddrPort, member netip.Addr) error {
	return c.membership(ctx, group, member, false)
}

// Members lists a group's member hosts.
func (c *Controller) Members(group netip.AddrPort) []netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memberList(group)
}

func (c *Controller) membership(ctx context.Context, group netip.AddrPort, member netip.Addr, join bool) (err error) {
	unlock, err := c.exclusive()
	if err != nil {
		return err
	}
	defer unlock()
	defer func() {
		op := "leave"
		if join {
			op = "join"
		}
		c.obs.Operation(op, resultOf(err))
	}()
	if !group.Addr().Is4() || !group.Addr().IsMulticast() {
		return fmt.Errorf("%w: group: not an IPv4 multicast address (got %v)", ErrInvalid, group.Addr())
	}
	if group.Port() == 0 {
		return fmt.Errorf("%w: group.port: must not be 0", ErrInvalid)
	}
	if _, ok := c.topo.HostByIP(member); !ok {
		return fmt.Errorf("%w: member: not a host of the topology (got %v)", ErrInvalid, member)
	}
	members := c.groups[group]
	if join == members[member] {
		return nil // already so
	}
	set := func(in bool) {
		if c.groups[group] == nil {
			c.groups[group] = map[netip.Addr]bool{}
		}
		if in {
			c.groups[group][member] = true
		} else {
			delete(c.groups[group], member)
		}
	}
	set(join)
	if err := c.save(Writes{Groups: map[netip.AddrPort][]netip.Addr{group: c.memberList(group)}}); err != nil {
		set(!join)
		return err
	}
	var done []*record // re-planned so far, with their old requests
	var oldReqs []Request
	ids := make([]uint64, 0)
	for id, rec := range c.recs {
		// A demoted tunnel keeps its tree until its service changes it
		// (re-planning would quietly put it back into the express lane);
		// ChangeBandwidth plans it over the members of that moment.
		if rec.req.Receiver == group && !rec.demoted {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		rec := c.recs[id]
		tr, err := c.teRequest(rec.req)
		if err != nil && !join {
			// No receiver left: the tunnel ends.
			if rerr := c.remove(ctx, rec); rerr != nil {
				set(!join)
				c.undoMembership(ctx, group, done, oldReqs)
				return rerr
			}
			c.notify(rec.owner, Upcall{Kind: BandwidthTerminated, TunnelID: id, GraceUntil: c.clock.Now()})
			continue
		}
		if err == nil {
			_, err = c.replan(ctx, rec, rec.req, tr)
		}
		if err != nil {
			set(!join)
			c.undoMembership(ctx, group, done, oldReqs)
			return fmt.Errorf("group %v: re-planning tunnel %d: %w", group, id, err)
		}
		done = append(done, rec)
		oldReqs = append(oldReqs, rec.req)
	}
	return nil
}

// memberList is a group's members in address order.
func (c *Controller) memberList(group netip.AddrPort) []netip.Addr {
	var out []netip.Addr
	for m := range c.groups[group] {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// undoMembership re-plans tunnels back to the membership before a failed
// change (which the caller already restored in memory).
func (c *Controller) undoMembership(ctx context.Context, group netip.AddrPort, done []*record, reqs []Request) {
	c.saveOrLog(Writes{Groups: map[netip.AddrPort][]netip.Addr{group: c.memberList(group)}})
	for i := len(done) - 1; i >= 0; i-- {
		tr, err := c.teRequest(reqs[i])
		if err == nil {
			_, err = c.replan(ctx, done[i], reqs[i], tr)
		}
		if err != nil {
			c.log.Error("undo group change", "tunnel", done[i].tun.ID, "err", err)
		}
	}
}
