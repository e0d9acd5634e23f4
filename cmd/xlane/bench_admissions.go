package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlane/xlane/controller/loadgen"
	"github.com/xlane/xlane/controller/te/topogen"
	"github.com/xlane/xlane/testbed/proc"
)

func newBenchAdmissionsCmd() *cobra.Command {
	var cfg loadgen.Config
	var k int
	var headroom float64
	var bin, out string
	cmd := &cobra.Command{
		Use:   "admissions",
		Short: "Admissions per second and upcall delay of a controller, from a separate process",
		Long: `admissions measures a controller through its service API as services see it. Without
--controller it starts xlane-controller (from --bin, else next to this program, else PATH) with
the in-memory driver on a k-ary fat-tree, its API on a Unix socket and its state in a fresh data
directory, and stops it afterwards. It installs --preload tunnels (unicast, the coordination mix
of small periodic messages) owned by --services services, each of which watches its upcalls,
then times --requests admissions from --clients concurrent callers, and releases every tunnel
it made. It prints admissions per second, the request round trip, and how long BandwidthChanged
upcalls took from the controller's commit to the watching service; the table and JSON go to --out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.Progress = cmd.ErrOrStderr()
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if cfg.Target == "" {
				stop, target, err := startBenchController(ctx, cmd, bin, out, k, headroom)
				if err != nil {
					return err
				}
				defer stop()
				cfg.Target = target
			}
			res, err := loadgen.Run(ctx, cfg)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			res.Table(w)
			txt, err := os.Create(filepath.Join(out, "admissions.txt"))
			if err != nil {
				return err
			}
			res.Table(txt)
			if err := txt.Close(); err != nil {
				return err
			}
			js, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "admissions.json"), append(js, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(w, "wrote %s, %s\n", filepath.Join(out, "admissions.txt"), filepath.Join(out, "admissions.json"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Target, "controller", "", "the controller's API (host:port or unix:/path); empty: start xlane-controller here")
	f.IntVar(&k, "k", 16, "fat-tree arity of the controller started here")
	f.Float64Var(&headroom, "bound-headroom", 0, "the started controller's --bound-headroom")
	f.IntVar(&cfg.Preload, "preload", 10_000, "tunnels installed before timing")
	f.IntVar(&cfg.Requests, "requests", 3_000, "timed admissions")
	f.IntVar(&cfg.Clients, "clients", 32, "concurrent requests in flight")
	f.IntVar(&cfg.Services, "services", 50, "service identities holding the tunnels, each watching its upcalls")
	f.Uint64Var(&cfg.Seed, "seed", 1, "request mix seed")
	f.StringVar(&bin, "bin", "", "folder holding xlane-controller (default: next to this program, else PATH)")
	f.StringVar(&out, "out", "out", "directory for admissions.txt, admissions.json and the controller's log")
	return cmd
}

var benchAPIListening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startBenchController runs xlane-controller with the memory driver on a
// fat-tree. Monitoring is slowed to once an hour: nobody sends on the
// benchmark's tunnels, and the monitor would end them as idle.
func startBenchController(ctx context.Context, cmd *cobra.Command, bin, out string, k int, headroom float64) (stop func(), target string, err error) {
	exe, err := proc.Find(bin, "xlane-controller")
	if err != nil {
		return nil, "", err
	}
	spec, err := topogen.FatTree(k, topogen.Defaults())
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "xlane-bench-")
	if err != nil {
		return nil, "", err
	}
	data, err := json.Marshal(spec)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "topology.json"), data, 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	c := exec.Command(exe, "--topology", filepath.Join(dir, "topology.json"), "--data-dir", filepath.Join(dir, "data"),
		"--listen", "unix:"+filepath.Join(dir, "api.sock"), "--driver", "memory", "--metrics-addr", "",
		"--monitor-interval", "1h", "--bound-headroom", strconv.FormatFloat(headroom, 'g', -1, 64))
	logPath := filepath.Join(out, "controller-admissions.log")
	d, err := proc.Start("xlane-controller", c, logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	stop = func() {
		if err := d.Stop(); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "stopping xlane-controller: %v\n", err)
		}
		os.RemoveAll(dir)
	}
	m, err := d.Wait(ctx, benchAPIListening, 30*time.Second)
	if err != nil {
		stop()
		return nil, "", err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "xlane-controller (pid %d): k=%d fat-tree, memory driver, bound headroom %g, API %s; log %s\n", d.Pid(), k, headroom, m[1], logPath)
	return stop, m[1], nil
}
