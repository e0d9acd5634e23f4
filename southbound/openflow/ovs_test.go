package openflow_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/openflow"
	"github.com/xlane/xlane/testbed/ovs"
	"github.com/xlane/xlane/testbed/ovs/ovstest"
)

// bench is one Open vSwitch bridge connected to a driver.
type bench struct {
	t      testing.TB
	inst   *ovs.Instance
	drv    *openflow.Driver
	br     string
	ctx    context.Context
	mu     sync.Mutex
	want   southbound.SwitchState // what OnConnect reconciles to
	recons chan string
}

func newBench(t testing.TB) *bench { return newBenchTLS(t, "") }

// newBenchTLS is newBench with the OpenFlow channel over mutual TLS when
// pki (a tlsconf.WriteTestPKI folder with a "switch" client) is given.
func newBenchTLS(t testing.TB, pki string) *bench {
	inst := ovstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	b := &bench{t: t, inst: inst, br: "xlt0", ctx: ctx, recons: make(chan string, 16)}
	b.want.Routes = []southbound.Route{{Dst: netip.MustParsePrefix("10.0.0.0/24"), Out: 1}}
	b.drv = openflow.New(openflow.Config{
		Switches:     map[uint64]string{0x42: "s1"},
		EchoInterval: time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnConnect: func(ctx context.Context, sw string) {
			b.mu.Lock()
			want := b.want
			b.mu.Unlock()
			if err := b.drv.Reconcile(ctx, sw, want); err != nil {
				t.Errorf("reconcile on connect: %v", err)
			}
			b.recons <- sw
		},
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := "tcp:" + lis.Addr().String()
	if pki != "" {
		tc, err := tlsconf.Server(filepath.Join(pki, "server.pem"), filepath.Join(pki, "server-key.pem"), filepath.Join(pki, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		lis = tls.NewListener(lis, tc)
		target = "ssl:" + lis.Addr().String()
		b.inst = inst
		b.vsctl("set-ssl", filepath.Join(pki, "switch-key.pem"), filepath.Join(pki, "switch.pem"), filepath.Join(pki, "ca.pem"))
	}
	done := make(chan error, 1)
	go func() { done <- b.drv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	b.vsctl("add-br", b.br, "--", "set", "bridge", b.br, "datapath_type=netdev", "protocols=OpenFlow13",
		"other-config:datapath-id=0000000000000042", "fail_mode=secure",
		"--", "set-controller", b.br, target)
	for p := 1; p <= 3; p++ {
		name := fmt.Sprintf("xlt0p%d", p)
		b.vsctl("add-port", b.br, name, "--", "set", "interface", name, "type=internal", fmt.Sprintf("ofport_request=%d", p))
	}
	b.waitReconciled()
	return b
}

func (b *bench) waitReconciled() {
	b.t.Helper()
	select {
	case <-b.recons:
	case <-time.After(20 * time.Second):
		b.t.Fatal("switch did not connect and reconcile")
	}
}

func (b *bench) vsctl(args ...string) string {
	b.t.Helper()
	out, err := b.inst.Vsctl(b.ctx, args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

func (b *bench) ofctl(args ...string) string {
	b.t.Helper()
	out, err := b.inst.Ofctl(b.ctx, args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

// flows returns dump-flows lines without the volatile counters.
func (b *bench) flows() []string {
	b.t.Helper()
	var out []string
	volatile := regexp.MustCompile(`(duration|n_packets|n_bytes|idle_age|hard_age)=[^ ,]*,? ?`)
	for _, l := range strings.Split(b.ofctl("dump-flows", b.br), "\n") {
		l = strings.TrimSpace(volatile.ReplaceAllString(l, ""))
		if l != "" && !strings.HasPrefix(l, "OFPST_FLOW") {
			out = append(out, l)
		}
	}
	return out
}

func contains(lines []string, parts ...string) bool {
	for _, l := range lines {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

var (
	unicast = southbound.TunnelRule{
		Tunnel: 7,
		Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"),
			DstIP: netip.MustParseAddr("10.0.0.2"), DstPort: 5000, DSCP: 45},
		Sublane: 1, Out: []southbound.Port{2},
		Meter: &southbound.Meter{RateBps: 1_200_000, BurstBytes: 1538},
	}
	multicast = southbound.TunnelRule{
		Tunnel: 9,
		Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"),
			DstIP: netip.MustParseAddr("239.1.1.1"), DstPort: 6000, DSCP: 46},
		Out: []southbound.Port{2, 3},
	}
)

func TestOVSApplyReadBackAndDelete(t *testing.T) {
	b := newBench(t)
	ctx := b.ctx
	if got := b.flows(); !contains(got, "priority=124,ip,nw_dst=10.0.0.0/24", "actions=set_field:0->ip_dscp,output:1") {
		t.Fatalf("route flow missing after reconcile:\n%s", strings.Join(got, "\n"))
	}
	if err := b.drv.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{unicast, multicast}}); err != nil {
		t.Fatal(err)
	}
	if !b.drv.UsesBundles("s1") {
		t.Error("Open vSwitch accepts bundles, but the batch was not applied as one")
	}
	flows := b.flows()
	for _, want := range [][]string{
		{"cookie=0x7", "priority=1000,udp,in_port=1,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=180,tp_dst=5000", "meter:1", "set_field:45->ip_dscp", "output:2"},
		{"cookie=0x9", "nw_dst=239.1.1.1,nw_tos=184,tp_dst=6000", "set_field:46->ip_dscp", "group:9"},
	} {
		if !contains(flows, want...) {
			t.Errorf("no flow with %q in:\n%s", want, strings.Join(flows, "\n"))
		}
	}
	if m := b.ofctl("dump-meters", b.br); !strings.Contains(m, "meter=1 kbps burst stats bands=") || !strings.Contains(m, "type=drop rate=1200 burst_size=15") {
		t.Errorf("meter not as expected:\n%s", m)
	}
	if g := b.ofctl("dump-groups", b.br); !strings.Contains(g, "group_id=9,type=all,bucket=actions=output:2,bucket=actions=output:3") {
		t.Errorf("group not as expected:\n%s", g)
	}
	st, err := b.drv.Stats(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 {
		t.Errorf("stats for %d tunnels, want 2: %+v", len(st), st)
	}

	// Move the multicast branch to one port: the group goes, the flow
	// outputs directly.
	one := multicast
	one.Out = []southbound.Port{3}
	if err := b.drv.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{one}}); err != nil {
		t.Fatal(err)
	}
	if !contains(b.flows(), "cookie=0x9", "output:3") {
		t.Errorf("multicast flow not moved to port 3:\n%s", strings.Join(b.flows(), "\n"))
	}
	if g := b.ofctl("dump-groups", b.br); strings.Contains(g, "group_id=9") {
		t.Errorf("group 9 left behind:\n%s", g)
	}

	if err := b.drv.Apply(ctx, "s1", southbound.Batch{Delete: []uint64{7, 9}}); err != nil {
		t.Fatal(err)
	}
	if got := b.flows(); len(got) != 1 {
		t.Errorf("after deleting both tunnels the bridge holds:\n%s", strings.Join(got, "\n"))
	}
	if m := b.ofctl("dump-meters", b.br); strings.Contains(m, "meter=") {
		t.Errorf("meter left behind:\n%s", m)
	}
}

func TestOVSRejectedBatchLeavesTheSwitchAsItWas(t *testing.T) {
	b := newBench(t)
	if err := b.drv.Apply(b.ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{unicast}}); err != nil {
		t.Fatal(err)
	}
	before := b.flows()
	bad := multicast
	bad.Out = []southbound.Port{0xfff0} // a reserved port number the switch refuses
	err := b.drv.Apply(b.ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{bad}, Delete: []uint64{7}})
	if err == nil {
		t.Fatal("a batch with an invalid output port was accepted")
	}
	t.Logf("switch error: %v", err)
	if after := b.flows(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("switch changed by a failed batch:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

func TestOVSReconcileRepairsInPlace(t *testing.T) {
	b := newBench(t)
	if err := b.drv.Apply(b.ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{unicast, multicast}}); err != nil {
		t.Fatal(err)
	}
	// Damage: a stray flow, a deleted tunnel flow, a changed meter, a
	// stray group.
	b.ofctl("add-flow", b.br, "priority=5,ip,nw_dst=10.9.9.9,actions=output:3")
	b.ofctl("del-flows", b.br, "cookie=0x9/-1")
	b.ofctl("mod-meter", b.br, "meter=1,kbps,burst,stats,bands=type=drop,rate=50,burst_size=1")
	b.ofctl("add-group", b.br, "group_id=77,type=all,bucket=output:1")
	want := southbound.SwitchState{Rules: []southbound.TunnelRule{unicast, multicast}, Routes: b.want.Routes}
	if err := b.drv.Reconcile(b.ctx, "s1", want); err != nil {
		t.Fatal(err)
	}
	flows := b.flows()
	if contains(flows, "nw_dst=10.9.9.9") || !contains(flows, "cookie=0x9", "group:9") || len(flows) != 3 {
		t.Errorf("flows after reconcile:\n%s", strings.Join(flows, "\n"))
	}
	if m := b.ofctl("dump-meters", b.br); !strings.Contains(m, "rate=1200") {
		t.Errorf("meter not repaired:\n%s", m)
	}
	if g := b.ofctl("dump-groups", b.br); strings.Contains(g, "group_id=77") || !strings.Contains(g, "group_id=9") {
		t.Errorf("groups not repaired:\n%s", g)
	}
}

func TestOVSReconnectAfterVswitchdRestart(t *testing.T) {
	b := newBench(t)
	b.mu.Lock()
	b.want.Rules = []southbound.TunnelRule{unicast}
	b.mu.Unlock()
	if err := b.drv.Apply(b.ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{unicast}}); err != nil {
		t.Fatal(err)
	}
	if err := b.inst.StopVswitchd(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.inst.StartVswitchd(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.waitReconciled()
	if !contains(b.flows(), "cookie=0x7", "meter:1") {
		t.Errorf("tunnel not reinstalled after ovs-vswitchd restart:\n%s", strings.Join(b.flows(), "\n"))
	}
}

// TestOVSOverMutualTLS: the switch connects over TLS with a certificate
// from the controller's CA, and the channel works as over TCP.
func TestOVSOverMutualTLS(t *testing.T) {
	pki := t.TempDir()
	if err := tlsconf.WriteTestPKI(pki, "switch"); err != nil {
		t.Fatal(err)
	}
	b := newBenchTLS(t, pki)
	if err := b.drv.Apply(b.ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{unicast}}); err != nil {
		t.Fatal(err)
	}
	if !contains(b.flows(), "cookie=0x7", "meter:1") {
		t.Errorf("tunnel not installed over TLS:\n%s", strings.Join(b.flows(), "\n"))
	}
}
