package latency

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/endhost/agent"
	"github.com/xlane/xlane/testbed"
	"github.com/xlane/xlane/testbed/proc"
)

// The main job runs the shipped daemons: xlane-controller, and an
// xlane-endhost in each host's network namespace.

// binaries finds xlane-controller and xlane-endhost (see proc.Find).
func binaries(dir string) (ctl, endhost string, err error) {
	if ctl, err = proc.Find(dir, "xlane-controller"); err != nil {
		return "", "", fmt.Errorf("latency: %w", err)
	}
	if endhost, err = proc.Find(dir, "xlane-endhost"); err != nil {
		return "", "", fmt.Errorf("latency: %w", err)
	}
	return ctl, endhost, nil
}

var (
	ofListening  = regexp.MustCompile(`msg="openflow listening" addr=(\S+)`)
	apiListening = regexp.MustCompile(`msg=listening addr=(\S+)`)
	reconciled   = regexp.MustCompile(`msg="switch reconciled" switch=(\S+)`)
	endhostUp    = regexp.MustCompile(`msg="endhost running"`)
	receivePath  = regexp.MustCompile(`msg="receive path" port=\d+ path=(\S+)(?: interface=\S*)?(?: detail=("[^"]*"|\S*))?(?: not_faster=(.*))?`)
)

// meterSlack is the testbed's meter burst slack: Open vSwitch's userspace
// datapath shares the two CPUs with the lanes and the load, stalls for
// up to tens of milliseconds, and then forwards a conforming sender's
// packets back to back; the controller's monitoring demotes a tunnel
// whose meter dropped any, so with the driver's 2 ms (or 5 ms, as the
// BMv2 testbed has) X-Lane0 was demoted in two runs of three.
const meterSlack = 20 * time.Millisecond

// startControllerDaemon runs xlane-controller with the OpenFlow driver on
// the topology, its API on a Unix socket in dir (the endhosts run in other
// network namespaces) and its OpenFlow listener on a free loopback port.
func startControllerDaemon(ctx context.Context, bin, dir, logDir string, topo *te.Topology) (d *proc.Daemon, api, openflowAddr string, err error) {
	spec, err := json.Marshal(topo.Spec)
	if err != nil {
		return nil, "", "", err
	}
	topoFile := filepath.Join(dir, "topology.json")
	if err := os.WriteFile(topoFile, spec, 0o644); err != nil {
		return nil, "", "", fmt.Errorf("latency: %w", err)
	}
	cmd := exec.Command(bin, "--topology", topoFile, "--data-dir", filepath.Join(dir, "controller"),
		"--listen", "unix:"+filepath.Join(dir, "api.sock"), "--driver", "openflow", "--openflow-listen", "127.0.0.1:0",
		"--openflow-burst-slack", meterSlack.String(), "--metrics-addr", "")
	if d, err = proc.Start("xlane-controller", cmd, filepath.Join(logDir, "controller.log")); err != nil {
		return nil, "", "", err
	}
	defer func() {
		if err != nil {
			_ = d.Stop()
		}
	}()
	// The OpenFlow listener comes up first, then the API.
	m, err := d.Wait(ctx, ofListening, 20*time.Second)
	if err != nil {
		return nil, "", "", err
	}
	openflowAddr = m[1]
	if m, err = d.Wait(ctx, apiListening, 20*time.Second); err != nil {
		return nil, "", "", err
	}
	return d, m[1], openflowAddr, nil
}

// waitSwitches waits until the controller reconciled n switches.
func waitSwitches(ctx context.Context, d *proc.Daemon, n int) error {
	for i := range n {
		if _, err := d.Wait(ctx, reconciled, 30*time.Second); err != nil {
			return fmt.Errorf("latency: %d of %d switches reconciled: %w", i, n, err)
		}
	}
	return nil
}

// startEndhost runs xlane-endhost with cfg in host's network namespace
// and waits until it runs; it returns the receive path it chose (for a
// receiving endhost) and why not a faster one.
func startEndhost(ctx context.Context, tb *testbed.Testbed, bin, logDir, variant, host string, cfg agent.Config) (d *proc.Daemon, path string, err error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, "", err
	}
	base := filepath.Join(logDir, "endhost-"+variant+"-"+host)
	conf := base + ".yaml"
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		return nil, "", fmt.Errorf("latency: %w", err)
	}
	cmd, err := tb.Command(context.WithoutCancel(ctx), host, bin, "run", "--config", conf)
	if err != nil {
		return nil, "", err
	}
	if d, err = proc.Start("xlane-endhost on "+host, cmd, base+".log"); err != nil {
		return nil, "", err
	}
	if len(cfg.Receive) > 0 {
		m, err := d.Wait(ctx, receivePath, 20*time.Second)
		if err != nil {
			_ = d.Stop()
			return nil, "", err
		}
		path = m[1]
		if detail := strings.Trim(m[2], `"`); detail != "" {
			path += ", " + detail
		}
		if why := strings.Trim(m[3], `"`); why != "" {
			path += " (not faster: " + why + ")"
		}
	}
	if _, err := d.Wait(ctx, endhostUp, 20*time.Second); err != nil {
		_ = d.Stop()
		return nil, "", err
	}
	return d, path, nil
}

// daemons is what the variants need of the run's processes.
type daemons struct {
	ehBin  string
	logDir string // the daemons' configurations and logs
	api    string // the controller's API (unix:…)
	ctl    *proc.Daemon
}

func (d *daemons) ctlPid() int { return d.ctl.Pid() }

var demotedLine = regexp.MustCompile(`msg="tunnel demoted`)

// demotions counts the demotions the controller logged since the last
// call.
func (d *daemons) demotions() int { return d.ctl.Count(demotedLine) }

// approve asks the controller for the probe's tunnel and releases it: the
// period and bound it grants (each endhost asks for its own later).
func approve(ctx context.Context, api string, r tunnels.Request) (tunnels.Resources, error) {
	c, err := client.Dial(api, "latency-setup")
	if err != nil {
		return tunnels.Resources{}, err
	}
	defer c.Close()
	res, err := c.RequestBandwidth(ctx, r)
	if err != nil {
		return tunnels.Resources{}, fmt.Errorf("latency: requesting the tunnel: %w", err)
	}
	if err := c.ReleaseBandwidth(ctx, res.TunnelID); err != nil {
		return tunnels.Resources{}, fmt.Errorf("latency: releasing the trial tunnel: %w", err)
	}
	return res, nil
}
