package lane

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

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
