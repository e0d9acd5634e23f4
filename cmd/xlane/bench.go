package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlane/xlane/testbed/latency"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measurements on the testbed"}
	var cfg latency.Config
	var variants string
	lat := &cobra.Command{
		Use:   "latency",
		Short: "Compare one-way latency of X-Lane, X-Lane without endhost tuning, and plain UDP (root)",
		Long: `latency brings up a 2×2 leaf-spine testbed of namespaces and Open vSwitch bridges with an
in-process controller, requests an express tunnel h4 → h3, saturates h3's port with best-effort
cross traffic from h1 and h2, adds CPU load, and measures, for N packets each and on the same path:
X-Lane (the lane core pinned to a CPU, busy polling, the express queue), X-Lane0 (the same lane
code on plain goroutines and sockets, the express queue) and the baseline (plain UDP, best effort).
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
	cmd.AddCommand(lat)
	return cmd
}
