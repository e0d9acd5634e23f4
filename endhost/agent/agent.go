package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/endhost/app"
	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/lane"
	"github.com/xlane/xlane/southbound"
)

// ringSlots is each ring's capacity in messages.
const ringSlots = 1024

// Agent runs one host's lanes.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	cli     *client.Client
	lanes   []*runningLane
	recvs   []lane.Inbound
	conns   []*net.UDPConn
	closers []func() error
	joined  []membership
	rings   []*bridge.Ring
	mu      sync.Mutex // guards lanes' tunnel ids against the watch
	// changes counts BandwidthChanged upcalls applied to a lane.
	changes  atomic.Int64
	watching chan struct{}     // closed once the first watch is subscribed
	added    chan *lane.Sender // lanes started while running, for the runner
}

type runningLane struct {
	cfg    Lane
	tunnel uint64
	sender *lane.Sender
	events []*bridge.Ring // one per application: what the controller decided
}

// laneList is the running lanes (control requests may add some).
func (a *Agent) laneList() []*runningLane {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.lanes)
}

// tell passes an event to every application of the lane; an application
// that does not read its events loses the newest, not the lane.
func (a *Agent) tell(l *runningLane, e app.Event) {
	var b [app.EventLen]byte
	for _, r := range l.events {
		if !r.Push(e.Encode(b[:]), bridge.Meta{}) {
			a.log.Warn("an application's event ring is full; event dropped", "lane", l.cfg.Name, "event", e.Kind)
		}
	}
}

// Status is what the agent runs, for logs and tests.
type Status struct {
	Lanes map[string]tunnels.Resources // by lane name
}

// New checks cfg; Start connects and sets the lanes up.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Agent{cfg: cfg, log: log, watching: make(chan struct{}), added: make(chan *lane.Sender, 16)}, nil
}

// Start dials the controller, requests every lane's tunnel, and creates
// the rings and sockets. On error everything done so far is undone.
func (a *Agent) Start(ctx context.Context) (_ Status, err error) {
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	var opts []grpc.DialOption
	if a.cfg.TLSCA != "" {
		host, _, _ := net.SplitHostPort(a.cfg.Controller)
		tc, err := tlsconf.Client(a.cfg.TLSCert, a.cfg.TLSKey, a.cfg.TLSCA, host)
		if err != nil {
			return Status{}, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	}
	if a.cli, err = client.Dial(a.cfg.Controller, a.cfg.Service, opts...); err != nil {
		return Status{}, fmt.Errorf("agent: controller %s: %w", a.cfg.Controller, err)
	}
	if a.cfg.LaneCPU >= 0 {
		var allowed unix.CPUSet
		if err := unix.SchedGetaffinity(0, &allowed); err == nil && (a.cfg.LaneCPU >= 1024 || !allowed.IsSet(a.cfg.LaneCPU)) {
			return Status{}, fmt.Errorf("agent: lane_cpu %d is not available to this process (it may use %d CPUs)", a.cfg.LaneCPU, allowed.Count())
		}
	}
	dir := filepath.Join(a.cfg.ShmDir, a.cfg.Service)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Status{}, fmt.Errorf("agent: %w", err)
	}
	st := Status{Lanes: map[string]tunnels.Resources{}}
	s := a.cfg.SchemaOf()
	// Receivers first: a group's members join before anyone's tunnel to it
	// is planned.
	for _, rc := range a.cfg.Receive {
		conn, err := a.listen(ctx, rc)
		if err != nil {
			return st, err
		}
		a.conns = append(a.conns, conn)
		sinks := map[uint16]*bridge.Ring{}
		for _, ap := range rc.Apps {
			r, err := a.ring(app.RxPath(a.cfg.ShmDir, a.cfg.Service, rc.Port, ap.Name), s.MaxChunks(1500)*s.DataLen())
			if err != nil {
				return st, err
			}
			sinks[ap.Channel] = r
		}
		in, err := a.inbound(rc, conn, sinks)
		if err != nil {
			return st, err
		}
		a.recvs = append(a.recvs, in)
	}
	for _, l := range a.cfg.Lanes {
		res, _, err := a.startLane(ctx, l)
		if err != nil {
			return st, err
		}
		st.Lanes[l.Name] = res
	}
	return st, nil
}

// startLane requests a lane's tunnel and sets up its rings, socket and
// sender (not yet running).
func (a *Agent) startLane(ctx context.Context, l Lane) (_ tunnels.Resources, _ *lane.Sender, err error) {
	s := a.cfg.SchemaOf()
	sender, recv := netip.MustParseAddr(l.Sender), netip.MustParseAddrPort(l.Receiver)
	loadsize := 20 + s.MessageChunks(l.MessageBytes)*s.ChunkLen
	res, err := a.cli.RequestBandwidth(ctx, tunnels.Request{Sender: sender, Receiver: recv, LoadsizeBytes: int64(loadsize),
		PeriodUs: max(1, l.Period.Microseconds()), Sublane: l.Sublane})
	if err != nil {
		return tunnels.Resources{}, nil, fmt.Errorf("agent: lane %s: requesting its tunnel: %w", l.Name, err)
	}
	rl := &runningLane{cfg: l, tunnel: res.TunnelID}
	defer func() {
		if err != nil { // the tunnel goes back; the rest is cleaned up on Close
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if rerr := a.cli.ReleaseBandwidth(rctx, res.TunnelID); rerr != nil {
				a.log.Error("releasing the tunnel of a lane that failed to start", "lane", l.Name, "err", rerr)
			}
		}
	}()
	var srcs []lane.Source
	for _, ap := range l.Apps {
		r, err := a.ring(app.TxPath(a.cfg.ShmDir, a.cfg.Service, l.Name, ap.Name), l.MessageBytes)
		if err != nil {
			return tunnels.Resources{}, nil, err
		}
		srcs = append(srcs, lane.Source{Ring: r, Channel: ap.Channel})
		ev, err := a.ring(app.EventPath(a.cfg.ShmDir, a.cfg.Service, l.Name, ap.Name), app.EventLen)
		if err != nil {
			return tunnels.Resources{}, nil, err
		}
		rl.events = append(rl.events, ev)
	}
	a.tell(rl, app.Event{Kind: app.LaneUp, Tunnel: res.TunnelID, PeriodUs: res.PeriodUs, LoadsizeBytes: res.LoadsizeBytes,
		MinLatencyNs: res.MinLatencyNs, MaxJitterNs: res.MaxJitterNs, GraceUntil: res.NotBefore})
	conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(sender, 0)), net.UDPAddrFromAddrPort(recv))
	if err != nil {
		return tunnels.Resources{}, nil, fmt.Errorf("agent: lane %s: socket from %s to %s: %w", l.Name, sender, recv, err)
	}
	a.conns = append(a.conns, conn)
	if err := setTOS(conn, southbound.DSCP(l.Sublane, false)); err != nil {
		return tunnels.Resources{}, nil, fmt.Errorf("agent: lane %s: %w", l.Name, err)
	}
	if recv.Addr().IsMulticast() {
		if err := setMulticastTTL(conn, 8); err != nil {
			return tunnels.Resources{}, nil, fmt.Errorf("agent: lane %s: %w", l.Name, err)
		}
	}
	snd, err := lane.NewSender(lane.SenderConfig{Conn: conn, Tunnel: uint32(res.TunnelID), Schema: s,
		Params: lane.Params{PeriodNs: res.PeriodUs * 1000, Loadsize: loadsize}, NotBefore: res.NotBefore, Sources: srcs,
		BusyPoll: a.cfg.LaneCPU >= 0})
	if err != nil {
		return tunnels.Resources{}, nil, fmt.Errorf("agent: lane %s: %w", l.Name, err)
	}
	rl.sender = snd
	a.mu.Lock()
	a.lanes = append(a.lanes, rl) // released on Close from here on
	a.mu.Unlock()
	a.log.Info("lane up", "lane", l.Name, "tunnel", res.TunnelID, "period_us", res.PeriodUs, "bound_ns", res.MinLatencyNs+res.MaxJitterNs)
	return res, snd, nil
}

// listen opens a receive port; for a group, it joins it at the
// controller and on the interface.
func (a *Agent) listen(ctx context.Context, rc Receive) (*net.UDPConn, error) {
	if rc.Group == "" {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(rc.Port)})
		if err != nil {
			return nil, fmt.Errorf("agent: receive port %d: %w", rc.Port, err)
		}
		return c, nil
	}
	group := netip.AddrPortFrom(netip.MustParseAddr(rc.Group), rc.Port)
	ifi, err := net.InterfaceByName(a.cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("agent: interface %s: %w", a.cfg.Interface, err)
	}
	c, err := net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(group))
	if err != nil {
		return nil, fmt.Errorf("agent: join %s on %s: %w", group, a.cfg.Interface, err)
	}
	if err := a.cli.JoinGroup(ctx, group, netip.MustParseAddr(rc.Member)); err != nil {
		c.Close()
		return nil, fmt.Errorf("agent: joining %s as %s at the controller: %w", group, rc.Member, err)
	}
	a.joined = append(a.joined, membership{group, netip.MustParseAddr(rc.Member)})
	a.log.Info("joined group", "group", group, "member", rc.Member)
	return c, nil
}

type membership struct {
	group  netip.AddrPort
	member netip.Addr
}

// inbound picks the receive path of a port, the first that works of:
// AF_XDP (the interface's XDP program steers the lane's packets into an
// AF_XDP socket before the host's stack; one port per interface, as the
// interface holds one XDP program), the interface's TPACKET_V3 ring (no
// system call per packet; the stack also gets a copy), the socket. It
// says which, and why not the faster ones.
func (a *Agent) inbound(rc Receive, conn *net.UDPConn, sinks map[uint16]*bridge.Ring) (lane.Inbound, error) {
	o, err := lane.OpenInbound(lane.InboundConfig{Interface: a.cfg.Interface, Port: rc.Port, Path: a.cfg.ReceivePath,
		Shared: len(a.cfg.Receive) > 1, Conn: conn, Sinks: sinks, Busy: a.cfg.LaneCPU >= 0})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if o.Close != nil {
		a.closers = append(a.closers, o.Close)
	}
	a.log.Info("receive path", "port", rc.Port, "path", o.Path, "interface", a.cfg.Interface, "detail", o.Detail, "not_faster", strings.Join(o.NotFaster, "; "))
	return o.Inbound, nil
}

// ring creates a ring file, replacing one a crashed agent left.
func (a *Agent) ring(path string, dataLen int) (*bridge.Ring, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: %w", err)
	}
	r, err := bridge.Create(path, ringSlots, dataLen)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.rings = append(a.rings, r)
	return r, nil
}

func setTOS(c *net.UDPConn, dscp uint8) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, int(dscp)<<2) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("DSCP %d on the lane's socket: %w", dscp, serr)
	}
	return nil
}

func setMulticastTTL(c *net.UDPConn, ttl int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("multicast TTL: %w", serr)
	}
	return nil
}

// Run runs the lanes and follows the controller's upcalls until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := a.cli.Watch(ctx, a.upcall, func(first bool) {
			if first {
				close(a.watching)
			} else {
				a.log.Warn("watch re-subscribed: upcalls in between may be lost; listing the tunnels")
				a.resync(ctx)
			}
		})
		if err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("agent: watch: %w", err)
		}
	}()
	var senders []*lane.Sender
	for _, l := range a.laneList() {
		senders = append(senders, l.sender)
	}
	if a.cfg.LaneCPU >= 0 {
		core := &lane.Core{CPU: a.cfg.LaneCPU, Priority: a.cfg.Priority, LockMem: a.cfg.LockMem}
		wg.Add(1)
		go func() { defer wg.Done(); errs <- lane.RunCoreAdding(ctx, core, senders, a.recvs, a.added) }()
	} else {
		run := func(s *lane.Sender) {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- s.Run(ctx) }()
		}
		for _, s := range senders {
			run(s)
		}
		for _, r := range a.recvs {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- r.Run(ctx) }()
		}
		wg.Add(1)
		go func() { // lanes the applications ask for while we run
			defer wg.Done()
			for {
				select {
				case s := <-a.added:
					run(s)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if stop, err := a.serveControl(ctx, &wg); err != nil {
		cancel()
		wg.Wait()
		return err
	} else {
		defer stop()
	}
	// A lane that ends (terminated) ends alone; an error ends the agent.
	var err error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err = <-errs:
			if err != nil {
				break wait
			}
		}
	}
	cancel()
	wg.Wait()
	return err
}

// Watching is closed once the agent receives the controller's upcalls.
func (a *Agent) Watching() <-chan struct{} { return a.watching }

// upcall hands the controller's decisions about our tunnels to the lanes.
func (a *Agent) upcall(u tunnels.Upcall) {
	// A sender that has stopped takes no updates: do not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if u.Kind == tunnels.BandwidthChanged {
		res := u.Resources
		for _, l := range a.laneList() {
			if l.tunnel == res.TunnelID && l.sender != nil {
				s := a.cfg.SchemaOf()
				p := lane.Params{PeriodNs: res.PeriodUs * 1000, Loadsize: 20 + s.MessageChunks(l.cfg.MessageBytes)*s.ChunkLen}
				if res.MaxJitterNs == tunnels.Unbounded {
					a.log.Warn("lane demoted: its packets exceeded the tunnel's rate; it keeps sending at best effort", "lane", l.cfg.Name, "reason", u.Reason)
				}
				if err := l.sender.Update(ctx, lane.Update{Params: p, At: l.sender.Mono(u.GraceUntil)}); err != nil {
					a.log.Error("lane update", "lane", l.cfg.Name, "err", err)
				}
				a.changes.Add(1)
				a.tell(l, app.Event{Kind: app.LaneChanged, Reason: uint8(u.Reason), Tunnel: res.TunnelID, PeriodUs: res.PeriodUs,
					LoadsizeBytes: res.LoadsizeBytes, MinLatencyNs: res.MinLatencyNs, MaxJitterNs: res.MaxJitterNs, GraceUntil: u.GraceUntil})
				a.log.Info("lane changed", "lane", l.cfg.Name, "period_us", res.PeriodUs, "reason", u.Reason, "from", u.GraceUntil)
			}
		}
	}
	if u.Kind == tunnels.BandwidthTerminated {
		for _, l := range a.laneList() {
			if l.tunnel == u.TunnelID && l.sender != nil {
				_ = l.sender.Update(ctx, lane.Update{Stop: true})
				a.log.Warn("lane terminated by the controller", "lane", l.cfg.Name, "reason", u.Reason)
				a.tell(l, app.Event{Kind: app.LaneTerminated, Reason: uint8(u.Reason), Tunnel: u.TunnelID})
				a.mu.Lock()
				l.tunnel = 0 // nothing to release
				a.mu.Unlock()
			}
		}
	}
}

// resync compares our tunnels with the controller's after a lost watch.
func (a *Agent) resync(ctx context.Context) {
	rs, err := a.cli.ListTunnels(ctx)
	if err != nil {
		a.log.Error("listing tunnels", "err", err)
		return
	}
	have := map[uint64]tunnels.Resources{}
	for _, r := range rs {
		have[r.TunnelID] = r
	}
	for _, l := range a.laneList() {
		r, ok := have[l.tunnel]
		if !ok {
			a.log.Error("lane's tunnel is gone at the controller; stopping it", "lane", l.cfg.Name, "tunnel", l.tunnel)
			_ = l.sender.Update(ctx, lane.Update{Stop: true})
			continue
		}
		s := a.cfg.SchemaOf()
		_ = l.sender.Update(ctx, lane.Update{Params: lane.Params{PeriodNs: r.PeriodUs * 1000, Loadsize: 20 + s.MessageChunks(l.cfg.MessageBytes)*s.ChunkLen},
			At: l.sender.Mono(time.Now())})
	}
}

// Close releases the tunnels, closes sockets and removes the rings; call
// it after Run returned (Run uses the rings and sockets).
func (a *Agent) Close() error {
	var errs []error
	if a.cli != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, m := range a.joined {
			if err := a.cli.LeaveGroup(ctx, m.group, m.member); err != nil {
				errs = append(errs, fmt.Errorf("agent: leaving %s: %w", m.group, err))
			}
		}
		for _, l := range a.laneList() {
			a.mu.Lock()
			id := l.tunnel
			a.mu.Unlock()
			if id != 0 {
				if err := a.cli.ReleaseBandwidth(ctx, id); err != nil {
					errs = append(errs, fmt.Errorf("agent: releasing lane %s (tunnel %d): %w", l.cfg.Name, id, err))
				}
			}
		}
		a.cli.Close()
	}
	for _, c := range a.conns {
		c.Close()
	}
	for _, c := range a.closers {
		c()
	}
	for _, r := range a.rings {
		r.Close()
		if err := r.Remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
