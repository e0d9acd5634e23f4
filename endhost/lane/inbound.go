package lane

import (
	"fmt"
	"net"

	"github.com/xlane/xlane/endhost/bridge"
)

// Receive paths, fastest first.
const (
	PathXDP        = "xdp"
	PathPacketRing = "packet_ring"
	PathSocket     = "socket"
	PathAuto       = "auto"
)

// InboundConfig says where a receive port's packets arrive and how they
// may be taken.
type InboundConfig struct {
	Interface string // "" leaves only the socket
	Port      uint16
	Path      string // auto (or ""), xdp, packet_ring or socket
	// Shared: other receive ports use the interface too; AF_XDP, one
	// program per interface, is then out for auto.
	Shared bool
	Conn   *net.UDPConn // bound to Port: the socket path, and the stack's copy beside the packet ring
	Sinks  map[uint16]*bridge.Ring
	Busy   bool // busy-polling lane core
}

// Opened is the receive path OpenInbound chose.
type Opened struct {
	Inbound
	Path string
	// Detail: for AF_XDP, where the program runs and on how many queues.
	Detail string
	// NotFaster says why each faster path was not taken (auto).
	NotFaster []string
	// Close releases what the path holds (the XDP program, the rings);
	// nil for the socket, which its owner closes. Call it in the network
	// namespace the path was opened in.
	Close func() error
}

// OpenInbound opens the first receive path that works of AF_XDP (the
// interface's XDP program steers the port's packets into an AF_XDP socket
// before the host's stack), the interface's TPACKET_V3 ring (no system
// call per packet; the stack also gets a copy), and the socket; or the one
// named, failing when it does not work. Open it in the namespace of the
// interface.
func OpenInbound(c InboundConfig) (*Opened, error) {
	path := c.Path
	if path == "" {
		path = PathAuto
	}
	switch path {
	case PathAuto, PathXDP, PathPacketRing, PathSocket:
	default:
		return nil, fmt.Errorf("lane: receive path %q: auto, xdp, packet_ring or socket", c.Path)
	}
	var why []string
	if c.Interface != "" && (path == PathAuto || path == PathXDP) {
		if path == PathAuto && c.Shared {
			why = append(why, "xdp: one receive port per interface")
		} else if xr, err := NewXSKReceiver(c.Interface, c.Port, c.Sinks, c.Busy); err == nil {
			return &Opened{Inbound: xr, Path: PathXDP, Detail: xr.Mode(), Close: xr.Close}, nil
		} else if path == PathXDP {
			return nil, fmt.Errorf("lane: receive port %d: %w", c.Port, err)
		} else {
			why = append(why, "xdp: "+err.Error())
		}
	}
	if c.Interface != "" && (path == PathAuto || path == PathPacketRing) {
		rr, err := NewRingReceiver(c.Interface, c.Port, c.Sinks, c.Busy)
		if err == nil {
			if c.Conn != nil {
				// The socket stays bound: the host's stack takes its copy
				// quietly instead of answering "port unreachable".
				_ = c.Conn.SetReadBuffer(4096)
			}
			return &Opened{Inbound: rr, Path: PathPacketRing, NotFaster: why, Close: rr.Close}, nil
		}
		if path == PathPacketRing {
			return nil, fmt.Errorf("lane: receive port %d: %w", c.Port, err)
		}
		why = append(why, "packet ring: "+err.Error())
	}
	if c.Interface == "" && path == PathAuto {
		why = append(why, "no interface configured")
	}
	if c.Conn == nil {
		return nil, fmt.Errorf("lane: receive port %d: no socket for the socket path", c.Port)
	}
	r, err := NewReceiver(c.Conn, c.Sinks, c.Busy)
	if err != nil {
		return nil, err
	}
	return &Opened{Inbound: r, Path: PathSocket, NotFaster: why}, nil
}
