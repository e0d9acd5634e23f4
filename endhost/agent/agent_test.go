package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/endhost/app"
	"github.com/xlane/xlane/southbound/memory"
)

// loopbackTopology: hosts on 127.0.0.1 and 127.0.0.2 behind one switch,
// so lanes on this machine's loopback are tunnels the controller knows.
func loopbackTopology(t *testing.T) *te.Topology {
	t.Helper()
	link := func(a, b string) string {
		return fmt.Sprintf(`{"from":%q,"to":%q,"bandwidth_bps":1000000000,"queue_bytes":64000,"min_latency_ns":1000,"max_jitter_ns":100}`, a, b)
	}
	topo, err := te.ParseTopology(strings.NewReader(`{"max_frame_bytes":1538,"sublanes":2,"max_express_share":0.5,
	 "nodes":[{"name":"h1","kind":"host","ipv4":"127.0.0.1"},{"name":"s1","kind":"switch"},{"name":"h2","kind":"host","ipv4":"127.0.0.2"}],
	 "links":[` + strings.Join([]string{link("h1", "s1"), link("s1", "h1"), link("s1", "h2"), link("h2", "s1")}, ",") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func freePort(t *testing.T) uint16 {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// TestAgentsCarryMessages: a controller on real gRPC; one agent sends a
// lane from 127.0.0.1, another receives on 127.0.0.2; an application
// sends through its ring and another receives, in order and stamped; a
// second service's tunnel changes the lane's parameters (the agent takes
// the upcall); stopping releases the tunnel and removes the rings.
func TestAgentsCarryMessages(t *testing.T) {
	for _, path := range []string{"socket", "packet_ring"} {
		t.Run(path, func(t *testing.T) {
			if path != "socket" && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			agentsCarryMessages(t, path, "127.0.0.1:0")
		})
	}
	// The controller's API on a Unix socket, as agents in other network
	// namespaces of the host reach it.
	t.Run("unix-api", func(t *testing.T) {
		agentsCarryMessages(t, "socket", "unix:"+filepath.Join(t.TempDir(), "api.sock"))
	})
}

func agentsCarryMessages(t *testing.T, path, api string) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: loopbackTopology(t), Driver: memory.New("s1"), Logger: log, Grace: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := servertest.Serve(t, ctl, api)
	shm := t.TempDir()
	port := freePort(t)
	tx, err := New(Config{Controller: addr, Service: "fd", ShmDir: shm, Schema: "hd6", LaneCPU: -1,
		Lanes: []Lane{{Name: "hb", Sender: "127.0.0.1", Receiver: fmt.Sprintf("127.0.0.2:%d", port), MessageBytes: 64, Period: time.Millisecond,
			Apps: []App{{Name: "fd", Channel: 1}}}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := New(Config{Controller: addr, Service: "fd-rx", ShmDir: shm, Schema: "hd6", LaneCPU: -1, Interface: "lo", ReceivePath: path,
		Receive: []Receive{{Port: port, Apps: []App{{Name: "fd", Channel: 1}}}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := tx.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res := st.Lanes["hb"]; res.TunnelID == 0 || res.PeriodUs < 1000 {
		t.Fatalf("lane hb: %+v", res)
	}
	if _, err := rx.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	rctx, stop := context.WithCancel(ctx)
	for _, a := range []*Agent{tx, rx} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(rctx); err != nil {
				t.Errorf("agent: %v", err)
			}
		}()
	}
	snd, err := app.OpenSender(shm, "fd", "hb", "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	rcv, err := app.OpenReceiver(shm, "fd-rx", port, "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	evs, err := app.OpenEvents(shm, "fd", "hb", "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer evs.Close()
	if e, ok, err := evs.Next(); err != nil || !ok || e.Kind != app.LaneUp || e.Tunnel != st.Lanes["hb"].TunnelID || e.PeriodUs != st.Lanes["hb"].PeriodUs {
		t.Fatalf("first event: %+v %v %v, want the lane up with its resources", e, ok, err)
	}
	if _, err := app.OpenSender(shm, "fd", "nope", "fd"); err == nil || !strings.Contains(err.Error(), "xlane-endhost running") {
		t.Errorf("attaching to a lane that does not exist: %v", err)
	}

	const n = 200
	sent := make(chan struct{})
	go func() { defer close(sent); sendNumbered(rctx, snd, n, 64) }()
	defer func() { <-sent }() // before the rings close
	// Meanwhile another service's big tunnel on the same links changes
	// the lane's bounds: the agent gets the upcall.
	select {
	case <-tx.Watching():
	case <-ctx.Done():
		t.Fatal("the agent never subscribed to its upcalls")
	}
	if _, err := ctl.Request(ctx, "other", tunnels.Request{Sender: netip.MustParseAddr("127.0.0.1"), Receiver: netip.MustParseAddrPort("127.0.0.2:9"),
		LoadsizeBytes: 1400, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	receiveNumbered(t, ctx, rcv, n, 64)
	for deadline := time.Now().Add(5 * time.Second); tx.changes.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lane never took a BandwidthChanged")
		}
	}
	// ... and the application hears of it.
	if e := nextEvent(t, evs); e.Kind != app.LaneChanged || e.GraceUntil.IsZero() || e.MaxJitterNs <= 0 {
		t.Errorf("event after the change: %+v", e)
	}
	// An application asks the running agent for a lane of its own.
	if path == "socket" {
		req := app.LaneRequest{Lane: "late", App: "late", Channel: 1, Sender: "127.0.0.1", Receiver: fmt.Sprintf("127.0.0.2:%d", port),
			MessageBytes: 64, PeriodUs: 1000}
		rep, err := app.RequestLane(shm, "fd", req)
		if err != nil || rep.Tunnel == 0 || rep.PeriodUs < 1000 {
			t.Fatalf("requesting a lane: %+v, %v", rep, err)
		}
		if _, err := app.RequestLane(shm, "fd", req); err == nil || !strings.Contains(err.Error(), "exists already") {
			t.Errorf("the same lane twice: %v", err)
		}
		bad := req
		bad.Lane, bad.PeriodUs = "bad", 0
		if _, err := app.RequestLane(shm, "fd", bad); err == nil || !strings.Contains(err.Error(), "period") {
			t.Errorf("a lane without a period: %v", err)
		}
		late, err := app.OpenSender(shm, "fd", "late", "late")
		if err != nil {
			t.Fatal(err)
		}
		lateSent := make(chan struct{})
		go func() { defer close(lateSent); sendNumbered(rctx, late, 20, 64) }()
		receiveNumbered(t, ctx, rcv, 20, 64)
		<-lateSent
		late.Close()
		if got := len(ctl.Tunnels("fd")); got != 2 {
			t.Errorf("the service holds %d tunnels, want 2", got)
		}
	}
	// The counters Prometheus scrapes (a sender counts a packet just after
	// writing it: wait for the last one).
	total := float64(n)
	if path == "socket" {
		total += 20 // the application's own lane
	}
	want := map[string]float64{"xlane_endhost_lane_messages_sent_total": total, "xlane_endhost_receive_messages_total": total}
	var got map[string]float64
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got = map[string]float64{}
		for _, a := range []*Agent{tx, rx} {
			reg := prometheus.NewRegistry()
			reg.MustRegister(a.Collector())
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					got[mf.GetName()] += m.GetCounter().GetValue()
				}
			}
		}
		if got["xlane_endhost_lane_messages_sent_total"] == total || time.Now().After(deadline) {
			break
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
	stop()
	wg.Wait()
	for _, a := range []*Agent{tx, rx} {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}
	if left := ctl.Tunnels("fd"); len(left) != 0 {
		t.Errorf("tunnels left after the agent stopped: %v", left)
	}
	if ents, _ := os.ReadDir(shm + "/fd"); len(ents) != 0 {
		t.Errorf("rings left: %v", ents)
	}
}

func TestConfig(t *testing.T) {
	c, err := Parse(strings.NewReader(`
controller: 10.0.0.9:7700
service: fd
lane_cpu: 3
lanes:
  - name: hb
    sender: 10.0.0.1
    receiver: 10.0.0.2:7000
    message_bytes: 32
    period: 500us
    apps: [{name: fd, channel: 1}, {name: raft, channel: 2}]
receive:
  - port: 7000
    apps: [{name: fd, channel: 1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.LaneCPU != 3 || c.Lanes[0].Period != 500*time.Microsecond || len(c.Lanes[0].Apps) != 2 || c.ShmDir != "/dev/shm/xlane" {
		t.Fatalf("config %+v", c)
	}
	for in, want := range map[string]string{
		"service: fd\nlanez: []":     "lanez",
		"service: fd":                "nothing to do",
		"controller: x\nservice: fd": "controller",
		"controller: 'unix:'\nservice: fd\nreceive: [{port: 1, apps: [{name: x}]}]":                                                 "controller",
		"service: 'a b'\nreceive: [{port: 1, apps: [{name: x}]}]":                                                                   "service",
		"service: fd\nschema: hd7\nreceive: [{port: 1, apps: [{name: x}]}]":                                                         "schema",
		"service: fd\nreceive: [{port: 0, apps: [{name: x}]}]":                                                                      "receive[0].port",
		"service: fd\nreceive: [{port: 5, apps: []}]":                                                                               "receive[0].apps",
		"service: fd\nreceive: [{port: 5, apps: [{name: x, channel: 1}, {name: y, channel: 1}]}]":                                   "channel",
		"service: fd\nreceive: [{port: 5, group: 239.1.1.1, member: 10.0.0.2, apps: [{name: x}]}]":                                  "interface",
		"service: fd\ninterface: eth0\nreceive: [{port: 5, group: 10.0.0.1, member: 10.0.0.2, apps: [{name: x}]}]":                  "group",
		"service: fd\ninterface: eth0\nreceive: [{port: 5, group: 239.1.1.1, apps: [{name: x}]}]":                                   "member",
		"service: fd\nlanes: [{name: a, sender: 10.0.0.1, receiver: 10.0.0.2:5, message_bytes: 0, period: 1ms, apps: [{name: x}]}]": "message_bytes",
		"service: fd\nlanes: [{name: a, sender: 10.0.0.1, receiver: 10.0.0.2:5, message_bytes: 8, period: 0s, apps: [{name: x}]}]":  "period",
		"service: fd\nlanes: [{name: a, sender: nope, receiver: 10.0.0.2:5, message_bytes: 8, period: 1ms, apps: [{name: x}]}]":     "sender",
		"service: fd\nlane_cpu: -2\nreceive: [{port: 1, apps: [{name: x}]}]":                                                        "lane_cpu",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", in, err, want)
		}
	}
}

// sendNumbered sends n messages of size bytes numbered 0..n-1 through
// the application's lane, waiting while its ring is full.
func sendNumbered(ctx context.Context, snd *app.Sender, n, size int) {
	msg := make([]byte, size)
	for i := 0; i < n && ctx.Err() == nil; {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if snd.Send(msg) {
			i++
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

// receiveNumbered takes n numbered messages of size bytes in order, with
// the sender's, kernel's (where the path gives one) and lane's stamps in
// that order.
func receiveNumbered(t *testing.T, ctx context.Context, rcv *app.Receiver, n, size int) {
	t.Helper()
	buf := make([]byte, 2048)
	for i := 0; i < n; {
		k, m, ok := rcv.Recv(buf)
		if !ok {
			if ctx.Err() != nil {
				t.Fatalf("received %d of %d", i, n)
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		// AF_XDP gives no kernel stamp (T1 0); the others must be in order.
		if k != size || binary.BigEndian.Uint32(buf) != uint32(i) || m.T0 == 0 || m.T2 < m.T0 || (m.T1 != 0 && (m.T1 < m.T0 || m.T2 < m.T1)) {
			t.Fatalf("message %d: %d bytes %x, stamps %d %d %d", i, k, buf[:4], m.T0, m.T1, m.T2)
		}
		i++
	}
}

// nextEvent waits up to 5 s for the next event.
func nextEvent(t *testing.T, evs *app.Events) app.Event {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		e, ok, err := evs.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return e
		}
	}
	t.Fatal("no event within 5 s")
	return app.Event{}
}

// FuzzParse feeds arbitrary configuration files: an error or a config
// that validates, never a crash.
func FuzzParse(f *testing.F) {
	f.Add("controller: 10.0.0.9:7700\nservice: fd\nlanes: [{name: hb, sender: 10.0.0.1, receiver: 10.0.0.2:7000, message_bytes: 64, period: 1ms, apps: [{name: fd, channel: 1}]}]\n")
	f.Add("service: fd\ninterface: eth0\nreceive: [{port: 7000, group: 239.1.1.1, member: 10.0.0.2, apps: [{name: fd}]}]\n")
	f.Add("service: fd\nreceive_path: xdp\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config Validate rejects: %v", verr)
			}
		}
	})
}
