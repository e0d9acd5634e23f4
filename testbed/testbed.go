// Package testbed builds an X-Lane network on one Linux machine: one
// network namespace per host of a topology, one Open vSwitch bridge
// (userspace datapath, OpenFlow 1.3, fail_mode=secure) per switch, veth
// pairs for the cables, strict-priority egress queues at the links' rates
// on every port, and a private ovs-vswitchd pointed at the controller.
// With Switch: SwitchBMv2 each switch is a BMv2 simple_switch_grpc
// process instead, whose P4Runtime server the controller connects to.
// A state file records everything created, so Down removes it all even
// after the processes were killed.
package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound/openflow"
	"github.com/xlane/xlane/testbed/ovs"
)

// DefaultDir is where testbeds keep their state, one folder per name.
const DefaultDir = "/var/run/xlane/testbed"

// Config describes a testbed to bring up.
type Config struct {
	Name     string // 1–4 of [a-z0-9]; part of every interface name
	Dir      string // state folder; "": DefaultDir/Name
	Topology *te.Topology
	// Switch is SwitchOVS (default) or SwitchBMv2.
	Switch     string
	Controller string // OVS: where the bridges connect, host:port (BMv2 switches listen instead)
	// NoQueues leaves the ports without priority queues and rate limits
	// (to compare against plain FIFO ports).
	NoQueues bool
	Logger   *slog.Logger
}

// Host is one host namespace.
type Host struct {
	Name  string     `json:"name"`
	Netns string     `json:"netns"`
	IPv4  netip.Addr `json:"ipv4"`
	MAC   string     `json:"mac"`
}

// Bridge is one switch: an OVS bridge, or a BMv2 process.
type Bridge struct {
	Switch string `json:"switch"`
	Name   string `json:"bridge"`
	DPID   uint64 `json:"dpid"`
	// BMv2 only: the process, its P4Runtime server and device id, and its
	// Thrift (runtime CLI) port.
	PID       int    `json:"pid,omitempty"`
	P4Runtime string `json:"p4runtime,omitempty"`
	DeviceID  uint64 `json:"device_id,omitempty"`
	Thrift    int    `json:"thrift,omitempty"`
}

// State is the testbed's state file: what exists and must be removed.
type State struct {
	Name       string          `json:"name"`
	Dir        string          `json:"dir"`
	Switch     string          `json:"switch,omitempty"` // "" is SwitchOVS
	Controller string          `json:"controller"`
	Topology   te.TopologySpec `json:"topology"`
	Netns      []string        `json:"netns"`
	Interfaces []string        `json:"interfaces"` // root-namespace veth ends
	Hosts      []Host          `json:"hosts"`
	Bridges    []Bridge        `json:"bridges"`
	Complete   bool            `json:"complete"`
}

// Testbed is a testbed that is up (or partly up).
type Testbed struct {
	State
	ovs   *ovs.Instance
	procs map[int]*exec.Cmd // BMv2 processes this process started
	log   *slog.Logger
}

var validName = regexp.MustCompile(`^[a-z0-9]{1,4}$`)

// CheckRoot returns the one-line error every testbed command gives
// without root.
func CheckRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the testbed needs root (network namespaces, veth pairs, Open vSwitch); run it with sudo")
	}
	return nil
}

func stateDir(name, dir string) string {
	if dir != "" {
		return dir
	}
	return filepath.Join(DefaultDir, name)
}

// Up builds the testbed. On error everything created so far is removed.
func Up(ctx context.Context, cfg Config) (_ *Testbed, err error) {
	if err := CheckRoot(); err != nil {
		return nil, err
	}
	if !validName.MatchString(cfg.Name) {
		return nil, fmt.Errorf("testbed name %q: 1 to 4 lowercase letters or digits (it is part of interface names)", cfg.Name)
	}
	if cfg.Topology == nil {
		return nil, errors.New("testbed: no topology")
	}
	switch cfg.Switch {
	case "", SwitchOVS:
		cfg.Switch = ""
		if _, _, err := net.SplitHostPort(cfg.Controller); err != nil {
			return nil, fmt.Errorf("controller address %q: %w", cfg.Controller, err)
		}
		if err := ovs.Available(); err != nil {
			return nil, err
		}
	case SwitchBMv2:
		if err := BMv2Available(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("switch %q: must be %s or %s", cfg.Switch, SwitchOVS, SwitchBMv2)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		return nil, errors.New("ethtool is not installed (apt-get install ethtool): UDP through the userspace datapath needs TX checksum offload off")
	}
	dir := stateDir(cfg.Name, cfg.Dir)
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return nil, fmt.Errorf("testbed %s is up already (state in %s); run `xlane testbed down --name %s` first", cfg.Name, dir, cfg.Name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	tb := &Testbed{
		State: State{Name: cfg.Name, Dir: dir, Switch: cfg.Switch, Controller: cfg.Controller, Topology: cfg.Topology.Spec},
		log:   cfg.Logger,
	}
	if tb.log == nil {
		tb.log = slog.Default()
	}
	defer func() {
		if err != nil {
			if derr := tb.Down(context.WithoutCancel(ctx)); derr != nil {
				tb.log.Error("removing the partial testbed", "err", derr)
			}
		}
	}()
	if err := tb.save(); err != nil {
		return nil, err
	}
	if err := tb.build(ctx, cfg); err != nil {
		return nil, err
	}
	tb.Complete = true
	return tb, tb.save()
}

const stateFile = "state.json"

func (tb *Testbed) save() error {
	b, err := json.MarshalIndent(tb.State, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(tb.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("testbed state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(tb.Dir, stateFile))
}

// Load reads the state of testbed name (dir "" for the default place).
func Load(name, dir string) (*Testbed, error) {
	dir = stateDir(name, dir)
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("testbed %s is not up (no %s)", name, filepath.Join(dir, stateFile))
		}
		return nil, fmt.Errorf("testbed state: %w", err)
	}
	tb := &Testbed{log: slog.Default()}
	if err := json.Unmarshal(b, &tb.State); err != nil {
		return nil, fmt.Errorf("testbed state %s: %w", filepath.Join(dir, stateFile), err)
	}
	tb.Dir = dir
	return tb, nil
}

// OVS is the testbed's private Open vSwitch instance.
func (tb *Testbed) OVS() *ovs.Instance {
	if tb.ovs == nil {
		tb.ovs = ovs.At(filepath.Join(tb.Dir, "ovs"))
	}
	return tb.ovs
}

// Host returns the named host.
func (tb *Testbed) Host(name string) (Host, error) {
	for _, h := range tb.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("testbed %s has no host %q", tb.Name, name)
}

// Bridge returns the bridge of the named switch.
func (tb *Testbed) Bridge(sw string) (Bridge, error) {
	for _, b := range tb.Bridges {
		if b.Switch == sw {
			return b, nil
		}
	}
	return Bridge{}, fmt.Errorf("testbed %s has no switch %q", tb.Name, sw)
}

// Down removes everything the state file lists; what is already gone is
// skipped. The state folder goes last.
func (tb *Testbed) Down(ctx context.Context) error {
	var errs []error
	if tb.Switch == SwitchBMv2 {
		for _, b := range tb.Bridges {
			if b.PID > 0 {
				if err := tb.stopBMv2(ctx, b.PID); err != nil {
					errs = append(errs, err)
				}
			}
		}
	} else if err := tb.OVS().Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, ifc := range tb.Interfaces {
		if err := deleteLink(ifc); err != nil {
			errs = append(errs, err)
		}
	}
	// A bridge's internal port (a tap device) outlives a killed
	// ovs-vswitchd.
	for _, b := range tb.Bridges {
		if b.PID > 0 {
			continue // a BMv2 switch has no interface of its own
		}
		if err := deleteLink(b.Name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range tb.Netns {
		if err := deleteNetns(n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(tb.Dir); err != nil {
		return fmt.Errorf("testbed: remove %s: %w", tb.Dir, err)
	}
	return nil
}

// Exec runs a command in a host's namespace and returns its combined
// output.
func (tb *Testbed) Exec(ctx context.Context, host string, argv ...string) ([]byte, error) {
	cmd, err := tb.Command(ctx, host, argv...)
	if err != nil {
		return nil, err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s on %s: %w", strings.Join(argv, " "), host, err)
	}
	return out, nil
}

// Command prepares a command to run in a host's namespace.
func (tb *Testbed) Command(ctx context.Context, host string, argv ...string) (*exec.Cmd, error) {
	h, err := tb.Host(host)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, errors.New("no command")
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Netns}, argv...)...), nil
}

// Do runs fn inside a host's namespace (sockets fn opens belong to it).
func (tb *Testbed) Do(host string, fn func() error) error {
	h, err := tb.Host(host)
	if err != nil {
		return err
	}
	return inNetns(h.Netns, fn)
}

// Switches maps the testbed's datapath ids to switch names, as the
// OpenFlow driver needs them.
func (tb *Testbed) Switches() map[uint64]string {
	out := map[uint64]string{}
	for _, b := range tb.Bridges {
		out[b.DPID] = b.Switch
	}
	return out
}

// dpids is the datapath id of each switch (the OpenFlow driver's rule).
func dpids(topo *te.Topology) map[string]uint64 {
	out := map[string]uint64{}
	for id, name := range openflow.DatapathIDs(topo) {
		out[name] = id
	}
	return out
}

// Status is what `xlane testbed status` shows beyond the state file.
type Status struct {
	VswitchdRunning bool
	Connected       map[string]string // switch → "yes", "no", or why unknown
}

// Status asks the testbed's ovs-vswitchd whether each bridge is
// connected to its controller; for BMv2 whether each switch process runs
// and its P4Runtime server accepts connections.
func (tb *Testbed) Status(ctx context.Context) Status {
	if tb.Switch == SwitchBMv2 {
		st := Status{Connected: map[string]string{}}
		for _, b := range tb.Bridges {
			switch c, err := net.DialTimeout("tcp", b.P4Runtime, time.Second); {
			case !isBMv2(b.PID):
				st.Connected[b.Switch] = "no (simple_switch_grpc not running)"
			case err != nil:
				st.Connected[b.Switch] = "running, P4Runtime server not answering: " + err.Error()
			default:
				c.Close()
				st.Connected[b.Switch] = "running, P4Runtime at " + b.P4Runtime
			}
		}
		return st
	}
	st := Status{VswitchdRunning: tb.OVS().Running(), Connected: map[string]string{}}
	for _, b := range tb.Bridges {
		if !st.VswitchdRunning {
			st.Connected[b.Switch] = "no (ovs-vswitchd not running)"
			continue
		}
		uuid, err := tb.OVS().Vsctl(ctx, "get", "bridge", b.Name, "controller")
		if err != nil {
			st.Connected[b.Switch] = "unknown: " + err.Error()
			continue
		}
		uuid = strings.Trim(strings.TrimSpace(uuid), "[]")
		if uuid == "" {
			st.Connected[b.Switch] = "no controller configured"
			continue
		}
		out, err := tb.OVS().Vsctl(ctx, "get", "controller", uuid, "is_connected")
		switch {
		case err != nil:
			st.Connected[b.Switch] = "unknown: " + err.Error()
		case strings.TrimSpace(out) == "true":
			st.Connected[b.Switch] = "yes"
		default:
			st.Connected[b.Switch] = "no"
		}
	}
	return st
}
