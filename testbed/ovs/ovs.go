// Package ovs runs a private Open vSwitch instance: its own ovsdb-server
// and ovs-vswitchd with database, sockets, pid and log files in one
// directory, never touching the system's instance. Bridges use the
// userspace datapath (datapath_type=netdev), the only one a kernel
// without the openvswitch module offers.
package ovs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/xlane/xlane/testbed/proc"
)

// Instance is one private Open vSwitch instance rooted at Dir.
type Instance struct {
	Dir string
}

// Available reports why Open vSwitch cannot run here, or nil.
func Available() error {
	for _, bin := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("open vswitch is not installed (%s not on PATH; apt-get install openvswitch-switch)", bin)
		}
	}
	if _, err := os.Stat(schema); err != nil {
		return fmt.Errorf("open vswitch schema %s: %w", schema, err)
	}
	return nil
}

const schema = "/usr/share/openvswitch/vswitch.ovsschema"

// At returns the instance rooted at dir without starting anything.
func At(dir string) *Instance { return &Instance{Dir: dir} }

// Start creates dir's database if needed and starts both daemons. It
// returns once ovs-vswitchd answers.
func Start(ctx context.Context, dir string) (*Instance, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	i := &Instance{Dir: dir}
	db := filepath.Join(dir, "conf.db")
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		if _, err := i.run(ctx, "ovsdb-tool", "create", db, schema); err != nil {
			return nil, err
		}
	}
	if !i.alive("ovsdb") {
		if _, err := i.run(ctx, "ovsdb-server", "--remote=punix:"+i.dbSock(), "--pidfile="+i.pidFile("ovsdb"),
			"--detach", "--log-file="+filepath.Join(dir, "ovsdb.log"), db); err != nil {
			return nil, err
		}
		if _, err := i.Vsctl(ctx, "--no-wait", "init"); err != nil {
			return nil, err
		}
	}
	if err := i.StartVswitchd(ctx); err != nil {
		return nil, err
	}
	return i, nil
}

// StartVswitchd starts ovs-vswitchd if it is not running.
func (i *Instance) StartVswitchd(ctx context.Context) error {
	if i.alive("vswitchd") {
		return nil
	}
	if _, err := i.run(ctx, "ovs-vswitchd", "unix:"+i.dbSock(), "--pidfile="+i.pidFile("vswitchd"),
		"--detach", "--log-file="+filepath.Join(i.Dir, "vswitchd.log")); err != nil {
		return err
	}
	// --detach returns once the daemon has configured its bridges.
	return i.realtime(ctx)
}

// realtime gives every thread of ovs-vswitchd a real-time round-robin
// priority: the testbed's switches then forward like dedicated hardware
// even while the machine is busy (without it, a compile running next to
// the tests delayed packets inside the switch by tens of milliseconds).
// The userspace datapath without DPDK sleeps in poll(), so it cannot
// starve the machine.
func (i *Instance) realtime(ctx context.Context) error {
	pid, err := i.pid("vswitchd")
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("chrt"); err != nil {
		return nil // util-linux without chrt: best effort
	}
	if _, err := i.run(ctx, "chrt", "--all-tasks", "--rr", "--pid", "10", strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("ovs: real-time priority for ovs-vswitchd: %w", err)
	}
	return nil
}

// StopVswitchd kills ovs-vswitchd (as a crash would) and waits for it to
// go; bridges stay in the database.
func (i *Instance) StopVswitchd(ctx context.Context) error {
	return i.kill(ctx, "vswitchd")
}

// Stop deletes the instance's bridges, so that ovs-vswitchd removes their
// internal ports (tap devices that outlive it), and stops both daemons.
// Deleting bridges is best effort (a dying ovs-vswitchd never confirms):
// callers remove leftover tap devices by name. It succeeds if the
// daemons are not running.
func (i *Instance) Stop(ctx context.Context) error {
	if i.alive("vswitchd") && i.alive("ovsdb") {
		if out, err := i.Vsctl(ctx, "--timeout=2", "list-br"); err == nil {
			for _, br := range strings.Fields(out) {
				if _, err := i.Vsctl(ctx, "--timeout=2", "--if-exists", "del-br", br); err != nil {
					break
				}
			}
		}
	}
	return errors.Join(i.kill(ctx, "vswitchd"), i.kill(ctx, "ovsdb"))
}

// Vsctl runs ovs-vsctl against this instance.
func (i *Instance) Vsctl(ctx context.Context, args ...string) (string, error) {
	return i.run(ctx, "ovs-vsctl", append([]string{"--db=unix:" + i.dbSock()}, args...)...)
}

// Ofctl runs ovs-ofctl with OpenFlow 1.3 against this instance's bridges.
func (i *Instance) Ofctl(ctx context.Context, args ...string) (string, error) {
	return i.run(ctx, "ovs-ofctl", append([]string{"-O", "OpenFlow13"}, args...)...)
}

// Appctl runs ovs-appctl against this instance's ovs-vswitchd.
func (i *Instance) Appctl(ctx context.Context, args ...string) (string, error) {
	pid, err := i.pid("vswitchd")
	if err != nil {
		return "", err
	}
	ctl := filepath.Join(i.Dir, fmt.Sprintf("ovs-vswitchd.%d.ctl", pid))
	return i.run(ctx, "ovs-appctl", append([]string{"-t", ctl}, args...)...)
}

func (i *Instance) dbSock() string { return filepath.Join(i.Dir, "db.sock") }

func (i *Instance) pidFile(name string) string { return filepath.Join(i.Dir, name+".pid") }

func (i *Instance) pid(name string) (int, error) {
	b, err := os.ReadFile(i.pidFile(name))
	if err != nil {
		return 0, fmt.Errorf("ovs: %s is not running: %w", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("ovs: pid file %s: %w", i.pidFile(name), err)
	}
	return pid, nil
}

// alive reports whether the daemon of the pid file runs (a stale pid file
// of a killed daemon does not count).
func (i *Instance) alive(name string) bool {
	pid, err := i.pid(name)
	if err != nil {
		return false
	}
	return proc.Alive(pid)
}

func (i *Instance) kill(ctx context.Context, name string) error {
	pid, err := i.pid(name)
	if err != nil {
		return nil // never started, or stopped
	}
	if !proc.Alive(pid) {
		os.Remove(i.pidFile(name))
		return nil
	}
	if err := proc.Kill(ctx, pid, name); err != nil {
		return fmt.Errorf("ovs: %w", err)
	}
	os.Remove(i.pidFile(name))
	return nil
}

func (i *Instance) run(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+i.Dir, "OVS_LOGDIR="+i.Dir, "OVS_DBDIR="+i.Dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Running reports whether this instance's ovs-vswitchd runs.
func (i *Instance) Running() bool { return i.alive("vswitchd") }
