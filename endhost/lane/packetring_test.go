package lane

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
)

// TestPacketRingReceiver sends a lane's packets over loopback and takes
// them off the interface through the TPACKET_V3 ring: all messages, in
// order, with the kernel's timestamp; datagrams to another port do not
// pass the filter.
func TestPacketRingReceiver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a packet socket needs CAP_NET_RAW (root)")
	}
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(probe.LocalAddr().(*net.UDPAddr).Port)
	probe.Close()
	rx := ring(t, "rx")
	rr, err := NewRingReceiver("lo", port, map[uint16]*bridge.Ring{1: rx}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	if err := rr.Absorb(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rr.Run(ctx) }()

	// Noise on another port first: the filter keeps it out.
	other, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port) + 1})
	if err != nil {
		t.Fatal(err)
	}
	other.Write(make([]byte, 100))
	other.Close()

	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 300
	carryNumbered(t, ctx, conn, wire.HD8, rx, n, true, rr.Snapshot)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := rr.Snapshot()
	if st.Messages != n || st.Wire.Bad != 0 || st.NoKernelTS != 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("%d messages in %d packets through the packet ring", st.Messages, st.Packets)
}

// carryNumbered sends n numbered 40-byte messages through a lane on conn
// (one packet per 50 µs at most) and checks that they arrive in rx, in
// order, with the sender's stamp before the lane's (and before the
// kernel's, when withKernel). It returns the sender's statistics.
func carryNumbered(t *testing.T, ctx context.Context, conn *net.UDPConn, s *wire.Schema, rx *bridge.Ring, n int, withKernel bool, recv func() RecvStats) SendStats {
	t.Helper()
	tx := ring(t, "tx")
	snd, err := NewSender(SenderConfig{Conn: conn, Schema: s, Params: Params{PeriodNs: 50_000, Loadsize: 200}, NotBefore: time.Now(),
		Sources: []Source{{Ring: tx, Channel: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after stop, before the rings close
	defer stop()
	wg.Add(2)
	go func() { defer wg.Done(); _ = snd.Run(sctx) }()
	go func() {
		defer wg.Done()
		msg := make([]byte, 40)
		for i := 0; i < n && sctx.Err() == nil; {
			binary.BigEndian.PutUint32(msg, uint32(i))
			if tx.Push(msg, bridge.Meta{}) {
				i++
			} else {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	buf := make([]byte, 200)
	for i := 0; i < n; {
		k, m, ok := rx.Pop(buf)
		if !ok {
			if ctx.Err() != nil {
				t.Fatalf("received %d of %d; receiver %+v, sender %+v", i, n, recv(), snd.Snapshot())
			}
			time.Sleep(200 * time.Microsecond)
			continue
		}
		if k != 40 || binary.BigEndian.Uint32(buf) != uint32(i) || m.T2 < m.T0 || (withKernel && (m.T1 == 0 || m.T1 < m.T0 || m.T2 < m.T1)) {
			t.Fatalf("message %d: %d bytes %x, stamps %d %d %d", i, k, buf[:4], m.T0, m.T1, m.T2)
		}
		i++
	}
	stop()
	wg.Wait()
	return snd.Snapshot()
}
