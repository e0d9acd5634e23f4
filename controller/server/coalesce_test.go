package server_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/server"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/tunnels"
)

// With a coalescing window, a watch response that would follow the
// previous one sooner waits out the window and carries what came
// meanwhile; without one it goes at once. Over real gRPC: two admissions
// of another service in a row each change FD's bounds.
func TestWatchCoalesce(t *testing.T) {
	const window = 400 * time.Millisecond
	for _, c := range []struct {
		window time.Duration
		held   bool // the second response waited out the window, else it came at once
	}{{window, true}, {0, false}} {
		t.Run(c.window.String(), func(t *testing.T) {
			d := start(t, "127.0.0.1:0", 2*time.Second, server.WatchCoalesce(c.window))
			defer d.stop()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			fd, raft := dial(t, d, "fd"), dial(t, d, "raft")
			ups, _ := servertest.Watch(t, ctx, fd)
			res, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 500})
			if err != nil {
				t.Fatal(err)
			}
			next := func() (time.Time, tunnels.Upcall) {
				t.Helper()
				select {
				case u := <-ups:
					return time.Now(), u
				case <-ctx.Done():
					t.Fatal("no upcall")
				}
				return time.Time{}, tunnels.Upcall{}
			}
			raftReq := func(port uint16) {
				t.Helper()
				if _, err := raft.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, port), LoadsizeBytes: 200, PeriodUs: 500}); err != nil {
					t.Fatal(err)
				}
			}
			raftReq(7001)
			t1, ch1 := next()
			raftReq(7002)
			t2, ch2 := next()
			if ch1.Kind != tunnels.BandwidthChanged || ch2.Kind != tunnels.BandwidthChanged || ch1.TunnelID != res.TunnelID || ch2.TunnelID != res.TunnelID {
				t.Fatalf("upcalls %v, %v; want two changes of FD's tunnel %d", ch1, ch2, res.TunnelID)
			}
			if ch2.Resources.MaxJitterNs <= ch1.Resources.MaxJitterNs {
				t.Fatalf("second change's jitter bound %d, not above the first's %d", ch2.Resources.MaxJitterNs, ch1.Resources.MaxJitterNs)
			}
			gap := t2.Sub(t1)
			// (The first response's own way to the client may take longer than
			// the second's: the gap can fall a little short of the window.)
			if held := gap >= window-50*time.Millisecond; held != c.held {
				t.Fatalf("second response %v after the first, with a %v window", gap, c.window)
			}
		})
	}
}

type sentWaits struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sentWaits) UpcallSent(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
}

// The wait reported for an upcall runs from its change's commit until its
// response is handed to gRPC: a second change held by the coalescing
// window reports the window, the first almost nothing.
func TestObserveSent(t *testing.T) {
	const window = 300 * time.Millisecond
	var sent sentWaits
	d := start(t, "127.0.0.1:0", 2*time.Second, server.WatchCoalesce(window), server.ObserveSent(&sent))
	defer d.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fd, raft := dial(t, d, "fd"), dial(t, d, "raft")
	ups, _ := servertest.Watch(t, ctx, fd)
	if _, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 500}); err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{7001, 7002} {
		if _, err := raft.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, port), LoadsizeBytes: 200, PeriodUs: 500}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ups:
		case <-ctx.Done():
			t.Fatal("no upcall")
		}
	}
	// The wait is reported once gRPC has the response: maybe after the
	// client read it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		sent.mu.Lock()
		n := len(sent.waits)
		sent.mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
	}
	sent.mu.Lock()
	defer sent.mu.Unlock()
	if len(sent.waits) != 2 {
		t.Fatalf("%d waits reported (%v), want one for each of FD's two upcalls", len(sent.waits), sent.waits)
	}
	if first, second := sent.waits[0], sent.waits[1]; first < 0 || first > window/2 || second < window*2/3 || second > 2*window {
		t.Fatalf("waits %v then %v; want the first short and the second about the %v window", first, second, window)
	}
}
