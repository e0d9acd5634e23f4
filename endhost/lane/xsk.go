package lane

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/endhost/bridge"
)

// AF_XDP geometry: one UMEM of 4,096 frames of 2 KiB; rings of 2,048.
const (
	xskFrames    = 4096
	xskFrameSize = 2048
	xskRing      = 2048
)

// XSKReceiver takes a tunnel's packets off the interface before the host's
// stack sees them: an XDP program on the interface steers IPv4 UDP to the
// lane's port into an AF_XDP socket, whose frames land in memory the lane
// maps (copy mode, which every driver supports). Everything else passes to
// the stack untouched. AF_XDP carries no kernel receive time: the lane's
// own stamp is the first.
type XSKReceiver struct {
	delivery
	fd     int
	umem   []byte
	rx, fq xskRing_
	prog   *ebpf.Program
	xsks   *ebpf.Map
	link   netlink.Link
	busy   bool
	Core   *Core
	pfds   []unix.PollFd
}

// xskRing_ is one mapped AF_XDP ring.
type xskRing_ struct {
	mem        []byte
	prod, cons *atomic.Uint32
	desc       unsafe.Pointer
	mask       uint32
}

func mapRing(fd int, off unix.XDPRingOffset, pgoff int64, entry uintptr) (xskRing_, error) {
	size := int(off.Desc) + xskRing*int(entry)
	mem, err := unix.Mmap(fd, pgoff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return xskRing_{}, err
	}
	return xskRing_{mem: mem, prod: (*atomic.Uint32)(unsafe.Pointer(&mem[off.Producer])), cons: (*atomic.Uint32)(unsafe.Pointer(&mem[off.Consumer])),
		desc: unsafe.Pointer(&mem[off.Desc]), mask: xskRing - 1}, nil
}

func sockopt(fd, level, name int, p unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(p), size, 0); e != 0 {
		return e
	}
	return nil
}

// NewXSKReceiver attaches the steering program to ifname (generic XDP)
// and binds an AF_XDP socket to its queue 0. It needs CAP_NET_ADMIN and
// CAP_BPF (root).
func NewXSKReceiver(ifname string, port uint16, sinks map[uint16]*bridge.Ring, busy bool) (_ *XSKReceiver, err error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("lane: AF_XDP on %s: %w", ifname, err)
	}
	r := &XSKReceiver{delivery: delivery{sinks: sinks, start: time.Now()}, fd: -1, busy: busy, link: link}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP socket: %w", err)
	}
	if r.umem, err = unix.Mmap(-1, 0, xskFrames*xskFrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP memory: %w", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&r.umem[0]))), Len: uint64(len(r.umem)), Size: xskFrameSize}
	if err := sockopt(r.fd, unix.SOL_XDP, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP register memory: %w", err)
	}
	n := uint32(xskRing)
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := sockopt(r.fd, unix.SOL_XDP, opt, unsafe.Pointer(&n), 4); err != nil {
			return nil, fmt.Errorf("lane: AF_XDP ring size: %w", err)
		}
	}
	var off unix.XDPMmapOffsets
	olen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(r.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&olen)), 0); e != 0 {
		return nil, fmt.Errorf("lane: AF_XDP ring offsets: %w", e)
	}
	if r.rx, err = mapRing(r.fd, off.Rx, unix.XDP_PGOFF_RX_RING, unsafe.Sizeof(unix.XDPDesc{})); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP receive ring: %w", err)
	}
	if r.fq, err = mapRing(r.fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, 8); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP fill ring: %w", err)
	}
	// Every frame the ring can hold goes to the kernel to fill.
	for i := uint32(0); i < xskRing; i++ {
		*(*uint64)(unsafe.Add(r.fq.desc, uintptr(i)*8)) = uint64(i) * xskFrameSize
	}
	r.fq.prod.Store(xskRing)
	if err := unix.Bind(r.fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(link.Attrs().Index), QueueID: 0}); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP bind to %s queue 0: %w", ifname, err)
	}
	if r.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xlane_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 64}); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP socket map: %w", err)
	}
	if err := r.xsks.Put(uint32(0), uint32(r.fd)); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP socket map: %w", err)
	}
	if r.prog, err = steerProgram(r.xsks, port); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetXdpFdWithFlags(link, r.prog.FD(), unix.XDP_FLAGS_SKB_MODE); err != nil {
		return nil, fmt.Errorf("lane: attach XDP to %s: %w", ifname, err)
	}
	r.pfds = []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
	return r, nil
}

// steerProgram redirects unfragmented IPv4 UDP (with a 20-byte IP
// header) to port into the socket of the packet's receive queue, and
// passes everything else.
func steerProgram(xsks *ebpf.Map, port uint16) (*ebpf.Program, error) {
	const pass = "pass"
	be16 := func(v uint16) int32 { return int32(v>>8 | v<<8&0xff00) } // network order, as a little-endian load sees it
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20+8),
		asm.JGT.Reg(asm.R4, asm.R3, pass),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, be16(0x0800), pass),
		asm.LoadMem(asm.R5, asm.R2, 14, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, pass),
		asm.LoadMem(asm.R5, asm.R2, 23, asm.Byte),
		asm.JNE.Imm(asm.R5, unix.IPPROTO_UDP, pass),
		asm.LoadMem(asm.R5, asm.R2, 20, asm.Half),
		asm.And.Imm(asm.R5, be16(0x1fff)),
		asm.JNE.Imm(asm.R5, 0, pass),
		asm.LoadMem(asm.R5, asm.R2, 36, asm.Half),
		asm.JNE.Imm(asm.R5, be16(port), pass),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // rx_queue_index
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, 2), // no socket on that queue: pass
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol(pass),
		asm.Return(),
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xlane_steer", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		return nil, fmt.Errorf("lane: load the XDP steering program: %w", err)
	}
	return p, nil
}

// Poll takes every frame that waits in the receive ring, without waiting.
func (r *XSKReceiver) Poll() error {
	prod := r.rx.prod.Load()
	cons := r.rx.cons.Load()
	if prod == cons {
		return nil
	}
	wall, mono := r.stamp()
	fprod := r.fq.prod.Load()
	for ; cons != prod; cons++ {
		d := (*unix.XDPDesc)(unsafe.Add(r.rx.desc, uintptr(cons&r.rx.mask)*unsafe.Sizeof(unix.XDPDesc{})))
		if d.Addr+uint64(d.Len) <= uint64(len(r.umem)) {
			r.frame(r.umem[d.Addr:d.Addr+uint64(d.Len)], wall, mono)
		}
		// The frame goes back to the kernel to fill again.
		*(*uint64)(unsafe.Add(r.fq.desc, uintptr(fprod&r.fq.mask)*8)) = d.Addr &^ (xskFrameSize - 1)
		fprod++
	}
	r.rx.cons.Store(cons)
	r.fq.prod.Store(fprod)
	return nil
}

// frame strips Ethernet, IPv4 and UDP.
func (r *XSKReceiver) frame(f []byte, wall, mono int64) {
	if len(f) < ethLen+ipMinLen+udpLen {
		r.Stats.Wire.Bad++
		return
	}
	total := int(binary.BigEndian.Uint16(f[ethLen+2:]))
	if total < ipMinLen+udpLen || ethLen+total > len(f) {
		r.Stats.Wire.Bad++
		return
	}
	udp := f[ethLen+ipMinLen : ethLen+total]
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < udpLen || ulen > len(udp) {
		r.Stats.Wire.Bad++
		return
	}
	r.payload(udp[udpLen:ulen], 0, wall, mono)
}

// Run takes packets until ctx ends; sleeping in poll(2) unless busy.
func (r *XSKReceiver) Run(ctx context.Context) error {
	if r.Core != nil {
		if err := r.Core.Pin(); err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		if !r.busy && r.rx.prod.Load() == r.rx.cons.Load() {
			if _, err := unix.Poll(r.pfds, 100); err != nil && err != unix.EINTR {
				return fmt.Errorf("lane: poll the AF_XDP socket: %w", err)
			}
			continue
		}
		if err := r.Poll(); err != nil {
			return err
		}
	}
	return nil
}

// Close detaches the program and releases the socket and memory.
func (r *XSKReceiver) Close() error {
	if r.prog != nil {
		_ = netlink.LinkSetXdpFdWithFlags(r.link, -1, unix.XDP_FLAGS_SKB_MODE)
		r.prog.Close()
	}
	if r.xsks != nil {
		r.xsks.Close()
	}
	for _, m := range [][]byte{r.rx.mem, r.fq.mem, r.umem} {
		if m != nil {
			_ = unix.Munmap(m)
		}
	}
	if r.fd >= 0 {
		return unix.Close(r.fd)
	}
	return nil
}

var _ Inbound = (*XSKReceiver)(nil)
