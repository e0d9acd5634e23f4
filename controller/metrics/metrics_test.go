package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

func TestScrape(t *testing.T) {
	topo, err := te.ParseTopology(strings.NewReader(`{"max_frame_bytes":1000,
	 "nodes":[{"name":"h1","kind":"host","ipv4":"10.0.0.1"},{"name":"s1","kind":"switch"},{"name":"h2","kind":"host","ipv4":"10.0.0.2"}],
	 "links":[{"from":"h1","to":"s1","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100},
	          {"from":"s1","to":"h2","bandwidth_bps":1000000000,"queue_bytes":10000,"min_latency_ns":1000,"max_jitter_ns":100}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: topo, Driver: memory.New("s1"), Observer: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	m.Watch(ctl)
	ctx := context.Background()
	req := tunnels.Request{Sender: netip.MustParseAddr("10.0.0.1"), Receiver: netip.MustParseAddrPort("10.0.0.2:7000"), LoadsizeBytes: 100, PeriodUs: 100}
	for range 2 {
		if _, err := ctl.Request(ctx, "fd", req); err != nil {
			t.Fatal(err)
		}
	}
	req.LoadsizeBytes = 0
	_, _ = ctl.Request(ctx, "fd", req)
	m.UpcallSent(4 * time.Millisecond)
	m.UpcallSent(12 * time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`xlane_operations_total{op="request",result="ok"} 2`,
		`xlane_operations_total{op="request",result="invalid_argument"} 1`,
		`xlane_upcalls_total{kind="bandwidth_changed",reason="TE"} 1`,
		`xlane_tunnels{state="express"} 2`,
		`xlane_link_express_reserved_bps{link="h1->s1"} 1.6e+07`, // two tunnels of 100 B per 100 µs
		`xlane_link_express_queue_reserved_bytes{link="s1->h2"} 200`,
		`xlane_tunnel_latency_bound_seconds_count 2`,
		`xlane_admission_batch_size_count 3`, // one request at a time
		`xlane_admission_batch_size_bucket{le="1"} 3`,
		`xlane_upcall_wait_seconds_bucket{le="0.003"} 0`,
		`xlane_upcall_wait_seconds_bucket{le="0.005"} 1`,
		`xlane_upcall_wait_seconds_bucket{le="0.01"} 1`, // the target is a bound
		`xlane_upcall_wait_seconds_bucket{le="0.015"} 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

// TestScrapeLinks checks the link gauges, which are built outside the
// registry: every link once per family, in name order, in a page
// Prometheus' own parser reads, two scrapes at once (run with -race),
// and the handler's name[] filter applied to them as to the rest.
func TestScrapeLinks(t *testing.T) {
	m, ctl, topo, hosts, ip := watched(t, 4)
	req := tunnels.Request{Sender: ip(hosts[0]), Receiver: netip.AddrPortFrom(ip(hosts[len(hosts)-1]), 7000), LoadsizeBytes: 100, PeriodUs: 100}
	if _, err := ctl.Request(context.Background(), "fd", req); err != nil {
		t.Fatal(err)
	}
	scrape := func(query string) string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics"+query, nil))
		if rec.Code != 200 {
			t.Fatalf("scrape %q: %d %s", query, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	var wg sync.WaitGroup
	pages := make([]string, 2)
	for i := range pages {
		wg.Go(func() { pages[i] = scrape("") })
	}
	wg.Wait()
	linkLines := func(page string) []string {
		var out []string
		for l := range strings.Lines(page) {
			if strings.HasPrefix(l, "xlane_link_") {
				out = append(out, l)
			}
		}
		return out
	}
	if a, b := linkLines(pages[0]), linkLines(pages[1]); len(a) != 3*len(topo.Links) || !slices.Equal(a, b) {
		t.Errorf("two scrapes at once: %d and %d link lines, want %d each and equal", len(a), len(b), 3*len(topo.Links))
	}
	p := expfmt.NewTextParser(model.LegacyValidation) // what a Prometheus before 3.0 accepts
	mfs, err := p.TextToMetricFamilies(strings.NewReader(pages[0]))
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	var names []string
	for i := range topo.Links {
		names = append(names, topo.LinkName(te.LinkID(i)))
	}
	slices.Sort(names)
	loaded := 0
	for _, fam := range []string{"xlane_link_express_queue_reserved_bytes", "xlane_link_express_reserved_bps", "xlane_link_express_utilization"} {
		mf := mfs[fam]
		if mf == nil || mf.GetType() != dto.MetricType_GAUGE {
			t.Fatalf("%s: missing or not a gauge: %v", fam, mf)
		}
		var got []string
		for _, m := range mf.GetMetric() {
			got = append(got, m.GetLabel()[0].GetValue())
			if m.GetGauge().GetValue() > 0 {
				loaded++
			}
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s: links %v, want %v", fam, got, names)
		}
		if !strings.Contains(pages[0], fam+`{link="`+names[0]+`"}`) {
			t.Errorf("%s: first link not written as expected", fam)
		}
	}
	// The tunnel crosses the fat-tree's six links between pods.
	if loaded != 3*6 {
		t.Errorf("%d link gauges above 0, want 18 (three families, six links)", loaded)
	}
	one := scrape("?name[]=xlane_link_express_utilization&name[]=xlane_tunnels")
	if strings.Contains(one, "xlane_link_express_reserved_bps") || strings.Contains(one, "go_goroutines") ||
		!strings.Contains(one, "xlane_link_express_utilization{") || !strings.Contains(one, `xlane_tunnels{state="express"} 1`) {
		t.Errorf("the name[] filter: got\n%s", one)
	}
}

// watched returns metrics watching a controller (in-memory driver, no
// call log) on a k-ary fat-tree, its topology, hosts and their addresses.
func watched(tb testing.TB, k int) (*Metrics, *tunnels.Controller, *te.Topology, []string, func(string) netip.Addr) {
	tb.Helper()
	topo, hosts := tetest.FatTree(tb, k)
	drv := memory.New(topo.Switches()...)
	drv.Record(false)
	m := New()
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: topo, Driver: drv, Observer: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ctl.Close)
	m.Watch(ctl)
	ip := func(name string) netip.Addr { id, _ := topo.NodeByName(name); return topo.Nodes[id].IPv4 }
	return m, ctl, topo, hosts, ip
}
