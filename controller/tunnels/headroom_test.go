package tunnels

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound/memory"
)

func setupHeadroom(t *testing.T, headroom float64) *Controller {
	t.Helper()
	c, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2"), BoundHeadroom: headroom,
		Clock: &manualClock{now: time.Unix(1000, 0)}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// covered checks what every service was told against the engine: a
// period no shorter, a minimum latency no higher, a maximum no lower.
func covered(t *testing.T, c *Controller) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, rec := range c.recs {
		if rec.demoted {
			continue
		}
		now, ok := c.engine.Resources(id)
		if !ok {
			t.Fatalf("tunnel %d is not in the engine", id)
		}
		told := rec.tun.Resources()
		if periodUs(told.PeriodNs) < periodUs(now.PeriodNs) || told.MinLatencyNs > now.MinLatencyNs ||
			told.MinLatencyNs+told.MaxJitterNs < now.MinLatencyNs+now.MaxJitterNs {
			t.Fatalf("tunnel %d was told %+v, the engine holds %+v", id, told, now)
		}
	}
}

// TestHeadroomAbsorbsSmallIncreases: with 10 % headroom a service is told
// a maximum latency 10 % above the engine's; a second tunnel that raises
// the bound within that needs no upcall, a third that raises it beyond
// does, with the new bound padded again.
func TestHeadroomAbsorbsSmallIncreases(t *testing.T) {
	c := setupHeadroom(t, 0.1)
	ctx := context.Background()
	w := c.Watch("fd")
	fd, err := c.Request(ctx, "fd", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := c.engine.Resources(fd.TunnelID)
	if want := eng.MinLatencyNs + eng.MaxJitterNs; fd.MinLatencyNs+fd.MaxJitterNs < want+want/10 || fd.MinLatencyNs != eng.MinLatencyNs {
		t.Fatalf("told %+v for engine bounds %+v: want the maximum 10 %% higher, the minimum as is", fd, eng)
	}
	// 16 bytes more ahead of it: a few ns, within the headroom.
	if _, err := c.Request(ctx, "x", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 16, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	if moved, _ := c.engine.Resources(fd.TunnelID); moved == eng {
		t.Fatal("the second tunnel did not change the first's bound; the test needs it to")
	}
	select {
	case u := <-w.C:
		t.Fatalf("an increase within the headroom was told: %+v", u)
	default:
	}
	// A full frame ahead of it: beyond the headroom.
	if _, err := c.Request(ctx, "x", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7002), LoadsizeBytes: 900, PeriodUs: 1000}); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-w.C:
		eng, _ = c.engine.Resources(fd.TunnelID)
		if u.TunnelID != fd.TunnelID || u.Resources.MinLatencyNs+u.Resources.MaxJitterNs < eng.MinLatencyNs+eng.MaxJitterNs {
			t.Fatalf("upcall %+v for engine bounds %+v", u, eng)
		}
	default:
		t.Fatal("an increase beyond the headroom was not told")
	}
	covered(t, c)
}

// TestHeadroomKeepsPromises runs random requests, changes and releases
// with and without headroom: after every operation each service's told
// resources cover the engine's (period, minimum and maximum latency), and
// with headroom fewer upcalls are sent.
func TestHeadroomKeepsPromises(t *testing.T) {
	upcalls := map[float64]int{}
	for _, headroom := range []float64{0, 0.1} {
		c := setupHeadroom(t, headroom)
		ctx := context.Background()
		w := c.Watch("svc")
		rng := rand.New(rand.NewPCG(1, 2))
		hosts := []netip.Addr{h1, h2, h3}
		var ids []uint64
		for i := range 400 {
			switch {
			case len(ids) > 0 && rng.IntN(4) == 0:
				k := rng.IntN(len(ids))
				if err := c.Release(ctx, "svc", ids[k]); err != nil {
					t.Fatal(err)
				}
				ids = append(ids[:k], ids[k+1:]...)
			default:
				s := rng.IntN(3)
				r := (s + 1 + rng.IntN(2)) % 3
				res, err := c.Request(ctx, "svc", Request{Sender: hosts[s], Receiver: netip.AddrPortFrom(hosts[r], uint16(1000+i)),
					LoadsizeBytes: int64(1 + rng.IntN(300)), PeriodUs: int64(20 + rng.IntN(500)), Sublane: rng.IntN(2)})
				if err == nil {
					ids = append(ids, res.TunnelID)
				}
			}
			covered(t, c)
		drain:
			for {
				select {
				case <-w.C:
					upcalls[headroom]++
				default:
					break drain
				}
			}
		}
	}
	t.Logf("upcalls without headroom %d, with 10 %%: %d", upcalls[0], upcalls[0.1])
	if upcalls[0.1] >= upcalls[0] {
		t.Errorf("headroom did not save upcalls: %d with, %d without", upcalls[0.1], upcalls[0])
	}
}
