package server_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

// With an upcall holdoff, admissions wait for watch streams to take their
// upcalls; a stream over gRPC tells the controller when it has (Drained),
// so admissions go on at once rather than after the holdoff (5 s here:
// 320 admissions take well under a second, so waiting one out fails).
func TestWatchStreamReleasesTheHoldoff(t *testing.T) {
	const holdoff = 5 * time.Second
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2"), UpcallHoldoff: holdoff})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := servertest.Serve(t, ctl, "127.0.0.1:0")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fd, err := client.Dial(addr, "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	other, err := client.Dial(addr, "other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	ups, _ := servertest.Watch(t, ctx, fd) // subscribed when it returns
	h1, h2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if _, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 10, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	// Admissions from many goroutines at once, each changing fd's bound:
	// batches start while fd's stream has upcalls still to take.
	const senders, each = 16, 20
	start := time.Now()
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				port := uint16(8000 + g*each + i)
				if _, err := other.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, port), LoadsizeBytes: 10, PeriodUs: 1000}); err != nil {
					t.Errorf("admission to port %d: %v", port, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > holdoff*4/5 {
		t.Fatalf("%d admissions took %v: some waited out the holdoff (%v) though fd's stream kept up", senders*each, took, holdoff)
	}
	for changed := false; !changed; {
		select {
		case u := <-ups:
			changed = u.Kind == tunnels.BandwidthChanged
		case <-ctx.Done():
			t.Fatal("fd saw no BandwidthChanged upcall")
		}
	}
}
