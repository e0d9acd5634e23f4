package latency

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/topogen"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/endhost/agent"
	"github.com/xlane/xlane/endhost/app"
	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
	"github.com/xlane/xlane/testbed"
	"github.com/xlane/xlane/testbed/ovs"
	"github.com/xlane/xlane/testbed/proc"
)

// The variants, in the order they run.
const (
	XLane    = "X-Lane"   // the receiver's lane core: pinned, busy-polling, AF_XDP; express queue
	XLane0   = "X-Lane0"  // the same lane code on plain goroutines and sockets, express queue
	Baseline = "baseline" // plain UDP, best-effort queue
)

// Config configures a run.
type Config struct {
	Out          string        // directory for latency.txt, latency.json and the plots
	Packets      int           // per variant
	Period       time.Duration // requested period of the tunnel (and of the baseline's sender)
	MessageBytes int           // application message size
	LinkBps      int64         // testbed link rate
	CrossShare   float64       // each of the two cross-traffic senders, of the link rate
	CPULoad      int           // busy goroutines competing for the CPUs during the measurement
	Variants     []string      // default: all three
	Name         string        // testbed name (interface names); default "lat"
	// Bin is where xlane-controller and xlane-endhost are; "": next to
	// this program, else PATH.
	Bin      string
	Progress io.Writer // progress lines; nil: none
	Logger   *slog.Logger
}

func (c *Config) defaults() error {
	if c.Packets == 0 {
		c.Packets = 100_000
	}
	if c.Period == 0 {
		c.Period = 200 * time.Microsecond
	}
	if c.MessageBytes == 0 {
		c.MessageBytes = 64
	}
	if c.LinkBps == 0 {
		c.LinkBps = 20_000_000
	}
	if c.CrossShare == 0 {
		c.CrossShare = 0.95
	}
	if len(c.Variants) == 0 {
		c.Variants = []string{XLane, XLane0, Baseline}
	}
	if c.Name == "" {
		c.Name = "lat"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case c.Packets < 100:
		return fmt.Errorf("latency: %d packets: at least 100", c.Packets)
	case c.Period < 10*time.Microsecond || c.Period > time.Second:
		return fmt.Errorf("latency: period %v: between 10µs and 1s", c.Period)
	case c.MessageBytes < 16 || c.MessageBytes > 1024:
		return fmt.Errorf("latency: message of %d bytes: between 16 and 1024", c.MessageBytes)
	case c.LinkBps < 1_000_000:
		return fmt.Errorf("latency: link rate %d bit/s: at least 1 Mbit/s", c.LinkBps)
	case c.CrossShare < 0 || c.CrossShare > 1:
		return fmt.Errorf("latency: cross traffic share %v: between 0 and 1", c.CrossShare)
	case c.CPULoad < 0:
		return fmt.Errorf("latency: CPU load %d: not negative", c.CPULoad)
	}
	for _, v := range c.Variants {
		if v != XLane && v != XLane0 && v != Baseline {
			return fmt.Errorf("latency: variant %q: one of %s, %s, %s", v, XLane, XLane0, Baseline)
		}
	}
	return nil
}

// VariantResult is one variant's outcome.
type VariantResult struct {
	Name    string  `json:"name"`
	Summary Summary `json:"summary"`
	Lost    int     `json:"lost"`
	// Demoted: the controller's monitoring demoted the tunnel during the
	// variant (its meter dropped packets); later packets went best effort.
	Demoted bool `json:"demoted,omitempty"`
}

// Result is a run's outcome.
type Result struct {
	Packets    int             `json:"packets"`
	PeriodUs   int64           `json:"approved_period_us"`
	LinkBps    int64           `json:"link_bps"`
	CrossShare float64         `json:"cross_share_per_sender"`
	CPULoad    int             `json:"cpu_load_goroutines"`
	BoundNs    [2]int64        `json:"tunnel_bound_ns"` // [min, max] latency the controller promised
	Variants   []VariantResult `json:"variants"`
	Files      []string        `json:"files"`
	series     []Series
}

// The testbed: a 2×2 leaf-spine; the probes go h4 → h3 across leaf1,
// cross traffic h1, h2 → h3 saturates leaf1's port to h3.
const (
	probeFrom, probeTo = "h4", "h3"
	xlanePort          = 7500
	basePort           = 7501
)

// Run brings up the testbed, runs the variants and writes the report.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := testbed.CheckRoot(); err != nil {
		return nil, err
	}
	if err := ovs.Available(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	p := topogen.Defaults()
	p.BandwidthBps, p.QueueBytes = cfg.LinkBps, 64<<10
	spec, err := topogen.LeafSpine(2, 2, 2, p)
	if err != nil {
		return nil, err
	}
	topo, err := te.NewTopology(spec)
	if err != nil {
		return nil, err
	}
	ctlBin, ehBin, err := binaries(cfg.Bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "xlane-latency-")
	if err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	defer os.RemoveAll(dir)
	logDir := filepath.Join(cfg.Out, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	ctl, api, ofAddr, err := startControllerDaemon(ctx, ctlBin, dir, logDir, topo)
	if err != nil {
		return nil, err
	}
	d := &daemons{ehBin: ehBin, logDir: logDir, api: api, ctl: ctl}
	defer func() {
		if err := ctl.Stop(); err != nil {
			cfg.Logger.Warn("stopping the controller", "err", err)
		}
	}()
	progress(cfg.Progress, "xlane-controller (pid %d): API %s, OpenFlow %s; log %s", ctl.Pid(), api, ofAddr, ctl.Log)
	progress(cfg.Progress, "bringing up the testbed (2 leaves, 2 spines, 4 hosts, %d Mbit/s links)", cfg.LinkBps/1_000_000)
	tb, err := testbed.Up(ctx, testbed.Config{Name: cfg.Name, Dir: filepath.Join(dir, "tb"), Topology: topo, Controller: ofAddr, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := tb.Down(dctx); err != nil {
			cfg.Logger.Error("testbed down", "err", err)
		}
	}()
	if err := waitSwitches(ctx, ctl, len(tb.Bridges)); err != nil {
		return nil, err
	}
	ip := func(h string) netip.Addr { x, _ := tb.Host(h); return x.IPv4 }
	// The period and bound the controller approves for the probe's tunnel
	// (each lane variant's endhost requests it again).
	loadsize := wire.HeaderLen + wire.HD6.MessageChunks(cfg.MessageBytes)*wire.HD6.ChunkLen
	res, err := approve(ctx, api, tunnels.Request{Sender: ip(probeFrom), Receiver: netip.AddrPortFrom(ip(probeTo), xlanePort),
		LoadsizeBytes: int64(loadsize), PeriodUs: cfg.Period.Microseconds()})
	if err != nil {
		return nil, err
	}
	r := &Result{Packets: cfg.Packets, PeriodUs: res.PeriodUs, LinkBps: cfg.LinkBps, CrossShare: cfg.CrossShare, CPULoad: cfg.CPULoad,
		BoundNs: [2]int64{res.MinLatencyNs, res.MinLatencyNs + res.MaxJitterNs}}
	progress(cfg.Progress, "tunnel %s → %s: %d B every %d µs, bound %.1f–%.1f µs", probeFrom, probeTo, loadsize, res.PeriodUs,
		float64(r.BoundNs[0])/1000, float64(r.BoundNs[1])/1000)
	period := time.Duration(res.PeriodUs) * time.Microsecond
	for _, v := range cfg.Variants {
		lat, lost, err := measure(ctx, cfg, tb, d, v, period, ip)
		if err != nil {
			return nil, fmt.Errorf("latency: %s: %w", v, err)
		}
		s := Summarize(lat)
		demoted := d.demotions() > 0
		if demoted {
			progress(cfg.Progress, "%s: the controller demoted the tunnel (its meter dropped packets): the rest went best effort", v)
		}
		r.Variants = append(r.Variants, VariantResult{Name: v, Summary: s, Lost: lost, Demoted: demoted})
		r.series = append(r.series, Series{Name: v, Latency: lat})
		progress(cfg.Progress, "%s: %d packets, p50 %v, p99 %v, max %v, %d lost", v, s.Packets, s.P50, s.P99, s.Max, lost)
	}
	return r, r.write(cfg.Out)
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// measure runs one variant under cross traffic and CPU load.
func measure(ctx context.Context, cfg Config, tb *testbed.Testbed, d *daemons, variant string, period time.Duration, ip func(string) netip.Addr) ([]time.Duration, int, error) {
	// The lanes send one message per packet at most once per period, later
	// when a packet is late; give them three times the nominal time.
	dur := 3*time.Duration(cfg.Packets)*period + 5*time.Second
	lctx, stopLoad := context.WithTimeout(ctx, dur+10*time.Second)
	var wg sync.WaitGroup
	defer func() { stopLoad(); wg.Wait() }()
	for _, src := range []string{"h1", "h2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = tb.Load(lctx, src, netip.AddrPortFrom(ip(probeTo), 9), int64(float64(cfg.LinkBps)*cfg.CrossShare), 1472, dur+10*time.Second)
		}()
	}
	for range cfg.CPULoad {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; lctx.Err() == nil; n++ {
				if n%(1<<20) == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	time.Sleep(time.Second) // the best-effort queue fills
	mctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var got atomic.Int64
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-mctx.Done():
				return
			case <-tick.C:
				progress(cfg.Progress, "  %s: %d of %d packets", variant, got.Load(), cfg.Packets)
			}
		}
	}()
	if variant == Baseline {
		return baseline(mctx, cfg, tb, period, ip, &got)
	}
	return laneVariant(mctx, cfg, tb, d, variant == XLane, period, ip, &got)
}

// laneVariant measures a lane between two xlane-endhost daemons: the one
// in h4 sends the tunnel, the one in h3 receives it; an application
// keeps messages waiting in h4's R-X ring (one goes in each packet) and
// takes them off h3's X-R ring; latency is from the packet's sender stamp to the
// receiving lane's stamp. Tuned (X-Lane), h3's endhost runs its lane core
// pinned to the last CPU, busy-polling, on the fastest receive path (AF_XDP
// on its interface); otherwise (X-Lane0) on goroutines reading a socket.
// h4's endhost sends from goroutines in both: a second polling core
// would have to share the last CPU on this two-CPU machine.
func laneVariant(ctx context.Context, cfg Config, tb *testbed.Testbed, d *daemons, tuned bool, period time.Duration, ip func(string) netip.Addr, got *atomic.Int64) ([]time.Duration, int, error) {
	shmRoot := "/dev/shm"
	if st, err := os.Stat(shmRoot); err != nil || !st.IsDir() {
		shmRoot = ""
	}
	shm, err := os.MkdirTemp(shmRoot, "xlane-latency-")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(shm)
	const (
		txService, rxService = "latency", "latency-rx"
		laneName, appName    = "probe", "bench"
	)
	apps := []agent.App{{Name: appName, Channel: 1}}
	rxCfg := agent.Config{Controller: d.api, Service: rxService, ShmDir: shm, Schema: "hd6", LaneCPU: -1, Interface: "eth0",
		ReceivePath: "socket", Receive: []agent.Receive{{Port: xlanePort, Apps: apps}}}
	n := runtime.NumCPU()
	if tuned {
		rxCfg.ReceivePath = "auto"
		if n >= 2 {
			rxCfg.LaneCPU = n - 1
		}
	}
	txCfg := agent.Config{Controller: d.api, Service: txService, ShmDir: shm, Schema: "hd6", LaneCPU: -1,
		Lanes: []agent.Lane{{Name: laneName, Sender: ip(probeFrom).String(), Receiver: netip.AddrPortFrom(ip(probeTo), xlanePort).String(),
			MessageBytes: cfg.MessageBytes, Period: period, Apps: apps}}}
	variant := XLane0
	if tuned {
		variant = XLane
	}
	rxd, path, err := startEndhost(ctx, tb, d.ehBin, d.logDir, variant, probeTo, rxCfg)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = rxd.Stop() }()
	txd, _, err := startEndhost(ctx, tb, d.ehBin, d.logDir, variant, probeFrom, txCfg)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = txd.Stop() }()
	progress(cfg.Progress, "  xlane-endhost on %s (pid %d) sends the lane; on %s (pid %d) receives it, lane core %s, receive path %s",
		probeFrom, txd.Pid(), probeTo, rxd.Pid(), cpuName(rxCfg.LaneCPU), path)
	tx, err := bridge.Open(app.TxPath(shm, txService, laneName, appName))
	if err != nil {
		return nil, 0, err
	}
	defer tx.Close()
	rx, err := bridge.Open(app.RxPath(shm, rxService, xlanePort, appName))
	if err != nil {
		return nil, 0, err
	}
	defer rx.Close()
	// The lane core gets its CPU the way isolcpus would give it one: the
	// switches, the controller, the sending endhost and this process move
	// off it (the receiving endhost pinned its lane core there itself).
	if tuned && n >= 2 {
		pids := []int{d.ctlPid(), txd.Pid()}
		for _, f := range []string{"vswitchd.pid", "ovsdb.pid"} {
			if pid, err := pidOf(filepath.Join(tb.OVS().Dir, f)); err == nil {
				pids = append(pids, pid)
			}
		}
		iso, err := isolate(n-1, pids...)
		defer iso.restore()
		if err != nil {
			return nil, 0, err
		}
	}
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var pushed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the application: keeps the lane supplied
		defer wg.Done()
		msg := make([]byte, cfg.MessageBytes)
		// Up to appBacklog messages wait in the ring: the lane packs one per
		// packet (the load size holds one) and stamps the packet when it
		// sends it, so the wait in the ring is not measured; without the
		// backlog the lane sent only when this goroutine, sharing a CPU with
		// the load, got to run (about 100 packets a second, not 765).
		for i := 0; i < cfg.Packets && lctx.Err() == nil; {
			if tx.Len() >= appBacklog {
				time.Sleep(period / 8)
				continue
			}
			binary.BigEndian.PutUint64(msg, uint64(i))
			if tx.Push(msg, bridge.Meta{}) {
				i++
				pushed.Add(1)
			}
		}
	}()
	lat := make([]time.Duration, 0, cfg.Packets)
	buf := make([]byte, cfg.MessageBytes)
	last := time.Now()
	for len(lat) < cfg.Packets && ctx.Err() == nil && time.Since(last) < 5*time.Second {
		_, m, ok := rx.Pop(buf)
		if !ok {
			time.Sleep(20 * time.Microsecond)
			continue
		}
		last = time.Now()
		lat = append(lat, time.Duration(m.T2-m.T0))
		got.Add(1)
	}
	stop()
	wg.Wait()
	var stopErr error
	for _, e := range []*proc.Daemon{txd, rxd} { // the sender first: it releases the tunnel
		stopErr = errors.Join(stopErr, e.Stop())
	}
	unsent := tx.Len() // still in the ring when the time ran out
	progress(cfg.Progress, "  the application pushed %d messages, %d arrived, %d never left the ring", pushed.Load(), len(lat), unsent)
	// Lost: sent and never delivered (the last one sent may not have
	// arrived when the run ended).
	return lat, int(pushed.Load()) - unsent - len(lat), stopErr
}

// appBacklog is how many messages the job's application keeps waiting in
// the sending lane's ring.
const appBacklog = 32

func cpuName(cpu int) string {
	if cpu < 0 {
		return "none (goroutines)"
	}
	return fmt.Sprintf("on CPU %d, busy polling", cpu)
}

// baseline: a plain goroutine sends a timestamped datagram every period
// on the best-effort queue; latency is from that stamp to the moment the
// receiving goroutine has the datagram.
func baseline(ctx context.Context, cfg Config, tb *testbed.Testbed, period time.Duration, ip func(string) netip.Addr, got *atomic.Int64) ([]time.Duration, int, error) {
	rconn, err := tb.ListenUDP(probeTo, basePort)
	if err != nil {
		return nil, 0, err
	}
	defer rconn.Close()
	sconn, err := tb.DialUDP(probeFrom, netip.AddrPortFrom(ip(probeTo), basePort), 0)
	if err != nil {
		return nil, 0, err
	}
	defer sconn.Close()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The receiver gives up 5 s after the last send.
		defer func() { _ = rconn.SetReadDeadline(time.Now().Add(5 * time.Second)) }()
		msg := make([]byte, cfg.MessageBytes)
		next := time.Now()
		for i := 0; i < cfg.Packets && lctx.Err() == nil; i++ {
			binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
			if _, err := sconn.Write(msg); err == nil {
				sent.Add(1)
			}
			next = later(next.Add(period), time.Now())
			time.Sleep(time.Until(next))
		}
	}()
	stopRead := context.AfterFunc(ctx, func() { _ = rconn.SetReadDeadline(time.Unix(1, 0)) })
	defer stopRead()
	lat := make([]time.Duration, 0, cfg.Packets)
	buf := make([]byte, 2048)
	for len(lat) < cfg.Packets {
		n, err := rconn.Read(buf)
		now := time.Now().UnixNano()
		if err != nil {
			break // the deadline: time is up
		}
		if n >= 8 {
			lat = append(lat, time.Duration(now-int64(binary.BigEndian.Uint64(buf))))
			got.Add(1)
		}
	}
	stop()
	wg.Wait()
	return lat, int(sent.Load()) - len(lat), nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// write puts latency.txt, latency.json and the plots into dir; the table
// and the JSON also when the plots fail.
func (r *Result) write(dir string) error {
	files, plotErr := WritePlots(dir, r.series)
	txt := filepath.Join(dir, "latency.txt")
	f, err := os.Create(txt)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	r.Table(f)
	if err := f.Close(); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	js := filepath.Join(dir, "latency.json")
	r.Files = append([]string{txt, js}, files...)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(js, b, 0o644); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	return plotErr
}
