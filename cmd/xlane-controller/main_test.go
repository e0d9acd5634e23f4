package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/hostcheck"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/controller/tunnels"
)

const topoJSON = `{"max_frame_bytes":1000,"sublanes":2,
 "nodes":[{"name":"h1","kind":"host","ipv4":"10.0.0.1"},{"name":"s1","kind":"switch"},{"name":"s2","kind":"switch"},
          {"name":"h2","kind":"host","ipv4":"10.0.0.2"},{"name":"h3","kind":"host","ipv4":"10.0.0.3"}],
 "links":[
  {"from":"h1","to":"s1","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
  {"from":"s1","to":"h1","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
  {"from":"s1","to":"s2","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
  {"from":"s2","to":"s1","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
  {"from":"s2","to":"h2","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
  {"from":"h2","to":"s2","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
  {"from":"s2","to":"h3","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
  {"from":"h3","to":"s2","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100}]}`

// build compiles the daemon once per test binary run.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xlane-controller")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// daemonFixture builds the daemon and writes the test topology into a
// fresh folder (the test is skipped with -short).
func daemonFixture(t *testing.T) (bin, dir, topo string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin, dir = build(t), t.TempDir()
	topo = filepath.Join(dir, "topo.json")
	if err := os.WriteFile(topo, []byte(topoJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin, dir, topo
}

var addrRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// launch starts the daemon and returns it with the address it listens on.
func launch(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd, addr, _ := launchLog(t, bin, args...)
	return cmd, addr
}

// launchLog is launch that also returns what the daemon logged before it
// listened.
func launchLog(t *testing.T, bin string, args ...string) (*exec.Cmd, string, []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type started struct {
		addr  string
		early []string
	}
	found := make(chan started, 1)
	go func() {
		var early []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- started{m[1], early}
				break
			}
			early = append(early, sc.Text())
		}
		close(found)
	}()
	select {
	case s, ok := <-found:
		if !ok {
			cmd.Wait()
			t.Fatal("daemon exited before listening")
		}
		go io.Copy(io.Discard, stderr)
		return cmd, s.addr, s.early
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("daemon did not start")
	}
	return nil, "", nil
}

// TestKill9AndRestart kills the daemon with SIGKILL in the middle of its
// life and checks that the restarted daemon has every tunnel and group,
// hands out fresh ids, and that a service's watch stream resumes.
func TestKill9AndRestart(t *testing.T) {
	bin, dir, topo := daemonFixture(t)
	data := filepath.Join(dir, "data")
	cmd, addr := launch(t, bin, "--listen", "127.0.0.1:0", "--topology", topo, "--data-dir", data, "--grace", "50ms", "--metrics-addr", "")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fd, err := client.Dial(addr, "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	_, live := servertest.Watch(t, ctx, fd)

	h1, h2, h3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	group := netip.AddrPortFrom(netip.MustParseAddr("239.5.5.5"), 5555)
	for _, m := range []netip.Addr{h2, h3} {
		if err := fd.JoinGroup(ctx, group, m); err != nil {
			t.Fatal(err)
		}
	}
	var ids []uint64
	for i, r := range []tunnels.Request{
		{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 26},
		{Sender: h1, Receiver: group, LoadsizeBytes: 64, PeriodUs: 500, Sublane: 1},
		{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 900, PeriodUs: 1000},
	} {
		res, err := fd.RequestBandwidth(ctx, r)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		ids = append(ids, res.TunnelID)
	}
	before, err := fd.ListTunnels(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// Same address, same data directory, no topology flag: all from disk.
	cmd2, _ := launch(t, bin, "--listen", addr, "--data-dir", data, "--grace", "50ms", "--metrics-addr", "127.0.0.1:0")
	defer func() { cmd2.Process.Signal(syscall.SIGTERM); cmd2.Wait() }()
	select {
	case first := <-live:
		if first {
			t.Fatal("resubscription reported as first")
		}
	case <-ctx.Done():
		t.Fatal("watch did not resume after the restart")
	}
	after, err := fd.ListTunnels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(rs []tunnels.Resources) []tunnels.Resources {
		out := slices.Clone(rs)
		for i := range out {
			out[i].NotBefore = time.Time{}
		}
		return out
	}
	if !slices.Equal(strip(after), strip(before)) {
		t.Fatalf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	res, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7002), LoadsizeBytes: 10, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids, res.TunnelID) {
		t.Fatalf("id %d handed out twice", res.TunnelID)
	}
	// The group survived: leaving it re-plans the multicast tunnel.
	if err := fd.LeaveGroup(ctx, group, h3); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsAreClear(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := build(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ngrace: forever\n"), 0o644)
	out, err := exec.Command(bin, "--config", cfg, "--data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "grace (line 2)") {
		t.Fatalf("err %v, output %q", err, out)
	}
	out, err = exec.Command(bin, "--listen", "127.0.0.1:0", "--metrics-addr", "", "--data-dir", filepath.Join(dir, "d")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no topology") {
		t.Fatalf("err %v, output %q", err, out)
	}
	out, _ = exec.Command(bin, "--help").CombinedOutput()
	for _, opt := range []string{"--config", "--listen", "--topology", "--data-dir", "--grace", "--driver", "--insecure", "--log-level",
		"--tls-cert", "--tls-key", "--client-ca", "--metrics-addr", "--pprof", "--monitor-interval", "--unused-fraction", "--unused-intervals", "--idle-intervals", "--violation-intervals", "--realtime-priority"} {
		if !strings.Contains(string(out), opt) {
			t.Errorf("--help does not document %s", opt)
		}
	}
}

// TestDaemonMutualTLS runs the daemon behind mutual TLS: a client with a
// certificate is served as the certificate's subject, one without is not.
func TestDaemonMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := build(t)
	dir := t.TempDir()
	if err := tlsconf.WriteTestPKI(dir, "fd"); err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	topo := p("topo.json")
	if err := os.WriteFile(topo, []byte(topoJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	free, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the metrics
	if err != nil {
		t.Fatal(err)
	}
	maddr := free.Addr().String()
	free.Close()
	cmd, addr := launch(t, bin, "--listen", "127.0.0.1:0", "--topology", topo, "--data-dir", p("data"),
		"--tls-cert", p("server.pem"), "--tls-key", p("server-key.pem"), "--client-ca", p("ca.pem"), "--metrics-addr", maddr, "--pprof")
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(cert, key string) *client.Client {
		tc, err := tlsconf.Client(cert, key, p("ca.pem"), "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(addr, "claimed", grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	fd := dial(p("fd.pem"), p("fd-key.pem"))
	h1, h2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if _, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 64, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	if ts, err := fd.ListTunnels(ctx); err != nil || len(ts) != 1 {
		t.Fatalf("list as fd: %v, %v", ts, err)
	}
	if _, err := dial("", "").ListTunnels(ctx); err == nil {
		t.Fatal("served a client without a certificate")
	}
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`xlane_tunnels{state="express"} 1`, `xlane_operations_total{op="request",result="ok"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// --pprof: the profiler beside the metrics.
	if resp, err := http.Get("http://" + maddr + "/debug/pprof/goroutine?debug=1"); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
			t.Errorf("/debug/pprof/goroutine: %s %.200q", resp.Status, body)
		}
	}
	// SIGTERM stops it gracefully: exit status 0, promptly.
	waited := make(chan error, 1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		stopped = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit 10 s after SIGTERM")
	}
	// Plain text off loopback is refused without --insecure.
	out, err := exec.Command(bin, "--listen", "0.0.0.0:0", "--topology", topo, "--data-dir", p("d2")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a loopback address") {
		t.Fatalf("err %v, output %q", err, out)
	}
}

// TestDaemonOnUnixSocket: the API on a Unix socket (services in other
// network namespaces of the host reach it through the file system), plain
// text without --insecure; after a SIGKILL the socket file stays, and the
// restarted daemon replaces it and serves the same tunnels.
func TestDaemonOnUnixSocket(t *testing.T) {
	bin, dir, topo := daemonFixture(t)
	sock := filepath.Join(dir, "api.sock")
	data := filepath.Join(dir, "data")
	args := []string{"--listen", "unix:" + sock, "--topology", topo, "--data-dir", data, "--metrics-addr", ""}
	cmd, addr, early := launchLog(t, bin, args...)
	if addr != "unix:"+sock {
		t.Fatalf("the daemon says it listens on %q, want unix:%s", addr, sock)
	}
	// The host check warns unless transparent huge pages are "always".
	mode, err := hostcheck.HugePages("/")
	warned := slices.ContainsFunc(early, func(l string) bool {
		return strings.Contains(l, "level=WARN msg=\"host check\" transparent_hugepage="+mode)
	})
	if err == nil && warned != (mode != "always") {
		t.Errorf("transparent huge pages %q: host check warned %v; the log before listening:\n%s", mode, warned, strings.Join(early, "\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(addr, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.RequestBandwidth(ctx, tunnels.Request{Sender: netip.MustParseAddr("10.0.0.1"),
		Receiver: netip.MustParseAddrPort("10.0.0.2:7000"), LoadsizeBytes: 100, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("after SIGKILL the socket file should be left behind: %v", err)
	}
	cmd2, _ := launch(t, bin, args...)
	defer func() { cmd2.Process.Signal(syscall.SIGTERM); cmd2.Wait() }()
	c2, err := client.Dial(addr, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got, err := c2.ListTunnels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].TunnelID != res.TunnelID {
		t.Fatalf("after the restart the socket serves %v, want tunnel %d", got, res.TunnelID)
	}
}
