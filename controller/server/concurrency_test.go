package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/store"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/memory"
)

// TestConcurrentClients runs 200 services that request, change and
// release tunnels over gRPC for 10 s, with switch failures injected, and
// then checks that the durable store, the TE engine and the switches hold
// exactly the same state.
func TestConcurrentClients(t *testing.T) {
	duration := 10 * time.Second
	if testing.Short() {
		duration = 2 * time.Second
	}
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	drv := memory.New("s1", "s2")
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: tetest.TwoSwitch(t), Driver: drv, Store: st, Grace: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := servertest.Serve(t, ctl, "127.0.0.1:0")

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	hosts := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ops := map[string]int{}
	count := func(k string) { mu.Lock(); ops[k]++; mu.Unlock() }
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial(addr, fmt.Sprintf("svc%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			var mine []uint64
			for ctx.Err() == nil {
				if i == 0 && rng.IntN(20) == 0 {
					drv.FailNext("", 1) // switch failures in the mix
				}
				s, r := rng.IntN(3), rng.IntN(2)
				if r >= s {
					r++
				}
				req := tunnels.Request{Sender: hosts[s], Receiver: netip.AddrPortFrom(hosts[r], uint16(1000+rng.IntN(100))),
					LoadsizeBytes: int64(1 + rng.IntN(200)), PeriodUs: int64(50 + rng.IntN(2000)), Sublane: rng.IntN(2)}
				switch {
				case len(mine) > 0 && rng.IntN(3) == 0:
					k := rng.IntN(len(mine))
					if err := c.ReleaseBandwidth(ctx, mine[k]); err == nil {
						mine = slices.Delete(mine, k, k+1)
						count("release")
					}
				case len(mine) > 0 && rng.IntN(4) == 0:
					k := rng.IntN(len(mine))
					req.Sender = hosts[0] // a change keeps the sender: use tunnels from h1 only
					if _, err := c.ChangeBandwidth(ctx, mine[k], req); err == nil {
						count("change")
					}
				default:
					req.Sender = hosts[0]
					if req.Receiver.Addr() == hosts[0] {
						req.Receiver = netip.AddrPortFrom(hosts[1+rng.IntN(2)], req.Receiver.Port())
					}
					if res, err := c.RequestBandwidth(ctx, req); err == nil {
						mine = append(mine, res.TunnelID)
						count("request")
					} else {
						count("rejected")
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("operations: %v", ops)
	if ops["request"] < 200 || ops["release"] < 50 {
		t.Fatalf("too little happened: %v", ops)
	}
	time.Sleep(50 * time.Millisecond) // let grace periods end
	stop()

	// Engine and store agree: a controller restored from the store (which
	// keeps each tunnel's owner, request and tree) computes exactly the
	// tunnels the running one holds.
	live := ctl.Tunnels("")
	again, err := tunnels.New(context.Background(), tunnels.Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2"), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if restored := again.Tunnels(""); !slices.Equal(restored, live) {
		t.Fatalf("store and engine disagree: %d stored tunnels, %d live", len(restored), len(live))
	}
	for i := range 200 {
		svc := fmt.Sprintf("svc%d", i)
		if !slices.Equal(again.Tunnels(svc), ctl.Tunnels(svc)) {
			t.Fatalf("ownership of %s differs between store and engine", svc)
		}
	}
	// Switches hold exactly what the controller wants.
	for _, sw := range ctl.Switches() {
		want := ctl.Desired(sw).Rules
		if got := drv.Rules(sw); !slices.EqualFunc(got, want, southbound.TunnelRule.Equal) {
			t.Fatalf("switch %s: %d rules installed, %d desired", sw, len(got), len(want))
		}
	}
}
