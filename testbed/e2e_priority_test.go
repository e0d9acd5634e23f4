package testbed_test

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/testbed"
)

// probe sends a timestamped datagram every gap from c and collects the
// one-way delays (one clock: the same machine) of what arrives on rx,
// up to the kernel's receive timestamp, so that the reading goroutine's
// scheduling does not count.
func probe(ctx context.Context, t *testing.T, tx, rx *net.UDPConn, gap time.Duration) []time.Duration {
	var delays []time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			rx.SetReadDeadline(time.Now().Add(2 * time.Second))
			p, err := testbed.ReadTOS(rx, buf)
			if err != nil {
				return
			}
			n := len(p.Data)
			if n >= 16 {
				delays = append(delays, p.At.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(p.Data)))))
			}
			if ctx.Err() != nil && n >= 16 && binary.BigEndian.Uint64(p.Data[8:]) == 1 {
				return
			}
		}
	}()
	// Like a lane, at least gap between sends: a late probe moves the
	// schedule (catching up would send two within one period, and a
	// meter with a one-packet burst drops the second).
	b := make([]byte, 200)
	for next := time.Now(); ctx.Err() == nil; {
		time.Sleep(time.Until(next))
		now := time.Now()
		binary.BigEndian.PutUint64(b, uint64(now.UnixNano()))
		if _, err := tx.Write(b); err != nil {
			t.Errorf("probe: %v", err)
			break
		}
		next = now.Add(gap)
	}
	binary.BigEndian.PutUint64(b[8:], 1) // the last probe
	binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
	tx.Write(b)
	wg.Wait()
	return delays
}

func p99(d []time.Duration) time.Duration { return quantile(d, 0.99) }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q)]
}

// TestE2EPriorityUnderCrossTraffic: with best-effort cross traffic
// saturating the leaf1→h3 port, express probes (a sub-lane 0 tunnel, one
// packet per period) keep their p99 latency within 2x of the idle p99,
// while best-effort probes on the same path see at least 10x.
func TestE2EPriorityUnderCrossTraffic(t *testing.T) {
	// 20 Mbit/s links: the userspace datapath forwards the cross traffic
	// that saturates them without running out of CPU on a small machine,
	// so the queues, not the switch's CPU, decide who waits.
	const linkBps = 20_000_000
	priorityUnderCrossTraffic(t, newHarnessAt(t, "t4", nil, linkBps), linkBps)
}

// priorityUnderCrossTraffic is the check of TestE2EPriorityUnderCrossTraffic
// on a testbed whose links run at linkBps.
func priorityUnderCrossTraffic(t *testing.T, h *harness, linkBps int64) {
	const port, bePort = 7200, 7201
	const period = 2 * time.Millisecond
	if _, err := h.cli.RequestBandwidth(h.ctx, tunnels.Request{
		Sender: h.ip("h4"), Receiver: netip.AddrPortFrom(h.ip("h3"), port), LoadsizeBytes: 200, PeriodUs: period.Microseconds(),
	}); err != nil {
		t.Fatal(err)
	}
	open := func(p uint16, dscp uint8) (*net.UDPConn, *net.UDPConn) {
		rx, err := h.tb.ListenUDP("h3", p)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := h.tb.DialUDP("h4", netip.AddrPortFrom(h.ip("h3"), p), dscp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rx.Close(); tx.Close() })
		return tx, rx
	}
	xtx, xrx := open(port, southbound.DSCP(0, false))
	btx, brx := open(bePort, 0)
	measure := func(d time.Duration, load bool) (express, be []time.Duration) {
		ctx, cancel := context.WithTimeout(h.ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		if load {
			// h1 and h2 each send at 95 % of their links to h3: twice what
			// the leaf1→h3 port carries.
			for _, src := range []string{"h1", "h2"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := h.tb.Load(ctx, src, netip.AddrPortFrom(h.ip("h3"), 9), linkBps*95/100, 1472, d); err != nil {
						t.Errorf("load from %s: %v", src, err)
					}
				}()
			}
			time.Sleep(time.Second) // the best-effort queue fills
		}
		wg.Add(2)
		go func() { defer wg.Done(); express = probe(ctx, t, xtx, xrx, period) }()
		go func() { defer wg.Done(); be = probe(ctx, t, btx, brx, period) }()
		wg.Wait()
		return express, be
	}
	idleX, idleB := measure(2*time.Second, false)
	loadX, loadB := measure(3*time.Second, true)
	for _, x := range []struct {
		name string
		d    []time.Duration
	}{{"idle express", idleX}, {"idle be", idleB}, {"load express", loadX}, {"load be", loadB}} {
		t.Logf("%s: min %v p50 %v p90 %v p99 %v max %v", x.name, quantile(x.d, 0), quantile(x.d, .5), quantile(x.d, .9), p99(x.d), quantile(x.d, 1))
	}
	t.Logf("express probes:     idle p99 %8v (%d), under load p99 %8v (%d)", p99(idleX), len(idleX), p99(loadX), len(loadX))
	t.Logf("best-effort probes: idle p99 %8v (%d), under load p99 %8v (%d)", p99(idleB), len(idleB), p99(loadB), len(loadB))
	if len(idleX) < 500 || len(loadX) < 500 {
		t.Fatalf("too few express probes arrived: %d idle, %d under load", len(idleX), len(loadX))
	}
	if p99(loadX) > 2*p99(idleX) {
		t.Errorf("express p99 grew from %v to %v under cross traffic (more than 2x)", p99(idleX), p99(loadX))
	}
	if len(loadB) > 0 && p99(loadB) < 10*p99(idleB) {
		t.Errorf("best-effort p99 grew only from %v to %v: the port was not saturated", p99(idleB), p99(loadB))
	}
}
