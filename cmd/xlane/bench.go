package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlane/xlane/testbed/latency"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measurements: latency on the testbed, admissions on a controller"}
	var cfg latency.Config
	var variants string
	lat := &cobra.Command{
		Use:   "latency",
		Short: "Compare one-way latency of X-Lane, X-Lane without endhost tuning, and plain UDP (root)",
		Long: `latency starts xlane-controller (OpenFlow driver, API on a Unix socket), brings up a 2×2
leaf-spine testbed of namespaces and Open vSwitch bridges connected to it, saturates h3's port with
best-effort cross traffic from h1 and h2, adds CPU load, and measures, for N packets each and on the
same path: X-Lane (xlane-endhost in h4 sends an express tunnel to xlane-endhost in h3, whose lane
core is pinned to the last CPU, busy-polls and receives by AF_XDP), X-Lane0 (the same daemons on
plain goroutines and sockets) and the baseline (plain UDP, best effort). An application pushes one
message per period into h4's ring and reads them with their stamps from h3's.
xlane-controller and xlane-endhost are taken from --bin, else next to this program, else PATH.
It prints the table (λmin, p50, p99, p99.9, max, δmax, relative jitter, the §6.3 probability metric)
and writes latency.txt, latency.json and CDF and tail plots (SVG, PNG) to --out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if variants != "" {
				cfg.Variants = strings.Split(variants, ",")
			}
			cfg.Progress = cmd.ErrOrStderr()
			start := time.Now()
			r, err := latency.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w)
			r.Table(w)
			fmt.Fprintf(w, "\nwrote %s (%v)\n", strings.Join(r.Files, ", "), time.Since(start).Round(time.Second))
			return nil
		},
	}
	f := lat.Flags()
	f.StringVar(&cfg.Out, "out", "out", "directory for the table, JSON and plots")
	f.IntVar(&cfg.Packets, "packets", 100_000, "packets per variant")
	f.DurationVar(&cfg.Period, "period", 200*time.Microsecond, "the tunnel's requested period")
	f.IntVar(&cfg.MessageBytes, "message", 64, "message size in bytes")
	f.Int64Var(&cfg.LinkBps, "link-bps", 20_000_000, "testbed link rate (the userspace datapath forwards up to a few tens of Mbit/s of cross traffic on two cores)")
	f.Float64Var(&cfg.CrossShare, "cross", 0.95, "each of the two cross-traffic senders, as a share of the link rate")
	f.IntVar(&cfg.CPULoad, "cpu-load", 1, "busy goroutines competing for the CPUs")
	f.StringVar(&variants, "variants", "", "comma-separated subset of X-Lane,X-Lane0,baseline")
	f.StringVar(&cfg.Name, "name", "lat", "testbed name (part of interface names)")
	f.StringVar(&cfg.Bin, "bin", "", "folder holding xlane-controller and xlane-endhost (default: next to this program, else PATH)")
	cmd.AddCommand(lat, newBenchAdmissionsCmd())
	return cmd
}
