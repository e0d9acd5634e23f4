package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlane/xlane/controller/client"
)

func newServiceCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{Use: "service", Short: "Show the calling service's registration on a controller"}
	c.flags(cmd)
	cmd.AddCommand(&cobra.Command{
		Use: "show", Short: "Print the service's registration, what it holds and its quota", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) error {
				s, err := cl.Service(ctx)
				if err != nil {
					return err
				}
				if c.asJSON {
					return writeJSON(cmd.OutOrStdout(), s)
				}
				limit := func(v uint64) string {
					if v == 0 {
						return "unlimited"
					}
					return fmt.Sprint(v)
				}
				last := "never"
				if s.LastSubscribed != nil {
					last = s.LastSubscribed.AsTime().Format(time.RFC3339)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "service\t%s\n", s.Name)
				fmt.Fprintf(tw, "registered\t%s\n", s.Registered.AsTime().Format(time.RFC3339))
				fmt.Fprintf(tw, "last watch opened\t%s\n", last)
				fmt.Fprintf(tw, "watch streams open\t%d\n", s.Watching)
				fmt.Fprintf(tw, "tunnels\t%d of %s\n", s.Tunnels, limit(uint64(s.MaxTunnels)))
				fmt.Fprintf(tw, "express rate bit/s\t%d of %s\n", s.RateBps, limit(s.MaxRateBps))
				return tw.Flush()
			})
		},
	})
	return cmd
}
