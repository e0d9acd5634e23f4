package tunnels

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// DefaultGrace is how long old resources stay guaranteed after a change.
const DefaultGrace = 100 * time.Millisecond

// Config configures a Controller.
type Config struct {
	Topology *te.Topology
	Driver   southbound.Driver
	Grace    time.Duration // 0: DefaultGrace
	Clock    Clock         // nil: the system clock
	Logger   *slog.Logger  // nil: slog.Default()
	// Observer, when set, is told about operations, upcalls and monitoring
	// rounds (the daemon feeds Prometheus from it).
	Observer Observer
	// WatchBuffer is how many upcalls a watcher may fall behind before it
	// is dropped (it then re-subscribes and lists its tunnels); 0: 1024.
	WatchBuffer int
	// Quota, when set, returns each service's limit.
	Quota func(service string) Quota
	// Store, when set, makes the state durable: New loads it, re-installs
	// the stored tunnels and reconciles every switch to them.
	Store Store
	// BoundHeadroom (0 to 1) widens the maximum latency services are told
	// by this fraction: a later increase of a tunnel's bound that stays
	// within what it was told needs no BandwidthChanged. 0 tells every
	// change of the engine's bounds exactly.
	BoundHeadroom float64
	// UpcallHoldoff is how long an admission batch may wait for the
	// watchers to take the upcalls handed to them before it runs
	// (holdoff.go); 0: it does not wait.
	UpcallHoldoff time.Duration
	// MaxBatch caps how many queued admissions one batch takes (admit.go);
	// the rest wait for the next. 0: all of them.
	MaxBatch int
}

// Controller serves requests for tunnels. Its methods are safe for
// concurrent use; operations are serialised (the TE engine is one state).
type Controller struct {
	mu       sync.Mutex
	topo     *te.Topology
	links    []string // the topology's link names, by link id (Links)
	drv      southbound.Driver
	grace    time.Duration
	clock    Clock
	log      *slog.Logger
	engine   *te.Engine
	store    Store
	quota    func(string) Quota
	obs      Observer
	buffer   int
	recs     map[uint64]*record
	meters   map[string]int                         // switch -> how many recs' meters it holds (setRules)
	groups   map[netip.AddrPort]map[netip.Addr]bool // multicast group -> member hosts
	watch    watchers                               // subscriptions and upcalls to them
	services map[string]Service                     // registrations
	graceOf  map[uint64]*graceGroup                 // the pending grace end of a tunnel
	graces   map[*graceGroup]struct{}               // grace ends whose timer runs
	closed   bool
	wg       sync.WaitGroup // grace callbacks scheduled or running

	needsReconcile map[string]bool
	routes         map[string]southbound.PackedRoutes // best-effort forwarding per switch

	// Admissions in flight: in the engine, their store write queued, not
	// yet on the switches. Operations that take tunnels out of the engine
	// wait until there are none (see exclusive).
	cond       *sync.Cond
	inflight   map[uint64]*record
	draining   int
	commits    *committer
	writing    []*pendingWrite // batches whose store writes are under way, in order
	headroom   float64         // see Config.BoundHeadroom
	holdoffFor time.Duration   // see Config.UpcallHoldoff
	maxBatch   int             // see Config.MaxBatch
	scratch    scratch         // under mu: buffers an operation's install reuses

	// Requests waiting for a combiner (see admit.go).
	qmu      sync.Mutex
	queued   []*admission
	releases []*releaseReq
}

// scratch holds what installing an operation computes and drops again
// (under c.mu, one operation at a time): the engine's changes of a batch,
// those the services are told, their pending switch state. Reusing them
// was a third of the controller's allocations at saturation, and the
// collector's cycles make the upcalls' delay tail.
type scratch struct {
	plan     *plan // install's and a grace end's (both hold mu; neither nests)
	merged   []te.Change
	seen     map[uint64]bool
	told     []te.Change
	toldRecs []*record // told's records
	pending  []pending
	changes  [][]te.Change // emptied change lists for the engine to fill (admit.go)
}

// takeChanges is an emptied change list from the last batches, if any.
func (sc *scratch) takeChanges() []te.Change {
	n := len(sc.changes)
	if n == 0 {
		return nil
	}
	buf := sc.changes[n-1]
	sc.changes[n-1] = nil
	sc.changes = sc.changes[:n-1]
	return buf
}

// putChanges keeps buf for a later admission, emptied: its entries point
// at engine tunnels that may be released. Lists longer than any admission
// makes at 10,000 tunnels, and lists beyond a few batches' worth, go.
func (sc *scratch) putChanges(buf []te.Change) {
	if cap(buf) == 0 || cap(buf) > 4096 || len(sc.changes) >= 64 {
		return
	}
	clear(buf[:cap(buf)])
	sc.changes = append(sc.changes, buf[:0])
}

// reusedPlan is the scratch plan, emptied; c.mu is held.
func (c *Controller) reusedPlan() *plan {
	if c.scratch.plan == nil {
		c.scratch.plan = newPlan()
	}
	c.scratch.plan.reset()
	return c.scratch.plan
}

// record is one tunnel and what is installed for it.
type record struct {
	owner   string
	req     Request
	tun     te.Tunnel
	rules   ruleSet // installed, per switch (set with setRules)
	meter   uint64  // their meter's rate (bit/s)
	meterAt string  // the switch of that meter ("" if none)
	gen     uint64  // counts setRules: monitoring acts only on what it judged
	// demoted tunnels exceeded their meter: they are out of the TE engine
	// and forwarded at best-effort priority until the service changes them.
	demoted bool
	use     usage // monitoring state
}

// New returns a controller holding the stored tunnels, if any.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.Topology == nil || cfg.Driver == nil {
		return nil, errors.New("tunnels: a topology and a driver are required")
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("tunnels: grace %v must not be negative", cfg.Grace)
	}
	if cfg.UpcallHoldoff < 0 {
		return nil, fmt.Errorf("tunnels: upcall holdoff %v must not be negative", cfg.UpcallHoldoff)
	}
	if cfg.BoundHeadroom < 0 || cfg.BoundHeadroom > 1 || math.IsNaN(cfg.BoundHeadroom) {
		return nil, fmt.Errorf("tunnels: bound headroom %v must be between 0 and 1", cfg.BoundHeadroom)
	}
	if cfg.MaxBatch < 0 {
		return nil, fmt.Errorf("tunnels: max batch %d must not be negative", cfg.MaxBatch)
	}
	c := &Controller{
		topo: cfg.Topology, links: linkNames(cfg.Topology), drv: cfg.Driver, grace: cfg.Grace, clock: cfg.Clock, log: cfg.Logger,
		engine: te.NewEngine(cfg.Topology), store: cfg.Store, quota: cfg.Quota, obs: cfg.Observer, buffer: cfg.WatchBuffer,
		recs: map[uint64]*record{}, meters: map[string]int{}, groups: map[netip.AddrPort]map[netip.Addr]bool{},
		watch: watchers{subs: map[string]map[*Subscription]struct{}{}}, graceOf: map[uint64]*graceGroup{}, graces: map[*graceGroup]struct{}{}, services: map[string]Service{},
		needsReconcile: map[string]bool{}, routes: bestEffortRoutes(cfg.Topology),
		inflight: map[uint64]*record{}, headroom: cfg.BoundHeadroom, holdoffFor: cfg.UpcallHoldoff, maxBatch: cfg.MaxBatch,
	}
	c.cond = sync.NewCond(&c.mu)
	if c.grace == 0 {
		c.grace = DefaultGrace
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	if c.buffer <= 0 {
		c.buffer = 1024
	}
	if c.store != nil {
		if err := c.restore(ctx); err != nil {
			return nil, err
		}
		c.commits = newCommitter(c.store)
	}
	return c, nil
}

// exclusive locks the controller for an operation that may take tunnels
// out of the engine (release, change, demotion, group re-planning): it
// waits until no admission is in flight, since an admission's undo must
// only ever remove load from the engine. The returned function unlocks.
// After Close it fails with ErrUnavailable, so no operation writes to a
// store its owner may be closing.
func (c *Controller) exclusive() (func(), error) {
	c.mu.Lock()
	c.draining++
	for len(c.inflight) > 0 {
		c.cond.Wait()
	}
	unlock := func() {
		c.draining--
		c.cond.Broadcast()
		c.mu.Unlock()
		c.flush()
	}
	if c.closed {
		unlock()
		return nil, fmt.Errorf("%w: controller closed", ErrUnavailable)
	}
	return unlock, nil
}

// Close waits for admissions in flight, stops grace timers, waits for
// running ones, and ends every watch. Operations after it fail with
// ErrUnavailable.
func (c *Controller) Close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	// An admission waiting for its store write finishes (programs the
	// switches or undoes itself) before Close returns.
	for len(c.inflight) > 0 {
		c.cond.Wait()
	}
	for g := range c.graces {
		if g.timer.Stop() {
			c.wg.Done()
		}
	}
	clear(c.graces)
	clear(c.graceOf)
	c.mu.Unlock()
	c.flush() // what operations before Close queued
	c.watch.endAll()
	c.wg.Wait()
	if c.commits != nil {
		c.commits.close()
	}
}

// teRequest validates r and turns it into a TE request.
func (c *Controller) teRequest(r Request) (te.Request, error) {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s: %s (got %v)", ErrInvalid, field, why, v)
	}
	if r.LoadsizeBytes <= 0 || r.LoadsizeBytes > c.topo.MaxLoadsize() {
		return te.Request{}, bad("loadsize", r.LoadsizeBytes, fmt.Sprintf("must be between 1 and %d bytes", c.topo.MaxLoadsize()))
	}
	if r.PeriodUs <= 0 || r.PeriodUs > 10_000_000 {
		return te.Request{}, bad("period", r.PeriodUs, "must be between 1 µs and 10 s")
	}
	if r.Sublane < 0 || r.Sublane >= c.topo.Sublanes {
		return te.Request{}, bad("sublane", r.Sublane, fmt.Sprintf("must be between 0 and %d", c.topo.Sublanes-1))
	}
	sender, ok := c.topo.HostByIP(r.Sender)
	if !ok {
		return te.Request{}, bad("sender", r.Sender, "not a host of the topology")
	}
	if r.Receiver.Port() == 0 {
		return te.Request{}, bad("receiver.port", 0, "must not be 0")
	}
	tr := te.Request{Sender: c.topo.Nodes[sender].Name, LoadsizeBytes: r.LoadsizeBytes, PeriodNs: r.PeriodUs * 1000, Sublane: r.Sublane}
	dst := r.Receiver.Addr()
	switch {
	case dst.Is4() && dst.IsMulticast():
		for m := range c.groups[r.Receiver] {
			if m == r.Sender {
				continue
			}
			id, _ := c.topo.HostByIP(m)
			tr.Receivers = append(tr.Receivers, c.topo.Nodes[id].Name)
		}
		if len(tr.Receivers) == 0 {
			return te.Request{}, bad("receiver", r.Receiver, "multicast group has no members other than the sender")
		}
		slices.Sort(tr.Receivers)
	default:
		id, ok := c.topo.HostByIP(dst)
		if !ok {
			return te.Request{}, bad("receiver.ip", dst, "not a host of the topology or an IPv4 multicast group")
		}
		if id == sender {
			return te.Request{}, bad("receiver.ip", dst, "the sender cannot be its own receiver")
		}
		tr.Receivers = []string{c.topo.Nodes[id].Name}
	}
	return tr, nil
}

// teErr maps TE errors to the API's kinds.
func teErr(err error) error {
	var fe *te.FieldError
	var rej *te.RejectError
	switch {
	case errors.As(err, &fe):
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	case errors.As(err, &rej):
		return fmt.Errorf("%w: %v", ErrExhausted, err)
	case errors.Is(err, te.ErrUnknownTunnel):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// periodUs is a period as services see it: whole microseconds, rounded up.
func periodUs(ns int64) int64 { return (ns + 999) / 1000 }

func (c *Controller) resources(t te.Tunnel, notBefore time.Time) Resources {
	return Resources{
		TunnelID: t.ID, LoadsizeBytes: t.LoadsizeBytes, PeriodUs: periodUs(t.PeriodNs),
		MinLatencyNs: t.MinLatencyNs, MaxJitterNs: t.MaxJitterNs, NotBefore: notBefore,
	}
}

// promise is what a service is told about t: the engine's resources with
// the headroom added to the maximum latency and, where X-ADJ raised the
// period above the request, to the period. Sending less often than the
// engine allows only lowers the load its bounds assume.
func (c *Controller) promise(t te.Tunnel) te.Tunnel {
	r := c.promiseRes(t.Resources(), t.RequestedPeriodNs)
	t.PeriodNs, t.MaxJitterNs = r.PeriodNs, r.MaxJitterNs
	return t
}

func (c *Controller) promiseRes(r te.Resources, requestedNs int64) te.Resources {
	if c.headroom == 0 {
		return r
	}
	if r.MaxJitterNs >= 0 {
		r.MaxJitterNs += int64(math.Ceil(float64(r.MinLatencyNs+r.MaxJitterNs) * c.headroom))
	}
	if r.PeriodNs > requestedNs {
		r.PeriodNs = int64(math.Ceil(float64(r.PeriodNs) * (1 + c.headroom)))
	}
	return r
}

// mustTell reports whether a service told told must hear of the engine's
// resources now (requestedNs: the period it asked for). Services and
// meters see periods in whole microseconds (rounded up), so a change
// within the microsecond is no change. Without headroom any other
// difference is told. With it: a longer period than told (the service
// must slow down), a shorter one that is its request again or shorter by
// more than the headroom twice over, a bound outside the range it was
// told, or one better by more than the headroom twice over (a service
// should not keep a bound or period far looser than the engine's).
func (c *Controller) mustTell(told, now te.Resources, requestedNs int64) bool {
	if now.LoadsizeBytes != told.LoadsizeBytes {
		return true
	}
	nowP, toldP := periodUs(now.PeriodNs), periodUs(told.PeriodNs)
	if c.headroom == 0 {
		return nowP != toldP || now.MinLatencyNs != told.MinLatencyNs || now.MaxJitterNs != told.MaxJitterNs
	}
	twice := (1 + c.headroom) * (1 + c.headroom)
	switch {
	case nowP > toldP:
		return true
	case nowP < toldP && (now.PeriodNs <= requestedNs || float64(nowP)*twice < float64(toldP)):
		return true
	case now.MinLatencyNs < told.MinLatencyNs:
		return true
	}
	nowMax, toldMax := float64(now.MinLatencyNs+now.MaxJitterNs), float64(told.MinLatencyNs+told.MaxJitterNs)
	return nowMax > toldMax || nowMax*twice < toldMax
}

// meterRate is the rate a tunnel's sender is policed at: one packet per
// approved period (in whole microseconds, as services send).
func (c *Controller) meterRate(t te.Tunnel) uint64 {
	return rateBps(c.topo.WireBytes(t.LoadsizeBytes), periodUs(t.PeriodNs)*1000)
}

// rulesFor compiles the rules of a tunnel with the given meter rate.
func (c *Controller) rulesFor(rec *record, t te.Tunnel, rate uint64) (ruleSet, error) {
	return compile(c.topo, t, rec.req.Receiver, false, rate)
}

// setRules records the rules installed for rec's tunnel, and where it
// is metered: monitoring asks only those switches, without walking every
// record's rules under the lock (10,000 tunnels took milliseconds a
// round, admissions waiting meanwhile). c.mu is held.
func (c *Controller) setRules(rec *record, rules ruleSet) {
	c.unmeter(rec)
	rec.rules, rec.meter, rec.meterAt = rules, 0, ""
	rec.gen++
	if sw, rate, ok := rules.meter(); ok {
		rec.meter, rec.meterAt = rate, c.topo.Nodes[sw].Name
		c.meters[rec.meterAt]++
	}
}

// unmeter takes rec's meter out of the switches' counts (its rules are
// replaced, or it is gone); c.mu is held.
func (c *Controller) unmeter(rec *record) {
	if rec.meterAt == "" {
		return
	}
	if c.meters[rec.meterAt]--; c.meters[rec.meterAt] <= 0 {
		delete(c.meters, rec.meterAt)
	}
	rec.meterAt = ""
}

// pending is the switch and upcall work for a tunnel whose resources an
// operation changed.
type pending struct {
	rec   *record
	tun   te.Tunnel
	rules ruleSet // compiled afresh (the record had none), installed at commit, or
	rate  uint64  // the rate the record's meter goes up to at commit, in place
	raise bool    // rules or rate hold a higher meter rate than installed
	lower bool    // the meter must drop to the new rate when the grace ends
}

// planChanges adds to p, for every changed tunnel, the state that serves
// both its old and its new resources. TE never moves another tunnel's
// tree, so only the meter can change: a higher rate (shorter period) is
// installed now, a lower one when the grace period ends.
// recs, when not nil, are the changed tunnels' records (current found
// them already: a lookup per change in a map of every tunnel).
func (c *Controller) planChanges(p *plan, changes []te.Change, recs []*record) ([]pending, error) {
	clear(c.scratch.pending) // the previous operation's: not kept alive
	out := c.scratch.pending[:0]
	defer func() { c.scratch.pending = out }()
	for i, ch := range changes {
		var rec *record
		if recs != nil {
			rec = recs[i]
		} else {
			rec = c.recs[ch.ID]
		}
		t := rec.tun
		t.PeriodNs, t.MinLatencyNs, t.MaxJitterNs = ch.New.PeriodNs, ch.New.MinLatencyNs, ch.New.MaxJitterNs
		pc := pending{rec: rec, tun: t}
		rate, installed := c.meterRate(t), rec.meter
		switch {
		case rate > installed && rec.rules.len() > 0:
			// Only the meter's rate changes: its switch's rule, and the
			// record's rules in place at commit (copying them was most of
			// what a change allocated).
			p.diffRate(c.topo, ch.ID, rec.rules, rate)
			pc.rate, pc.raise = rate, true
		case rate > installed:
			want, err := c.rulesFor(rec, t, rate)
			if err != nil {
				return nil, err
			}
			p.diff(c.topo, ch.ID, rec.rules, want)
			pc.rules, pc.raise = want, true
		case rate < installed:
			pc.lower = true
		}
		out = append(out, pc)
	}
	return out, nil
}

// commit records changed tunnels, tells their services, and schedules the
// end of their grace periods.
func (c *Controller) commit(ps []pending, now time.Time) {
	until := now.Add(c.grace)
	var lower []uint64
	for _, pc := range ps {
		pc.rec.tun = pc.tun
		switch {
		case pc.raise && pc.rules.len() == 0:
			if pc.rec.rules.setRate(pc.rate) {
				pc.rec.meter = pc.rate
			}
			pc.rec.gen++
		case pc.raise:
			c.setRules(pc.rec, pc.rules)
		}
		c.notify(pc.rec.owner, Upcall{
			Kind: BandwidthChanged, TunnelID: pc.tun.ID, Resources: c.resources(pc.tun, now),
			Reason: ReasonTE, GraceUntil: until,
		})
		if pc.lower {
			lower = append(lower, pc.tun.ID)
		}
	}
	c.armGrace(lower...)
}

// current turns an operation's change list into the changes between what
// the services were last told and the engine's bounds now, for the
// tunnels that are committed (in-flight admissions commit their own),
// and their records.
func (c *Controller) current(changes []te.Change) ([]te.Change, []*record) {
	// The last operation's entries go: they refer to records and engine
	// tunnels that may be released since.
	clear(c.scratch.told[:cap(c.scratch.told)])
	clear(c.scratch.toldRecs[:cap(c.scratch.toldRecs)])
	out := slices.Grow(c.scratch.told[:0], len(changes)) // most are told: no growing
	recs := slices.Grow(c.scratch.toldRecs[:0], len(changes))
	defer func() { c.scratch.told, c.scratch.toldRecs = out, recs }()
	for _, ch := range changes {
		// The engine's tunnel carries its record once committed (install
		// tags it): two lookups by id fewer per changed tunnel, some forty
		// an admission, each a cache miss or two in maps of every tunnel.
		rec, ok := c.engine.TagOf(ch).(*record)
		if !ok {
			if rec, ok = c.recs[ch.ID]; !ok {
				continue // not committed: in flight, or released
			}
		}
		if rec.demoted {
			continue
		}
		now, ok := c.engine.Current(ch)
		if !ok {
			continue
		}
		if old := rec.tun.Resources(); c.mustTell(old, now, rec.tun.RequestedPeriodNs) {
			out = append(out, te.Change{ID: ch.ID, Old: old, New: c.promiseRes(now, rec.tun.RequestedPeriodNs)})
			recs = append(recs, rec)
		}
	}
	return out, recs
}

// undoAdmission takes a failed admission out of the engine; the tunnels
// whose bounds that improves are told. It is not cut short when the
// requester gives up (its context ends): the undo must finish.
func (c *Controller) undoAdmission(ctx context.Context, id uint64) {
	ctx = context.WithoutCancel(ctx)
	changes, err := c.engine.Release(id)
	if err != nil {
		c.log.Error("undo admission", "tunnel", id, "err", err)
		return
	}
	p := newPlan()
	told, recs := c.current(changes)
	ps, err := c.planChanges(p, told, recs)
	if err == nil {
		err = c.apply(ctx, p)
	}
	if err != nil {
		c.log.Error("undo admission: updating the tunnels it affected", "tunnel", id, "err", err)
		return
	}
	c.commit(ps, c.clock.Now())
}

// saveOrLog writes the undo of a failed operation; if even that fails the
// store holds state the switches lack, and a restart reconciles to it.
func (c *Controller) saveOrLog(w Writes) {
	if err := c.save(w); err != nil {
		c.log.Error("saving the undo of a failed operation", "err", err)
	}
}

// own returns tunnel id if owner holds it.
func (c *Controller) own(owner string, id uint64) (*record, error) {
	rec, ok := c.recs[id]
	if !ok {
		return nil, fmt.Errorf("%w: tunnel %d", ErrNotFound, id)
	}
	if rec.owner != owner {
		return nil, fmt.Errorf("%w: tunnel %d belongs to another service", ErrPermission, id)
	}
	return rec, nil
}

// remove releases rec in the engine and on the switches, all or nothing.
func (c *Controller) remove(ctx context.Context, rec *record) error {
	return c.removeAll(ctx, []*record{rec})
}

// removeAll releases recs in the engine and on the switches as one unit:
// one store write, one driver call per switch, each improved tunnel told
// once. On failure all stay.
func (c *Controller) removeAll(ctx context.Context, recs []*record) error {
	gone := make(map[uint64]bool, len(recs))
	for _, rec := range recs {
		gone[rec.tun.ID] = true
	}
	var released []*record // out of the engine so far
	undo := func() {
		var ts []te.Tunnel
		for _, rec := range released {
			ts = append(ts, rec.tun)
		}
		if len(ts) > 0 {
			if _, err := c.engine.Install(ts); err != nil {
				c.log.Error("undo release", "tunnels", len(ts), "err", err)
			}
		}
	}
	latest := map[uint64]int{} // tunnel -> index in changes
	var changes []te.Change
	for _, rec := range recs {
		if rec.demoted { // a demoted tunnel is no longer in the engine
			continue
		}
		chs, err := c.engine.Release(rec.tun.ID)
		if err != nil {
			undo()
			return teErr(err)
		}
		released = append(released, rec)
		for _, ch := range chs {
			if gone[ch.ID] {
				continue
			}
			if i, ok := latest[ch.ID]; ok {
				changes[i].New = ch.New // the engine's bounds now
				continue
			}
			latest[ch.ID] = len(changes)
			changes = append(changes, ch)
		}
	}
	p := newPlan()
	var w Writes
	for _, rec := range recs {
		p.diff(c.topo, rec.tun.ID, rec.rules, ruleSet{})
		w.Delete = append(w.Delete, rec.tun.ID)
	}
	told, toldRecs := c.current(changes)
	ps, err := c.planChanges(p, told, toldRecs)
	if err == nil {
		if err = c.save(w); err == nil {
			if err = c.apply(ctx, p); err != nil {
				var back Writes
				for _, rec := range recs {
					back.Put = append(back.Put, c.stored(rec, rec.tun))
				}
				c.saveOrLog(back)
			}
		}
	}
	if err != nil {
		undo()
		return err
	}
	for _, rec := range recs {
		delete(c.recs, rec.tun.ID)
		c.unmeter(rec)
		c.stopGrace(rec.tun.ID)
	}
	c.commit(ps, c.clock.Now())
	return nil
}

// Change replaces the parameters of a tunnel of owner, atomically.
func (c *Controller) Change(ctx context.Context, owner string, id uint64, r Request) (_ Resources, err error) {
	unlock, err := c.exclusive()
	if err != nil {
		return Resources{}, err
	}
	defer unlock()
	defer func() { c.obs.Operation("change", resultOf(err)) }()
	rec, err := c.own(owner, id)
	if err != nil {
		return Resources{}, err
	}
	if r.Sender != rec.req.Sender {
		return Resources{}, fmt.Errorf("%w: sender: a change cannot move the tunnel to another host (got %v, tunnel sends from %v)", ErrInvalid, r.Sender, rec.req.Sender)
	}
	tr, err := c.teRequest(r)
	if err != nil {
		return Resources{}, err
	}
	if err := c.checkQuota(owner, id, r); err != nil {
		return Resources{}, err
	}
	res, err := c.replan(ctx, rec, r, tr)
	if err == nil {
		rec.use.idle, rec.use.unused = 0, 0 // new parameters, fresh judgement
	}
	return res, err
}

// replan moves rec to new TE parameters (a change, or new group members).
func (c *Controller) replan(ctx context.Context, rec *record, r Request, tr te.Request) (Resources, error) {
	old := rec.tun
	var t te.Tunnel
	var changes []te.Change
	var err error
	if rec.demoted {
		t, changes, err = c.engine.AdmitWithID(old.ID, tr) // back into the express lane
	} else {
		t, changes, err = c.engine.Change(old.ID, tr)
	}
	if err != nil {
		return Resources{}, teErr(err)
	}
	next := &record{owner: rec.owner, req: r}
	p := newPlan()
	rate := max(c.meterRate(t), rec.meter)
	want, err := c.rulesFor(next, t, rate)
	if err == nil {
		p.diff(c.topo, t.ID, rec.rules, want)
		var ps []pending
		if ps, err = c.planChanges(p, changes, nil); err == nil {
			if err = c.save(Writes{Put: []StoredTunnel{c.stored(next, t)}}); err != nil {
				goto undo
			}
			if err = c.apply(ctx, p); err != nil {
				c.saveOrLog(Writes{Put: []StoredTunnel{c.stored(rec, old)}})
			} else {
				now := c.clock.Now()
				rec.req, rec.tun, rec.demoted = r, c.promise(t), false
				c.setRules(rec, want)
				rec.use.violations = 0
				c.commit(ps, now)
				c.armGrace(t.ID)
				notBefore := now
				if len(changes) > 0 {
					notBefore = now.Add(c.grace)
				}
				return c.resources(rec.tun, notBefore), nil
			}
		}
	}
undo:
	// Put the old tree back exactly: release the new one, reinstall the old
	// (a demoted tunnel stays out of the engine).
	if _, rerr := c.engine.Release(old.ID); rerr == nil && !rec.demoted {
		if _, ierr := c.engine.Install([]te.Tunnel{old}); ierr != nil {
			c.log.Error("undo change", "tunnel", old.ID, "err", ierr)
		}
	}
	return Resources{}, err
}

// Tunnels lists the tunnels of owner ("" for all), by id.
func (c *Controller) Tunnels(owner string) []Resources {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uint64, 0, len(c.recs))
	for id, rec := range c.recs {
		if owner == "" || rec.owner == owner {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]Resources, 0, len(ids))
	for _, id := range ids {
		out = append(out, c.recResources(c.recs[id], time.Time{}))
	}
	return out
}

// recResources is what a service sees of a tunnel: UNBOUNDED jitter once
// demoted.
func (c *Controller) recResources(rec *record, notBefore time.Time) Resources {
	r := c.resources(rec.tun, notBefore)
	if rec.demoted {
		r.MaxJitterNs = Unbounded
	}
	return r
}

// graceGroup is the grace ends of the tunnels one commit lowered: one
// timer, one lock and one switch batch for all of them (an admission in
// exact mode lowers dozens of meters).
type graceGroup struct {
	timer Timer
	ids   []uint64
	live  int // ids whose grace end this still is
}

// armGrace schedules the end of the grace period of tunnels ids: their
// meters then come down to their rates. A tunnel's earlier pending end is
// replaced.
func (c *Controller) armGrace(ids ...uint64) {
	if c.closed || len(ids) == 0 {
		return
	}
	g := &graceGroup{ids: ids}
	for _, id := range ids {
		if c.graceOf[id] == g {
			continue // listed twice
		}
		c.stopGrace(id)
		c.graceOf[id] = g
		g.live++
	}
	c.graces[g] = struct{}{}
	c.wg.Add(1)
	// The callback takes c.mu, which the caller holds: it cannot run
	// before g.timer is set.
	g.timer = c.clock.AfterFunc(c.grace, func() {
		defer c.wg.Done()
		c.endGrace(g)
	})
}

// stopGrace cancels tunnel id's pending grace end; a group left without
// tunnels stops its timer.
func (c *Controller) stopGrace(id uint64) {
	g, ok := c.graceOf[id]
	if !ok {
		return
	}
	delete(c.graceOf, id)
	if g.live--; g.live == 0 {
		if g.timer.Stop() {
			c.wg.Done()
		}
		delete(c.graces, g)
	}
}

func (c *Controller) endGrace(g *graceGroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.graces, g)
	if c.closed {
		return
	}
	type end struct {
		rec  *record
		want ruleSet // compiled afresh (the record had none), or
		rate uint64  // the rate its meter comes down to, in place
	}
	var ends []end
	p := c.reusedPlan()
	for _, id := range g.ids {
		if c.graceOf[id] != g {
			continue // re-armed or stopped since
		}
		delete(c.graceOf, id)
		rec, ok := c.recs[id]
		if !ok {
			continue
		}
		rate := c.meterRate(rec.tun)
		if rec.rules.len() > 0 {
			p.diffRate(c.topo, id, rec.rules, rate)
			ends = append(ends, end{rec: rec, rate: rate})
			continue
		}
		want, err := c.rulesFor(rec, rec.tun, rate)
		if err != nil {
			c.log.Error("grace end", "tunnel", id, "err", err)
			continue
		}
		p.diff(c.topo, id, rec.rules, want)
		ends = append(ends, end{rec: rec, want: want})
	}
	if len(ends) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.apply(ctx, p); err != nil {
		// The switches keep the generous meters; try again a grace later.
		ids := make([]uint64, len(ends))
		for i, e := range ends {
			ids[i] = e.rec.tun.ID
		}
		c.log.Warn("grace end: lowering meters failed; retrying", "tunnels", len(ids), "err", err)
		c.armGrace(ids...)
		return
	}
	for _, e := range ends {
		if e.want.len() > 0 {
			c.setRules(e.rec, e.want)
			continue
		}
		if e.rec.rules.setRate(e.rate) {
			e.rec.meter = e.rate
		}
		e.rec.gen++
	}
}

// Quota limits one service; zero fields are unlimited.
type Quota struct {
	MaxTunnels int
	MaxRateBps uint64 // Σ over its tunnels of wire bits per requested period
}

// checkQuota refuses r for owner if it would exceed the service's quota;
// except is a tunnel r replaces (a change).
func (c *Controller) checkQuota(owner string, except uint64, r Request) error {
	if c.quota == nil {
		return nil
	}
	q := c.quota(owner)
	if q.MaxTunnels == 0 && q.MaxRateBps == 0 {
		return nil
	}
	n := 1
	rate := rateBps(c.topo.WireBytes(r.LoadsizeBytes), r.PeriodUs*1000)
	for _, recs := range []map[uint64]*record{c.recs, c.inflight} { // admissions in flight count too
		for id, rec := range recs {
			if rec.owner != owner || id == except {
				continue
			}
			n++
			rate += rateBps(c.topo.WireBytes(rec.req.LoadsizeBytes), rec.req.PeriodUs*1000)
		}
	}
	if q.MaxTunnels > 0 && n > q.MaxTunnels {
		return fmt.Errorf("%w: quota of service %s: at most %d tunnels", ErrExhausted, owner, q.MaxTunnels)
	}
	if q.MaxRateBps > 0 && rate > q.MaxRateBps {
		return fmt.Errorf("%w: quota of service %s: at most %d bit/s of express traffic, this would make %d", ErrExhausted, owner, q.MaxRateBps, rate)
	}
	return nil
}
