// Command xlane-endhost is the X-Lane endhost: the lane daemon (run) and
// the host check (tune).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xlane/xlane/endhost/tune"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "xlane-endhost:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "xlane-endhost",
		Short: "The X-Lane endhost",
		Long: `xlane-endhost runs on a host that sends and receives X-Lane traffic. Its lane core (a
pinned, busy-polling CPU) carries the applications' messages over the express tunnels the
controller grants: "run" starts it from a configuration file; "tune" checks the host for a lane
core.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newTuneCmd(), newRunCmd())
	return root
}

func newTuneCmd() *cobra.Command {
	var cpu int
	var ifname, root string
	var apply, asJSON bool
	cmd := &cobra.Command{
		Use:   "tune --cpu N --interface IF",
		Short: "Check (and with --apply fix) the host for a lane core on CPU N receiving on IF",
		Long: `tune reports, for the lane CPU and the interface: isolcpus / nohz_full / rcu_nocbs
membership, idle states, the NMI watchdog, the interface's IRQ affinity, RPS/RFS, and the NUMA
node of the NIC against the CPU. It prints the kernel boot parameters to add and the run-time
changes it would make; --apply makes them (IRQ affinity, RPS masks, idle states, NMI watchdog;
root needed). Without --apply it changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := tune.Host{Root: root}
			r, err := h.Inspect(cpu, ifname)
			if err != nil {
				return err
			}
			var done []tune.Write
			if apply {
				if os.Geteuid() != 0 {
					return errors.New("--apply needs root (it writes /proc and /sys)")
				}
				done, err = h.Apply(r)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if jerr := writeJSON(out, map[string]any{"report": r, "applied": done}); jerr != nil {
					return jerr
				}
				return err
			}
			printReport(out, r, apply, done)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cpu, "cpu", -1, "the lane's CPU")
	f.StringVar(&ifname, "interface", "", "the interface the lane receives on")
	f.BoolVar(&apply, "apply", false, "make the run-time changes (default: only report them)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&root, "root", "/", "where /proc and /sys are (tests)")
	_ = cmd.MarkFlagRequired("cpu")
	_ = cmd.MarkFlagRequired("interface")
	return cmd
}

func printReport(w io.Writer, r tune.Report, applied bool, done []tune.Write) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lane CPU %d, interface %s\n\nCHECK\tSTATUS\tDETAIL\n", r.CPU, r.Interface)
	for _, f := range r.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Check, f.Status, f.Detail)
	}
	tw.Flush()
	fixes := false
	for _, f := range r.Findings {
		if f.Fix != "" {
			if !fixes {
				fmt.Fprintln(w, "\nto do:")
				fixes = true
			}
			fmt.Fprintf(w, "  %s: %s\n", f.Check, f.Fix)
		}
	}
	if len(r.BootParams) > 0 {
		fmt.Fprintf(w, "\nkernel boot parameters to add:\n  %s\n", joinSpace(r.BootParams))
	}
	switch {
	case applied:
		fmt.Fprintf(w, "\napplied %d of %d run-time changes:\n", len(done), len(r.Writes))
		for _, x := range done {
			fmt.Fprintf(w, "  %s <- %s  (%s)\n", x.Path, x.Value, x.Why)
		}
	case len(r.Writes) > 0:
		fmt.Fprintln(w, "\nrun-time changes --apply would make:")
		for _, x := range r.Writes {
			fmt.Fprintf(w, "  %s <- %s  (%s)\n", x.Path, x.Value, x.Why)
		}
	}
}

func joinSpace(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}
