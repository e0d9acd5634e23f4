// Package openflow is the southbound driver for OpenFlow 1.3 switches
// (Open vSwitch). Switches connect to the controller (tcp 6653 by
// default, or TLS when the listener is one); each is known by its
// datapath id, which the configuration maps to a topology switch name.
//
// Per tunnel and switch the driver writes one table-0 flow (cookie = the
// tunnel id) matching in_port, IPv4 source and destination and UDP
// destination port; it applies the tunnel's meter at its first switch,
// rewrites the DSCP to the sub-lane's, and outputs to a port or to an ALL
// group for a multicast branch. Best-effort routes are low-priority
// flows on the destination prefix. A batch is sent as a sequence closed
// by a barrier; if the switch rejects any part, the switch is read back
// and put back to its previous state. After every (re)connect the
// controller reconciles the switch: flows, meters and groups are read
// back and the differences repaired in place.
package openflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// DefaultAddr is where switches connect by default.
const DefaultAddr = ":6653"

// Config configures a Driver.
type Config struct {
	// Switches maps datapath ids to topology switch names. Switches with
	// another id are refused.
	Switches map[uint64]string
	// OnConnect is called, in the session's goroutine, after a switch
	// completed the handshake; the controller reconciles it from there.
	OnConnect func(ctx context.Context, sw string)
	// EchoInterval is how often idle switches are probed; a switch
	// silent for three intervals is disconnected. 0: 2 s.
	EchoInterval time.Duration
	// BurstSlack widens every meter's burst by what its rate earns in this
	// time, for switches whose meters keep coarse time; DefaultBurstSlack
	// suits Open vSwitch's userspace datapath. Negative: none.
	BurstSlack time.Duration
	Logger     *slog.Logger
}

// DefaultBurstSlack is the meter burst slack for Open vSwitch's userspace
// datapath, whose meters count whole milliseconds of a cached clock: with
// a burst of exactly one packet they drop about one in fifty packets of a
// sender that keeps its period (measured on the testbed).
const DefaultBurstSlack = 2 * time.Millisecond

// Driver is the OpenFlow 1.3 southbound driver.
type Driver struct {
	cfg      Config
	mu       sync.Mutex
	sessions map[string]*session
	changed  chan struct{} // closed and replaced when a session comes or goes
}

var _ southbound.Driver = (*Driver)(nil)

// New returns a driver; Serve accepts its switches.
func New(cfg Config) *Driver {
	if cfg.EchoInterval <= 0 {
		cfg.EchoInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.BurstSlack == 0:
		cfg.BurstSlack = DefaultBurstSlack
	case cfg.BurstSlack < 0:
		cfg.BurstSlack = 0
	}
	return &Driver{cfg: cfg, sessions: map[string]*session{}, changed: make(chan struct{})}
}

// DatapathIDs numbers a topology's switches the way the testbed
// configures its bridges: the i-th switch in topology order has datapath
// id i (from 1).
func DatapathIDs(topo *te.Topology) map[uint64]string {
	out := map[uint64]string{}
	n := uint64(0)
	for _, node := range topo.Nodes {
		if node.Kind == te.KindSwitch {
			n++
			out[n] = node.Name
		}
	}
	return out
}

// Serve accepts switch connections on lis until ctx ends; then it closes
// every session and returns once their goroutines are gone.
func (d *Driver) Serve(ctx context.Context, lis net.Listener) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { lis.Close() })
	defer stop()
	defer wg.Wait()
	defer d.closeAll()
	for {
		conn, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("openflow: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.handle(ctx, conn)
		}()
	}
}

func (d *Driver) closeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.sessions {
		s.fail(errors.New("driver stopped"))
	}
}

// handle runs one switch connection: handshake, then the session until
// the connection ends.
func (d *Driver) handle(ctx context.Context, conn net.Conn) {
	log := d.cfg.Logger.With("remote", conn.RemoteAddr().String())
	dpid, err := handshake(conn)
	if err != nil {
		log.Warn("openflow handshake failed", "err", err)
		conn.Close()
		return
	}
	name, ok := d.cfg.Switches[dpid]
	if !ok {
		log.Warn("switch with an unknown datapath id refused", "dpid", fmt.Sprintf("%016x", dpid))
		conn.Close()
		return
	}
	s := newSession(name, dpid, conn, log.With("switch", name), d.cfg.BurstSlack)
	d.mu.Lock()
	if old := d.sessions[name]; old != nil {
		old.fail(errors.New("replaced by a new connection"))
	}
	d.sessions[name] = s
	d.notifyLocked()
	d.mu.Unlock()
	log.Info("switch connected", "switch", name, "dpid", fmt.Sprintf("%016x", dpid))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.readLoop() }()
	go func() { defer wg.Done(); s.keepalive(d.cfg.EchoInterval) }()
	stop := context.AfterFunc(ctx, func() { s.fail(errors.New("driver stopped")) })
	defer stop()
	if d.cfg.OnConnect != nil {
		d.cfg.OnConnect(ctx, name)
	}
	wg.Wait()
	d.mu.Lock()
	if d.sessions[name] == s {
		delete(d.sessions, name)
		d.notifyLocked()
	}
	d.mu.Unlock()
	log.Info("switch disconnected", "switch", name, "err", s.endErr())
}

func (d *Driver) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// handshake exchanges hellos (both sides must speak OpenFlow 1.3) and
// reads the datapath id from the features reply.
func handshake(conn net.Conn) (uint64, error) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	hello, _ := encode(typeHello, 0, nil)
	if _, err := conn.Write(hello); err != nil {
		return 0, fmt.Errorf("send hello: %w", err)
	}
	m, ver, err := readMsg(conn)
	if err != nil {
		return 0, fmt.Errorf("read hello: %w", err)
	}
	if m.Type != typeHello {
		return 0, fmt.Errorf("expected hello, got message type %d", m.Type)
	}
	if ver < version13 {
		return 0, fmt.Errorf("switch speaks OpenFlow version %d; this driver needs 1.3 (set protocols=OpenFlow13 on the bridge)", ver)
	}
	req, _ := encode(typeFeaturesRequest, 1, nil)
	if _, err := conn.Write(req); err != nil {
		return 0, fmt.Errorf("send features request: %w", err)
	}
	for {
		m, _, err := readMsg(conn)
		if err != nil {
			return 0, fmt.Errorf("read features reply: %w", err)
		}
		switch m.Type {
		case typeFeaturesReply:
			return decodeFeatures(m.Body)
		case typeError:
			e, derr := decodeError(m.Body)
			if derr != nil {
				return 0, derr
			}
			return 0, fmt.Errorf("features request: %w", e)
		case typeEchoRequest:
			b, _ := encode(typeEchoReply, m.Xid, rawBody(m.Body))
			if _, err := conn.Write(b); err != nil {
				return 0, err
			}
		}
	}
}

func (d *Driver) session(sw string) (*session, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sessions[sw]
	if !ok {
		return nil, fmt.Errorf("switch %s is not connected", sw)
	}
	return s, nil
}

// Connected lists the switches with an OpenFlow session now.
func (d *Driver) Connected() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.sessions))
	for name := range d.sessions {
		out = append(out, name)
	}
	return out
}

// UsesBundles reports whether the driver applies batches to sw as atomic
// OpenFlow bundles (false before the first batch, or if the switch
// refused them).
func (d *Driver) UsesBundles(sw string) bool {
	s, err := d.session(sw)
	if err != nil {
		return false
	}
	s.op.Lock()
	defer s.op.Unlock()
	return s.bundleID > 0 && !s.noBundles
}

// WaitConnected waits until every named switch has a session.
func (d *Driver) WaitConnected(ctx context.Context, switches ...string) error {
	for {
		d.mu.Lock()
		ch := d.changed
		missing := ""
		for _, sw := range switches {
			if _, ok := d.sessions[sw]; !ok {
				missing = sw
				break
			}
		}
		d.mu.Unlock()
		if missing == "" {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for switch %s to connect: %w", missing, ctx.Err())
		}
	}
}

// Apply implements southbound.Driver.
func (d *Driver) Apply(ctx context.Context, sw string, b southbound.Batch) error {
	s, err := d.session(sw)
	if err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "apply", Err: err}
	}
	s.op.Lock()
	defer s.op.Unlock()
	if err := s.apply(ctx, b); err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "apply", Err: err}
	}
	return nil
}

// Stats implements southbound.Driver.
func (d *Driver) Stats(ctx context.Context, sw string) ([]southbound.TunnelStats, error) {
	s, err := d.session(sw)
	if err != nil {
		return nil, &southbound.SwitchError{Switch: sw, Op: "stats", Err: err}
	}
	s.op.Lock()
	defer s.op.Unlock()
	st, err := s.stats(ctx)
	if err != nil {
		return nil, &southbound.SwitchError{Switch: sw, Op: "stats", Err: err}
	}
	return st, nil
}

// Reconcile implements southbound.Driver.
func (d *Driver) Reconcile(ctx context.Context, sw string, want southbound.SwitchState) error {
	s, err := d.session(sw)
	if err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "reconcile", Err: err}
	}
	rules := make(map[uint64]southbound.TunnelRule, len(want.Rules))
	for _, r := range want.Rules {
		rules[r.Tunnel] = r
	}
	s.op.Lock()
	defer s.op.Unlock()
	if err := s.reconcile(ctx, rules, want.Routes); err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "reconcile", Err: err}
	}
	return nil
}
