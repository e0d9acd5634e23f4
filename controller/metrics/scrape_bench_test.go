package metrics

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/xlane/xlane/controller/te/workload"
	"github.com/xlane/xlane/controller/tunnels"
)

// BenchmarkScrape10k is one Prometheus scrape of a controller holding
// 10,000 tunnels on a k=16 fat-tree (6,144 links, three series each):
// CPU the daemon spends beside its admissions at every scrape.
func BenchmarkScrape10k(b *testing.B) {
	m, ctl, topo, _, ip := watched(b, 16)
	mix := workload.Coordination()
	mix.MulticastShare = 0
	got := 0
	for i, r := range workload.Requests(topo, mix, 30_000, 1) {
		if got == 10_000 {
			break
		}
		req := tunnels.Request{Sender: ip(r.Sender), Receiver: netip.AddrPortFrom(ip(r.Receivers[0]), uint16(1000+i%50000)),
			LoadsizeBytes: r.LoadsizeBytes, PeriodUs: r.PeriodNs / 1000, Sublane: r.Sublane}
		if _, err := ctl.Request(context.Background(), fmt.Sprintf("svc%d", i%50), req); err == nil {
			got++
		}
	}
	if got < 10_000 {
		b.Fatalf("only %d tunnels fit", got)
	}
	h := m.Handler()
	for _, c := range []struct{ name, query, enc string }{
		{"identity", "", "identity"},
		{"gzip", "", "gzip"}, // as Prometheus asks
		{"one-family", "?name[]=go_gc_duration_seconds", "identity"}, // as xlane bench admissions asks
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for range b.N {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/metrics"+c.query, nil)
				req.Header.Set("Accept-Encoding", c.enc)
				h.ServeHTTP(rec, req)
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size)/1e6, "MB/scrape")
		})
	}
}
