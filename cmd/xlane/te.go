package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/sim"
	"github.com/xlane/xlane/controller/te/topogen"
)

func newTECmd() *cobra.Command {
	cmd := &cobra.Command{Use: "te", Short: "Traffic engineering: generate topologies, allocate, adjust and simulate tunnels"}
	cmd.AddCommand(newGenCmd(), newAllocateCmd(), newAdjustCmd(), newSimulateCmd())
	return cmd
}

func genFlags(cmd *cobra.Command, p *topogen.Params) {
	f := cmd.Flags()
	f.Int64Var(&p.BandwidthBps, "bandwidth", p.BandwidthBps, "link bandwidth in bit/s")
	f.Int64Var(&p.QueueBytes, "queue-bytes", p.QueueBytes, "egress buffer per port reserved for express traffic")
	f.Int64Var(&p.SwitchLatencyNs, "switch-latency-ns", p.SwitchLatencyNs, "minimum latency of a switch-to-switch link")
	f.Int64Var(&p.SwitchJitterNs, "switch-jitter-ns", p.SwitchJitterNs, "maximum jitter of a switch-to-switch link")
	f.Int64Var(&p.HostLatencyNs, "host-latency-ns", p.HostLatencyNs, "minimum latency of a host link")
	f.Int64Var(&p.HostJitterNs, "host-jitter-ns", p.HostJitterNs, "maximum jitter of a host link")
	f.Int64Var(&p.FrameOverheadBytes, "frame-overhead", p.FrameOverheadBytes, "bytes of framing added to a tunnel's loadsize")
	f.Int64Var(&p.MaxFrameBytes, "max-frame", p.MaxFrameBytes, "largest best-effort frame on the wire")
	f.Float64Var(&p.MaxExpressShare, "express-share", p.MaxExpressShare, "fraction of each link the express lane may use")
	f.IntVar(&p.Sublanes, "sublanes", p.Sublanes, "number of express priority levels")
}

func newGenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "gen", Short: "Write a topology file to stdout"}
	ftParams := topogen.Defaults()
	var k int
	ft := &cobra.Command{
		Use:   "fattree --k K",
		Short: "k-ary fat-tree (k³/4 hosts)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := topogen.FatTree(k, ftParams)
			if err != nil {
				return err
			}
			return emitSpec(cmd.OutOrStdout(), spec)
		},
	}
	ft.Flags().IntVar(&k, "k", 4, "switch port count (even)")
	genFlags(ft, &ftParams)

	lsParams := topogen.Defaults()
	var leaves, spines, hpl int
	ls := &cobra.Command{
		Use:   "leafspine --leaves L --spines S --hosts-per-leaf H",
		Short: "two-tier leaf-spine fabric",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := topogen.LeafSpine(leaves, spines, hpl, lsParams)
			if err != nil {
				return err
			}
			return emitSpec(cmd.OutOrStdout(), spec)
		},
	}
	ls.Flags().IntVar(&leaves, "leaves", 4, "leaf switches")
	ls.Flags().IntVar(&spines, "spines", 2, "spine switches")
	ls.Flags().IntVar(&hpl, "hosts-per-leaf", 4, "hosts under each leaf")
	genFlags(ls, &lsParams)
	cmd.AddCommand(ft, ls)
	return cmd
}

// emitSpec validates a generated topology before writing it.
func emitSpec(w io.Writer, spec te.TopologySpec) error {
	if _, err := te.NewTopology(spec); err != nil {
		return fmt.Errorf("generated topology is invalid: %w", err)
	}
	return writeJSON(w, spec)
}

func newAllocateCmd() *cobra.Command {
	var topoPath, reqPath string
	cmd := &cobra.Command{
		Use:   "allocate --topology T.json --requests R.json",
		Short: "Admit requests one by one; print the tunnels JSON, one error line per rejected request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := readTopology(topoPath)
			if err != nil {
				return err
			}
			reqs, err := readRequests(reqPath)
			if err != nil {
				return err
			}
			e := te.NewEngine(topo)
			rejected := 0
			for i, r := range reqs {
				if _, _, err := e.Admit(r); err != nil {
					rejected++
					fmt.Fprintf(cmd.ErrOrStderr(), "requests[%d]: rejected: %v\n", i, err)
				}
			}
			if err := writeJSON(cmd.OutOrStdout(), e.Tunnels()); err != nil {
				return err
			}
			if rejected > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d of %d requests rejected\n", rejected, len(reqs))
				return exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&topoPath, "topology", "", "topology file")
	cmd.Flags().StringVar(&reqPath, "requests", "", "requests file")
	_ = cmd.MarkFlagRequired("topology")
	_ = cmd.MarkFlagRequired("requests")
	return cmd
}

func newAdjustCmd() *cobra.Command {
	var topoPath, tunPath string
	cmd := &cobra.Command{
		Use:   "adjust --topology T.json --tunnels X.json",
		Short: "Recompute period, latency and jitter (X-ADJ) of tunnels whose edges are given",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := readTopology(topoPath)
			if err != nil {
				return err
			}
			ts, err := readTunnels(tunPath)
			if err != nil {
				return err
			}
			out, err := te.NewEngine(topo).Install(ts)
			if err != nil {
				return fmt.Errorf("%s: %w", tunPath, err)
			}
			return writeJSON(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().StringVar(&topoPath, "topology", "", "topology file")
	cmd.Flags().StringVar(&tunPath, "tunnels", "", "tunnels file")
	_ = cmd.MarkFlagRequired("topology")
	_ = cmd.MarkFlagRequired("tunnels")
	return cmd
}

func newSimulateCmd() *cobra.Command {
	var (
		topoPath, tunPath string
		cfg               sim.Config
		duration          time.Duration
		asJSON, progress  bool
	)
	cmd := &cobra.Command{
		Use:   "simulate --topology T.json --tunnels X.json",
		Short: "Check the tunnels' bounds with a packet-level simulation; non-zero exit on a violation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := readTopology(topoPath)
			if err != nil {
				return err
			}
			ts, err := readTunnels(tunPath)
			if err != nil {
				return err
			}
			cfg.Duration = te.Time(duration.Nanoseconds()) * te.Nanosecond
			if progress {
				cfg.Progress = progressPrinter(cmd.ErrOrStderr(), "simulating")
			}
			rep, err := sim.Run(cmd.Context(), topo, ts, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), rep)
			} else {
				err = printReport(cmd.OutOrStdout(), rep)
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				fmt.Fprintf(cmd.ErrOrStderr(), "bounds violated: %d packets outside their bound, %d express drops\n", rep.Violations, rep.Drops)
				return exitError{code: 3}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&topoPath, "topology", "", "topology file")
	f.StringVar(&tunPath, "tunnels", "", "tunnels file")
	f.BoolVar(&cfg.Adversarial, "adversarial", false, "search phases and delays for each tunnel's worst case")
	f.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	f.DurationVar(&duration, "duration", 0, "emission time per run (0: eight times the longest period)")
	f.Float64Var(&cfg.BestEffortLoad, "besteffort-load", 1, "best-effort load per link, 0 to 1 (1 keeps links backlogged)")
	f.IntVar(&cfg.Runs, "runs", 0, "random runs, or adversarial restarts (0: 1, or 2 per tunnel)")
	f.IntVar(&cfg.ClimbSteps, "climb-steps", 0, "hill-climbing steps per adversarial restart (0: 8)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&progress, "progress", true, "show progress on stderr")
	_ = cmd.MarkFlagRequired("topology")
	_ = cmd.MarkFlagRequired("tunnels")
	return cmd
}

func printReport(w io.Writer, rep *sim.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tunnel\tbound min ns\tbound max ns\tobserved min ns\tobserved max ns\ttightness\tpackets\tviolations\tdrops\t")
	for _, t := range rep.Tunnels {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%.3f\t%d\t%d\t%d\t\n", t.ID, t.BoundMin, t.BoundMax, t.MinObserved, t.MaxObserved, t.Tightness, t.Delivered, t.Violations, t.Drops)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	med, mx := rep.Tightness()
	_, err := fmt.Fprintf(w, "\n%s: %d runs, %d packets, %d packet-hops; tightness median %.3f, max %.3f; %d violations, %d express drops\n",
		rep.Mode, rep.Runs, rep.Packets, rep.PacketHops, med, mx, rep.Violations, rep.Drops)
	return err
}

// progressPrinter returns a sim progress callback. On a terminal it
// redraws one line; elsewhere (logs, CI) it prints a line per 10 %.
func progressPrinter(w io.Writer, what string) func(done, total int) {
	start := time.Now()
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	var last time.Time
	lastDecile := -1
	return func(done, total int) {
		elapsed := time.Since(start).Round(100 * time.Millisecond)
		pct := 100 * float64(done) / float64(total)
		if !tty {
			if d := int(pct) / 10; d > lastDecile || done == total {
				lastDecile = d
				fmt.Fprintf(w, "%s: %d/%d (%.0f%%) %s\n", what, done, total, pct, elapsed)
			}
			return
		}
		if done < total && time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "\r%s: %d/%d (%.0f%%) %s", what, done, total, pct, elapsed)
		if done == total {
			fmt.Fprintln(w)
		}
	}
}
