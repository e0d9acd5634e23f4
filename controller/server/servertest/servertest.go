// Package servertest serves a controller's API on loopback and watches
// upcalls for tests in other packages.
package servertest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/tunnels"
)

// Serve serves ctl's API on addr ("127.0.0.1:0" for any port) over real
// gRPC. It returns the address and a stop function that closes ctl (which
// ends watch streams) and the server; stop also runs when the test ends.
func Serve(t testing.TB, ctl *tunnels.Controller, addr string, opts ...grpc.ServerOption) (string, func()) {
	t.Helper()
	return ServeWith(t, ctl, addr, nil, opts...)
}

// ServeWith is Serve with options for the API server itself.
func ServeWith(t testing.TB, ctl *tunnels.Controller, addr string, srv []server.Option, opts ...grpc.ServerOption) (string, func()) {
	t.Helper()
	network, dialAddr := "tcp", ""
	if path, ok := strings.CutPrefix(addr, "unix:"); ok { // a Unix socket
		network, addr, dialAddr = "unix", path, "unix:"+path
	}
	lis, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if dialAddr == "" {
		dialAddr = lis.Addr().String()
	}
	g := grpc.NewServer(append(server.Options(), opts...)...)
	server.New(ctl, srv...).Register(g)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	var once sync.Once
	stop := func() { once.Do(func() { ctl.Close(); g.Stop(); <-done }) }
	t.Cleanup(stop)
	return dialAddr, stop
}

// Watch runs c.Watch until the test ends: upcalls arrive on ups, and live
// reports every subscription (true for the first). It returns once the
// first subscription is live.
func Watch(t testing.TB, ctx context.Context, c *client.Client) (ups <-chan tunnels.Upcall, live <-chan bool) {
	t.Helper()
	u := make(chan tunnels.Upcall, 1024)
	l := make(chan bool, 16)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.Watch(wctx, func(x tunnels.Upcall) {
			select {
			case u <- x:
			case <-wctx.Done():
			}
		}, func(first bool) { l <- first })
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	if first := <-l; !first {
		t.Fatal("first subscription not reported as first")
	}
	return u, l
}
