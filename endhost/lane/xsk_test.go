package lane

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/internal/netnstest"
	"github.com/xlane/xlane/endhost/wire"
)

// TestXSKReceiver: in a network namespace of its own, a lane's packets to
// 127.0.0.1 are steered by the XDP program into the AF_XDP socket before
// the stack sees them (no socket is bound to the port, and none is
// needed), and arrive in order; other traffic still reaches the stack.
func TestXSKReceiver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("AF_XDP and XDP need root")
	}
	netns := netnstest.New(t, false)
	const port = 7700
	rx := ring(t, "rx")
	var xr *XSKReceiver
	var conn, plain, plainRx *net.UDPConn
	if err := netns.Do(func(ns.NetNS) (err error) {
		if xr, err = NewXSKReceiver("lo", port, map[uint16]*bridge.Ring{1: rx}, false); err != nil {
			return err
		}
		if conn, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
			return err
		}
		if plainRx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1}); err != nil {
			return err
		}
		plain, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer xr.Close()
	defer conn.Close()
	defer plain.Close()
	defer plainRx.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- xr.Run(ctx) }()

	// Other traffic passes to the stack.
	plain.Write([]byte("stack"))
	plainRx.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := plainRx.Read(make([]byte, 16)); err != nil || n != 5 {
		t.Fatalf("a datagram to another port did not reach the stack: %d, %v", n, err)
	}

	const n = 300
	sent := carryNumbered(t, ctx, conn, wire.HD6, rx, n, false, xr.Snapshot)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := xr.Snapshot(); st.Messages != n || st.Wire.Bad != 0 {
		t.Errorf("stats %+v", st)
	}
	if st := sent; st.SendErrors != 0 {
		t.Errorf("the sender saw errors (an ICMP reply from the stack would mean the packets reached it): %+v", st)
	}
}

// TestXSKReceiverEveryQueue: a veth with four queues between two
// namespaces; datagrams of 64 flows (one source port each) spread over
// the queues, and the receiver takes them off every queue, not only the
// first (the kernel hands an AF_XDP socket only its own queue's packets).
func TestXSKReceiverEveryQueue(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("AF_XDP and XDP need root")
	}
	recvNS, sendNS := netnstest.New(t, false), netnstest.New(t, false)
	const port, queues, flows = 7710, 4, 64
	if err := recvNS.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name, la.NumTxQueues, la.NumRxQueues = "xq0", queues, queues
		v := &netlink.Veth{LinkAttrs: la, PeerName: "xq1", PeerNamespace: netlink.NsFd(int(sendNS.Fd())),
			PeerNumTxQueues: queues, PeerNumRxQueues: queues, PeerTxQLen: -1}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		return upWithAddr("xq0", "10.77.0.1/24")
	}); err != nil {
		t.Fatal(err)
	}
	if err := sendNS.Do(func(ns.NetNS) error { return upWithAddr("xq1", "10.77.0.2/24") }); err != nil {
		t.Fatal(err)
	}
	rx := ring(t, "rx")
	var xr *XSKReceiver
	if err := recvNS.Do(func(ns.NetNS) (err error) {
		xr, err = NewXSKReceiver("xq0", port, map[uint16]*bridge.Ring{1: rx}, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = recvNS.Do(func(ns.NetNS) error { return xr.Close() }) }()
	if len(xr.queues) != queues {
		t.Fatalf("%d AF_XDP sockets for %d receive queues", len(xr.queues), queues)
	}
	// veth has a driver XDP hook; the program must use it (generic XDP
	// never sees packets a tc action redirected, as the testbed's are).
	if m := xr.Mode(); !strings.HasPrefix(m, "driver XDP, 4 queue") {
		t.Errorf("mode %q, want driver XDP on 4 queues", m)
	}
	// One packet per flow, each from its own socket (source port).
	p, err := wire.NewPacker(wire.HD6, make([]byte, wire.MTU), 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := sendNS.Do(func(ns.NetNS) error {
		for i := range flows {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: port})
			if err != nil {
				return err
			}
			p.Reset(wire.Header{Tunnel: 1, Sequence: uint32(i), SenderTsNs: uint64(time.Now().UnixNano())})
			if err := p.Add(1, []byte{byte(i)}); err != nil {
				return err
			}
			_, err = c.Write(p.Packet())
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seen := map[byte]bool{}
	msg := make([]byte, 16)
	for deadline := time.Now().Add(5 * time.Second); len(seen) < flows && time.Now().Before(deadline); {
		_ = xr.Poll()
		n, _, ok := rx.Pop(msg)
		if !ok {
			time.Sleep(time.Millisecond)
			continue
		}
		if n == 1 {
			seen[msg[0]] = true
		}
	}
	busy := 0
	for _, q := range xr.queues {
		if q.rx.cons.Load() > 0 {
			busy++
		}
	}
	if len(seen) != flows {
		t.Fatalf("%d of %d flows arrived; frames taken on %d of %d queues; stats %+v", len(seen), flows, busy, queues, xr.Snapshot())
	}
	if busy < 2 {
		t.Fatalf("the flows all arrived on one queue: the test shows nothing about the others")
	}
	t.Logf("%d flows over %d of %d queues", flows, busy, queues)
}

func upWithAddr(ifname, cidr string) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}
