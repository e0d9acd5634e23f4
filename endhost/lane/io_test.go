package lane

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
	"golang.org/x/sys/unix"
)

func ring(t *testing.T, name string) *bridge.Ring {
	t.Helper()
	r, err := bridge.Create(filepath.Join(t.TempDir(), name), 1024, 200)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestLaneOverUDP runs a sender and a receiver lane over real UDP on
// loopback: two applications' messages go through their R-X rings, the
// sender's schedule and packing, the socket, the receiver's stamps and
// unpacking, into their X-R rings, all of them, in order, with the
// sender's, the kernel's and the lane's timestamps in that order.
func TestLaneOverUDP(t *testing.T) {
	for _, mode := range []string{"sleeping", "busy", "one core"} {
		t.Run(mode, func(t *testing.T) { laneOverUDP(t, mode) })
	}
}

func laneOverUDP(t *testing.T, mode string) {
	busy := mode != "sleeping"
	rconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close()
	sconn, err := net.DialUDP("udp4", nil, rconn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close()
	rx := map[uint16]*bridge.Ring{1: ring(t, "rx1"), 2: ring(t, "rx2")}
	srcs := []Source{{Ring: ring(t, "tx1"), Channel: 1}, {Ring: ring(t, "tx2"), Channel: 2}}
	const per = 500
	for i := range per {
		srcs[0].Ring.Push([]byte(fmt.Sprintf("one-%d", i)), bridge.Meta{})
		srcs[1].Ring.Push(bytes.Repeat([]byte{byte(i)}, 1+i%60), bridge.Meta{})
	}
	snd, err := NewSender(SenderConfig{Conn: sconn, Tunnel: 42, Schema: wire.HD6, Params: Params{PeriodNs: 100_000, Loadsize: 300},
		NotBefore: time.Now(), Sources: srcs, BusyPoll: busy, Core: core(busy, 0)})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := NewReceiver(rconn, rx, busy)
	if err != nil {
		t.Fatal(err)
	}
	rcv.Core = core(busy, 1)
	kernelStamping(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if mode == "one core" { // both directions on one pinned, polling goroutine
		snd.core, rcv.Core = nil, nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- RunCore(ctx, core(true, 1), []*Sender{snd}, []Inbound{rcv})
			errs <- nil
		}()
	} else {
		wg.Add(2)
		go func() { defer wg.Done(); errs <- snd.Run(ctx) }()
		go func() { defer wg.Done(); errs <- rcv.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() }) // also when the test fails: before the rings close

	buf := make([]byte, 200)
	got := map[uint16]int{}
	lastSeq := map[uint16]uint64{}
	lastMono := map[uint16]int64{}
	for got[1]+got[2] < 2*per && ctx.Err() == nil {
		progress := false
		for ch, r := range rx {
			n, m, ok := r.Pop(buf)
			if !ok {
				continue
			}
			progress = true
			i := got[ch]
			want := []byte(fmt.Sprintf("one-%d", i))
			if ch == 2 {
				want = bytes.Repeat([]byte{byte(i)}, 1+i%60)
			}
			if !bytes.Equal(buf[:n], want) || m.Channel != ch {
				t.Fatalf("channel %d message %d: %q (channel %d)", ch, i, buf[:n], m.Channel)
			}
			if m.T0 == 0 || m.T1 < m.T0 || m.T2 < m.T1 {
				t.Fatalf("channel %d message %d: stamps sender %d, kernel %d, lane %d out of order", ch, i, m.T0, m.T1, m.T2)
			}
			if m.Mono <= 0 || m.Mono < lastMono[ch] {
				t.Fatalf("channel %d message %d: monotonic stamp %d after %d", ch, i, m.Mono, lastMono[ch])
			}
			lastMono[ch] = m.Mono
			if m.Seq < lastSeq[ch] {
				t.Fatalf("channel %d: packet sequence went back from %d to %d", ch, lastSeq[ch], m.Seq)
			}
			lastSeq[ch] = m.Seq
			got[ch]++
		}
		if !progress {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if got[1] != per || got[2] != per {
		t.Fatalf("delivered %v of %d each; sender %+v, receiver %+v", got, per, snd.Stats, rcv.Stats)
	}
	// The tunnel ends: the sender stops.
	if err := snd.Update(ctx, Update{Stop: true}); err != nil {
		t.Fatal(err)
	}
	if mode == "one core" {
		cancel() // the core serves the receiver until told to stop
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if snd.Stats.Messages != 2*per || snd.Stats.Packets < uint64(2*per/((300-wire.HeaderLen)/wire.HD6.ChunkLen)) || rcv.Stats.Packets != snd.Stats.Packets || rcv.Stats.NoKernelTS != 0 {
		t.Errorf("sender %+v, receiver %+v", snd.Stats, rcv.Stats)
	}
	t.Logf("%d messages in %d packets; receiver %+v", snd.Stats.Messages, snd.Stats.Packets, rcv.Stats)
}

// core pins busy-polling lanes to their own CPUs, as deployed.
func core(busy bool, cpu int) *Core {
	if !busy || runtime.NumCPU() < 2 {
		return nil
	}
	return &Core{CPU: cpu}
}

// kernelStamping returns once the kernel stamps received datagrams. The
// first socket that asks for stamps turns them on from a work queue, which
// a machine whose CPUs are busy runs late (CI once saw 19 packets go
// unstamped); a probe socket that keeps asking holds them on until the
// test ends.
func kernelStamping(t *testing.T) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
			unix.SOF_TIMESTAMPING_RX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	buf, oob := make([]byte, 8), make([]byte, 256)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := c.WriteToUDP([]byte("probe"), c.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
		_, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPING && len(m.Data) >= 16 &&
				binary.NativeEndian.Uint64(m.Data[0:8])|binary.NativeEndian.Uint64(m.Data[8:16]) != 0 {
				return
			}
		}
	}
	t.Fatal("the kernel did not stamp received datagrams within 10 s")
}
