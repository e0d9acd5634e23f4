package lane

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/endhost/bridge"
)

// Packet-ring geometry: 8 blocks of 256 KiB, retired after 1 ms at the
// latest so a lone packet does not wait for its block to fill.
const (
	ringBlockSize = 1 << 18
	ringBlocks    = 8
	ringFrameSize = 2048
	ringRetireMs  = 1
)

// RingReceiver takes a tunnel's packets off the interface through an
// AF_PACKET TPACKET_V3 ring mapped into the lane's memory: the kernel
// writes them there (with its receive time) and the lane reads them
// without a system call per packet. A classic BPF filter on the socket
// admits only IPv4 UDP to the lane's port. The host's stack still sees
// the packets; a UDP socket bound to the port (Absorb) keeps it from
// answering with ICMP errors.
type RingReceiver struct {
	delivery
	fd      int
	ring    []byte
	block   int
	port    uint16
	busy    bool
	absorb  *net.UDPConn
	pollfds []unix.PollFd
	// Core, when set before Run, pins the goroutine that calls Run.
	Core *Core
}

// NewRingReceiver opens a packet ring on interface ifname for UDP port
// port. It needs CAP_NET_RAW (root).
func NewRingReceiver(ifname string, port uint16, sinks map[uint16]*bridge.Ring, busy bool) (_ *RingReceiver, err error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("lane: packet ring on %s: %w", ifname, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("lane: packet socket (needs CAP_NET_RAW): %w", err)
	}
	r := &RingReceiver{delivery: delivery{sinks: sinks, start: time.Now()}, fd: fd, port: port, busy: busy}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := r.filter(); err != nil {
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("lane: TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{Block_size: ringBlockSize, Block_nr: ringBlocks, Frame_size: ringFrameSize,
		Frame_nr: ringBlockSize / ringFrameSize * ringBlocks, Retire_blk_tov: ringRetireMs}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("lane: packet ring: %w", err)
	}
	if r.ring, err = unix.Mmap(fd, 0, ringBlockSize*ringBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_LOCKED); err != nil {
		if r.ring, err = unix.Mmap(fd, 0, ringBlockSize*ringBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
			return nil, fmt.Errorf("lane: map the packet ring: %w", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
		return nil, fmt.Errorf("lane: bind the packet ring to %s: %w", ifname, err)
	}
	r.pollfds = []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	return r, nil
}

// Absorb binds a UDP socket on the port in the host's stack, which then
// takes the packets quietly instead of answering "port unreachable"; the
// socket is never read (its small buffer just overflows).
func (r *RingReceiver) Absorb() error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(r.port)})
	if err != nil {
		return fmt.Errorf("lane: absorbing port %d: %w", r.port, err)
	}
	_ = c.SetReadBuffer(4096)
	r.absorb = c
	return nil
}

// filter admits IPv4 UDP datagrams to the port, unfragmented.
func (r *RingReceiver) filter() error {
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                           // EtherType
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 8}, // IPv4
		bpf.LoadAbsolute{Off: 23, Size: 1},                           // protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 6},
		bpf.LoadAbsolute{Off: 20, Size: 2}, // flags and fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4},
		bpf.LoadMemShift{Off: 14},              // X = IP header length
		bpf.LoadIndirect{Off: 14 + 2, Size: 2}, // UDP destination port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(r.port), SkipFalse: 1},
		bpf.RetConstant{Val: 65535},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return fmt.Errorf("lane: packet filter: %w", err)
	}
	f := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		f[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	if err := unix.SetsockoptSockFprog(r.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}); err != nil {
		return fmt.Errorf("lane: attach the packet filter: %w", err)
	}
	return nil
}

// Block descriptor and packet header offsets (linux/if_packet.h).
const (
	blkStatus   = 8  // tpacket_hdr_v1.block_status
	blkNumPkts  = 12 // num_pkts
	blkFirstPkt = 16 // offset_to_first_pkt
	hdrNext     = 0  // tpacket3_hdr.tp_next_offset
	hdrSec      = 4
	hdrNsec     = 8
	hdrSnaplen  = 12
	hdrMac      = 24
	hdrPktType  = 48 + 10 // the sockaddr_ll after the aligned header: sll_pkttype
	ethLen      = 14
	ipMinLen    = 20
	udpLen      = 8
)

// Poll takes the packets of the next block if the kernel handed it over,
// without waiting.
func (r *RingReceiver) Poll() error {
	b := r.ring[r.block*ringBlockSize : (r.block+1)*ringBlockSize]
	if ne32(b[blkStatus:])&unix.TP_STATUS_USER == 0 {
		return nil
	}
	wall, mono := r.stamp()
	n := int(ne32(b[blkNumPkts:]))
	off := int(ne32(b[blkFirstPkt:]))
	for i := 0; i < n && off > 0 && off < len(b)-hdrPktType; i++ {
		h := b[off:]
		if h[hdrPktType] != unix.PACKET_OUTGOING { // loopback shows our own sends too
			mac, snap := int(ne16(h[hdrMac:])), int(ne32(h[hdrSnaplen:]))
			if mac+snap <= len(h) {
				kernelNs := int64(ne32(h[hdrSec:]))*1e9 + int64(ne32(h[hdrNsec:]))
				r.frame(h[mac:mac+snap], kernelNs, wall, mono)
			}
		}
		next := int(ne32(h[hdrNext:]))
		if next == 0 {
			break
		}
		off += next
	}
	binary.NativeEndian.PutUint32(b[blkStatus:], unix.TP_STATUS_KERNEL) // the block goes back
	r.block = (r.block + 1) % ringBlocks
	return nil
}

// frame strips Ethernet, IPv4 and UDP from a frame the filter admitted.
func (r *RingReceiver) frame(f []byte, kernelNs, wall, mono int64) {
	if len(f) < ethLen+ipMinLen+udpLen {
		r.Stats.Wire.Bad++
		return
	}
	ihl := int(f[ethLen]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(f[ethLen+2:]))
	if ihl < ipMinLen || total < ihl+udpLen || ethLen+total > len(f) {
		r.Stats.Wire.Bad++
		return
	}
	udp := f[ethLen+ihl : ethLen+total]
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < udpLen || ulen > len(udp) {
		r.Stats.Wire.Bad++
		return
	}
	r.payload(udp[udpLen:ulen], kernelNs, wall, mono)
}

// Run takes packets until ctx ends; sleeping in poll(2) between blocks
// unless busy.
func (r *RingReceiver) Run(ctx context.Context) error {
	if r.Core != nil {
		if err := r.Core.Pin(); err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		b := r.ring[r.block*ringBlockSize:]
		if !r.busy && ne32(b[blkStatus:])&unix.TP_STATUS_USER == 0 {
			if _, err := unix.Poll(r.pollfds, 100); err != nil && err != unix.EINTR {
				return fmt.Errorf("lane: poll the packet ring: %w", err)
			}
			continue
		}
		if err := r.Poll(); err != nil {
			return err
		}
	}
	return nil
}

// Close unmaps the ring and closes the sockets.
func (r *RingReceiver) Close() error {
	if r.ring != nil {
		_ = unix.Munmap(r.ring)
		r.ring = nil
	}
	if r.absorb != nil {
		r.absorb.Close()
	}
	return unix.Close(r.fd)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ne32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
func ne16(b []byte) uint16 { return binary.NativeEndian.Uint16(b) }
