package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/controller/tunnels"
)

// conn holds the flags every controller-facing command shares.
type conn struct {
	addr, service              string
	asJSON                     bool
	timeout                    time.Duration
	tlsCA, tlsCert, tlsKey, sn string
}

func (c *conn) flags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.addr, "controller", "127.0.0.1:7700", "controller gRPC address")
	f.StringVar(&c.service, "service", "operator", "service identity to act as")
	f.BoolVar(&c.asJSON, "json", false, "print JSON instead of a table")
	f.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-call timeout")
	f.StringVar(&c.tlsCA, "tls-ca", "", "CA (PEM) of the controller's certificate: turns on TLS")
	f.StringVar(&c.tlsCert, "tls-cert", "", "client certificate (PEM) for mutual TLS; its subject is the service identity")
	f.StringVar(&c.tlsKey, "tls-key", "", "client key (PEM)")
	f.StringVar(&c.sn, "tls-server-name", "", "name to verify the controller's certificate against (default: the host of --controller)")
}

func (c *conn) dial() (*client.Client, error) {
	if c.tlsCA == "" {
		if c.tlsCert != "" || c.tlsKey != "" {
			return nil, fmt.Errorf("--tls-cert and --tls-key need --tls-ca")
		}
		return client.Dial(c.addr, c.service)
	}
	sn := c.sn
	if sn == "" {
		if host, _, err := net.SplitHostPort(c.addr); err == nil {
			sn = host
		}
	}
	tc, err := tlsconf.Client(c.tlsCert, c.tlsKey, c.tlsCA, sn)
	if err != nil {
		return nil, err
	}
	return client.Dial(c.addr, c.service, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
}

// with dials the controller and runs f with a timeout-bound context.
func (c *conn) with(cmd *cobra.Command, f func(context.Context, *client.Client) error) error {
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
	defer cancel()
	return f(ctx, cl)
}

// request flags, shared by request and change.
type reqFlags struct {
	sender, receiver string
	loadsize, period int64
	sublane          int
}

func (r *reqFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.sender, "sender", "", "IPv4 address of the sending host")
	f.StringVar(&r.receiver, "receiver", "", "receiver IP:PORT (a host or an IPv4 multicast group)")
	f.Int64Var(&r.loadsize, "loadsize", 0, "maximum payload per packet, bytes")
	f.Int64Var(&r.period, "period", 0, "shortest period wanted, microseconds")
	f.IntVar(&r.sublane, "sublane", 0, "priority level, 0 highest")
	for _, n := range []string{"sender", "receiver", "loadsize", "period"} {
		_ = cmd.MarkFlagRequired(n)
	}
}

func (r *reqFlags) request() (tunnels.Request, error) {
	s, err := netip.ParseAddr(r.sender)
	if err != nil {
		return tunnels.Request{}, fmt.Errorf("--sender: %q is not an IPv4 address", r.sender)
	}
	d, err := netip.ParseAddrPort(r.receiver)
	if err != nil {
		return tunnels.Request{}, fmt.Errorf("--receiver: %q is not IP:PORT", r.receiver)
	}
	return tunnels.Request{Sender: s, Receiver: d, LoadsizeBytes: r.loadsize, PeriodUs: r.period, Sublane: r.sublane}, nil
}

func printResources(w io.Writer, asJSON bool, rs ...tunnels.Resources) error {
	if asJSON {
		return writeJSON(w, rs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TUNNEL\tLOADSIZE B\tPERIOD µs\tMIN LATENCY ns\tMAX JITTER ns\tNOT BEFORE")
	for _, r := range rs {
		jit := strconv.FormatInt(r.MaxJitterNs, 10)
		if r.MaxJitterNs == tunnels.Unbounded {
			jit = "UNBOUNDED"
		}
		nb := "-"
		if !r.NotBefore.IsZero() {
			nb = r.NotBefore.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", r.TunnelID, r.LoadsizeBytes, r.PeriodUs, r.MinLatencyNs, jit, nb)
	}
	return tw.Flush()
}

func newTunnelCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{Use: "tunnel", Short: "Request, change, release, list and watch tunnels on a controller"}
	c.flags(cmd)

	var rq reqFlags
	request := &cobra.Command{
		Use: "request", Short: "Request a tunnel", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := rq.request()
			if err != nil {
				return err
			}
			return c.with(cmd, func(ctx context.Context, cl *client.Client) error {
				res, err := cl.RequestBandwidth(ctx, r)
				if err != nil {
					return err
				}
				return printResources(cmd.OutOrStdout(), c.asJSON, res)
			})
		},
	}
	rq.add(request)

	var ch reqFlags
	change := &cobra.Command{
		Use: "change TUNNEL", Short: "Change a tunnel's parameters", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("tunnel id %q: not a number", args[0])
			}
			r, err := ch.request()
			if err != nil {
				return err
			}
			return c.with(cmd, func(ctx context.Context, cl *client.Client) error {
				res, err := cl.ChangeBandwidth(ctx, id, r)
				if err != nil {
					return err
				}
				return printResources(cmd.OutOrStdout(), c.asJSON, res)
			})
		},
	}
	ch.add(change)

	release := &cobra.Command{
		Use: "release TUNNEL", Short: "Release a tunnel", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("tunnel id %q: not a number", args[0])
			}
			return c.with(cmd, func(ctx context.Context, cl *client.Client) error {
				return cl.ReleaseBandwidth(ctx, id)
			})
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List the service's tunnels", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) error {
				rs, err := cl.ListTunnels(ctx)
				if err != nil {
					return err
				}
				return printResources(cmd.OutOrStdout(), c.asJSON, rs...)
			})
		},
	}
	watch := &cobra.Command{
		Use: "watch", Short: "Print the service's upcalls as they arrive (one JSON object per line)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			w := cmd.OutOrStdout()
			err = cl.Watch(cmd.Context(), func(u tunnels.Upcall) {
				b, _ := protojson.Marshal(server.UpcallPB(u))
				fmt.Fprintln(w, string(b))
			}, func(first bool) {
				if !first {
					fmt.Fprintln(cmd.ErrOrStderr(), "re-subscribed; list tunnels to catch up")
				}
			})
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.AddCommand(request, change, release, list, watch)
	return cmd
}

func newGroupCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{Use: "group", Short: "Join or leave IPv4 multicast groups"}
	c.flags(cmd)
	mk := func(use string, join bool) *cobra.Command {
		return &cobra.Command{
			Use: use + " GROUP:PORT MEMBER", Short: use + " a multicast group", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				g, err := netip.ParseAddrPort(args[0])
				if err != nil {
					return fmt.Errorf("group %q: not IP:PORT", args[0])
				}
				m, err := netip.ParseAddr(args[1])
				if err != nil {
					return fmt.Errorf("member %q: not an IPv4 address", args[1])
				}
				return c.with(cmd, func(ctx context.Context, cl *client.Client) error {
					if join {
						return cl.JoinGroup(ctx, g, m)
					}
					return cl.LeaveGroup(ctx, g, m)
				})
			},
		}
	}
	cmd.AddCommand(mk("join", true), mk("leave", false))
	return cmd
}

func newTopologyCmd() *cobra.Command {
	var c conn
	cmd := &cobra.Command{Use: "topology", Short: "Inspect the controller's topology"}
	c.flags(cmd)
	cmd.AddCommand(&cobra.Command{
		Use: "show", Short: "Print nodes and links", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) error {
				t, err := cl.Topology(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if c.asJSON {
					b, err := protojson.MarshalOptions{Multiline: true}.Marshal(t)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(w, string(b))
					return err
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tKIND\tIPV4")
				for _, n := range t.Nodes {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, n.Kind, n.Ipv4)
				}
				fmt.Fprintln(tw, "\nLINK\tBANDWIDTH bit/s\tQUEUE B\tMIN LATENCY ns\tMAX JITTER ns")
				for _, l := range t.Links {
					fmt.Fprintf(tw, "%s->%s\t%d\t%d\t%d\t%d\n", l.From, l.To, l.BandwidthBps, l.QueueBytes, l.MinLatencyNs, l.MaxJitterNs)
				}
				fmt.Fprintf(tw, "\nsub-lanes: %d, express share: %.2f\n", t.Sublanes, t.MaxExpressShare)
				return tw.Flush()
			})
		},
	})
	return cmd
}
