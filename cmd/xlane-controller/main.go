// Command xlane-controller is the X-Lane SDN controller daemon: it serves
// the service API over gRPC, plans tunnels with the TE engine, programs
// switches through a southbound driver, and keeps its state durable.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/xlane/xlane/controller/config"
	"github.com/xlane/xlane/controller/metrics"
	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/store"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "xlane-controller:", err)
		stop()
		os.Exit(1)
	}
}

func newCmd() *cobra.Command {
	var file string
	flagCfg := config.Defaults()
	cmd := &cobra.Command{
		Use:   "xlane-controller [--config FILE] [flags]",
		Short: "The X-Lane controller daemon",
		Long: `xlane-controller serves the X-Lane service API (gRPC, package xlane.controller.v1):
services request, change and release latency-bounded periodic tunnels, join multicast
groups and watch upcalls. The controller plans tunnel trees with X-OPT, computes their
bounds with X-ADJ, programs the switches all-or-nothing, and keeps topology, tunnels and
groups in a bbolt database in the data directory, written before any switch is touched;
after a restart it reloads them and reconciles every switch.

Every few seconds it reads the switches' meter and counter statistics: a tunnel whose
meter dropped packets is demoted to best effort (BW_EXCEEDED), one that uses little of its
rate gets a longer period (BW_UNUSED), and idle tunnels or persistent violators are
terminated.

Options come from the YAML file given with --config (keys listen, topology, data_dir,
grace, driver, insecure, tls_cert, tls_key, client_ca, quotas, metrics_addr, log_level, monitor_interval, unused_fraction, unused_intervals,
idle_intervals, violation_intervals) and from flags, which win over the file.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Defaults()
			if file != "" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("config: %w", err)
				}
				cfg, err = config.Parse(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
			}
			override(cmd, &cfg, flagCfg)
			if err := cfg.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "YAML configuration file")
	f.StringVar(&flagCfg.Listen, "listen", flagCfg.Listen, "gRPC service API address (host:port)")
	f.StringVar(&flagCfg.Topology, "topology", "", "topology file (te JSON format); optional once the data directory holds one")
	f.StringVar(&flagCfg.DataDir, "data-dir", flagCfg.DataDir, "directory of the durable state")
	f.DurationVar((*time.Duration)(&flagCfg.Grace), "grace", time.Duration(flagCfg.Grace), "grace period of bandwidthChanged upcalls")
	f.StringVar(&flagCfg.Driver, "driver", flagCfg.Driver, `southbound driver; only "memory" (in-process switches) exists so far`)
	f.BoolVar(&flagCfg.Insecure, "insecure", false, "allow plain-text gRPC on a non-loopback address")
	f.StringVar(&flagCfg.TLSCert, "tls-cert", "", "server certificate (PEM) for TLS on the API")
	f.StringVar(&flagCfg.TLSKey, "tls-key", "", "server key (PEM)")
	f.StringVar(&flagCfg.ClientCA, "client-ca", "", "CA (PEM) of client certificates: turns on mutual TLS; the certificate subject is the service identity")
	f.StringVar(&flagCfg.LogLevel, "log-level", flagCfg.LogLevel, "debug, info, warn or error")
	f.StringVar(&flagCfg.MetricsAddr, "metrics-addr", flagCfg.MetricsAddr, `Prometheus metrics address, served at /metrics ("" turns it off)`)
	f.DurationVar((*time.Duration)(&flagCfg.MonitorInterval), "monitor-interval", time.Duration(flagCfg.MonitorInterval), "how often switch statistics are read")
	f.Float64Var(&flagCfg.UnusedFraction, "unused-fraction", flagCfg.UnusedFraction, "a tunnel sending less than this share of its rate counts as underusing")
	f.IntVar(&flagCfg.UnusedIntervals, "unused-intervals", flagCfg.UnusedIntervals, "underusing intervals in a row before the period doubles (BW_UNUSED)")
	f.IntVar(&flagCfg.IdleIntervals, "idle-intervals", flagCfg.IdleIntervals, "silent intervals in a row before a tunnel is terminated")
	f.IntVar(&flagCfg.ViolationIntervals, "violation-intervals", flagCfg.ViolationIntervals, "intervals a demoted tunnel may keep exceeding its meter before it is terminated")
	return cmd
}

// override copies the flags the user set over the file's values.
func override(cmd *cobra.Command, cfg *config.Config, fl config.Config) {
	set := func(name string, apply func()) {
		if cmd.Flags().Changed(name) {
			apply()
		}
	}
	set("listen", func() { cfg.Listen = fl.Listen })
	set("topology", func() { cfg.Topology = fl.Topology })
	set("data-dir", func() { cfg.DataDir = fl.DataDir })
	set("grace", func() { cfg.Grace = fl.Grace })
	set("driver", func() { cfg.Driver = fl.Driver })
	set("insecure", func() { cfg.Insecure = fl.Insecure })
	set("tls-cert", func() { cfg.TLSCert = fl.TLSCert })
	set("tls-key", func() { cfg.TLSKey = fl.TLSKey })
	set("client-ca", func() { cfg.ClientCA = fl.ClientCA })
	set("log-level", func() { cfg.LogLevel = fl.LogLevel })
	set("metrics-addr", func() { cfg.MetricsAddr = fl.MetricsAddr })
	set("monitor-interval", func() { cfg.MonitorInterval = fl.MonitorInterval })
	set("unused-fraction", func() { cfg.UnusedFraction = fl.UnusedFraction })
	set("unused-intervals", func() { cfg.UnusedIntervals = fl.UnusedIntervals })
	set("idle-intervals", func() { cfg.IdleIntervals = fl.IdleIntervals })
	set("violation-intervals", func() { cfg.ViolationIntervals = fl.ViolationIntervals })
}

func run(ctx context.Context, cfg config.Config) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	st, err := store.Open(cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	spec, err := topology(cfg, st)
	if err != nil {
		return err
	}
	topo, err := te.NewTopology(*spec)
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	var switches []string
	for _, n := range topo.Nodes {
		if n.Kind == te.KindSwitch {
			switches = append(switches, n.Name)
		}
	}
	drv := memory.New(switches...)
	quota := func(svc string) tunnels.Quota {
		q, ok := cfg.Quotas.Services[svc]
		if !ok {
			q = cfg.Quotas.Default
		}
		return tunnels.Quota{MaxTunnels: q.MaxTunnels, MaxRateBps: q.MaxRateBps}
	}
	m := metrics.New()
	ctl, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: drv, Store: st, Grace: time.Duration(cfg.Grace), Logger: log, Quota: quota, Observer: m})
	if err != nil {
		return err
	}
	defer ctl.Close()
	m.Watch(ctl)
	if cfg.MetricsAddr != "" {
		mlis, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		mdone := make(chan struct{})
		go func() {
			defer close(mdone)
			if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
			<-mdone
		}()
		log.Info("metrics", "addr", mlis.Addr().String())
	}

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var opts []grpc.ServerOption
	if cfg.TLSCert != "" {
		tc, err := tlsconf.Server(cfg.TLSCert, cfg.TLSKey, cfg.ClientCA)
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	g := grpc.NewServer(opts...)
	server.New(ctl).Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	monCtx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		_ = ctl.RunMonitor(monCtx, tunnels.MonitorConfig{
			Interval: time.Duration(cfg.MonitorInterval), UnusedFraction: cfg.UnusedFraction,
			UnusedIntervals: cfg.UnusedIntervals, IdleIntervals: cfg.IdleIntervals, ViolationIntervals: cfg.ViolationIntervals,
		})
	}()
	defer func() { stopMon(); <-monDone }()
	log.Info("listening", "addr", lis.Addr().String(), "tls", cfg.TLSCert != "", "mutual_tls", cfg.ClientCA != "", "tunnels", len(ctl.Tunnels("")), "switches", len(switches), "driver", cfg.Driver, "data_dir", cfg.DataDir)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	ctl.Close() // ends watch streams so GracefulStop does not wait on them
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.Stop()
		<-done
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// topology returns the topology to run on: the file if given (stored for
// the next start), else the stored one.
func topology(cfg config.Config, st *store.Store) (*te.TopologySpec, error) {
	if cfg.Topology == "" {
		spec, err := st.Topology()
		if err != nil {
			return nil, err
		}
		if spec == nil {
			return nil, fmt.Errorf("no topology: give --topology (the data directory %s holds none yet)", cfg.DataDir)
		}
		return spec, nil
	}
	f, err := os.Open(cfg.Topology)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	defer f.Close()
	t, err := te.ParseTopology(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Topology, err)
	}
	if err := st.SetTopology(t.Spec); err != nil {
		return nil, err
	}
	return &t.Spec, nil
}
