package agent

import (
	"context"
	"io"
	"log/slog"
	stdnetip "net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/endhost/app"
	"github.com/xlane/xlane/endhost/internal/netnstest"
	"github.com/xlane/xlane/southbound/memory"
)

// TestMulticastLane: in a network namespace of its own (its loopback made
// multicast-capable), a receiving agent joins a group at the controller
// and on the interface, a sending agent's lane goes to the group, and an
// application's messages arrive through the group; stopping leaves the
// group and releases the tunnel.
func TestMulticastLane(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace)")
	}
	for _, path := range []string{"socket", "packet_ring", "xdp"} {
		t.Run(path, func(t *testing.T) { multicastLane(t, path) })
	}
}

func multicastLane(t *testing.T, path string) {
	netns := netnstest.New(t, true)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: loopbackTopology(t), Driver: memory.New("s1"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := servertest.Serve(t, ctl, "127.0.0.1:0") // in the host's namespace
	shm := t.TempDir()
	const port = 7600
	rx, err := New(Config{Controller: addr, Service: "mc-rx", ShmDir: shm, Schema: "hd8", LaneCPU: -1, Interface: "lo", ReceivePath: path,
		Receive: []Receive{{Port: port, Group: "239.7.7.7", Member: "127.0.0.2", Apps: []App{{Name: "raft", Channel: 2}}}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := New(Config{Controller: addr, Service: "mc-tx", ShmDir: shm, Schema: "hd8", LaneCPU: -1,
		Lanes: []Lane{{Name: "log", Sender: "127.0.0.1", Receiver: "239.7.7.7:7600", MessageBytes: 100, Period: time.Millisecond,
			Apps: []App{{Name: "raft", Channel: 2}}}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The agents' sockets are made in the namespace; their gRPC
	// connections run on other threads, in the host's.
	if err := netns.Do(func(ns.NetNS) error {
		if _, err := rx.Start(ctx); err != nil { // members first
			return err
		}
		_, err := tx.Start(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := ctl.Members(groupAddr("239.7.7.7:7600")); len(got) != 1 || got[0].String() != "127.0.0.2" {
		t.Fatalf("group members at the controller: %v", got)
	}
	rctx, stop := context.WithCancel(ctx)
	rxCtx, rxStop := context.WithCancel(rctx)
	var wg, rxWG sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = tx.Run(rctx) }()
	rxWG.Add(1)
	go func() { defer rxWG.Done(); _ = rx.Run(rxCtx) }()
	snd, err := app.OpenSender(shm, "mc-tx", "log", "raft")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	rcv, err := app.OpenReceiver(shm, "mc-rx", port, "raft")
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	const n = 100
	sent := make(chan struct{})
	go func() { defer close(sent); sendNumbered(rctx, snd, n, 100) }()
	defer func() { <-sent }() // before the rings close
	receiveNumbered(t, ctx, rcv, n, 100)
	// The last member leaves: the controller ends the tunnel to the group,
	// and the sender's application hears it.
	evs, err := app.OpenEvents(shm, "mc-tx", "log", "raft")
	if err != nil {
		t.Fatal(err)
	}
	defer evs.Close()
	if e := nextEvent(t, evs); e.Kind != app.LaneUp {
		t.Fatalf("first event %+v", e)
	}
	rxStop()
	rxWG.Wait()
	if err := rx.Close(); err != nil {
		t.Error(err)
	}
	if e := nextEvent(t, evs); e.Kind != app.LaneTerminated {
		t.Errorf("after the last member left: %+v, want the lane terminated", e)
	}
	stop()
	wg.Wait()
	if err := tx.Close(); err != nil {
		t.Error(err)
	}
	if m := ctl.Members(groupAddr("239.7.7.7:7600")); len(m) != 0 || len(ctl.Tunnels("mc-tx")) != 0 {
		t.Errorf("after stop: members %v, tunnels %v", m, ctl.Tunnels("mc-tx"))
	}
}

func groupAddr(s string) stdnetip.AddrPort { return stdnetip.MustParseAddrPort(s) }
