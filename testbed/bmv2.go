package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xlane/xlane/testbed/proc"
)

// Switch kinds a testbed can run.
const (
	SwitchOVS  = "ovs"  // one Open vSwitch bridge per switch; the switches connect to an OpenFlow controller
	SwitchBMv2 = "bmv2" // one simple_switch_grpc per switch; the controller connects to their P4Runtime servers
)

// bmv2Binary is BMv2's P4Runtime switch.
const bmv2Binary = "simple_switch_grpc"

// BMv2BurstSlack is the meter burst slack controllers should use with the
// testbed's BMv2 switches (see P4RuntimeConfig). Measured: with 1 ms, a
// sender that kept two periods between packets still lost 2 of 1,500 at
// the meter while a restarting controller competed for the CPU (BMv2
// meters time packets when it processes them, after any stall).
const BMv2BurstSlack = 5 * time.Millisecond

// bmv2PriorityQueues is how many strict-priority queues each BMv2 egress
// port gets: the pipeline maps sub-lanes onto standard_metadata.priority.
const bmv2PriorityQueues = 8

// BMv2Available says in one line why the BMv2 testbed cannot run here.
func BMv2Available() error {
	if _, err := exec.LookPath(bmv2Binary); err != nil {
		return errors.New("BMv2 is not installed (simple_switch_grpc not on PATH); see docs/p4.md")
	}
	return nil
}

// freePort asks the kernel for an unused loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startBMv2 starts one simple_switch_grpc for switch br.Switch with its
// ports bound to the root-namespace cable ends, and records it in the
// state. It runs in its own session
// (it outlives `xlane testbed up`), logs into the state folder, and starts
// without a pipeline: the controller pushes it over P4Runtime.
func (tb *Testbed) startBMv2(ctx context.Context, br Bridge, ports []portSpec) error {
	grpcPort, err := freePort()
	if err != nil {
		return err
	}
	thrift, err := freePort()
	if err != nil {
		return err
	}
	br.P4Runtime = net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort))
	br.Thrift = thrift
	args := []string{"--device-id", strconv.FormatUint(br.DeviceID, 10), "--thrift-port", strconv.Itoa(thrift), "--no-p4"}
	for _, p := range ports {
		args = append(args, "-i", fmt.Sprintf("%d@%s", p.port, p.name))
	}
	args = append(args, "--", "--grpc-server-addr", br.P4Runtime, "--priority-queues", strconv.Itoa(bmv2PriorityQueues))
	logPath := filepath.Join(tb.Dir, "bmv2-"+br.Switch+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("bmv2 log of %s: %w", br.Switch, err)
	}
	defer logf.Close()
	cmd := exec.Command(bmv2Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s for %s: %w", bmv2Binary, br.Switch, err)
	}
	br.PID = cmd.Process.Pid
	if tb.procs == nil {
		tb.procs = map[int]*exec.Cmd{}
	}
	tb.procs[br.PID] = cmd
	// Record the process before waiting for it, so Down finds it.
	tb.Bridges = append(tb.Bridges, br)
	if err := tb.save(); err != nil {
		return err
	}
	if err := waitListening(ctx, br.P4Runtime, br.PID, 30*time.Second); err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s of %s: %w\n%s", bmv2Binary, br.Switch, err, bytes.TrimSpace(tail))
	}
	return nil
}

// waitListening waits until addr accepts TCP connections, or the process
// pid died.
func waitListening(ctx context.Context, addr string, pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if !proc.Alive(pid) {
			return fmt.Errorf("exited before its P4Runtime server listened on %s", addr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("P4Runtime server not listening on %s after %v", addr, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// isBMv2 reports whether pid is a simple_switch_grpc (a pid in a state
// file may have been reused since).
func isBMv2(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), bmv2Binary)
}

// stopBMv2 kills a switch process and waits until it is gone.
func (tb *Testbed) stopBMv2(ctx context.Context, pid int) error {
	if cmd, ok := tb.procs[pid]; ok { // started by this process: reap it
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		delete(tb.procs, pid)
		return nil
	}
	if !isBMv2(pid) {
		return nil // gone already
	}
	return proc.Kill(ctx, pid, bmv2Binary)
}

// P4RuntimeConfig is the controller configuration (YAML, the driver and
// p4runtime sections of xlane-controller's config file) that drives this
// testbed's BMv2 switches.
func (tb *Testbed) P4RuntimeConfig() ([]byte, error) {
	if tb.Switch != SwitchBMv2 {
		return nil, fmt.Errorf("testbed %s runs %s switches, not P4Runtime ones", tb.Name, tb.switchKind())
	}
	type target struct {
		Addr     string `yaml:"addr"`
		DeviceID uint64 `yaml:"device_id"`
	}
	sws := map[string]target{}
	for _, b := range tb.Bridges {
		sws[b.Switch] = target{Addr: b.P4Runtime, DeviceID: b.DeviceID}
	}
	// BMv2's meters see packets after veths, the switch's input queue and
	// any stall of its process: the gaps of a periodic sender shrink by
	// milliseconds, which a one-packet burst would punish.
	return yaml.Marshal(map[string]any{
		"driver":    "p4runtime",
		"p4runtime": map[string]any{"election_id": 1, "burst_slack": BMv2BurstSlack.String(), "switches": sws},
	})
}

func (tb *Testbed) switchKind() string {
	if tb.Switch == "" {
		return SwitchOVS
	}
	return tb.Switch
}
