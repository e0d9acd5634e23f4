// Package p4rt is the southbound driver for P4 switches running the X-Lane
// pipeline (p4/switch) over P4Runtime. It connects to every switch, takes
// part in arbitration (the highest election id of a role is the primary
// and may write; a backup takes over when the primary goes), installs the
// pipeline unless the switch already runs it (same cookie), and on
// becoming primary reconciles the switch to the controller's state.
//
// Per tunnel and switch it writes a classifier entry (ingress port,
// addresses, UDP port, arriving DSCP → tunnel id, priority, DSCP, and at
// the first switch a meter slot), a tunnels entry (tunnel id → port, or a
// multicast group for a branch), the meter cell and the group. Reads
// compare canonical bytestrings, as switches return them.
package p4rt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	p4client "github.com/antoninbas/p4runtime-go-client/pkg/client"
	p4config "github.com/p4lang/p4runtime/go/p4/config/v1"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/xlane/xlane/southbound"
)

// Target is one P4Runtime switch.
type Target struct {
	Addr     string // host:port of its P4Runtime server
	DeviceID uint64
}

// Config configures a Driver.
type Config struct {
	Switches map[string]Target // topology switch name → target
	// ElectionID orders controllers: the highest is primary. Role is the
	// P4Runtime role ("" for the default role).
	ElectionID uint64
	Role       string
	// P4Info (text format) and DeviceConfig (BMv2 JSON) are the pipeline;
	// Cookie names it: a switch already running this cookie keeps its
	// pipeline (and its state).
	P4Info       []byte
	DeviceConfig []byte
	Cookie       uint64
	// BurstSlack widens meter bursts by what the rate earns in this time.
	BurstSlack time.Duration
	// OnConnect is called when the driver becomes primary for a switch
	// (after a (re)connect or a failover); the controller reconciles there.
	OnConnect func(ctx context.Context, sw string)
	// DialOptions for the gRPC connections; default: plain text.
	DialOptions []grpc.DialOption
	Logger      *slog.Logger
}

// Driver is the P4Runtime southbound driver.
type Driver struct {
	cfg      Config
	info     *p4config.P4Info
	ids      *ids
	sessions map[string]*session
	writes   atomic.Int64
	electMu  sync.Mutex
	elect    uint64
}

var _ southbound.Driver = (*Driver)(nil)

// New checks the pipeline and prepares the sessions; Run connects.
func New(cfg Config) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	info := &p4config.P4Info{}
	if err := prototext.Unmarshal(cfg.P4Info, info); err != nil {
		return nil, fmt.Errorf("p4rt: p4info: %w", err)
	}
	x, err := resolve(info)
	if err != nil {
		return nil, fmt.Errorf("p4rt: %w", err)
	}
	if cfg.ElectionID == 0 {
		return nil, fmt.Errorf("p4rt: election id must be above 0")
	}
	d := &Driver{cfg: cfg, info: info, ids: x, sessions: map[string]*session{}, elect: cfg.ElectionID}
	for name, t := range cfg.Switches {
		d.sessions[name] = &session{d: d, name: name, addr: t.Addr, deviceID: t.DeviceID, state: newSwState(x.meterSize),
			log: cfg.Logger.With("switch", name)}
	}
	return d, nil
}

// SetElectionID changes the driver's election id (a backup given a higher
// id takes over); it is sent on every stream at once.
func (d *Driver) SetElectionID(id uint64) {
	d.electMu.Lock()
	d.elect = id
	d.electMu.Unlock()
	for _, s := range d.sessions {
		s.sendArbitration()
	}
}

func (d *Driver) election() *p4v1.Uint128 {
	d.electMu.Lock()
	defer d.electMu.Unlock()
	return &p4v1.Uint128{Low: d.elect}
}

// Writes is how many updates switches have accepted from this driver.
func (d *Driver) Writes() int64 { return d.writes.Load() }

// Run connects to every switch and keeps the sessions up (reconnecting
// with backoff) until ctx ends.
func (d *Driver) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range d.sessions {
		conn, err := grpc.NewClient(s.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, d.cfg.DialOptions...)...)
		if err != nil {
			return fmt.Errorf("p4rt: %s at %s: %w", s.name, s.addr, err)
		}
		defer conn.Close()
		s.api = p4v1.NewP4RuntimeClient(conn)
		s.cl = p4client.NewClientForRole(s.api, s.deviceID, d.election(), roleOf(d.cfg.Role))
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func roleOf(name string) *p4v1.Role {
	if name == "" {
		return nil
	}
	return &p4v1.Role{Name: name}
}

func (d *Driver) session(sw string) (*session, error) {
	s, ok := d.sessions[sw]
	if !ok {
		return nil, fmt.Errorf("switch %s is not a P4Runtime target of this driver", sw)
	}
	return s, nil
}

// Primary reports whether the driver is primary for sw now.
func (d *Driver) Primary(sw string) bool {
	s, err := d.session(sw)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.primary
}

// Apply implements southbound.Driver.
func (d *Driver) Apply(ctx context.Context, sw string, b southbound.Batch) error {
	s, err := d.session(sw)
	if err == nil {
		s.op.Lock()
		defer s.op.Unlock()
		err = s.apply(ctx, b)
	}
	if err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "apply", Err: err}
	}
	return nil
}

// Reconcile implements southbound.Driver.
func (d *Driver) Reconcile(ctx context.Context, sw string, want southbound.SwitchState) error {
	s, err := d.session(sw)
	if err == nil {
		rules := make(map[uint64]southbound.TunnelRule, len(want.Rules))
		for _, r := range want.Rules {
			rules[r.Tunnel] = r
		}
		s.op.Lock()
		defer s.op.Unlock()
		err = s.reconcile(ctx, rules, want.Routes)
	}
	if err != nil {
		return &southbound.SwitchError{Switch: sw, Op: "reconcile", Err: err}
	}
	return nil
}

// Stats implements southbound.Driver.
func (d *Driver) Stats(ctx context.Context, sw string) ([]southbound.TunnelStats, error) {
	s, err := d.session(sw)
	var st []southbound.TunnelStats
	if err == nil {
		s.op.Lock()
		defer s.op.Unlock()
		st, err = s.stats(ctx)
	}
	if err != nil {
		return nil, &southbound.SwitchError{Switch: sw, Op: "stats", Err: err}
	}
	return st, nil
}

// Inventory is what a switch holds, as read back over P4Runtime.
type Inventory struct {
	Classifier, Tunnels, Routes int // table entries
	Meters                      int // configured meter cells
	Groups                      int // multicast groups
	TunnelIDs                   []uint64
}

// Inventory reads back what sw holds (for operators and tests: the switch's
// view, not the driver's).
func (d *Driver) Inventory(ctx context.Context, sw string) (Inventory, error) {
	s, err := d.session(sw)
	if err != nil {
		return Inventory{}, err
	}
	s.op.Lock()
	defer s.op.Unlock()
	if s.cl == nil {
		return Inventory{}, &southbound.SwitchError{Switch: sw, Op: "read", Err: errors.New("not connected")}
	}
	have, _, err := s.read(ctx)
	if err != nil {
		return Inventory{}, &southbound.SwitchError{Switch: sw, Op: "read", Err: err}
	}
	inv := Inventory{Classifier: len(have.classifier), Tunnels: len(have.tunnels), Routes: len(have.routes),
		Meters: len(have.meters), Groups: len(have.groups)}
	for _, te := range have.tunnels {
		if m := te.GetMatch(); len(m) == 1 {
			inv.TunnelIDs = append(inv.TunnelIDs, dec(m[0].GetExact().GetValue()))
		}
	}
	slices.Sort(inv.TunnelIDs)
	return inv, nil
}
