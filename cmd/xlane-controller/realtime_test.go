package main

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/rtsched"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/tunnels"
)

// TestDaemonRealtime starts the daemon with --realtime-priority and checks
// through /proc that every one of its threads runs SCHED_RR at that
// priority once it has served requests and a watch (the threads made for
// them included).
func TestDaemonRealtime(t *testing.T) {
	bin, dir, topo := daemonFixture(t)
	if !rtsched.Permitted() {
		t.Skip("SCHED_RR not permitted here (needs root or CAP_SYS_NICE)")
	}
	sock := filepath.Join(dir, "api.sock")
	cmd, addr, early := launchLog(t, bin, "--listen", "unix:"+sock, "--topology", topo, "--data-dir", filepath.Join(dir, "data"),
		"--metrics-addr", "", "--realtime-priority", "2")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if !slices.ContainsFunc(early, func(l string) bool {
		return strings.Contains(l, `msg="real-time scheduling" policy=SCHED_RR priority=2 threads=`)
	}) {
		t.Errorf("no real-time line in the log before listening:\n%s", strings.Join(early, "\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(addr, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	servertest.Watch(t, ctx, c) // a watch stream's goroutines and writer too
	for i := range 20 {
		if _, err := c.RequestBandwidth(ctx, tunnels.Request{Sender: netip.MustParseAddr("10.0.0.1"),
			Receiver: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(7000+i)), LoadsizeBytes: 100, PeriodUs: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	tids, err := rtsched.Threads(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		s, err := rtsched.Of(cmd.Process.Pid, tid)
		if err != nil {
			t.Fatal(err)
		}
		if s != (rtsched.Sched{Policy: unix.SCHED_RR, Priority: 2}) {
			t.Errorf("thread %d of %d: policy %d priority %d; want SCHED_RR at 2", tid, len(tids), s.Policy, s.Priority)
		}
	}
}
