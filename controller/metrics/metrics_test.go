package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/xlane/xlane/controller/te"
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
