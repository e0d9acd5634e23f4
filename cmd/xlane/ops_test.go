package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

// controllerOnLoopback serves a controller over real gRPC for the CLI.
func controllerOnLoopback(t *testing.T) string {
	t.Helper()
	topo, err := te.ParseTopology(strings.NewReader(`{"max_frame_bytes":1000,
	 "nodes":[{"name":"h1","kind":"host","ipv4":"10.0.0.1"},{"name":"s1","kind":"switch"},{"name":"h2","kind":"host","ipv4":"10.0.0.2"}],
	 "links":[{"from":"h1","to":"s1","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
	          {"from":"s1","to":"h1","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
	          {"from":"s1","to":"h2","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
	          {"from":"h2","to":"s1","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: topo, Driver: memory.New("s1"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := servertest.Serve(t, ctl, "127.0.0.1:0")
	return addr
}

func TestOperatorCLI(t *testing.T) {
	addr := controllerOnLoopback(t)
	c := []string{"--controller", addr}
	out, _, err := run(t, append([]string{"topology", "show"}, c...)...)
	if err != nil || !strings.Contains(out, "h1->s1") || !strings.Contains(out, "10.0.0.2") {
		t.Fatalf("topology show: %v\n%s", err, out)
	}
	out, _, err = run(t, append([]string{"tunnel", "request", "--service", "fd", "--sender", "10.0.0.1", "--receiver", "10.0.0.2:7000", "--loadsize", "100", "--period", "100"}, c...)...)
	if err != nil || !strings.Contains(out, "TUNNEL") || !strings.Contains(out, "3600") {
		t.Fatalf("request: %v\n%s", err, out)
	}
	out, _, err = run(t, append([]string{"tunnel", "list", "--service", "fd", "--json"}, c...)...)
	var rs []tunnels.Resources
	if err != nil || json.Unmarshal([]byte(out), &rs) != nil || len(rs) != 1 || rs[0].MinLatencyNs != 3600 {
		t.Fatalf("list: %v\n%s", err, out)
	}
	// The request registered the service; the tunnel counts against it.
	out, _, err = run(t, append([]string{"service", "show", "--service", "fd"}, c...)...)
	if err != nil || !strings.Contains(out, "tunnels") || !strings.Contains(out, "1 of unlimited") || !strings.Contains(out, "last watch opened   never") {
		t.Fatalf("service show: %v\n%s", err, out)
	}
	if _, _, err = run(t, append([]string{"service", "show", "--service", "nobody"}, c...)...); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("service show of an unregistered service: %v", err)
	}
	id := "1"
	if _, _, err = run(t, append([]string{"tunnel", "release", id, "--service", "other"}, c...)...); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("foreign release: %v", err)
	}
	out, _, err = run(t, append([]string{"tunnel", "change", id, "--service", "fd", "--sender", "10.0.0.1", "--receiver", "10.0.0.2:7000", "--loadsize", "50", "--period", "200"}, c...)...)
	if err != nil || !strings.Contains(out, " 50 ") {
		t.Fatalf("change: %v\n%s", err, out)
	}
	if _, _, err = run(t, append([]string{"tunnel", "release", id, "--service", "fd"}, c...)...); err != nil {
		t.Fatal(err)
	}
	if _, _, err = run(t, append([]string{"group", "join", "239.1.1.1:5000", "10.0.0.2"}, c...)...); err != nil {
		t.Fatal(err)
	}
	if _, _, err = run(t, append([]string{"group", "join", "10.0.0.9:5000", "10.0.0.2"}, c...)...); err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("unicast group: %v", err)
	}
	if _, _, err = run(t, append([]string{"tunnel", "request", "--sender", "nope", "--receiver", "10.0.0.2:1", "--loadsize", "1", "--period", "1"}, c...)...); err == nil || !strings.Contains(err.Error(), "--sender") {
		t.Fatalf("bad flag: %v", err)
	}
}

// tunnel watch prints each upcall as the API's message in JSON, one a line.
func TestTunnelWatchPrintsUpcalls(t *testing.T) {
	addr := controllerOnLoopback(t)
	c := []string{"--controller", addr}
	if _, _, err := run(t, append([]string{"tunnel", "request", "--service", "fd", "--sender", "10.0.0.1", "--receiver", "10.0.0.2:7000", "--loadsize", "100", "--period", "100"}, c...)...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetOut(pw)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"tunnel", "watch", "--service", "fd"}, c...))
		done <- cmd.ExecuteContext(ctx)
		pw.Close()
	}()
	defer func() {
		cancel()
		go io.Copy(io.Discard, pr) // the command may still be printing
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, _, err := run(t, append([]string{"service", "show", "--service", "fd"}, c...)...)
		if err == nil && !strings.Contains(out, "last watch opened   never") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch never subscribed: %v\n%s", err, out)
		}
	}
	// Another service's tunnel on the same link moves fd's bound.
	if _, _, err := run(t, append([]string{"tunnel", "request", "--service", "raft", "--sender", "10.0.0.1", "--receiver", "10.0.0.2:7001", "--loadsize", "900", "--period", "100"}, c...)...); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var u struct {
		Changed struct {
			Resources struct {
				TunnelID  string `json:"tunnelId"`
				MaxJitter string `json:"maxJitter"`
			}
			GraceUntil string `json:"graceUntil"`
		}
	}
	if err := json.Unmarshal([]byte(line), &u); err != nil || u.Changed.Resources.TunnelID != "1" || u.Changed.Resources.MaxJitter == "" || u.Changed.GraceUntil == "" {
		t.Fatalf("watch printed %q (%v); want tunnel 1's BandwidthChanged with its bound and grace", line, err)
	}
}
