package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/p4rt/p4rttest"
)

// TestDaemonP4Runtime runs the daemon with the P4Runtime driver against
// two P4Runtime test servers: the built-in pipeline is installed, a tunnel
// requested through the API lands on both switches, and a daemon restart
// neither reinstalls the pipeline nor duplicates an entry.
func TestDaemonP4Runtime(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	topo := filepath.Join(dir, "topo.json")
	if err := os.WriteFile(topo, []byte(topoJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	servers := map[string]*p4rttest.Server{}
	addrs := map[string]string{}
	for i, sw := range []string{"s1", "s2"} {
		s := p4rttest.New(uint64(i + 1))
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Serve(lis))
		servers[sw], addrs[sw] = s, lis.Addr().String()
	}
	cfg := filepath.Join(dir, "xlane.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`driver: p4runtime
p4runtime:
  election_id: 3
  switches:
    s1: {addr: %q, device_id: 1}
    s2: {addr: %q, device_id: 2}
`, addrs["s1"], addrs["s2"])), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg, "--topology", topo, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--metrics-addr", ""}
	cmd, addr := launch(t, bin, args...)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	entries := func(sw string) int {
		conn, err := grpc.NewClient(addrs[sw], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st, err := p4v1.NewP4RuntimeClient(conn).Read(context.Background(), &p4v1.ReadRequest{DeviceId: map[string]uint64{"s1": 1, "s2": 2}[sw],
			Entities: []*p4v1.Entity{{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{}}}}})
		if err != nil {
			return -1 // no pipeline yet
		}
		n := 0
		for {
			r, err := st.Recv()
			if err != nil {
				return n
			}
			n += len(r.GetEntities())
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	// Routes to the three hosts are installed once the driver is primary.
	waitFor("best-effort routes on both switches", func() bool { return entries("s1") == 3 && entries("s2") == 3 })
	c, err := client.Dial(addr, "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.RequestBandwidth(ctx, tunnels.Request{Sender: netip.MustParseAddr("10.0.0.1"), Receiver: netip.MustParseAddrPort("10.0.0.2:7000"),
		LoadsizeBytes: 64, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	// Each switch: 3 routes + a classifier and a tunnel entry.
	if n1, n2 := entries("s1"), entries("s2"); n1 != 5 || n2 != 5 {
		t.Fatalf("entries after the request: s1 %d, s2 %d; want 5 each", n1, n2)
	}
	before := servers["s1"].Updates() + servers["s2"].Updates()
	cmd.Process.Kill()
	cmd.Wait()
	cmd, _ = launch(t, bin, args...)
	waitFor("the restarted daemon to be primary again", func() bool { _, _, ok := servers["s1"].Primary(""); return ok })
	time.Sleep(300 * time.Millisecond) // its reconcile runs
	if n1, n2 := entries("s1"), entries("s2"); n1 != 5 || n2 != 5 {
		t.Errorf("entries after a restart: s1 %d, s2 %d; want 5 each", n1, n2)
	}
	if after := servers["s1"].Updates() + servers["s2"].Updates(); after != before {
		t.Errorf("the restarted daemon wrote %d updates to switches that held its state", after-before)
	}
}
