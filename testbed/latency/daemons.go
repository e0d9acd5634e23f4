package latency

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/endhost/agent"
	"github.com/xlane/xlane/testbed"
)

// The main job runs the shipped daemons: xlane-controller, and an
// xlane-endhost in each host's network namespace.

// binaries finds xlane-controller and xlane-endhost in dir, else next to
// this program (make build puts all three in one folder), else on PATH.
func binaries(dir string) (ctl, endhost string, err error) {
	find := func(name string) (string, error) {
		var dirs []string
		if dir != "" {
			dirs = append(dirs, dir)
		}
		if exe, err := os.Executable(); err == nil {
			dirs = append(dirs, filepath.Dir(exe))
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("latency: %s not found next to this program or on PATH (make build puts it in bin/): %w", name, err)
		}
		return p, nil
	}
	if ctl, err = find("xlane-controller"); err != nil {
		return "", "", err
	}
	endhost, err = find("xlane-endhost")
	return ctl, endhost, err
}

// daemon is a child process whose log goes to a file and is watched.
type daemon struct {
	name  string
	cmd   *exec.Cmd
	log   string
	lines chan string // every log line, for wait
	done  chan struct{}
	err   error // after done
}

func startDaemon(name string, cmd *exec.Cmd, logPath string) (*daemon, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("latency: %s log: %w", name, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("latency: %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	d := &daemon{name: name, cmd: cmd, log: logPath, lines: make(chan string, 4096), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("latency: start %s: %w", name, err)
	}
	pw.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the log: to the file, and to wait
		defer wg.Done()
		defer f.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			select {
			case d.lines <- sc.Text():
			default: // nobody waits for lines this late
			}
		}
		pr.Close()
	}()
	go func() {
		d.err = cmd.Wait()
		wg.Wait()
		close(d.done)
	}()
	return d, nil
}

// wait returns the submatches of the first log line matching re.
func (d *daemon) wait(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-d.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m, nil
			}
		case <-d.done:
			// Its last lines may still wait in the channel.
			for {
				select {
				case l := <-d.lines:
					if m := re.FindStringSubmatch(l); m != nil {
						return m, nil
					}
					continue
				default:
				}
				break
			}
			return nil, fmt.Errorf("latency: %s exited (%v) before it logged %q:\n%s", d.name, d.err, re, d.tail())
		case <-deadline:
			return nil, fmt.Errorf("latency: %s did not log %q within %v:\n%s", d.name, re, timeout, d.tail())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// tail is the end of the daemon's log, for errors.
func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-8):], "\n  ")
}

// stop sends SIGTERM (the endhost releases its tunnels) and waits, then
// kills. ip netns exec runs the daemon as its own process (exec), so the
// signal reaches it.
func (d *daemon) stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		var ee *exec.ExitError
		if d.err != nil && !errors.As(d.err, &ee) {
			return d.err
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("latency: %s ignored SIGTERM for 10 s: killed", d.name)
	}
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
func startControllerDaemon(ctx context.Context, bin, dir, logDir string, topo *te.Topology) (d *daemon, api, openflowAddr string, err error) {
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
	if d, err = startDaemon("xlane-controller", cmd, filepath.Join(logDir, "controller.log")); err != nil {
		return nil, "", "", err
	}
	defer func() {
		if err != nil {
			_ = d.stop()
		}
	}()
	// The OpenFlow listener comes up first, then the API.
	m, err := d.wait(ctx, ofListening, 20*time.Second)
	if err != nil {
		return nil, "", "", err
	}
	openflowAddr = m[1]
	if m, err = d.wait(ctx, apiListening, 20*time.Second); err != nil {
		return nil, "", "", err
	}
	return d, m[1], openflowAddr, nil
}

// waitSwitches waits until the controller reconciled n switches.
func waitSwitches(ctx context.Context, d *daemon, n int) error {
	for i := range n {
		if _, err := d.wait(ctx, reconciled, 30*time.Second); err != nil {
			return fmt.Errorf("latency: %d of %d switches reconciled: %w", i, n, err)
		}
	}
	return nil
}

// startEndhost runs xlane-endhost with cfg in host's network namespace
// and waits until it runs; it returns the receive path it chose (for a
// receiving endhost) and why not a faster one.
func startEndhost(ctx context.Context, tb *testbed.Testbed, bin, logDir, variant, host string, cfg agent.Config) (d *daemon, path string, err error) {
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
	if d, err = startDaemon("xlane-endhost on "+host, cmd, base+".log"); err != nil {
		return nil, "", err
	}
	if len(cfg.Receive) > 0 {
		m, err := d.wait(ctx, receivePath, 20*time.Second)
		if err != nil {
			_ = d.stop()
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
	if _, err := d.wait(ctx, endhostUp, 20*time.Second); err != nil {
		_ = d.stop()
		return nil, "", err
	}
	return d, path, nil
}

// daemons is what the variants need of the run's processes.
type daemons struct {
	ehBin  string
	logDir string // the daemons' configurations and logs
	api    string // the controller's API (unix:…)
	ctl    *daemon
}

func (d *daemons) ctlPid() int { return d.ctl.cmd.Process.Pid }

var demotedLine = regexp.MustCompile(`msg="tunnel demoted`)

// demotions counts the demotions the controller logged since the last
// call.
func (d *daemons) demotions() int {
	n := 0
	for {
		select {
		case l := <-d.ctl.lines:
			if demotedLine.MatchString(l) {
				n++
			}
		default:
			return n
		}
	}
}

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
