package lane

import (
	"context"
	"encoding/binary"
	"errors"
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

// AF_XDP geometry: per receive queue a UMEM of frames of 2 KiB, twice as
// many as its rings hold; 4,096 frames in all, at least 512 per queue.
const (
	xskFrames    = 4096
	xskMinFrames = 512
	xskFrameSize = 2048
	xskMaxQueues = 64
)

// XSKReceiver takes a tunnel's packets off the interface before the host's
// stack sees them: an XDP program on the interface (in its driver where
// the driver supports XDP, generic otherwise) steers IPv4 UDP to the
// lane's port into an AF_XDP socket, whose frames land in memory the lane
// maps (copy mode, which every driver supports). A socket serves one
// receive queue and the kernel hands it only its queue's packets, so there
// is one per queue of the interface (a NIC spreads flows over its queues,
// and so does a veth). Everything else passes to the stack untouched.
// AF_XDP carries no kernel receive time: the lane's own stamp is the first.
type XSKReceiver struct {
	delivery
	queues  []*xskQueue
	prog    *ebpf.Program
	xsks    *ebpf.Map
	link    netlink.Link
	xdpMode int // XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE
	busy    bool
	Core    *Core
	pfds    []unix.PollFd
}

// xskQueue is the AF_XDP socket of one receive queue and its memory.
type xskQueue struct {
	fd     int
	umem   []byte
	rx, fq xskRing_
}

// xskRing_ is one mapped AF_XDP ring.
type xskRing_ struct {
	mem        []byte
	prod, cons *atomic.Uint32
	desc       unsafe.Pointer
	mask       uint32
}

func mapRing(fd int, off unix.XDPRingOffset, pgoff int64, entry uintptr, entries uint32) (xskRing_, error) {
	size := int(off.Desc) + int(entries)*int(entry)
	mem, err := unix.Mmap(fd, pgoff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return xskRing_{}, err
	}
	return xskRing_{mem: mem, prod: (*atomic.Uint32)(unsafe.Pointer(&mem[off.Producer])), cons: (*atomic.Uint32)(unsafe.Pointer(&mem[off.Consumer])),
		desc: unsafe.Pointer(&mem[off.Desc]), mask: entries - 1}, nil
}

// openQueue makes the AF_XDP socket of receive queue q: its memory of
// frames, a fill ring handing half of them to the kernel, a receive ring.
// On error it returns what it made so far, for close.
func openQueue(link netlink.Link, q, frames int) (x *xskQueue, err error) {
	x = &xskQueue{fd: -1}
	if x.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if x.umem, err = unix.Mmap(-1, 0, frames*xskFrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return x, fmt.Errorf("memory: %w", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))), Len: uint64(len(x.umem)), Size: xskFrameSize}
	if err := sockopt(x.fd, unix.SOL_XDP, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return x, fmt.Errorf("register memory: %w", err)
	}
	ring := uint32(frames / 2)
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := sockopt(x.fd, unix.SOL_XDP, opt, unsafe.Pointer(&ring), 4); err != nil {
			return x, fmt.Errorf("ring size: %w", err)
		}
	}
	var off unix.XDPMmapOffsets
	olen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&olen)), 0); e != 0 {
		return x, fmt.Errorf("ring offsets: %w", e)
	}
	if x.rx, err = mapRing(x.fd, off.Rx, unix.XDP_PGOFF_RX_RING, unsafe.Sizeof(unix.XDPDesc{}), ring); err != nil {
		return x, fmt.Errorf("receive ring: %w", err)
	}
	if x.fq, err = mapRing(x.fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, 8, ring); err != nil {
		return x, fmt.Errorf("fill ring: %w", err)
	}
	// Every frame the fill ring can hold goes to the kernel to fill.
	for i := range ring {
		*(*uint64)(unsafe.Add(x.fq.desc, uintptr(i)*8)) = uint64(i) * xskFrameSize
	}
	x.fq.prod.Store(ring)
	if err := unix.Bind(x.fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(link.Attrs().Index), QueueID: uint32(q)}); err != nil {
		return x, fmt.Errorf("bind: %w", err)
	}
	return x, nil
}

func (x *xskQueue) close() error {
	for _, m := range [][]byte{x.rx.mem, x.fq.mem, x.umem} {
		if m != nil {
			_ = unix.Munmap(m)
		}
	}
	if x.fd >= 0 {
		return unix.Close(x.fd)
	}
	return nil
}

func sockopt(fd, level, name int, p unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(p), size, 0); e != 0 {
		return e
	}
	return nil
}

// NewXSKReceiver binds an AF_XDP socket to every receive queue of ifname
// and attaches the steering program (in the driver, else generic XDP). It
// needs CAP_NET_ADMIN and CAP_BPF (root).
func NewXSKReceiver(ifname string, port uint16, sinks map[uint16]*bridge.Ring, busy bool) (_ *XSKReceiver, err error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("lane: AF_XDP on %s: %w", ifname, err)
	}
	r := &XSKReceiver{delivery: delivery{sinks: sinks, start: time.Now()}, busy: busy, link: link}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	nq := max(1, link.Attrs().NumRxQueues) // the queues it was made with
	if n, ok := rxQueues(ifname); ok {
		nq = n // the queues it uses
	}
	if nq > xskMaxQueues {
		return nil, fmt.Errorf("lane: AF_XDP on %s: %d receive queues, at most %d", ifname, nq, xskMaxQueues)
	}
	frames := xskMinFrames
	for frames*2*nq <= xskFrames {
		frames *= 2
	}
	if r.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xlane_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: xskMaxQueues}); err != nil {
		return nil, fmt.Errorf("lane: AF_XDP socket map: %w", err)
	}
	for q := range nq {
		x, err := openQueue(link, q, frames)
		if x != nil {
			r.queues = append(r.queues, x)
		}
		if err != nil {
			return nil, fmt.Errorf("lane: AF_XDP on %s queue %d: %w", ifname, q, err)
		}
		if err := r.xsks.Put(uint32(q), uint32(x.fd)); err != nil {
			return nil, fmt.Errorf("lane: AF_XDP socket map: %w", err)
		}
		r.pfds = append(r.pfds, unix.PollFd{Fd: int32(x.fd), Events: unix.POLLIN})
	}
	if r.prog, err = steerProgram(r.xsks, port); err != nil {
		return nil, err
	}
	// The driver's own XDP hook where it has one: generic XDP (the
	// fallback) skips packets a tc action redirected, as a veth behind a
	// tc redirect receives them.
	r.xdpMode = unix.XDP_FLAGS_DRV_MODE
	if err := netlink.LinkSetXdpFdWithFlags(link, r.prog.FD(), r.xdpMode); err != nil {
		r.xdpMode = unix.XDP_FLAGS_SKB_MODE
		if err := netlink.LinkSetXdpFdWithFlags(link, r.prog.FD(), r.xdpMode); err != nil {
			return nil, fmt.Errorf("lane: attach XDP to %s: %w", ifname, err)
		}
	}
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
	for _, x := range r.queues {
		r.pollQueue(x)
	}
	return nil
}

func (r *XSKReceiver) pollQueue(x *xskQueue) {
	prod := x.rx.prod.Load()
	cons := x.rx.cons.Load()
	if prod == cons {
		return
	}
	wall, mono := r.stamp()
	fprod := x.fq.prod.Load()
	for ; cons != prod; cons++ {
		d := (*unix.XDPDesc)(unsafe.Add(x.rx.desc, uintptr(cons&x.rx.mask)*unsafe.Sizeof(unix.XDPDesc{})))
		if d.Addr+uint64(d.Len) <= uint64(len(x.umem)) {
			r.frame(x.umem[d.Addr:d.Addr+uint64(d.Len)], wall, mono)
		}
		// The frame goes back to the kernel to fill again.
		*(*uint64)(unsafe.Add(x.fq.desc, uintptr(fprod&x.fq.mask)*8)) = d.Addr &^ (xskFrameSize - 1)
		fprod++
	}
	x.rx.cons.Store(cons)
	x.fq.prod.Store(fprod)
}

// Mode says where the steering program runs and on how many queues.
// Generic XDP never sees packets a tc action redirected to the interface.
func (r *XSKReceiver) Mode() string {
	mode := "driver XDP"
	if r.xdpMode == unix.XDP_FLAGS_SKB_MODE {
		mode = "generic XDP (blind to tc-redirected packets)"
	}
	return fmt.Sprintf("%s, %d queue(s)", mode, len(r.queues))
}

// idle reports whether no queue holds a frame.
func (r *XSKReceiver) idle() bool {
	for _, x := range r.queues {
		if x.rx.prod.Load() != x.rx.cons.Load() {
			return false
		}
	}
	return true
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
		if !r.busy && r.idle() {
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
		_ = netlink.LinkSetXdpFdWithFlags(r.link, -1, r.xdpMode)
		r.prog.Close()
		r.prog = nil
	}
	if r.xsks != nil {
		r.xsks.Close()
		r.xsks = nil
	}
	var err error
	for _, x := range r.queues {
		err = errors.Join(err, x.close())
	}
	r.queues = nil
	return err
}

var _ Inbound = (*XSKReceiver)(nil)
