package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/testbed"
)

func newTestbedCmd() *cobra.Command {
	var name, dir string
	cmd := &cobra.Command{
		Use:   "testbed",
		Short: "Bring up an X-Lane network of namespaces and Open vSwitch bridges on this machine (root)",
		Long: `The testbed builds one network namespace per host of a topology file and one Open vSwitch
bridge (userspace datapath, OpenFlow 1.3, fail_mode=secure) per switch, joins them with veth
pairs, puts strict-priority egress queues at the links' rates on every port, and runs a
private ovs-vswitchd whose bridges connect to the controller (xlane-controller --driver openflow).
With --switch bmv2 each switch is a BMv2 simple_switch_grpc process instead, a P4Runtime server
the controller connects to; up writes that controller's configuration into the state folder.
Everything it creates is recorded in a state file, so "down" removes it even after a crash.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if p := cmd.Root().PersistentPreRun; p != nil {
				p(cmd, nil)
			}
			return testbed.CheckRoot()
		},
	}
	cmd.PersistentFlags().StringVar(&name, "name", "xl", "testbed name (1–4 of a-z0-9; part of interface names)")
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "state folder (default "+testbed.DefaultDir+"/NAME)")
	load := func() (*testbed.Testbed, error) { return testbed.Load(name, dir) }

	var topoPath, controller, switchKind string
	var noQueues bool
	up := &cobra.Command{
		Use:   "up --topology T.json",
		Short: "Create the testbed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := readTopology(topoPath)
			if err != nil {
				return err
			}
			start := time.Now()
			tb, err := testbed.Up(cmd.Context(), testbed.Config{Name: name, Dir: dir, Topology: topo, Switch: switchKind, Controller: controller, NoQueues: noQueues})
			if err != nil {
				return err
			}
			took := time.Since(start).Round(time.Millisecond)
			if switchKind != testbed.SwitchBMv2 {
				fmt.Fprintf(cmd.OutOrStdout(), "testbed %s up in %v: %d hosts, %d bridges, switches connect to %s\n",
					tb.Name, took, len(tb.Hosts), len(tb.Bridges), controller)
				return nil
			}
			cfg, err := tb.P4RuntimeConfig()
			if err != nil {
				return err
			}
			path := filepath.Join(tb.Dir, "controller.yaml")
			if err := os.WriteFile(path, cfg, 0o644); err != nil {
				return fmt.Errorf("controller config: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "testbed %s up in %v: %d hosts, %d BMv2 switches (P4Runtime servers without a pipeline)\n"+
				"drive them with: xlane-controller --config %s --topology %s\n", tb.Name, took, len(tb.Hosts), len(tb.Bridges), path, topoPath)
			return nil
		},
	}
	up.Flags().StringVar(&topoPath, "topology", "", "topology file (hosts need ipv4 addresses)")
	up.Flags().StringVar(&controller, "controller", "127.0.0.1:6653", "OpenFlow address of the controller (ovs)")
	up.Flags().StringVar(&switchKind, "switch", testbed.SwitchOVS, "switches: ovs (Open vSwitch bridges that connect to an OpenFlow controller) or bmv2 (simple_switch_grpc, P4Runtime servers the controller connects to; writes NAME's controller.yaml)")
	up.Flags().BoolVar(&noQueues, "no-queues", false, "leave ports without priority queues and rate limits")
	_ = up.MarkFlagRequired("topology")

	down := &cobra.Command{
		Use:   "down",
		Short: "Remove everything the testbed created",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tb, err := load()
			if err != nil {
				return err
			}
			return tb.Down(cmd.Context())
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show hosts, bridges and their controller connections",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tb, err := load()
			if err != nil {
				return err
			}
			st := tb.Status(cmd.Context())
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if tb.Switch == testbed.SwitchBMv2 {
				fmt.Fprintf(w, "testbed %s\tBMv2 switches\n\n", tb.Name)
			} else {
				fmt.Fprintf(w, "testbed %s\tcontroller %s\tovs-vswitchd running: %v\n\n", tb.Name, tb.Controller, st.VswitchdRunning)
			}
			fmt.Fprintln(w, "HOST\tNAMESPACE\tIPV4\tMAC")
			for _, h := range tb.Hosts {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", h.Name, h.Netns, h.IPv4, h.MAC)
			}
			if tb.Switch == testbed.SwitchBMv2 {
				fmt.Fprintln(w, "\nSWITCH\tPID\tDEVICE ID\tTHRIFT\tSTATE")
				for _, b := range tb.Bridges {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", b.Switch, b.PID, b.DeviceID, b.Thrift, st.Connected[b.Switch])
				}
				return w.Flush()
			}
			fmt.Fprintln(w, "\nSWITCH\tBRIDGE\tDPID\tCONNECTED")
			for _, b := range tb.Bridges {
				fmt.Fprintf(w, "%s\t%s\t%016x\t%s\n", b.Switch, b.Name, b.DPID, st.Connected[b.Switch])
			}
			return w.Flush()
		},
	}

	exec := &cobra.Command{
		Use:   "exec HOST -- CMD [ARGS...]",
		Short: "Run a command in a host's namespace",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := load()
			if err != nil {
				return err
			}
			c, err := tb.Command(cmd.Context(), args[0], args[1:]...)
			if err != nil {
				return err
			}
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				var ee interface{ ExitCode() int }
				if errors.As(err, &ee) && ee.ExitCode() > 0 {
					return exitError{ee.ExitCode()}
				}
				return err
			}
			return nil
		},
	}

	var from, to, rate string
	var port uint16
	var size int
	var dur time.Duration
	loadCmd := &cobra.Command{
		Use:   "load --from H --to H --rate 90%",
		Short: "Send best-effort UDP cross traffic between two hosts for a bounded time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tb, err := load()
			if err != nil {
				return err
			}
			topo, err := te.NewTopology(tb.Topology)
			if err != nil {
				return err
			}
			dst, err := tb.Host(to)
			if err != nil {
				return err
			}
			bps, err := loadRate(topo, from, rate)
			if err != nil {
				return err
			}
			if dur <= 0 || dur > time.Hour {
				return fmt.Errorf("--duration %v: between 0 and 1h", dur)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), dur)
			defer cancel()
			start := time.Now()
			sent, err := tb.Load(ctx, from, netip.AddrPortFrom(dst.IPv4, port), bps, size, dur)
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(cmd.OutOrStdout(), "%s → %s:%d: %d datagrams of %d B in %v (%.1f Mbit/s)\n", from, to, port, sent, size,
				el.Round(time.Millisecond), float64(sent*(size+42)*8)/el.Seconds()/1e6)
			return nil
		},
	}
	loadCmd.Flags().StringVar(&from, "from", "", "sending host")
	loadCmd.Flags().StringVar(&to, "to", "", "receiving host")
	loadCmd.Flags().StringVar(&rate, "rate", "90%", "rate: a share of the sender's link (90%) or bit/s (50e6)")
	loadCmd.Flags().Uint16Var(&port, "port", 9, "UDP destination port")
	loadCmd.Flags().IntVar(&size, "size", 1472, "UDP payload bytes (1472: full 1500-byte frames)")
	loadCmd.Flags().DurationVar(&dur, "duration", 10*time.Second, "how long to send")
	_ = loadCmd.MarkFlagRequired("from")
	_ = loadCmd.MarkFlagRequired("to")

	cmd.AddCommand(up, down, status, exec, loadCmd)
	return cmd
}

// loadRate parses --rate: a percentage of the sender's access link, or
// bit/s.
func loadRate(topo *te.Topology, host, rate string) (int64, error) {
	if pct, ok := strings.CutSuffix(rate, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p <= 0 || p > 100 {
			return 0, fmt.Errorf("--rate %q: a percentage in (0, 100]", rate)
		}
		id, ok := topo.NodeByName(host)
		if !ok || len(topo.Out[id]) == 0 {
			return 0, fmt.Errorf("--from %q: not a host with a link", host)
		}
		return int64(float64(topo.Links[topo.Out[id][0]].BandwidthBps) * p / 100), nil
	}
	v, err := strconv.ParseFloat(rate, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("--rate %q: a percentage (90%%) or bit/s (50e6)", rate)
	}
	return int64(v), nil
}
