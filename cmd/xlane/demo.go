package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/sim"
	"github.com/xlane/xlane/controller/te/topogen"
	"github.com/xlane/xlane/controller/te/workload"
)

// newDemoCmd is the traffic-engineering demo on a k=4 fat-tree (make
// demo); the main job is the latency comparison (make run).
func newDemoCmd() *cobra.Command {
	var (
		out      string
		k, n     int
		seed     uint64
		restarts int
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Allocate a coordination workload on a fat-tree and check its bounds adversarially",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd, out, k, n, seed, restarts)
		},
	}
	cmd.Flags().StringVar(&out, "out", "out", "directory for topology, requests, tunnels and report files")
	cmd.Flags().IntVar(&k, "k", 4, "fat-tree k")
	cmd.Flags().IntVar(&n, "requests", 300, "requests to allocate")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed for requests and simulation")
	cmd.Flags().IntVar(&restarts, "restarts", 0, "adversarial restarts (0: one per tunnel)")
	return cmd
}

func runDemo(cmd *cobra.Command, out string, k, n int, seed uint64, restarts int) error {
	w := cmd.OutOrStdout()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	spec, err := topogen.FatTree(k, topogen.Defaults())
	if err != nil {
		return err
	}
	topo, err := te.NewTopology(spec)
	if err != nil {
		return err
	}
	reqs := workload.Requests(topo, workload.Coordination(), n, seed)
	e := te.NewEngine(topo)
	t0 := time.Now()
	var rejections []string
	for i, r := range reqs {
		if _, _, err := e.Admit(r); err != nil {
			rejections = append(rejections, fmt.Sprintf("requests[%d]: %v", i, err))
		}
	}
	allocTime := time.Since(t0)
	tunnels := e.Tunnels()
	slog.Info("allocated", "requests", len(reqs), "admitted", len(tunnels), "rejected", len(rejections), "took", allocTime.Round(time.Microsecond))
	for _, f := range []struct {
		name string
		v    any
	}{{"topology.json", spec}, {"requests.json", reqs}, {"tunnels.json", tunnels}} {
		if err := writeJSONFile(filepath.Join(out, f.name), f.v); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	cfg := sim.Config{
		Seed: seed, BestEffortLoad: 1, Adversarial: true, Runs: restarts, ClimbSteps: 4,
		Progress: progressPrinter(cmd.ErrOrStderr(), "adversarial simulation"),
	}
	if cfg.Runs == 0 {
		cfg.Runs = len(tunnels)
	}
	t1 := time.Now()
	rep, err := sim.Run(cmd.Context(), topo, tunnels, cfg)
	if err != nil {
		return err
	}
	simTime := time.Since(t1)
	if err := writeJSONFile(filepath.Join(out, "report.json"), rep); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := writeTightnessSVG(filepath.Join(out, "tightness.svg"), rep); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	printDemoSummary(w, k, topo, len(reqs), tunnels, rejections, rep, allocTime, simTime)
	fmt.Fprintf(w, "\nfiles: %s/{topology,requests,tunnels,report}.json, %s/tightness.svg\n", out, out)
	if !rep.OK() {
		return exitError{code: 3}
	}
	return nil
}

func printDemoSummary(w io.Writer, k int, topo *te.Topology, nreq int, tunnels []te.Tunnel, rejections []string, rep *sim.Report, allocTime, simTime time.Duration) {
	hosts := 0
	for _, n := range topo.Nodes {
		if n.Kind == te.KindHost {
			hosts++
		}
	}
	bounds := make([]int64, 0, len(tunnels))
	multicast := 0
	for _, t := range tunnels {
		bounds = append(bounds, t.MaxLatencyNs())
		if len(t.Receivers) > 1 {
			multicast++
		}
	}
	slices.Sort(bounds)
	med, mx := rep.Tightness()
	fmt.Fprintf(w, "\nX-Lane traffic-engineering demo: k=%d fat-tree, %d hosts, %d switches, %d links, %d sub-lanes\n\n",
		k, hosts, len(topo.Nodes)-hosts, len(topo.Links), topo.Sublanes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(a string, b any) { fmt.Fprintf(tw, "%s\t%v\n", a, b) }
	row("requests", nreq)
	row("tunnels admitted", fmt.Sprintf("%d (%d unicast, %d multicast)", len(tunnels), len(tunnels)-multicast, multicast))
	row("requests rejected", len(rejections))
	if len(bounds) > 0 {
		row("latency bound, median", fmt.Sprintf("%.2f µs", float64(bounds[len(bounds)/2])/1000))
		row("latency bound, max", fmt.Sprintf("%.2f µs", float64(bounds[len(bounds)-1])/1000))
	}
	row("allocation time", allocTime.Round(time.Microsecond))
	row("simulation", fmt.Sprintf("%s, %d runs, %d packets, %d packet-hops, %s", rep.Mode, rep.Runs, rep.Packets, rep.PacketHops, simTime.Round(time.Millisecond)))
	row("tightness (observed max / bound), median", fmt.Sprintf("%.3f", med))
	row("tightness, max", fmt.Sprintf("%.3f", mx))
	row("violations", rep.Violations)
	row("express drops", rep.Drops)
	tw.Flush()
	for i, r := range rejections {
		if i == 5 {
			fmt.Fprintf(w, "  … and %d more rejections\n", len(rejections)-5)
			break
		}
		fmt.Fprintln(w, "  "+r)
	}
}
