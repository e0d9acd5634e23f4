package te

import (
	"errors"
	"strings"
	"testing"
)

// lineTopo is h1 -> s1 -> h2 (and back) at 1 Gbit/s: 8 ns per byte, 1 µs
// link latency, 100 ns jitter, 1000-byte max frame (8 µs of blocking), no
// frame overhead, so the expected numbers below are easy to check by hand.
func lineTopo(t *testing.T, sublanes int) *Topology {
	t.Helper()
	spec := TopologySpec{
		MaxFrameBytes: 1000, Sublanes: sublanes,
		Nodes: []NodeSpec{
			{Name: "h1", Kind: KindHost, IPv4: "10.0.0.1"},
			{Name: "s1", Kind: KindSwitch},
			{Name: "h2", Kind: KindHost, IPv4: "10.0.0.2"},
		},
	}
	for _, p := range [][2]string{{"h1", "s1"}, {"s1", "h1"}, {"s1", "h2"}, {"h2", "s1"}} {
		spec.Links = append(spec.Links, LinkSpec{From: p[0], To: p[1], BandwidthBps: 1e9, QueueBytes: 10000, MinLatencyNs: 1000, MaxJitterNs: 100})
	}
	topo, err := NewTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func admit(t *testing.T, e *Engine, r Request) (Tunnel, []Change) {
	t.Helper()
	tun, ch, err := e.Admit(r)
	if err != nil {
		t.Fatalf("admit %+v: %v", r, err)
	}
	return tun, ch
}

func wantRes(t *testing.T, got Tunnel, period, minLat, jitter int64) {
	t.Helper()
	if got.PeriodNs != period || got.MinLatencyNs != minLat || got.MaxJitterNs != jitter {
		t.Fatalf("tunnel %d: period/min/jitter = %d/%d/%d ns, want %d/%d/%d",
			got.ID, got.PeriodNs, got.MinLatencyNs, got.MaxJitterNs, period, minLat, jitter)
	}
}

func TestAdjustSingleTunnelByHand(t *testing.T) {
	e := NewEngine(lineTopo(t, 1))
	t1, ch := admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000})
	// C = 100 B × 8 ns = 800 ns; blocking B = 1000 B × 8 ns = 8000 ns; no
	// other tunnel, so the wait bound per hop is w = B = 8000 ns.
	// min = 2 × (C + λ) = 2 × 1800 = 3600 ns.
	// max = 2 × (w + C + λ + δ) = 2 × 9900 = 19800 ns → jitter 16200 ns.
	// Δ̄: last hop 8000 + max(800, 100 + 0) = 8800; first hop
	// 8000 + max(800, 100 + 8800) = 16900 < 100000, so the period stays.
	wantRes(t, t1, 100_000, 3600, 16200)
	if len(ch) != 0 {
		t.Fatalf("first tunnel changed others: %+v", ch)
	}
	if want := [][2]string{{"h1", "s1"}, {"s1", "h2"}}; len(t1.Edges) != 2 || t1.Edges[0] != want[0] || t1.Edges[1] != want[1] {
		t.Fatalf("edges = %v", t1.Edges)
	}
}

func TestAdjustTwoTunnelsSameLaneByHand(t *testing.T) {
	e := NewEngine(lineTopo(t, 1))
	t1, _ := admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000})
	t2, ch := admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 200, PeriodNs: 10_000})
	// T2: C2 = 1600 ns; it waits behind B and one T1 packet: w = 8000 + 800.
	// min = 2 × (1600 + 1000) = 5200; max = 2 × (8800 + 1600 + 1100) = 23000.
	// Δ̄: last 8800 + max(1600, 100) = 10400; first 8800 + max(1600, 10500)
	// = 19300 > 10000 requested, so the period is raised to 19300 ns.
	wantRes(t, t2, 19_300, 5200, 17800)
	// T1 now waits behind one T2 packet too: w = 9600;
	// max = 2 × (9600 + 800 + 1100) = 23000 → jitter 19400.
	if len(ch) != 1 || ch[0].ID != t1.ID {
		t.Fatalf("changes = %+v, want tunnel %d", ch, t1.ID)
	}
	if ch[0].Old.MaxJitterNs != 16200 || ch[0].New.MaxJitterNs != 19400 || ch[0].New.PeriodNs != 100_000 {
		t.Fatalf("change = %+v", ch[0])
	}
	// Releasing T2 restores T1 exactly.
	ch, err := e.Release(t2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0].New.MaxJitterNs != 16200 {
		t.Fatalf("release changes = %+v", ch)
	}
}

func TestAdjustSublanesByHand(t *testing.T) {
	e := NewEngine(lineTopo(t, 2))
	t1, _ := admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000, Sublane: 0})
	t2, ch := admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 200, PeriodNs: 10_000, Sublane: 1})
	if len(ch) != 0 {
		t.Fatalf("a lower sub-lane changed a higher one: %+v", ch)
	}
	// The higher sub-lane never sees the lower: T1 is as if alone.
	got, _ := e.Tunnel(t1.ID)
	wantRes(t, got, 100_000, 3600, 16200)
	// T2, hop 1: base B = 8000; T1 (C = 800, J = 0, π = 100 µs):
	// w = 8000 + (1 + ⌈(w + 0)/100000⌉)·800 → 9600 (fixed point).
	// Hop 2: T1's arrival jitter at s1 is 9900 − 1800 = 8100; still one
	// extra packet: w = 9600. max = 2 × (9600 + 1600 + 1100) = 24600,
	// min = 5200 → jitter 19400. Δ̄: 9600 + max(1600, 100 + 9600 + 1600)
	// = 20900 → period 20900 ns.
	wantRes(t, t2, 20_900, 5200, 19400)
}

func TestRejectNamesBottleneck(t *testing.T) {
	e := NewEngine(lineTopo(t, 1))
	// Queue of 10000 B: ten 1000-byte tunnels fill it.
	for range 10 {
		admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1000, PeriodNs: 10_000_000})
	}
	before := e.Tunnels()
	_, _, err := e.Admit(Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1, PeriodNs: 10_000_000})
	var rej *RejectError
	if !errors.As(err, &rej) || !errors.Is(err, ErrNoValidTree) {
		t.Fatalf("err = %v, want a RejectError", err)
	}
	if rej.Bottleneck != "h1->s1" || !strings.Contains(err.Error(), "queue full") {
		t.Fatalf("bottleneck = %q, err = %v", rej.Bottleneck, err)
	}
	after := e.Tunnels()
	if len(after) != len(before) {
		t.Fatalf("rejected request changed the tunnel set")
	}
	for i := range after {
		if after[i].Resources() != before[i].Resources() {
			t.Fatalf("rejected request changed tunnel %d", after[i].ID)
		}
	}
}

func TestRequestValidation(t *testing.T) {
	e := NewEngine(lineTopo(t, 2))
	cases := []struct {
		req   Request
		field string
	}{
		{Request{Sender: "hx", Receivers: []string{"h2"}, LoadsizeBytes: 1, PeriodNs: 1}, "sender"},
		{Request{Sender: "s1", Receivers: []string{"h2"}, LoadsizeBytes: 1, PeriodNs: 1}, "sender"},
		{Request{Sender: "h1", Receivers: nil, LoadsizeBytes: 1, PeriodNs: 1}, "receivers"},
		{Request{Sender: "h1", Receivers: []string{"h9"}, LoadsizeBytes: 1, PeriodNs: 1}, "receivers[0]"},
		{Request{Sender: "h1", Receivers: []string{"h2", "h2"}, LoadsizeBytes: 1, PeriodNs: 1}, "receivers[1]"},
		{Request{Sender: "h1", Receivers: []string{"h1"}, LoadsizeBytes: 1, PeriodNs: 1}, "receivers[0]"},
		{Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 0, PeriodNs: 1}, "loadsize_bytes"},
		{Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1001, PeriodNs: 1}, "loadsize_bytes"},
		{Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1, PeriodNs: 0}, "period_ns"},
		{Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1, PeriodNs: 11e9}, "period_ns"},
		{Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1, PeriodNs: 1, Sublane: 2}, "sublane"},
	}
	for _, c := range cases {
		_, _, err := e.Admit(c.req)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: err = %v, want field %s", c.req, err, c.field)
		}
	}
	if e.Len() != 0 {
		t.Fatalf("bad requests admitted tunnels")
	}
}

func TestChangeIsAtomic(t *testing.T) {
	e := NewEngine(lineTopo(t, 1))
	t1, _ := admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000})
	for range 9 {
		admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1000, PeriodNs: 1_000_000})
	}
	admit(t, e, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 500, PeriodNs: 1_000_000})
	before := e.Tunnels()
	// Others hold 9500 B of the 10000 B queue: 1000 B more cannot fit, so
	// the change must fail and keep t1 as it was.
	_, _, err := e.Change(t1.ID, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 1000, PeriodNs: 100_000})
	if err == nil {
		t.Fatal("oversized change admitted")
	}
	after := e.Tunnels()
	for i := range after {
		if after[i].Resources() != before[i].Resources() || after[i].ID != before[i].ID {
			t.Fatalf("failed change altered tunnel %d: %+v -> %+v", after[i].ID, before[i], after[i])
		}
	}
	// A change that fits keeps the id and reports the neighbour's change.
	got, ch, err := e.Change(t1.ID, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 50, PeriodNs: 200_000})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != t1.ID || got.LoadsizeBytes != 50 || got.PeriodNs != 200_000 {
		t.Fatalf("changed tunnel = %+v", got)
	}
	if len(ch) != 10 {
		t.Fatalf("all ten neighbours should see less jitter: %+v", ch)
	}
	for _, c := range ch {
		if c.New.MaxJitterNs >= c.Old.MaxJitterNs {
			t.Fatalf("neighbour jitter did not shrink: %+v", c)
		}
	}
}

func TestUnreachableReceiverIsAFieldError(t *testing.T) {
	spec := lineTopo(t, 1).Spec
	spec.Nodes = append(spec.Nodes, NodeSpec{Name: "h9", Kind: KindHost, IPv4: "10.0.0.9"}) // no cable
	topo, err := NewTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = NewEngine(topo).Admit(Request{Sender: "h1", Receivers: []string{"h2", "h9"}, LoadsizeBytes: 10, PeriodNs: 100_000})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "receivers[1]" || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("err = %v", err)
	}
}

// arrivals skips the division when w+j fits in one period; it must agree
// with 1 + ⌈(w+j)/p⌉ (0 for w+j ≤ 0) everywhere, the edges above all.
func TestArrivalsMatchesTheFormula(t *testing.T) {
	for _, p := range []Time{1, 7, 1000, 1_000_000} {
		for _, x := range []Time{-p - 1, -1, 0, 1, p - 1, p, p + 1, 2*p - 1, 2 * p, 2*p + 1, 10*p + 3} {
			for _, w := range []Time{0, x / 2, x} {
				j := x - w
				want := int64(1)
				if x > 0 {
					want = 1 + int64((x+p-1)/p)
				}
				if got := arrivals(w, j, p); got != want {
					t.Fatalf("arrivals(%d, %d, %d) = %d, want %d", w, j, p, got, want)
				}
			}
		}
	}
}

// A change's tunnel answers Current and TagOf without a lookup while it is
// the engine's; replaced by a Change of its own or released, Current asks
// by id and TagOf says nothing (the caller then asks by id too).
func TestChangeRefersToTheEngineTunnel(t *testing.T) {
	e := NewEngine(lineTopo(t, 1))
	req := Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000}
	t1, _ := admit(t, e, req)
	if !e.SetTag(t1.ID, "one") || e.SetTag(999, "none") {
		t.Fatal("SetTag: want true for a tunnel, false for an unknown id")
	}
	_, chs := admit(t, e, req)
	if len(chs) != 1 || chs[0].ID != t1.ID {
		t.Fatalf("changes = %+v, want tunnel %d", chs, t1.ID)
	}
	ch := chs[0]
	if got, ok := e.Current(ch); !ok || got != ch.New || e.TagOf(ch) != "one" {
		t.Fatalf("Current = %+v %v, TagOf = %v; want %+v, one", got, ok, e.TagOf(ch), ch.New)
	}
	admit(t, e, req) // moves t1 again: Current follows
	if got, _ := e.Current(ch); got == ch.New || got != mustRes(t, e, t1.ID) {
		t.Fatalf("after a later admission Current = %+v, engine has %+v", got, mustRes(t, e, t1.ID))
	}
	if _, _, err := e.Change(t1.ID, Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 200, PeriodNs: 100_000}); err != nil {
		t.Fatal(err)
	}
	if got, ok := e.Current(ch); !ok || got != mustRes(t, e, t1.ID) || got.LoadsizeBytes != 200 || e.TagOf(ch) != nil {
		t.Fatalf("after its own change: Current = %+v %v, TagOf = %v; want the new tunnel's, no tag", got, ok, e.TagOf(ch))
	}
	if _, err := e.Release(t1.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Current(ch); ok || e.TagOf(ch) != nil {
		t.Fatal("a released tunnel still answers")
	}
}

func mustRes(t *testing.T, e *Engine, id uint64) Resources {
	t.Helper()
	r, ok := e.Resources(id)
	if !ok {
		t.Fatalf("tunnel %d not in the engine", id)
	}
	return r
}

// AdmitInto reports what Admit does, in the caller's list when it has the
// room.
func TestAdmitIntoFillsTheCallersList(t *testing.T) {
	a, b := NewEngine(lineTopo(t, 1)), NewEngine(lineTopo(t, 1))
	buf := make([]Change, 3, 16)
	for i := range 5 {
		r := Request{Sender: "h1", Receivers: []string{"h2"}, LoadsizeBytes: 100, PeriodNs: 100_000}
		t1, want := admit(t, a, r)
		t2, got, err := b.AdmitInto(buf, r)
		if err != nil {
			t.Fatal(err)
		}
		if t1.ID != t2.ID || len(got) != len(want) || len(want) != i {
			t.Fatalf("admission %d: %d changes into the list, %d from Admit (tunnels %d, %d)", i, len(got), len(want), t2.ID, t1.ID)
		}
		for j := range want {
			if got[j].ID != want[j].ID || got[j].Old != want[j].Old || got[j].New != want[j].New {
				t.Fatalf("admission %d, change %d: %+v, want %+v", i, j, got[j], want[j])
			}
		}
		if len(got) > 0 && &got[0] != &buf[:1][0] {
			t.Fatalf("admission %d: changes not in the caller's list", i)
		}
	}
}
