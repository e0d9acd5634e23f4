// Package agent is the xlane-endhost daemon's core: it reads its
// configuration, requests the host's tunnels from the controller, creates
// the applications' rings, runs the lanes (on a pinned lane core when one
// is configured), follows the controller's upcalls, and releases the
// tunnels when it stops.
package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/xlane/xlane/endhost/wire"
)

// Config is the agent's configuration file.
type Config struct {
	// Controller is the controller's API: host:port, or unix:/path when it
	// listens on a Unix socket of this host (from another network
	// namespace, where its loopback is out of reach).
	Controller string `yaml:"controller"`
	Service    string `yaml:"service"` // the identity the tunnels belong to
	TLSCA      string `yaml:"tls_ca"`
	TLSCert    string `yaml:"tls_cert"`
	TLSKey     string `yaml:"tls_key"`
	ShmDir     string `yaml:"shm_dir"` // where the rings live
	Schema     string `yaml:"schema"`  // hd6 or hd8
	// LaneCPU, when ≥ 0, runs every lane of this host on one pinned,
	// polling lane core on that CPU; -1 runs them on plain goroutines.
	LaneCPU  int `yaml:"lane_cpu"`
	Priority int `yaml:"priority"` // SCHED_FIFO priority of the lane core; 0: normal
	// Interface is where the lanes' packets arrive; with it, receive_path
	// auto uses the interface's packet ring.
	Interface string `yaml:"interface"`
	// ReceivePath is auto (AF_XDP, else the packet ring, else the
	// socket: the first that works), xdp, packet_ring or socket.
	ReceivePath string `yaml:"receive_path"`
	// MetricsAddr serves Prometheus metrics at /metrics; "" turns it off.
	MetricsAddr string    `yaml:"metrics_addr"`
	LockMem     bool      `yaml:"lock_memory"`
	Lanes       []Lane    `yaml:"lanes"`
	Receive     []Receive `yaml:"receive"`
}

// Lane is one tunnel this host sends on.
type Lane struct {
	Name         string        `yaml:"name"`
	Sender       string        `yaml:"sender"`   // this host's address
	Receiver     string        `yaml:"receiver"` // ip:port
	MessageBytes int           `yaml:"message_bytes"`
	Period       time.Duration `yaml:"period"`
	Sublane      int           `yaml:"sublane"`
	Apps         []App         `yaml:"apps"`
}

// Receive is a port this host takes tunnel packets on; with Group, the
// host joins that multicast group (at the controller, which re-plans the
// group's trees, and on Interface) as Member.
type Receive struct {
	Port   uint16 `yaml:"port"`
	Group  string `yaml:"group"`  // IPv4 multicast address, or empty
	Member string `yaml:"member"` // this host's address, with Group
	Apps   []App  `yaml:"apps"`
}

// App is an application and the channel its messages carry in a lane.
type App struct {
	Name    string `yaml:"name"`
	Channel uint16 `yaml:"channel"`
}

// Defaults are the values of an empty file.
func Defaults() Config {
	return Config{Controller: "127.0.0.1:7700", ShmDir: "/dev/shm/xlane", Schema: "hd6", LaneCPU: -1, MetricsAddr: "127.0.0.1:7711", ReceivePath: "auto"}
}

// Parse reads a configuration; unknown keys and bad values are errors
// naming the key.
func Parse(r io.Reader) (Config, error) {
	c := Defaults()
	d := yaml.NewDecoder(r)
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("endhost config: %w", err)
	}
	return c, c.Validate()
}

// SchemaOf returns the chunk schema.
func (c Config) SchemaOf() *wire.Schema {
	if c.Schema == "hd8" {
		return wire.HD8
	}
	return wire.HD6
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("endhost config: %s: %s (got %v)", key, why, v)
	}
	if sock, ok := strings.CutPrefix(c.Controller, "unix:"); ok {
		if strings.TrimLeft(sock, "/") == "" {
			return bad("controller", c.Controller, "unix: needs the socket's path")
		}
	} else if _, _, err := net.SplitHostPort(c.Controller); err != nil {
		return bad("controller", c.Controller, "must be host:port or unix:/path")
	}
	switch c.ReceivePath {
	case "", "auto", "socket":
	case "packet_ring", "xdp":
		if c.Interface == "" {
			return bad("interface", `""`, "receive_path "+c.ReceivePath+" needs the interface")
		}
		if c.ReceivePath == "xdp" && len(c.Receive) > 1 {
			return bad("receive_path", c.ReceivePath, "xdp serves one receive port per interface")
		}
	default:
		return bad("receive_path", c.ReceivePath, "auto, xdp, packet_ring or socket")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return bad("metrics_addr", c.MetricsAddr, `must be host:port, or "" for none`)
		}
	}
	if !validName(c.Service) {
		return bad("service", c.Service, "the service identity is required: letters, digits, - and _")
	}
	if c.ShmDir == "" {
		return bad("shm_dir", `""`, "a directory is required")
	}
	if c.Schema != "hd6" && c.Schema != "hd8" {
		return bad("schema", c.Schema, "must be hd6 or hd8")
	}
	if c.LaneCPU < -1 {
		return bad("lane_cpu", c.LaneCPU, "a CPU number, or -1 for no lane core")
	}
	if c.Priority < 0 || c.Priority > 99 {
		return bad("priority", c.Priority, "SCHED_FIFO priority 1 to 99, or 0")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") || (c.TLSCert != "" && c.TLSCA == "") {
		return bad("tls_cert, tls_key, tls_ca", c.TLSCert, "give tls_ca for TLS, and tls_cert with tls_key for mutual TLS")
	}
	if len(c.Lanes) == 0 && len(c.Receive) == 0 {
		return errors.New("endhost config: lanes, receive: nothing to do (no lane to send on, no port to receive on)")
	}
	names := map[string]bool{}
	for i, l := range c.Lanes {
		key := fmt.Sprintf("lanes[%d]", i)
		if names[l.Name] {
			return bad(key+".name", l.Name, "unique among the lanes")
		}
		names[l.Name] = true
		if err := c.checkLane(key, l); err != nil {
			return err
		}
	}
	ports := map[uint16]bool{}
	for i, r := range c.Receive {
		key := fmt.Sprintf("receive[%d]", i)
		if r.Port == 0 || ports[r.Port] {
			return bad(key+".port", r.Port, "a port, unique among the receivers")
		}
		ports[r.Port] = true
		if r.Group != "" {
			if g, err := netip.ParseAddr(r.Group); err != nil || !g.Is4() || !g.IsMulticast() {
				return bad(key+".group", r.Group, "an IPv4 multicast address")
			}
			if m, err := netip.ParseAddr(r.Member); err != nil || !m.Is4() {
				return bad(key+".member", r.Member, "this host's IPv4 address (the group's member)")
			}
			if c.Interface == "" {
				return bad("interface", `""`, "joining a multicast group needs the interface")
			}
		}
		if err := checkApps(key, r.Apps); err != nil {
			return err
		}
	}
	return nil
}

func checkApps(key string, apps []App) error {
	if len(apps) == 0 {
		return fmt.Errorf("endhost config: %s.apps: at least one application", key)
	}
	names, chans := map[string]bool{}, map[uint16]bool{}
	for j, a := range apps {
		if a.Name == "" || names[a.Name] || !validName(a.Name) {
			return fmt.Errorf("endhost config: %s.apps[%d].name: a unique name of letters, digits, - and _ (got %q)", key, j, a.Name)
		}
		if chans[a.Channel] {
			return fmt.Errorf("endhost config: %s.apps[%d].channel: %d is used twice", key, j, a.Channel)
		}
		names[a.Name], chans[a.Channel] = true, true
	}
	return nil
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

// checkLane checks one lane (of the file, or requested by an application).
func (c Config) checkLane(key string, l Lane) error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("endhost config: %s.%s: %s (got %v)", key, field, why, v)
	}
	if !validName(l.Name) {
		return bad("name", l.Name, "a name of letters, digits, - and _")
	}
	if a, err := netip.ParseAddr(l.Sender); err != nil || !a.Is4() {
		return bad("sender", l.Sender, "this host's IPv4 address")
	}
	if ap, err := netip.ParseAddrPort(l.Receiver); err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
		return bad("receiver", l.Receiver, "an IPv4 ip:port (a host, or a multicast group)")
	}
	max := c.SchemaOf().MaxChunks(wire.MTU)*c.SchemaOf().DataLen() - 2
	if l.MessageBytes < 1 || l.MessageBytes > max {
		return bad("message_bytes", l.MessageBytes, fmt.Sprintf("between 1 and %d", max))
	}
	if l.Period <= 0 || l.Period > 10*time.Second {
		return bad("period", l.Period, "between 1µs and 10s")
	}
	if l.Sublane < 0 {
		return bad("sublane", l.Sublane, "not negative")
	}
	return checkApps(key, l.Apps)
}
