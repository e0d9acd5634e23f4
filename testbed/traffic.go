package testbed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// ListenUDP opens a UDP socket in host's namespace on port, reporting
// the TOS byte of what it receives (see ReadTOS).
func (tb *Testbed) ListenUDP(host string, port uint16) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := tb.Do(host, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: int(port)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen udp :%d on %s: %w", port, host, err)
	}
	return c, recvTOS(c)
}

// ListenMulticast joins group on host's eth0 and receives its packets.
func (tb *Testbed) ListenMulticast(host string, group netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := tb.Do(host, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(group))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("join %s on %s: %w", group, host, err)
	}
	return c, recvTOS(c)
}

// DialUDP opens a UDP socket in host's namespace that sends to dst with
// the given DSCP.
func (tb *Testbed) DialUDP(host string, dst netip.AddrPort, dscp uint8) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := tb.Do(host, func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("udp socket to %s on %s: %w", dst, host, err)
	}
	if err := setSockopt(c, unix.IPPROTO_IP, unix.IP_TOS, int(dscp)<<2); err != nil {
		c.Close()
		return nil, err
	}
	if dst.Addr().IsMulticast() {
		if err := setSockopt(c, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 8); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func setSockopt(c *net.UDPConn, level, opt, v int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setsockopt %d/%d: %w", level, opt, serr)
	}
	return nil
}

// recvTOS asks the kernel for each datagram's TOS byte and its receive
// timestamp (taken when the packet reached the socket, so a busy reading
// process does not add to measured latencies).
func recvTOS(c *net.UDPConn) error {
	if err := setSockopt(c, unix.IPPROTO_IP, unix.IP_RECVTOS, 1); err != nil {
		c.Close()
		return err
	}
	if err := setSockopt(c, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		c.Close()
		return err
	}
	return nil
}

// Packet is one received datagram.
type Packet struct {
	Data []byte
	TOS  uint8
	At   time.Time // the kernel's receive timestamp (wall clock)
}

// ReadTOS reads one datagram with its TOS byte (the socket must come from
// ListenUDP or ListenMulticast).
func ReadTOS(c *net.UDPConn, buf []byte) (Packet, error) {
	oob := make([]byte, 128)
	n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
	if err != nil {
		return Packet{}, err
	}
	p := Packet{Data: buf[:n], At: time.Now()}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return p, fmt.Errorf("control messages: %w", err)
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) > 0:
			p.TOS = m.Data[0]
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16:
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			p.At = time.Unix(sec, nsec)
		}
	}
	return p, nil
}

// Load sends UDP datagrams of size bytes (payload) from host to dst at
// rateBps (counting the payload plus 42 header bytes) with DSCP 0 until
// dur elapses or ctx ends, and returns how many it sent. It paces in
// small bursts against the clock, so short stalls do not lower the rate.
func (tb *Testbed) Load(ctx context.Context, host string, dst netip.AddrPort, rateBps int64, size int, dur time.Duration) (int, error) {
	if rateBps <= 0 || size <= 0 || size > 1472 {
		return 0, fmt.Errorf("load: rate %d bit/s and size %d B (1 to 1472) must be positive", rateBps, size)
	}
	c, err := tb.DialUDP(host, dst, 0)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	payload := make([]byte, size)
	gap := time.Duration(float64((size+42)*8) / float64(rateBps) * float64(time.Second))
	start := time.Now()
	sent := 0
	for {
		now := time.Now()
		if now.Sub(start) >= dur || ctx.Err() != nil {
			return sent, nil
		}
		due := int(now.Sub(start)/gap) + 1
		for ; sent < due; sent++ {
			binary.BigEndian.PutUint64(payload, uint64(sent))
			if _, err := c.Write(payload); err != nil {
				// A full egress queue refuses datagrams: that is load.
				// ICMP errors from the receiver (nothing listens) are not
				// the sender's business either.
				if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ECONNREFUSED) {
					continue
				}
				return sent, fmt.Errorf("load: send: %w", err)
			}
		}
		time.Sleep(min(gap, time.Millisecond))
	}
}
