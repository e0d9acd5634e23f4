package lane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
)

// RecvStats counts what a Receiver did.
type RecvStats struct {
	Packets    uint64 // X-Lane packets taken apart
	Messages   uint64 // messages handed to an application
	NoSink     uint64 // messages for a channel no application attached
	RingFull   uint64 // messages dropped: the application's ring was full
	Wire       wire.Stats
	NoKernelTS uint64 // packets without a kernel receive timestamp
}

// Receiver takes a tunnel's packets off a UDP socket, stamps each as soon
// as it is read (the kernel's software receive time, SO_TIMESTAMPING,
// then the lane's own, before the payload is looked at), and hands its
// messages with the stamps to the applications' X-R rings. It allocates
// nothing per packet.
type Receiver struct {
	delivery
	conn *net.UDPConn
	raw  syscall.RawConn
	busy bool
	buf  []byte
	oob  []byte
	// Core, when set before Run, pins the goroutine that calls Run.
	Core *Core
}

// delivery takes X-Lane payloads apart into the applications' rings; the
// socket and packet-ring receivers share it.
type delivery struct {
	Stats RecvStats
	sinks map[uint16]*bridge.Ring
	un    wire.Unpacker
	meta  bridge.Meta // of the packet being taken apart
	start time.Time   // the monotonic clock's origin
	pubMu sync.Mutex
	pub   RecvStats
}

// Snapshot returns the receiver's statistics as of its last packet; safe
// to call from any goroutine while the receiver runs.
func (d *delivery) Snapshot() RecvStats {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	return d.pub
}

// stamp is the lane's own receive stamp: the system clock's time, and the
// monotonic clock's since the receiver started.
func (d *delivery) stamp() (wall, mono int64) {
	now := time.Now()
	return now.UnixNano(), int64(now.Sub(d.start))
}

// payload delivers one X-Lane payload received at kernelNs (0: unknown)
// and taken by the lane at wall (system clock) and mono.
func (d *delivery) payload(p []byte, kernelNs, wall, mono int64) {
	if kernelNs == 0 {
		d.Stats.NoKernelTS++
	}
	d.meta = bridge.Meta{T1: kernelNs, T2: wall, Mono: mono}
	if len(p) >= wire.HeaderLen {
		d.meta.Seq = uint64(binary.BigEndian.Uint32(p[8:12]))
		d.meta.T0 = int64(binary.BigEndian.Uint64(p[12:20]))
	}
	if _, err := d.un.Unpack(p, d.deliver); err == nil {
		d.Stats.Packets++
	}
	d.Stats.Wire = d.un.Stats
	d.pubMu.Lock()
	d.pub = d.Stats
	d.pubMu.Unlock()
}

// NewReceiver reads from conn (bound to the tunnel's port) and delivers
// channel c's messages to sinks[c]. With busy, it polls the socket
// without sleeping (the lane's dedicated core); otherwise it waits in
// the kernel.
func NewReceiver(conn *net.UDPConn, sinks map[uint16]*bridge.Ring, busy bool) (*Receiver, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("lane: receiver socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		// The kernel's software receive timestamp, taken when the packet
		// entered the stack (scm_timestamping: the first of three times).
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
			unix.SOF_TIMESTAMPING_RX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE)
	}); err != nil || serr != nil {
		return nil, fmt.Errorf("lane: receive timestamps (SO_TIMESTAMPING): %w", errors.Join(err, serr))
	}
	return &Receiver{delivery: delivery{sinks: sinks, start: time.Now()}, conn: conn, raw: raw, busy: busy, buf: make([]byte, 65536), oob: make([]byte, 256)}, nil
}

// Run receives until ctx ends (or the socket is closed).
func (r *Receiver) Run(ctx context.Context) error {
	if r.Core != nil {
		if err := r.Core.Pin(); err != nil {
			return err
		}
	}
	// A read waiting in the kernel wakes when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = r.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for ctx.Err() == nil {
		n, oobn, err := r.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if n > 0 {
			wall, mono := r.stamp()
			r.handle(n, oobn, wall, mono)
		}
	}
	return nil
}

// Poll takes and delivers one datagram if one waits, without waiting
// (for a lane core that serves several tunnels and directions).
func (r *Receiver) Poll() error {
	busy := r.busy
	r.busy = true
	n, oobn, err := r.read()
	r.busy = busy
	if err != nil {
		return err
	}
	if n > 0 {
		wall, mono := r.stamp()
		r.handle(n, oobn, wall, mono)
	}
	return nil
}

// read takes one datagram; n is 0 when none came (a poll that found
// nothing, or a wake-up to look at ctx).
func (r *Receiver) read() (n, oobn int, err error) {
	var rerr error
	flags := 0
	if r.busy {
		flags = unix.MSG_DONTWAIT
	}
	err = r.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), r.buf, r.oob, flags)
		if rerr == unix.EAGAIN {
			n, rerr = 0, nil
			// Busy: return to the loop (it checks ctx and polls again).
			// Otherwise let the runtime wait for the socket.
			return r.busy
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("lane: receive: %w", err)
	}
	return n, oobn, nil
}

func (r *Receiver) handle(n, oobn int, wall, mono int64) {
	kernelNs := int64(0)
	for oob := r.oob[:oobn]; len(oob) >= unix.SizeofCmsghdr; {
		h := (*unix.Cmsghdr)(unsafePointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPING && l >= unix.CmsgLen(16) {
			d := oob[unix.CmsgLen(0):]
			kernelNs = int64(binary.NativeEndian.Uint64(d[0:8]))*1e9 + int64(binary.NativeEndian.Uint64(d[8:16]))
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	r.payload(r.buf[:n], kernelNs, wall, mono)
}

func (d *delivery) deliver(ch uint16, msg []byte) {
	ring, ok := d.sinks[ch]
	if !ok {
		d.Stats.NoSink++
		return
	}
	m := d.meta
	m.Channel = ch
	if !ring.Push(msg, m) {
		d.Stats.RingFull++
		return
	}
	d.Stats.Messages++
}
