package latency

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/openflow"
)

// controller is an in-process X-Lane controller driving the testbed's
// Open vSwitch bridges over OpenFlow on loopback.
type controller struct {
	ctl   *tunnels.Controller
	addr  string // where the bridges connect
	ready chan string
	stop  func()
}

func startController(ctx context.Context, topo *te.Topology, log *slog.Logger) (*controller, error) {
	ctx, cancel := context.WithCancel(ctx)
	c := &controller{ready: make(chan string, 64)}
	var ctlp atomic.Pointer[tunnels.Controller]
	drv := openflow.New(openflow.Config{Switches: openflow.DatapathIDs(topo), Logger: log, EchoInterval: 500 * time.Millisecond,
		OnConnect: func(ctx context.Context, sw string) {
			if ctl := ctlp.Load(); ctl != nil {
				if err := ctl.Reconcile(ctx, sw); err != nil {
					log.Warn("reconcile", "switch", sw, "err", err)
					return
				}
				select {
				case c.ready <- sw:
				default:
				}
			}
		}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("latency: controller listener: %w", err)
	}
	c.addr = lis.Addr().String()
	ctl, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: drv, Logger: log})
	if err != nil {
		cancel()
		lis.Close()
		return nil, err
	}
	c.ctl = ctl
	ctlp.Store(ctl)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = drv.Serve(ctx, lis) }()
	c.stop = func() { ctl.Close(); cancel(); wg.Wait() }
	return c, nil
}

// waitReady waits until n switches connected and were reconciled.
func (c *controller) waitReady(ctx context.Context, n int) error {
	deadline := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-c.ready:
		case <-deadline:
			return fmt.Errorf("latency: %d of %d switches connected to the controller within 30 s", i, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
