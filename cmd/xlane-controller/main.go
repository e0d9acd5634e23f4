// Command xlane-controller is the X-Lane SDN controller daemon: it serves
// the service API over gRPC, plans tunnels with the TE engine, programs
// switches through a southbound driver, and keeps its state durable.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/xlane/xlane/controller/config"
	"github.com/xlane/xlane/controller/hostcheck"
	"github.com/xlane/xlane/controller/metrics"
	"github.com/xlane/xlane/controller/rtsched"
	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/store"
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/controller/tunnels"
	p4switch "github.com/xlane/xlane/p4/switch"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/memory"
	"github.com/xlane/xlane/southbound/openflow"
	"github.com/xlane/xlane/southbound/p4rt"
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
groups in the data directory (a write-ahead log, then a bbolt database), written before any
switch is touched; after a restart it reloads them and reconciles every switch.

Every few seconds it reads the switches' meter and counter statistics: a tunnel whose
meter dropped packets is demoted to best effort (BW_EXCEEDED), one that uses little of its
rate gets a longer period (BW_UNUSED), and idle tunnels or persistent violators are
terminated.

Options come from the YAML file given with --config (keys listen, topology, data_dir,
grace, bound_headroom, watch_coalesce, upcall_holdoff, max_batch, driver, openflow_listen, openflow_tls_cert, openflow_tls_key, openflow_ca, openflow_burst_slack, p4runtime, insecure, tls_cert, tls_key,
client_ca, quotas, metrics_addr, pprof, log_level, gc_percent, realtime_priority, monitor_interval, unused_fraction, unused_intervals,
idle_intervals, violation_intervals) and from flags, which win over the file.

With --driver openflow, switches (Open vSwitch bridges with protocols=OpenFlow13) connect
to --openflow-listen; a switch's datapath id is its position among the topology's
switches, counting from 1 (what "xlane testbed up" configures). Every switch that connects
is read back and made equal to the controller's state.

With driver: p4runtime the file's p4runtime section gives election_id (the highest is primary), role,
the pipeline files (p4info, device_config; default: the pipeline built in, p4/switch) and
switches: {NAME: {addr, device_id}}
for every switch of the topology; the driver connects to each, installs the pipeline unless the
switch runs it already, and reconciles the switch whenever it becomes primary.`,
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
	f.StringVar(&flagCfg.Listen, "listen", flagCfg.Listen, "gRPC service API address (host:port, or unix:/path for a Unix socket that services in other network namespaces of this host reach)")
	f.StringVar(&flagCfg.Topology, "topology", "", "topology file (te JSON format); optional once the data directory holds one")
	f.StringVar(&flagCfg.DataDir, "data-dir", flagCfg.DataDir, "directory of the durable state")
	f.DurationVar((*time.Duration)(&flagCfg.Grace), "grace", time.Duration(flagCfg.Grace), "grace period of bandwidthChanged upcalls")
	f.DurationVar((*time.Duration)(&flagCfg.WatchCoalesce), "watch-coalesce", time.Duration(flagCfg.WatchCoalesce), "hold a watch response that would follow the stream's previous one sooner than this; it carries what came meanwhile (0: send at once)")
	f.DurationVar((*time.Duration)(&flagCfg.UpcallHoldoff), "upcall-holdoff", time.Duration(flagCfg.UpcallHoldoff), "let a batch of admissions wait up to this long for the watch streams to take the upcalls already handed to them, so services hear of changes first (0: never wait)")
	f.IntVar(&flagCfg.MaxBatch, "max-batch", flagCfg.MaxBatch, "serve at most this many queued admissions in one batch, so that a backlog goes out in several commits and the first services hear of their changes sooner (0: no cap)")
	f.Float64Var(&flagCfg.BoundHeadroom, "bound-headroom", flagCfg.BoundHeadroom, "widen the latency bounds (and raised periods) services are told by this fraction, so smaller changes need no upcall (0: exact)")
	f.StringVar(&flagCfg.Driver, "driver", flagCfg.Driver, `southbound driver: "openflow" (OpenFlow 1.3 switches, e.g. Open vSwitch), "p4runtime" (P4 switches; configured in the file's p4runtime section) or "memory" (in-process switches)`)
	f.StringVar(&flagCfg.OpenFlowListen, "openflow-listen", flagCfg.OpenFlowListen, "where OpenFlow switches connect (host:port)")
	f.StringVar(&flagCfg.OpenFlowTLSCert, "openflow-tls-cert", "", "certificate (PEM) for TLS on the OpenFlow channel")
	f.StringVar(&flagCfg.OpenFlowTLSKey, "openflow-tls-key", "", "key (PEM) for TLS on the OpenFlow channel")
	f.StringVar(&flagCfg.OpenFlowCA, "openflow-ca", "", "CA (PEM) that switch certificates must come from")
	f.DurationVar((*time.Duration)(&flagCfg.OpenFlowBurstSlack), "openflow-burst-slack", time.Duration(flagCfg.OpenFlowBurstSlack), "widen each meter's one-packet burst by what its rate earns in this time (the default suits Open vSwitch's userspace datapath; 0: none)")
	f.BoolVar(&flagCfg.Insecure, "insecure", false, "allow plain-text gRPC on a non-loopback address")
	f.StringVar(&flagCfg.TLSCert, "tls-cert", "", "server certificate (PEM) for TLS on the API")
	f.StringVar(&flagCfg.TLSKey, "tls-key", "", "server key (PEM)")
	f.StringVar(&flagCfg.ClientCA, "client-ca", "", "CA (PEM) of client certificates: turns on mutual TLS; the certificate subject is the service identity")
	f.StringVar(&flagCfg.LogLevel, "log-level", flagCfg.LogLevel, "debug, info, warn or error")
	f.IntVar(&flagCfg.GCPercent, "gc-percent", flagCfg.GCPercent, "the garbage collector's heap growth target (GOGC; -1: off); a GOGC environment variable wins")
	f.IntVar(&flagCfg.RealtimePriority, "realtime-priority", flagCfg.RealtimePriority, "run every thread under SCHED_RR at this priority (1-99; needs root or CAP_SYS_NICE): woken threads run at once instead of waiting in a busy host's run queue (0: the normal scheduler)")
	f.StringVar(&flagCfg.MetricsAddr, "metrics-addr", flagCfg.MetricsAddr, `Prometheus metrics address, served at /metrics ("" turns it off)`)
	f.BoolVar(&flagCfg.Pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the metrics address (keep it private)")
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
	set("bound-headroom", func() { cfg.BoundHeadroom = fl.BoundHeadroom })
	set("watch-coalesce", func() { cfg.WatchCoalesce = fl.WatchCoalesce })
	set("upcall-holdoff", func() { cfg.UpcallHoldoff = fl.UpcallHoldoff })
	set("max-batch", func() { cfg.MaxBatch = fl.MaxBatch })
	set("driver", func() { cfg.Driver = fl.Driver })
	set("openflow-listen", func() { cfg.OpenFlowListen = fl.OpenFlowListen })
	set("openflow-tls-cert", func() { cfg.OpenFlowTLSCert = fl.OpenFlowTLSCert })
	set("openflow-tls-key", func() { cfg.OpenFlowTLSKey = fl.OpenFlowTLSKey })
	set("openflow-ca", func() { cfg.OpenFlowCA = fl.OpenFlowCA })
	set("openflow-burst-slack", func() { cfg.OpenFlowBurstSlack = fl.OpenFlowBurstSlack })
	set("insecure", func() { cfg.Insecure = fl.Insecure })
	set("tls-cert", func() { cfg.TLSCert = fl.TLSCert })
	set("tls-key", func() { cfg.TLSKey = fl.TLSKey })
	set("client-ca", func() { cfg.ClientCA = fl.ClientCA })
	set("log-level", func() { cfg.LogLevel = fl.LogLevel })
	set("gc-percent", func() { cfg.GCPercent = fl.GCPercent })
	set("realtime-priority", func() { cfg.RealtimePriority = fl.RealtimePriority })
	set("metrics-addr", func() { cfg.MetricsAddr = fl.MetricsAddr })
	set("pprof", func() { cfg.Pprof = fl.Pprof })
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
	if env := os.Getenv("GOGC"); env != "" {
		log.Info("garbage collector: GOGC from the environment", "GOGC", env)
	} else {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.RealtimePriority > 0 {
		// Before the store, the drivers and the servers start: the threads
		// the runtime makes for them are cloned from these and inherit it.
		n, err := rtsched.Apply(cfg.RealtimePriority)
		if err != nil {
			return err
		}
		log.Info("real-time scheduling", "policy", "SCHED_RR", "priority", cfg.RealtimePriority, "threads", n)
	}
	if mode, err := hostcheck.HugePages("/"); err != nil {
		log.Debug("host check", "err", err) // not Linux, or no THP: nothing to advise
	} else if advice := hostcheck.HugePagesAdvice(mode); advice != "" {
		log.Warn("host check", "transparent_hugepage", mode, "advice", advice)
	}

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
	switches := topo.Switches()
	var drv southbound.Driver
	var ofDrv *openflow.Driver
	var p4Drv *p4rt.Driver
	var ctlp atomic.Pointer[tunnels.Controller]
	onConnect := func(ctx context.Context, sw string) {
		if c := ctlp.Load(); c != nil {
			start := time.Now()
			if err := c.Reconcile(ctx, sw); err != nil {
				log.Warn("reconciling a connected switch", "switch", sw, "err", err)
				return
			}
			log.Info("switch reconciled", "switch", sw, "took", time.Since(start).Round(time.Microsecond))
		}
	}
	switch cfg.Driver {
	case "openflow":
		// A (re)connected switch is made equal to the stored state.
		ofDrv = openflow.New(openflow.Config{Switches: openflow.DatapathIDs(topo), Logger: log, OnConnect: onConnect,
			BurstSlack: burstSlack(cfg.OpenFlowBurstSlack)})
		drv = ofDrv
	case "p4runtime":
		var err error
		if p4Drv, err = p4runtimeDriver(cfg, switches, log, onConnect); err != nil {
			return err
		}
		drv = p4Drv
	default:
		mem := memory.New(switches...)
		mem.Record(false)
		drv = mem
	}
	quota := func(svc string) tunnels.Quota {
		q, ok := cfg.Quotas.Services[svc]
		if !ok {
			q = cfg.Quotas.Default
		}
		return tunnels.Quota{MaxTunnels: q.MaxTunnels, MaxRateBps: q.MaxRateBps}
	}
	m := metrics.New()
	ctl, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: drv, Store: st, Grace: time.Duration(cfg.Grace), BoundHeadroom: cfg.BoundHeadroom, UpcallHoldoff: time.Duration(cfg.UpcallHoldoff), MaxBatch: cfg.MaxBatch, Logger: log, Quota: quota, Observer: m})
	if err != nil {
		return err
	}
	defer ctl.Close()
	ctlp.Store(ctl)
	m.Watch(ctl)
	if ofDrv != nil {
		stopOF, err := serveOpenFlow(ctx, cfg, ofDrv, log)
		if err != nil {
			return err
		}
		defer stopOF()
	}
	if p4Drv != nil {
		pctx, stopP4 := context.WithCancel(ctx)
		p4done := make(chan struct{})
		go func() {
			defer close(p4done)
			if err := p4Drv.Run(pctx); err != nil {
				log.Error("p4runtime driver stopped", "err", err)
			}
		}()
		defer func() { stopP4(); <-p4done }()
	}
	if cfg.MetricsAddr != "" {
		mlis, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		if cfg.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
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
		log.Info("metrics", "addr", mlis.Addr().String(), "pprof", cfg.Pprof)
	}

	lis, err := listenAPI(cfg.Listen)
	if err != nil {
		return err
	}
	opts := server.Options()
	if cfg.TLSCert != "" {
		tc, err := tlsconf.Server(cfg.TLSCert, cfg.TLSKey, cfg.ClientCA)
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	g := grpc.NewServer(opts...)
	server.New(ctl, server.WatchCoalesce(time.Duration(cfg.WatchCoalesce)), server.ObserveSent(m)).Register(g)
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
	apiAddr := lis.Addr().String()
	if lis.Addr().Network() == "unix" {
		apiAddr = "unix:" + apiAddr // as services dial it
	}
	log.Info("listening", "addr", apiAddr, "tls", cfg.TLSCert != "", "mutual_tls", cfg.ClientCA != "", "tunnels", len(ctl.Tunnels("")), "switches", len(switches), "driver", cfg.Driver, "data_dir", cfg.DataDir)

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

// serveOpenFlow accepts OpenFlow switches until ctx ends; the returned
// function stops the listener and waits for the sessions to end.
func serveOpenFlow(ctx context.Context, cfg config.Config, drv *openflow.Driver, log *slog.Logger) (func(), error) {
	lis, err := net.Listen("tcp", cfg.OpenFlowListen)
	if err != nil {
		return nil, fmt.Errorf("openflow: listen: %w", err)
	}
	if cfg.OpenFlowTLSCert != "" {
		tc, err := tlsconf.Server(cfg.OpenFlowTLSCert, cfg.OpenFlowTLSKey, cfg.OpenFlowCA)
		if err != nil {
			lis.Close()
			return nil, fmt.Errorf("openflow: %w", err)
		}
		lis = tls.NewListener(lis, tc)
	}
	log.Info("openflow listening", "addr", lis.Addr().String(), "tls", cfg.OpenFlowTLSCert != "")
	octx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := drv.Serve(octx, lis); err != nil {
			log.Error("openflow listener stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// p4runtimeDriver builds the P4Runtime driver: a target for every switch
// of the topology, the pipeline from the configured files.
func p4runtimeDriver(cfg config.Config, switches []string, log *slog.Logger, onConnect func(context.Context, string)) (*p4rt.Driver, error) {
	pc := cfg.P4Runtime
	targets := map[string]p4rt.Target{}
	for _, sw := range switches {
		t, ok := pc.Switches[sw]
		if !ok {
			return nil, fmt.Errorf("config: p4runtime.switches: no P4Runtime address for switch %s of the topology", sw)
		}
		targets[sw] = p4rt.Target{Addr: t.Addr, DeviceID: t.DeviceID}
	}
	for sw := range pc.Switches {
		if _, ok := targets[sw]; !ok {
			return nil, fmt.Errorf("config: p4runtime.switches.%s: not a switch of the topology", sw)
		}
	}
	info, dev, err := pipeline(pc)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write(info)
	h.Write(dev)
	return p4rt.New(p4rt.Config{Switches: targets, ElectionID: pc.ElectionID, Role: pc.Role,
		P4Info: info, DeviceConfig: dev, Cookie: h.Sum64(), BurstSlack: time.Duration(pc.BurstSlack), OnConnect: onConnect, Logger: log})
}

// pipeline is the X-Lane pipeline built into the controller, or the files
// the configuration names instead.
func pipeline(pc config.P4Runtime) (info, dev []byte, err error) {
	if pc.P4Info == "" {
		return p4switch.P4Info, p4switch.DeviceConfig, nil
	}
	if info, err = os.ReadFile(pc.P4Info); err != nil {
		return nil, nil, fmt.Errorf("config: p4runtime.p4info: %w", err)
	}
	if dev, err = os.ReadFile(pc.DeviceConfig); err != nil {
		return nil, nil, fmt.Errorf("config: p4runtime.device_config: %w", err)
	}
	return info, dev, nil
}

// listenAPI listens on host:port, or on a Unix socket for unix:/path (a
// socket file a crashed daemon left is replaced; closing removes it).
func listenAPI(addr string) (net.Listener, error) {
	path, ok := config.UnixSocket(addr)
	if !ok {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return lis, nil
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen: stale socket %s: %w", path, err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return lis, nil
}

// burstSlack is the configured slack as the OpenFlow driver takes it
// (there, 0 means its default and a negative value none).
func burstSlack(d config.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return time.Duration(d)
}
