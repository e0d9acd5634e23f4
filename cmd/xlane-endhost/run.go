package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/xlane/xlane/endhost/agent"
)

func newRunCmd() *cobra.Command {
	var path, level string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run this host's lanes: request their tunnels, serve the applications' rings, follow the controller",
		Long: `run reads the configuration (YAML):

  controller: 10.0.0.9:7700     # the controller's API (or unix:/run/xlane/api.sock on this host)
  service: fd                   # the identity the tunnels belong to
  tls_ca, tls_cert, tls_key     # TLS / mutual TLS to the controller (optional)
  shm_dir: /dev/shm/xlane       # where the applications' rings are created
  schema: hd6                   # chunk schema: hd6 (CRC-24) or hd8 (CRC-32)
  lane_cpu: 3                   # one pinned, polling lane core on this CPU; -1: plain goroutines
  priority: 0                   # SCHED_FIFO priority of the lane core (1-99), 0: normal
  lock_memory: false            # mlockall
  metrics_addr: 127.0.0.1:7711  # Prometheus metrics at /metrics; "" for none
  interface: eth0               # where the lanes' packets arrive
  receive_path: auto            # auto: AF_XDP (one port per interface), else the interface's
                                # TPACKET_V3 ring, else the socket (root for the first two);
                                # xdp, packet_ring or socket to force one
  lanes:                        # tunnels this host sends on
    - name: hb
      sender: 10.0.0.1          # this host's address
      receiver: 10.0.0.2:7000   # a host, or a multicast group ip:port
      message_bytes: 64         # largest message
      period: 1ms
      sublane: 0
      apps: [{name: fd, channel: 1}]
  receive:                      # ports this host receives tunnel packets on
    - port: 7000
      apps: [{name: fd, channel: 1}]
    - port: 7100                # a multicast group: joined at the controller and on interface
      group: 239.1.1.1
      member: 10.0.0.2          # this host's address
      apps: [{name: raft, channel: 2}]

It requests each lane's tunnel, creates the rings applications attach to (package
endhost/app), runs the lanes, applies BandwidthChanged at its grace deadline and stops a lane on
BandwidthTerminated. On SIGTERM or SIGINT it releases the tunnels and removes the rings.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level %q: %w", level, err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			cfg, err := agent.Parse(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			a, err := agent.New(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if _, err := a.Start(ctx); err != nil {
				return err
			}
			if cfg.MetricsAddr != "" {
				stopMetrics, err := serveMetrics(cfg.MetricsAddr, a.Collector(), log)
				if err != nil {
					a.Close()
					return err
				}
				defer stopMetrics()
			}
			log.Info("endhost running", "service", cfg.Service, "lanes", len(cfg.Lanes), "receivers", len(cfg.Receive))
			runErr := a.Run(ctx)
			closeErr := a.Close()
			log.Info("endhost stopped")
			if runErr != nil && ctx.Err() == nil {
				return runErr
			}
			return closeErr
		},
	}
	cmd.Flags().StringVar(&path, "config", "/etc/xlane/endhost.yaml", "configuration file")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn, error")
	return cmd
}

// serveMetrics serves Prometheus metrics (the lanes' counters and the Go
// runtime's) on addr until the returned function stops it.
func serveMetrics(addr string, c prometheus.Collector, log *slog.Logger) (func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && err != http.ErrServerClosed {
			log.Error("metrics server", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
