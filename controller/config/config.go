// Package config reads the controller daemon's YAML configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/xlane/xlane/southbound/openflow"
)

// Config is the daemon's configuration file (docs/controller.md).
type Config struct {
	// Listen is the gRPC service API address: host:port, or unix:/path
	// (a Unix socket: local, so plain text is allowed as on loopback).
	Listen string `yaml:"listen"`
	// Topology is the topology file (te format). Optional after the first
	// start: the data directory keeps the topology.
	Topology string `yaml:"topology"`
	// DataDir holds the durable state (bbolt).
	DataDir string `yaml:"data_dir"`
	// Grace is how long old resources stay guaranteed after a change.
	Grace Duration `yaml:"grace"`
	// BoundHeadroom widens the latency bounds (and raised periods) services
	// are told by this fraction, so smaller changes need no upcall.
	BoundHeadroom float64 `yaml:"bound_headroom"`
	// WatchCoalesce holds a watch response that would follow the stream's
	// previous one sooner than this; it carries the upcalls that came
	// meanwhile (0: each response at once).
	WatchCoalesce Duration `yaml:"watch_coalesce"`
	// UpcallHoldoff is how long a batch of admissions may wait for the
	// watch streams to take the upcalls already handed to them, so that
	// services hear of changed bounds before new work queues ahead of
	// them (0: admissions never wait).
	UpcallHoldoff Duration `yaml:"upcall_holdoff"`
	// MaxBatch caps how many queued admissions one batch serves, so that
	// the backlog after a stall goes out in several commits (0: no cap).
	MaxBatch int `yaml:"max_batch"`
	// Driver selects the southbound driver: "openflow" (OpenFlow 1.3
	// switches such as Open vSwitch connect to OpenFlowListen) or "memory"
	// (switches simulated in the process, for tests and demos).
	Driver string `yaml:"driver"`
	// OpenFlowListen is where OpenFlow switches connect. With
	// OpenFlowTLSCert and OpenFlowTLSKey the channel is TLS; with
	// OpenFlowCA switches must present a certificate from that CA.
	OpenFlowListen  string `yaml:"openflow_listen"`
	OpenFlowTLSCert string `yaml:"openflow_tls_cert"`
	OpenFlowTLSKey  string `yaml:"openflow_tls_key"`
	OpenFlowCA      string `yaml:"openflow_ca"`
	// OpenFlowBurstSlack widens each meter's one-packet burst by what its
	// rate earns in this time: a software switch that falls behind
	// forwards a conforming sender's packets back to back. The default
	// suits Open vSwitch's userspace datapath; 0 is none (a switch whose
	// meters keep exact time).
	OpenFlowBurstSlack Duration `yaml:"openflow_burst_slack"`
	// P4Runtime configures the p4runtime driver.
	P4Runtime P4Runtime `yaml:"p4runtime"`
	// Insecure allows plain-text gRPC on a non-loopback address.
	Insecure bool `yaml:"insecure"`
	// TLSCert and TLSKey turn on TLS for the API; with ClientCA, clients
	// must present a certificate from that CA, whose subject is then the
	// service identity (mutual TLS).
	TLSCert  string `yaml:"tls_cert"`
	TLSKey   string `yaml:"tls_key"`
	ClientCA string `yaml:"client_ca"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// RealtimePriority, when above 0, puts every thread of the daemon
	// under SCHED_RR at this priority (1 to 99): woken threads then run at
	// once on a CPU without real-time work instead of waiting in a run
	// queue, which is most of the upcall delay's tail on a busy host.
	RealtimePriority int `yaml:"realtime_priority"`
	// GCPercent is the garbage collector's target heap growth (GOGC; -1
	// turns it off). The default 400 trades memory (about 350 instead of
	// 200 MiB at 10,000 tunnels) for fewer collections: each one marks the
	// whole live heap on one of the cores, which is most of the upcall
	// delay's tail. A GOGC environment variable wins over it.
	GCPercent int `yaml:"gc_percent"`
	// MetricsAddr serves Prometheus metrics at /metrics ("" turns it off).
	MetricsAddr string `yaml:"metrics_addr"`
	// Pprof also serves Go's profiler at /debug/pprof/ on MetricsAddr
	// (keep that address private).
	Pprof bool `yaml:"pprof"`
	// Quotas limit what each service may hold.
	Quotas Quotas `yaml:"quotas"`
	// Monitoring (§3.3): statistics are read every MonitorInterval; a
	// tunnel sending less than UnusedFraction of its rate for
	// UnusedIntervals intervals gets twice its period, one silent for
	// IdleIntervals intervals is terminated, and a demoted one whose meter
	// keeps dropping for ViolationIntervals intervals is terminated.
	MonitorInterval    Duration `yaml:"monitor_interval"`
	UnusedFraction     float64  `yaml:"unused_fraction"`
	UnusedIntervals    int      `yaml:"unused_intervals"`
	IdleIntervals      int      `yaml:"idle_intervals"`
	ViolationIntervals int      `yaml:"violation_intervals"`
}

// P4Runtime is the p4runtime driver's configuration: where each switch's
// P4Runtime server is, this controller's election id and role, and the
// pipeline (empty paths: the pipeline built into the controller).
type P4Runtime struct {
	ElectionID   uint64            `yaml:"election_id"`
	Role         string            `yaml:"role"`
	P4Info       string            `yaml:"p4info"`
	DeviceConfig string            `yaml:"device_config"`
	Switches     map[string]Target `yaml:"switches"`
	// BurstSlack widens each meter's one-packet burst by what its rate
	// earns in this time, for packets that reach the meter with jitter
	// (software switches, virtual links); 0 on hardware.
	BurstSlack Duration `yaml:"burst_slack"`
}

// Target is one P4Runtime switch.
type Target struct {
	Addr     string `yaml:"addr"`
	DeviceID uint64 `yaml:"device_id"`
}

// UnmarshalYAML decodes the p4runtime section strictly.
func (p *P4Runtime) UnmarshalYAML(n *yaml.Node) error {
	var sw yaml.Node
	if err := strictDecode(n, map[string]any{"election_id": &p.ElectionID, "role": &p.Role, "p4info": &p.P4Info,
		"device_config": &p.DeviceConfig, "switches": &sw, "burst_slack": &p.BurstSlack}); err != nil {
		return err
	}
	var err error
	p.Switches, err = namedMap(&sw, "switches", "switch", func(n *yaml.Node, t *Target) error {
		return strictDecode(n, map[string]any{"addr": &t.Addr, "device_id": &t.DeviceID})
	})
	return err
}

// namedMap decodes a mapping of names to values (section key), refusing
// repeated names; an absent section is a nil map.
func namedMap[T any](n *yaml.Node, key, what string, decode func(*yaml.Node, *T) error) (map[string]T, error) {
	if n.Kind == 0 {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: %s: expected %s names and values", n.Line, key, what)
	}
	out := map[string]T{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("line %d: %s %q given twice", n.Content[i].Line, what, name)
		}
		var v T
		if err := decode(n.Content[i+1], &v); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", key, name, err)
		}
		out[name] = v
	}
	return out, nil
}

// Quota is one service's limit; 0 means no limit.
type Quota struct {
	MaxTunnels int    `yaml:"max_tunnels"`
	MaxRateBps uint64 `yaml:"max_rate_bps"` // Σ wire bits per requested period
}

// Quotas are the default limit and per-service exceptions.
type Quotas struct {
	Default  Quota            `yaml:"default"`
	Services map[string]Quota `yaml:"services"`
}

// UnmarshalYAML decodes quotas strictly.
func (q *Quotas) UnmarshalYAML(n *yaml.Node) error {
	var svcs yaml.Node
	if err := strictDecode(n, map[string]any{"default": &q.Default, "services": &svcs}); err != nil {
		return err
	}
	var err error
	q.Services, err = namedMap(&svcs, "services", "service", func(n *yaml.Node, v *Quota) error { return n.Decode(v) })
	return err
}

// UnmarshalYAML decodes one quota strictly.
func (q *Quota) UnmarshalYAML(n *yaml.Node) error {
	return strictDecode(n, map[string]any{"max_tunnels": &q.MaxTunnels, "max_rate_bps": &q.MaxRateBps})
}

// strictDecode decodes a mapping node into fields, refusing unknown and
// repeated keys and naming the key in every error.
func strictDecode(n *yaml.Node, fields map[string]any) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected keys and values", n.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown key %q", k.Line, k.Value)
		}
		if seen[k.Value] {
			return fmt.Errorf("line %d: key %q given twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		if node, ok := p.(*yaml.Node); ok {
			*node = *v
			continue
		}
		if err := v.Decode(p); err != nil {
			return fmt.Errorf("%s (line %d): %v", k.Value, v.Line, err)
		}
	}
	return nil
}

// Duration is a time.Duration written as "100ms" in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return errors.New("expected a duration such as \"100ms\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Defaults returns the configuration used for fields the file leaves out.
func Defaults() Config {
	return Config{Listen: "127.0.0.1:7700", DataDir: "/var/lib/xlane", Grace: Duration(100 * time.Millisecond), WatchCoalesce: Duration(2 * time.Millisecond), UpcallHoldoff: Duration(2 * time.Millisecond), MaxBatch: 16, Driver: "memory", OpenFlowListen: ":6653", LogLevel: "info", GCPercent: 400,
		MetricsAddr: "127.0.0.1:7701", OpenFlowBurstSlack: Duration(openflow.DefaultBurstSlack), MonitorInterval: Duration(time.Second), UnusedFraction: 0.1, UnusedIntervals: 10, IdleIntervals: 30, ViolationIntervals: 5}
}

// Parse reads a YAML configuration over the defaults. Unknown or repeated
// keys are errors, so a typo does not silently fall back to a default, and
// every error names the key and its line.
func Parse(r io.Reader) (Config, error) {
	c := Defaults()
	data, err := io.ReadAll(r)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return c, c.Validate()
		}
		return c, fmt.Errorf("config: %w", err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if err := strictDecode(doc, map[string]any{
		"listen": &c.Listen, "topology": &c.Topology, "data_dir": &c.DataDir, "grace": &c.Grace, "bound_headroom": &c.BoundHeadroom, "watch_coalesce": &c.WatchCoalesce, "upcall_holdoff": &c.UpcallHoldoff, "max_batch": &c.MaxBatch,
		"driver": &c.Driver, "insecure": &c.Insecure, "log_level": &c.LogLevel, "gc_percent": &c.GCPercent, "realtime_priority": &c.RealtimePriority,
		"p4runtime": &c.P4Runtime, "openflow_listen": &c.OpenFlowListen, "openflow_tls_cert": &c.OpenFlowTLSCert, "openflow_tls_key": &c.OpenFlowTLSKey, "openflow_ca": &c.OpenFlowCA, "openflow_burst_slack": &c.OpenFlowBurstSlack,
		"tls_cert": &c.TLSCert, "tls_key": &c.TLSKey, "client_ca": &c.ClientCA, "quotas": &c.Quotas, "metrics_addr": &c.MetricsAddr, "pprof": &c.Pprof,
		"monitor_interval": &c.MonitorInterval, "unused_fraction": &c.UnusedFraction, "unused_intervals": &c.UnusedIntervals,
		"idle_intervals": &c.IdleIntervals, "violation_intervals": &c.ViolationIntervals,
	}); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, c.Validate()
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Listen)
	sock, isUnix := UnixSocket(c.Listen)
	switch {
	case isUnix && sock == "":
		return fmt.Errorf("config: listen: %q names no socket file (unix:/path)", c.Listen)
	case !isUnix && (err != nil || port == ""):
		return fmt.Errorf("config: listen: %q is not host:port or unix:/path", c.Listen)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: tls_cert and tls_key: give both or neither")
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		return errors.New("config: client_ca: mutual TLS needs tls_cert and tls_key too")
	}
	if !c.Insecure && c.TLSCert == "" && !isUnix && !isLoopback(host) {
		return fmt.Errorf("config: listen: %q is not a loopback address; give tls_cert and tls_key, or insecure: true for plain text", c.Listen)
	}
	if c.Pprof && c.MetricsAddr == "" {
		return errors.New("config: pprof: needs metrics_addr, where it is served")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("config: metrics_addr: %q is not host:port", c.MetricsAddr)
		}
	}
	if c.DataDir == "" {
		return errors.New("config: data_dir: must not be empty")
	}
	if c.BoundHeadroom < 0 || c.BoundHeadroom > 1 || math.IsNaN(c.BoundHeadroom) {
		return fmt.Errorf("config: bound_headroom: %v must be between 0 and 1 (a fraction: 0.1 is 10 %%)", c.BoundHeadroom)
	}
	if c.Grace < 0 || time.Duration(c.Grace) > time.Minute {
		return fmt.Errorf("config: grace: %v must be between 0 and 1m", time.Duration(c.Grace))
	}
	if c.WatchCoalesce < 0 || time.Duration(c.WatchCoalesce) > 50*time.Millisecond {
		return fmt.Errorf("config: watch_coalesce: %v must be between 0 and 50ms (upcalls must reach services well within their grace)", time.Duration(c.WatchCoalesce))
	}
	if c.RealtimePriority < 0 || c.RealtimePriority > 99 {
		return fmt.Errorf("config: realtime_priority: %d must be between 0 (the normal scheduler) and 99 (SCHED_RR priorities are 1 to 99)", c.RealtimePriority)
	}
	if c.MaxBatch < 0 || c.MaxBatch > 100_000 {
		return fmt.Errorf("config: max_batch: %d must be between 0 (no cap) and 100000", c.MaxBatch)
	}
	if c.UpcallHoldoff < 0 || time.Duration(c.UpcallHoldoff) > 50*time.Millisecond {
		return fmt.Errorf("config: upcall_holdoff: %v must be between 0 and 50ms (admissions wait up to this long)", time.Duration(c.UpcallHoldoff))
	}
	switch c.Driver {
	case "memory":
	case "openflow":
		if _, _, err := net.SplitHostPort(c.OpenFlowListen); err != nil {
			return fmt.Errorf("config: openflow_listen: %q is not host:port", c.OpenFlowListen)
		}
		if (c.OpenFlowTLSCert == "") != (c.OpenFlowTLSKey == "") {
			return errors.New("config: openflow_tls_cert and openflow_tls_key: give both or neither")
		}
		if c.OpenFlowCA != "" && c.OpenFlowTLSCert == "" {
			return errors.New("config: openflow_ca: authenticating switches needs openflow_tls_cert and openflow_tls_key too")
		}
		if c.OpenFlowBurstSlack < 0 || time.Duration(c.OpenFlowBurstSlack) > time.Second {
			return fmt.Errorf("config: openflow_burst_slack: %v must be between 0 and 1s", time.Duration(c.OpenFlowBurstSlack))
		}
	case "p4runtime":
		p := c.P4Runtime
		if p.ElectionID == 0 {
			return errors.New("config: p4runtime.election_id: must be above 0 (the highest election id is the primary controller)")
		}
		if len(p.Switches) == 0 {
			return errors.New("config: p4runtime.switches: give each switch's P4Runtime address")
		}
		for name, t := range p.Switches {
			if _, _, err := net.SplitHostPort(t.Addr); err != nil {
				return fmt.Errorf("config: p4runtime.switches.%s.addr: %q is not host:port", name, t.Addr)
			}
		}
		if (p.P4Info == "") != (p.DeviceConfig == "") {
			return errors.New("config: p4runtime.p4info and p4runtime.device_config: give both or neither")
		}
		if p.BurstSlack < 0 || time.Duration(p.BurstSlack) > time.Second {
			return fmt.Errorf("config: p4runtime.burst_slack: %v must be between 0 and 1s", time.Duration(p.BurstSlack))
		}
	default:
		return fmt.Errorf("config: driver: %q must be openflow, p4runtime or memory", c.Driver)
	}
	if c.MonitorInterval < Duration(10*time.Millisecond) || c.MonitorInterval > Duration(time.Hour) {
		return fmt.Errorf("config: monitor_interval: %v must be between 10ms and 1h", time.Duration(c.MonitorInterval))
	}
	if !(c.UnusedFraction > 0 && c.UnusedFraction <= 1) {
		return fmt.Errorf("config: unused_fraction: %v must be in (0, 1]", c.UnusedFraction)
	}
	for name, v := range map[string]int{"unused_intervals": c.UnusedIntervals, "idle_intervals": c.IdleIntervals, "violation_intervals": c.ViolationIntervals} {
		if v < 1 || v > 1_000_000 {
			return fmt.Errorf("config: %s: %d must be between 1 and 1000000", name, v)
		}
	}
	for name, q := range c.Quotas.Services {
		if q.MaxTunnels < 0 {
			return fmt.Errorf("config: quotas.services.%s.max_tunnels: %d must not be negative", name, q.MaxTunnels)
		}
	}
	if c.Quotas.Default.MaxTunnels < 0 {
		return fmt.Errorf("config: quotas.default.max_tunnels: %d must not be negative", c.Quotas.Default.MaxTunnels)
	}
	if c.GCPercent != -1 && (c.GCPercent < 25 || c.GCPercent > 10000) {
		return fmt.Errorf("config: gc_percent: %d must be between 25 and 10000, or -1 (off)", c.GCPercent)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level: %q must be debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// UnixSocket returns the socket file of a "unix:/path" (or
// "unix:///path", gRPC's spelling) listen address: the API on a Unix
// socket, for services on this host in other network namespaces, which
// cannot reach its loopback. ok is false for host:port.
func UnixSocket(listen string) (path string, ok bool) {
	rest, ok := strings.CutPrefix(listen, "unix:")
	if !ok {
		return "", false
	}
	if p, ok := strings.CutPrefix(rest, "//"); ok {
		rest = p
	}
	return rest, true
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
